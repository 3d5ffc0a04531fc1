"""A real VM for nested mode's tests: QEMU through virtme-ng, booting this host's own root
filesystem read-only (shared/reference/nested-vm.md), driven by tests/nested/guest_agent.py.

Two NICs: QEMU's user network (restricted: the guest reaches only 10.0.2.100:9696, forwarded to
the stack's Neutron on 127.0.0.1, and the host reaches the agent through a forwarded loopback
port), and a tap device plugged into br-int as the VM's Neutron port, the way Nova plugs a VM.
KVM when a short probe boot shows it works (this machine's KVM guests hang), TCG otherwise.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests import host

LOG = logging.getLogger(__name__)

VNG_VENV = Path("/opt/kuryr-cnm/vng-venv")
AGENT = Path(__file__).with_name("guest_agent.py")
AGENT_PORT = 8999
NEUTRON_IN_GUEST = "10.0.2.100"  # QEMU forwards it to the host's Neutron (guestfwd)
NEUTRON_PORT = 9696
USER_NET_MAC = "52:54:00:12:34:56"
KVM_PROBE_TIMEOUT = 25
KVM_PROBE_NAME = "kcnm-kvm-probe"  # qemu -name of the probe boot
_kvm_works: bool | None = None


def kernel() -> str:
    """The newest Debian kernel image in /boot (linux-image-amd64: it has 8021q, ipvlan, macvlan)."""
    images = sorted(glob.glob("/boot/vmlinuz-*-amd64"))
    if not images:
        raise RuntimeError("no /boot/vmlinuz-*-amd64: make up installs linux-image-amd64 (stack/lib/vm.sh)")
    return images[-1]


def vng() -> str:
    exe = VNG_VENV / "bin" / "vng"
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing: make up installs virtme-ng (stack/lib/vm.sh)")
    return str(exe)


def vng_env() -> dict[str, str]:
    """vng runs virtme-run from PATH: its venv's bin first."""
    return {**os.environ, "PATH": f"{VNG_VENV / 'bin'}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}


def kvm_works() -> bool:
    """One short boot under KVM, once per test session: True if the guest ran a command."""
    global _kvm_works
    if _kvm_works is None:
        _kvm_works = False
        if os.path.exists("/dev/kvm"):
            # a hung KVM guest's QEMU outlives vng: the probe's whole session goes on a timeout,
            # and its QEMU is named, for that and for tests/residue.py (three leaked probes
            # once took most of both cores, and dockerd in the TCG VM timed out on containerd)
            proc = subprocess.Popen([vng(), "--run", kernel(), "--memory", "512M", "--name", KVM_PROBE_NAME,
                                     "--exec", "echo kcnm-kvm-ok"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, start_new_session=True, env=vng_env())
            try:
                out, _ = proc.communicate(timeout=KVM_PROBE_TIMEOUT)
                _kvm_works = "kcnm-kvm-ok" in out
            except subprocess.TimeoutExpired:
                _kill_session(proc)
            _kill_stray_qemu(KVM_PROBE_NAME)
        LOG.info("nested VM: %s", "KVM" if _kvm_works else "TCG (KVM's probe boot did not run a command)")
    return _kvm_works


def _kill_session(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _kill_stray_qemu(marker: str) -> None:
    for pid, proc in host.processes().items():
        cmdline = " ".join(proc.argv)
        if "qemu-system" in cmdline and marker in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GuestError(AssertionError):
    pass


class Vm:
    """One VM: start() boots it and waits for its agent; run() runs a command in it; stop() ends
    it (killed if it does not halt). Its tap must exist (plugged into br-int) before start()."""

    def __init__(self, name: str, tap: str, data_mac: str, cpus: int = 2, memory: str = "3G") -> None:
        self.name = name
        self.tap = tap
        self.data_mac = data_mac
        self.cpus = cpus
        self.memory = memory
        self.workdir = Path(tempfile.mkdtemp(prefix=f"kcnm-vm-{name}-", dir="/tmp"))  # the guest sees /tmp
        self.console = self.workdir / "console.log"
        self.port = _free_port()
        self.kvm = False
        self._proc: subprocess.Popen[bytes] | None = None

    def _qemu_opts(self) -> str:
        forward = self.workdir / "neutron-forward.sh"
        forward.write_text(f"#!/bin/sh\nexec /usr/bin/busybox nc 127.0.0.1 {NEUTRON_PORT}\n")
        forward.chmod(0o755)
        user = (f"user,id=un0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-10.0.2.15:{AGENT_PORT},"
                f"guestfwd=tcp:{NEUTRON_IN_GUEST}:{NEUTRON_PORT}-cmd:{forward}")
        return (f"-netdev {user} -device virtio-net-pci,netdev=un0,mac={USER_NET_MAC} "
                f"-netdev tap,id=nx1,ifname={self.tap},script=no,downscript=no,vnet_hdr=off "
                f"-device virtio-net-pci,netdev=nx1,mac={self.data_mac}")

    def start(self, timeout: float = 240) -> None:
        self.kvm = kvm_works()
        argv = [vng(), "--run", kernel(), "--cpus", str(self.cpus), "--memory", self.memory,
                "--append", "apparmor=0", "--rwdir", str(self.workdir), f"--qemu-opts={self._qemu_opts()}",
                "--exec", f"/usr/bin/python3 {AGENT} {AGENT_PORT}"]
        if not self.kvm:
            argv.insert(1, "--disable-kvm")
        # --qemu-opts=...: its value starts with "-", which argparse would take for an option
        started = time.monotonic()
        # through a pipe: QEMU reopens a file given as stdout with truncation (nested-vm.md)
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True, env=vng_env())
        threading.Thread(target=self._copy_console, daemon=True).start()
        try:
            host.wait_for(self._agent_answers, timeout=timeout, interval=1, what=f"the VM {self.name}'s agent")
        except AssertionError:
            self.kill()
            raise AssertionError(f"the VM {self.name} did not start in {timeout} s; console:\n{self.tail()}") from None
        LOG.info("VM %s up in %.0f s (%s)", self.name, time.monotonic() - started, "KVM" if self.kvm else "TCG")

    def _copy_console(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with open(self.console, "ab") as out:
            for line in self._proc.stdout:
                out.write(line)
                out.flush()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _agent_answers(self) -> bool:
        if not self.running():
            raise AssertionError(f"the VM {self.name} exited; console:\n{self.tail()}")
        try:
            self._post("/run", {"argv": ["true"]}, timeout=5)
            return True
        except (OSError, urllib.error.URLError):
            return False

    def _post(self, path: str, body: dict, timeout: float) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def run(self, *argv: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None) -> dict:
        """argv in the guest: {"rc", "out", "err"}; raises GuestError on a non-zero rc with check."""
        result = self._post("/run", {"argv": list(argv), "timeout": timeout, "env": env or {}}, timeout + 30)
        if check and result["rc"] != 0:
            raise GuestError(f"in the VM: {' '.join(argv)} exited {result['rc']}\nstdout: {result['out']}\n"
                             f"stderr: {result['err']}")
        return result

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> str:
        return self.run("/bin/sh", "-c", script, check=check, timeout=timeout)["out"]

    def spawn(self, *argv: str, log: str, env: dict[str, str] | None = None) -> int:
        """A daemon in the guest, its output in `log` (a path the guest writes: under self.workdir)."""
        answer = self._post("/spawn", {"argv": list(argv), "log": log, "env": env or {}}, 30)
        if not answer["pid"]:
            raise GuestError(f"in the VM: cannot start {' '.join(argv)}: {answer['err']}")
        return int(answer["pid"])

    def stop(self, timeout: float = 60) -> None:
        if self.running():
            try:
                self._post("/halt", {}, 10)
                assert self._proc is not None
                self._proc.wait(timeout)
            except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """The VM's whole process group (vng, QEMU, its forwarders), SIGKILL, and waited for."""
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        _kill_stray_qemu(str(self.workdir))

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
