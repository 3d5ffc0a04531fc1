"""Host-side helpers for the tests: commands, network namespaces, OVS, Docker.

Deliberately independent of kuryr_cnm's own code (plain `ip`, `ovs-vsctl` and
`docker` commands), so a test checks the plugin against the host, not against itself.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

DOCKER_CLI = "/usr/bin/docker"
# name -> socket of the three engines `make up` starts (each one's pidfile: the socket's path, .pid)
ENGINES = {"docker20": "/var/run/docker.sock", "docker26": "/var/run/docker26.sock",
           "docker28": "/var/run/docker28.sock"}
# Debian 12's CLI 20.10 drives 20.10 and 26; dockerd 28 its own CLI 28.5 (20.10's has no `--ipv4=false`)
ENGINE_CLIS = {"docker28": "/opt/kuryr-cnm/docker28/usr/bin/docker"}
PLUGIN_SOCKET = "/run/docker/plugins/kuryr.sock"
# The simulated hypervisors (stack/lib/hosts.sh; `make test` brings up host2 and host3): each has
# a dockerd 20.10 on /var/run/docker-<name>.sock that is an engine like the others here.
HOSTS_DIR = Path("/opt/kuryr-cnm/hosts")
T = TypeVar("T")
TEST_IMAGE = "kuryr-test/busybox:latest"
NEUTRON_CLOUD = "aio"
# The kuryr.conf extra plugins and `kuryr-cnm gc` start from: the stack's, or under
# `make test-keystone` kuryr-keystone.conf (keystoneauth password options instead of a cloud).
KURYR_CONF = os.environ.get("KURYR_TEST_CONF") or "/opt/kuryr-cnm/etc/kuryr.conf"


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    state: str  # "Z": a zombie (this machine's PID 1 reaps no orphan), dead however it looks
    argv: tuple[str, ...]


def processes() -> dict[int, Process]:
    """Every process on the host, from /proc (one may exit while it is read: it is left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # the command name in (...) may hold spaces
        found[int(entry.name)] = Process(int(entry.name), int(fields[1]), fields[0], tuple(a for a in argv if a))
    return found


def run(cmd: Sequence[str] | str, *, check: bool = True, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess[str]:  # noqa: A002
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(argv)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.1,
             what: str = "condition") -> T:
    """Poll until predicate() is truthy and return what it returned."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return result


def eventually(check: Callable[[], None], timeout: float = 15, interval: float = 0.2) -> None:
    """Retry an assertion until it holds: for what kuryr-cnm writes to Neutron in the
    background (endpoint tags, and the release of a port after ReleaseAddress)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def hostname_id() -> str:
    """The chassis name OVN (and so Neutron) knows this host by."""
    out = run(["ovs-vsctl", "get", "open_vswitch", ".", "external_ids:system-id"]).stdout
    return out.strip().strip('"')


# --- network namespaces -------------------------------------------------------

def netns_add(name: str) -> None:
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def netns_del(name: str) -> None:
    run(["ip", "netns", "del", name], check=False)


def netns_exec(name: str, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return run(["ip", "netns", "exec", name, *argv], check=check, timeout=timeout)


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def host_links() -> set[str]:
    out = run(["ip", "-j", "link", "show"]).stdout
    return {link["ifname"] for link in json.loads(out)}


# --- Open vSwitch ---------------------------------------------------------------

def ovs_ports(bridge: str = "br-int") -> set[str]:
    return set(run(["ovs-vsctl", "list-ports", bridge]).stdout.split())


def ovs_iface_external_ids(iface: str) -> dict[str, str]:
    out = run(["ovs-vsctl", "--format=json", "--columns=external_ids", "list", "Interface", iface]).stdout
    pairs = json.loads(out)["data"][0][0][1]
    return dict(pairs)


# --- Docker -------------------------------------------------------------------

def engine_socket(engine: str) -> str:
    """One of the main host's engines, or a simulated host's dockerd (by the host's name)."""
    return ENGINES.get(engine) or f"/var/run/docker-{engine}.sock"


def plugin_socket(engine: str, plugin: str) -> Path:
    """Where `engine` finds plugin `plugin`: a simulated host's dockerd has a directory of its own."""
    base = Path("/run/docker/plugins") if engine in ENGINES else Path(f"/var/run/{engine}/docker-plugins")
    return base / f"{plugin}.sock"


def simulated_hosts() -> list[str]:
    """The simulated hosts brought up and not taken down (one killed is still one: its engine
    then does not answer)."""
    return sorted(d.name for d in HOSTS_DIR.glob("host*") if (d / "up").exists()) if HOSTS_DIR.exists() else []


def all_engines() -> list[str]:
    return sorted(ENGINES) + simulated_hosts()


def docker(engine: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cli = ENGINE_CLIS.get(engine, DOCKER_CLI)
    return run([cli, "-H", f"unix://{engine_socket(engine)}", *args], check=check, timeout=timeout)


def plugin_log_path() -> str:
    return os.environ.get("KURYR_CNM_LOG", "/opt/kuryr-cnm/log/kuryr-cnm.log")


# --- the stack ----------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stack(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`stack/aio.sh <args>`: stop, start or restart one piece of the all-in-one stack."""
    return run(["bash", os.path.join(REPO, "stack", "aio.sh"), *args], timeout=timeout)
