"""e2e fixtures: real docker commands against every engine, and a leak check after each test."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from tests import host
from tests.leaks import Snapshot, assert_nothing_left


@pytest.fixture(params=sorted(host.ENGINES))
def engine(request) -> str:
    return request.param


class Docker:
    """One engine, and the networks and containers a test made on it (removed at the end)."""

    def __init__(self, engine: str, tag: str) -> None:
        self.engine = engine
        self.tag = tag
        self.containers: list[str] = []
        self.networks: list[str] = []

    def __call__(self, *args: str, check: bool = True, timeout: float = 120):
        return host.docker(self.engine, *args, check=check, timeout=timeout)

    def network(self, name: str, *args: str, driver: str = "kuryr", ipam_driver: str | None = None) -> str:
        """A network of `driver`; kuryr-cnm plugins (named kuryr or kcnm*) are their own IPAM too."""
        full = f"kcnmt-{name}-{self.tag}"
        ipam_driver = ipam_driver or (driver if driver.startswith(("kuryr", "kcnm")) else None)
        ipam = ["--ipam-driver", ipam_driver] if ipam_driver else []
        self("network", "create", "-d", driver, *ipam, *args, full)
        self.networks.append(full)
        return full

    def run(self, name: str, network: str, *args: str, cmd: tuple[str, ...] = ("sleep", "3600")) -> str:
        full = f"kcnmt-{name}-{self.tag}"
        self("run", "-d", "--name", full, "--network", network, *args, host.TEST_IMAGE, *cmd)
        self.containers.append(full)
        return full

    def exec(self, container: str, *cmd: str, check: bool = True, timeout: float = 60):
        return self("exec", container, *cmd, check=check, timeout=timeout)

    def inspect(self, what: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, what).stdout.strip()

    def ip(self, container: str, network: str, v6: bool = False) -> str:
        key = "GlobalIPv6Address" if v6 else "IPAddress"
        return self.inspect(container, "{{(index .NetworkSettings.Networks \"%s\").%s}}" % (network, key))

    def cleanup(self) -> None:
        for c in reversed(self.containers):
            self("rm", "-f", c, check=False)
        for n in reversed(self.networks):
            self("network", "rm", n, check=False)


def tcp_exchange(server: tuple[Docker, str], client: tuple[Docker, str], address: str, port: int = 5000,
                 line: str = "hello over tcp") -> str:
    """Start `nc -l` in the server container, send a line from the client's (each: its engine's
    Docker, its name), return what the server got. (busybox nc in listen mode stops at EOF on
    its stdin, so it writes to a file.)"""
    (s_docker, s_name), (c_docker, c_name) = server, client
    out = f"/tmp/tcp-{port}"
    s_docker("exec", "-d", s_name, "sh", "-c", f"nc -l -p {port} > {out}")
    host.wait_for(lambda: f":{port:04X}" in s_docker.exec(s_name, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout,
                  timeout=10, what="nc listening")
    # the line is produced inside the container: `docker exec -i` may close stdin before sending it
    c_docker.exec(c_name, "sh", "-c", f"echo {line} | nc -w 5 {address} {port}", timeout=30)
    host.wait_for(lambda: s_docker.exec(s_name, "cat", out).stdout.strip() != "", timeout=10, what="data")
    return s_docker.exec(s_name, "cat", out).stdout.strip()


@contextlib.contextmanager
def leak_checked_docker(engine: str, neutron, settle: float = 10) -> Iterator[Docker]:
    """`engine`'s docker; the networks and containers made through it are removed at the end,
    then nothing new may be left in Neutron or on the host (after up to `settle` s)."""
    before = Snapshot.take(neutron)
    d = Docker(engine, uuid.uuid4().hex[:6])
    try:
        yield d
    finally:
        d.cleanup()
    assert_nothing_left(neutron, before, settle=settle)


@pytest.fixture
def docker(engine: str, neutron) -> Iterator[Docker]:
    with leak_checked_docker(engine, neutron) as d:
        yield d
