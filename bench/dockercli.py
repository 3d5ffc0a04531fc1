"""The docker CLI, timed: every figure of the benchmark is a wall-clock time of a
real `docker` command, as a user would see it.

Always Debian's /usr/bin/docker (20.10) against dockerd 20.10 on its default socket:
/usr/local/bin/docker may be a newer CLI, and the stack's other engines (dockerd 26
and 28) are not benchmarked.
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass

DOCKER = ("/usr/bin/docker", "-H", "unix:///var/run/docker.sock")
IMAGE = "kuryr-test/busybox:latest"
LABEL = "kuryr-cnm-bench"  # on every container and network the benchmark makes, for cleanup


@dataclass(frozen=True)
class Result:
    rc: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def error(self) -> str:
        """The last meaningful stderr line (docker prints a forwarding warning on every run)."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip() and "IPv4 forwarding" not in ln]
        return lines[-1] if lines else f"rc={self.rc}"


def docker(*args: str, timeout: float = 300) -> Result:
    """Run one docker command and time it (wall clock, monotonic)."""
    started = time.monotonic()
    try:
        proc = subprocess.run([*DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return Result(124, time.monotonic() - started, "", f"timed out after {timeout} s: {exc.cmd}")
    return Result(proc.returncode, time.monotonic() - started, proc.stdout, proc.stderr)


def run_detached(name: str, network: str, timeout: float = 300) -> Result:
    """`docker run -d` of a sleeping busybox: the figure the issue asks for."""
    return docker("run", "-d", "--name", name, "--label", LABEL, "--network", network, IMAGE, "sleep", "3600",
                  timeout=timeout)


def remove(*names: str, timeout: float = 300) -> Result:
    return docker("rm", "-f", *names, timeout=timeout)


def container_ip(name: str, network: str) -> str:
    res = docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name, timeout=60)
    if not res.ok:
        raise RuntimeError(f"docker inspect {name}: {res.error()}")
    return json.loads(res.stdout)[network]["IPAddress"]


def network_id(name: str) -> str:
    res = docker("network", "inspect", "--format", "{{.Id}}", name, timeout=60)
    if not res.ok:
        raise RuntimeError(f"docker network inspect {name}: {res.error()}")
    return res.stdout.strip()


def labelled_containers() -> list[str]:
    res = docker("ps", "-aq", "--filter", f"label={LABEL}", timeout=60)
    return res.stdout.split() if res.ok else []


def labelled_networks() -> list[str]:
    res = docker("network", "ls", "-q", "--filter", f"label={LABEL}", timeout=60)
    return res.stdout.split() if res.ok else []


def server_version() -> str:
    res = docker("version", "--format", "{{.Server.Version}}", timeout=30)
    if not res.ok:
        raise RuntimeError(f"dockerd 20.10 does not answer on {DOCKER[2]}: {res.error()}")
    return res.stdout.strip()


def has_image() -> bool:
    return docker("image", "inspect", IMAGE, timeout=30).ok
