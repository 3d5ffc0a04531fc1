"""Runs inside the test VM (tests/nested/vm.py boots it with virtme-ng): a command server for the host.

    python3 guest_agent.py PORT

The guest boots the host's own root filesystem read-only, so this file and the project's venv
are where they are on the host. The agent brings up the user-network NIC (QEMU's, MAC
52:54:00:12:34:56) as 10.0.2.15, then answers on 10.0.2.15:PORT, which QEMU forwards from a
loopback port of the host:

    POST /run   {"argv": [...], "timeout": s, "env": {...}}  -> {"rc": n, "out": "...", "err": "..."}
    POST /spawn {"argv": [...], "log": path, "env": {...}}   -> {"pid": n}   (a daemon, detached)
    POST /halt                                                -> {} and the VM powers off

Only the standard library: Python's start under TCG emulation takes seconds per import.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER_NET_MAC = "52:54:00:12:34:56"
GUEST_IP = "10.0.2.15"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def nic_with_mac(mac: str) -> str:
    for name in os.listdir("/sys/class/net"):
        try:
            with open(f"/sys/class/net/{name}/address", encoding="ascii") as f:
                if f.read().strip().lower() == mac:
                    return name
        except OSError:
            continue
    raise SystemExit(f"guest_agent: no NIC with MAC {mac}")


def user_net_up() -> None:
    nic = nic_with_mac(USER_NET_MAC)
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "set", nic, "up")
    sh("ip", "addr", "add", f"{GUEST_IP}/24", "dev", nic)
    # no default route: the guest reaches only what QEMU forwards (10.0.2.100 -> the host's Neutron)


class Handler(BaseHTTPRequestHandler):
    server_version = "kcnm-guest-agent"

    def log_message(self, fmt: str, *args: object) -> None:  # the host logs what it asks
        return

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(length) or b"{}")
        env = {**os.environ, **req.get("env", {})}
        if self.path == "/run":
            try:
                proc = subprocess.run(req["argv"], capture_output=True, text=True, env=env,
                                      timeout=req.get("timeout", 120))
                self._answer({"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr})
            except subprocess.TimeoutExpired as exc:
                self._answer({"rc": -1, "out": str(exc.stdout or ""), "err": f"timed out after {exc.timeout} s"})
            except OSError as exc:
                self._answer({"rc": 127, "out": "", "err": str(exc)})
        elif self.path == "/spawn":
            try:
                with open(req["log"], "ab") as log:
                    proc = subprocess.Popen(req["argv"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                self._answer({"pid": 0, "err": str(exc)})
                return
            threading.Thread(target=proc.wait, daemon=True).start()  # reap it: the guest's init is not a reaper
            self._answer({"pid": proc.pid})
        elif self.path == "/halt":
            self._answer({})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        else:
            self.send_error(404)


def main() -> int:
    port = int(sys.argv[1])
    user_net_up()
    server = ThreadingHTTPServer((GUEST_IP, port), Handler)
    print(f"guest_agent: serving on {GUEST_IP}:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
