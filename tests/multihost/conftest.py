"""Multi-host fixtures: the main host and the simulated hypervisors host2 and host3 (stack/lib/hosts.sh),
each with its own dockerd and kuryr-cnm, on one Neutron; networks that span them."""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import host
from tests.e2e.conftest import Docker
from tests.leaks import Snapshot, assert_nothing_left

REPO = Path(__file__).resolve().parents[2]
MAIN = "docker20"  # the main host's engine (dockerd 20.10, as the simulated hosts run)
SIMULATED = ("host2", "host3")
ALL = (MAIN, *SIMULATED)


def aio(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return host.run(["bash", str(REPO / "stack" / "aio.sh"), *args], timeout=timeout)


def plugin_answers(name: str) -> bool:
    sock = host.plugin_socket(name, "kuryr")
    probe = host.run(["curl", "-sf", "--max-time", "5", "--unix-socket", str(sock), "-X", "POST",
                      "http://plugin/Plugin.Activate"], check=False)
    return probe.returncode == 0 and "NetworkDriver" in probe.stdout


def ensure_host(name: str) -> None:
    """The host up, its dockerd and kuryr-cnm answering (make test brings them up; a test that
    killed one brings it back)."""
    alive = host.docker(name, "version", "--format", "{{.Server.Version}}", check=False).returncode == 0
    if not (alive and plugin_answers(name)):
        aio("host-up", name)


@pytest.fixture(scope="session")
def hosts() -> tuple[str, ...]:
    for name in SIMULATED:
        ensure_host(name)
    return ALL


@dataclass
class Spanning:
    """A Docker network on several hosts over one Neutron network (kuryr-libnetwork's recipe:
    created on one host, the same --subnet and -o neutron.net.uuid on the others)."""
    name: str
    subnet: str
    neutron_id: str


class Cluster:
    """The engines of every host, with one tag, so that a network has one name on all of them."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.on = {engine: Docker(engine, tag) for engine in ALL}

    def __getitem__(self, engine: str) -> Docker:
        return self.on[engine]

    def span(self, name: str, subnet: str, neutron, engines: tuple[str, ...] = ALL, *args: str) -> Spanning:
        first, *rest = engines
        full = self.on[first].network(name, "--subnet", subnet, *args)
        neutron_id = neutron_network_of(self.on[first], full, neutron)
        for engine in rest:
            self.join(engine, full, subnet, neutron_id, *args)
        return Spanning(full, subnet, neutron_id)

    def join(self, engine: str, full: str, subnet: str, neutron_id: str, *args: str) -> None:
        d = self.on[engine]
        d("network", "create", "-d", "kuryr", "--ipam-driver", "kuryr", "--subnet", subnet,
          "-o", f"neutron.net.uuid={neutron_id}", *args, full)
        d.networks.append(full)

    def cleanup(self) -> None:
        for d in self.on.values():
            d.cleanup()


def container_ports(neutron, network_id: str, binding_host: str | None = None) -> list[dict]:
    """The ports of containers (kuryr's, an endpoint took them), not idle pool ports."""
    params = {"network_id": network_id, "device_owner": "compute:kuryr"}
    if binding_host is not None:
        params["binding:host_id"] = binding_host
    return [p for p in neutron.get("/ports", params=params).json()["ports"] if p["device_id"]]


def settled_container_ports(neutron, network_id: str, count: int, binding_host: str | None = None) -> list[dict]:
    """The ports of `count` running containers, once each shows its container: a port a host's
    pool handed out gets its device_id by a deferred write, after docker run has returned."""
    found: list[dict] = []

    def settled() -> bool:
        found[:] = container_ports(neutron, network_id, binding_host)
        return len(found) == count
    host.wait_for(settled, timeout=30, interval=0.5,
                  what=f"{count} container ports on {network_id}{f' bound to {binding_host}' if binding_host else ''}")
    return found


def neutron_network_of(docker: Docker, network: str, neutron) -> str:
    docker_id = docker.inspect(network, "{{.Id}}")
    found = neutron.get("/networks", params={"tags": f"kuryr.net.uuid.lh:{docker_id[:32]}"}).json()["networks"]
    assert len(found) == 1, found
    return found[0]["id"]


@pytest.fixture
def cluster(hosts, neutron) -> Iterator[Cluster]:
    """Every host's docker; what a test made through it is removed at the end (containers
    first, then networks, host by host), then nothing new may be left in Neutron."""
    before = Snapshot.take(neutron)
    c = Cluster(uuid.uuid4().hex[:6])
    try:
        yield c
    finally:
        for d in c.on.values():
            for container in reversed(d.containers):
                d("rm", "-f", container, check=False)
            d.containers.clear()
        c.cleanup()
    assert_nothing_left(neutron, before, settle=30)
