"""The contenders and the processes behind them: one counting proxy per Neutron
contender, the benchmark's own kuryr-cnm instances (each its own plugin name and
socket, so the stack's plugin `kuryr` and the tests using it are left alone), and
kuryr-libnetwork 18.0.0 from its own venv.

Every process is started in its own session (setsid), so a Ctrl-C in `make bench`
reaches only the runner, which then tears things down in order: containers and
networks first, while the plugins and proxies they need are still up.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TOP = Path("/opt/kuryr-cnm/bench")
LOGS = Path("/opt/kuryr-cnm/log/bench")
PLUGIN_DIR = Path("/run/docker/plugins")
PROJECT_VENV = REPO / ".venv"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def alive(pid: int | None) -> bool:
    """True for a live process; a zombie counts as dead (PID 1 here does not reap)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except OSError:
        return False


def stop_pid(pid: int | None, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout`: only ever a process the benchmark started."""
    if not alive(pid):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


# --- the counting proxy ---------------------------------------------------------------

# The pool variant's sizing: Docker creates the endpoints of one network one after the
# other, so a burst of starts is only as fast as a pool that holds it (50 here).
POOL_MIN, POOL_MAX, POOL_BATCH = 50, 60, 25

class Proxy:
    """A `neutron_proxy.py` process in front of Neutron, for one contender."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        errlog = open(LOGS / f"proxy-{self.name}.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "neutron_proxy.py"), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=errlog, text=True, start_new_session=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            raise RuntimeError(f"proxy {self.name} did not start (see {LOGS}/proxy-{self.name}.log)")
        self.url = line.split()[-1]

    def _call(self, method: str, path: str) -> dict[str, Any]:
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(method, path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def counts(self) -> dict[str, Any]:
        return self._call("GET", "/__counts")

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "/__reset")

    def wait_quiet(self, quiet: float = 2.0, timeout: float = 60, writes_only: bool = False) -> dict[str, Any]:
        """Wait until the plugin has made no request (or no write) for `quiet` seconds,
        so background writes (deferred tags, pool refills) are counted where they belong."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.counts()
            idle = c["write_idle_seconds"] if writes_only else c["idle_seconds"]
            if (c["inflight"] == 0 and idle >= quiet) or time.monotonic() > deadline:
                c["quiet_timed_out"] = time.monotonic() > deadline
                return c
            time.sleep(max(0.05, min(0.5, quiet - idle)))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        stop_pid(self.pid, timeout=5)
        if self.proc:
            self.proc.wait(timeout=5)


# --- plugins --------------------------------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 2) -> None:
        super().__init__("plugin", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def activates(conn: http.client.HTTPConnection) -> bool:
    try:
        conn.request("POST", "/Plugin.Activate", body=b"")
        return b"NetworkDriver" in conn.getresponse().read()
    except OSError:
        return False
    finally:
        conn.close()


@dataclass
class KuryrCnm:
    """A kuryr-cnm process of the benchmark's own, as a user would run it."""
    name: str             # Docker plugin name
    proxy_url: str
    host_id: str
    pool: bool
    proc: subprocess.Popen[bytes] | None = None
    conf_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.conf_path = TOP / self.name / "kuryr.conf"

    @property
    def socket_path(self) -> Path:
        return PLUGIN_DIR / f"{self.name}.sock"

    def config_text(self) -> str:
        # [neutron] cloud stays unset: keystoneauth's `none` plugin + endpoint reach the proxy.
        text = f"""# Written by bench/run.py for the benchmark's kuryr-cnm contender '{self.name}'.
[DEFAULT]
kuryr_uri = unix://{self.socket_path}
plugin_name = {self.name}
host = {self.host_id}
debug = false
log_file = {LOGS / (self.name + '.log')}

[neutron]
auth_type = none
endpoint = {self.proxy_url}
default_subnetpool_v4 = kuryr
default_subnetpool_v6 = kuryr6
"""
        if self.pool:
            text += """
[vif_pool]
enabled = true
ports_pool_min = {POOL_MIN}
ports_pool_max = {POOL_MAX}
ports_pool_batch = {POOL_BATCH}
""".format(POOL_MIN=POOL_MIN, POOL_MAX=POOL_MAX, POOL_BATCH=POOL_BATCH)
        return text

    def start(self, timeout: float = 60) -> None:
        self.conf_path.parent.mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text())
        if self.socket_path.exists():
            if activates(UnixHTTPConnection(str(self.socket_path))):
                raise RuntimeError(f"something already serves {self.socket_path}; is another benchmark running?")
            self.socket_path.unlink()  # left by a killed process
        out = open(LOGS / f"{self.name}.out", "a")
        self.proc = subprocess.Popen(
            [str(PROJECT_VENV / "bin" / "kuryr-cnm"), "serve", "--config-file", str(self.conf_path)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (self.socket_path.exists() and activates(UnixHTTPConnection(str(self.socket_path)))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kuryr-cnm '{self.name}' did not start (see {LOGS}/{self.name}.out/.log)")
            time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        stop_pid(self.pid)
        if self.proc:
            self.proc.wait(timeout=5)
        self.socket_path.unlink(missing_ok=True)


@dataclass
class KuryrLibnetwork:
    """kuryr-libnetwork 18.0.0 through bench/kuryr_libnetwork.sh (install, start, stop)."""
    name: str
    proxy_url: str
    port: int = 23790

    def _script(self, action: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KL_NEUTRON_URL=self.proxy_url, KL_PORT=str(self.port), KL_NAME=self.name)
        return subprocess.run(["bash", str(BENCH / "kuryr_libnetwork.sh"), action], env=env, text=True,
                              capture_output=True, timeout=timeout)

    def install(self) -> None:
        res = self._script("install")
        if res.returncode != 0:
            raise RuntimeError(f"kuryr-libnetwork install failed: {res.stderr.strip()}")

    def start(self) -> None:
        res = self._script("start", timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"kuryr-libnetwork did not start: {res.stderr.strip()}")

    @property
    def pid(self) -> int | None:
        try:
            return int((TOP / "kuryr-libnetwork" / "kuryr-server.pid").read_text())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        self._script("stop", timeout=60)

    @staticmethod
    def version() -> str:
        venv_py = TOP / "kuryr-libnetwork-venv" / "bin" / "python"
        res = subprocess.run([str(venv_py), "-c", "from importlib.metadata import version as v; "
                              "print(v('kuryr-libnetwork'), v('kuryr-lib'), v('pyroute2'))"],
                             capture_output=True, text=True)
        names = ("kuryr-libnetwork", "kuryr-lib", "pyroute2")
        return ", ".join(f"{n} {v}" for n, v in zip(names, res.stdout.split())) if res.returncode == 0 else "?"


# --- the contenders -------------------------------------------------------------------

@dataclass
class Contender:
    key: str                 # short id, used in names, JSON and the table
    label: str
    network: str             # what `docker run --network` gets
    subnet: str | None = None
    plugin: KuryrCnm | KuryrLibnetwork | None = None
    proxy: Proxy | None = None
    docker_network_id: str | None = None
    neutron_network_id: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def uses_neutron(self) -> bool:
        return self.proxy is not None

    @property
    def pingable(self) -> bool:
        return self.key != "none"

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "network": self.network, "subnet": self.subnet,
                "plugin": getattr(self.plugin, "name", None), "proxy": self.proxy.url if self.proxy else None,
                "docker_network_id": self.docker_network_id, "neutron_network_id": self.neutron_network_id,
                "notes": self.notes}


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc (children of plugins: binding scripts, helpers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def rss_kib(pid: int | None) -> int | None:
    """VmRSS of a process and its descendants, in KiB."""
    if not alive(pid):
        return None
    assert pid is not None
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process and its reaped children so far."""
    if not alive(pid):
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")
