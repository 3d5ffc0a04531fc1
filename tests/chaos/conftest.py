"""Fault tests: real docker (20.10) on kuryr-cnm while a piece of the stack fails.

Each test ends with the leak check of Neutron ports, networks, subnets, pools, veths and
OVS ports. What a fault leaves behind is removed by kuryr-cnm itself (background
retries, then the reconciler: every 20 s on the stack, for ports older than 60 s), so
the check waits up to LEAK_SETTLE seconds for it before it fails.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import host
from tests.chaos.faultproxy import FaultProxy
from tests.e2e.conftest import Docker, leak_checked_docker

LEAK_SETTLE = 150  # reconcile_grace 60 + reconcile_interval 20 + background retries, with margin
ENGINE = "docker20"
NEUTRON_URL = "http://127.0.0.1:9696"


@pytest.fixture
def docker(neutron) -> Iterator[Docker]:
    """docker20, with the e2e leak check given time for kuryr-cnm's own repairs."""
    with leak_checked_docker(ENGINE, neutron, settle=LEAK_SETTLE) as d:
        yield d


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    p = FaultProxy(NEUTRON_URL)
    yield p
    p.close()


@pytest.fixture
def proxied_plugin(extra_plugin, proxy, unique) -> tuple[str, str]:
    """A kuryr-cnm that reaches Neutron through the fault proxy, with a short Neutron timeout
    and a quick reconciler. Returns (plugin name, log path)."""
    name = f"kcnmfault{unique}"
    log = extra_plugin(name, {
        "DEFAULT": {"reconcile_interval": "5", "reconcile_grace": "10"},
        "neutron": {"cloud": "", "auth_type": "none", "endpoint": proxy.url, "timeout": "4"},
    })
    return name, log


def running(docker: Docker, container: str) -> bool:
    return docker.inspect(container, "{{.State.Running}}") == "true"


def ports_of(neutron, network_id: str) -> list[dict]:
    return neutron.get("/ports", params={"network_id": network_id, "device_owner": "compute:kuryr"}).json()["ports"]


def neutron_network_of(neutron, docker: Docker, network: str) -> str:
    docker_id = docker.inspect(network, "{{.Id}}")
    nets = neutron.get("/networks", params={"tags": f"kuryr.net.uuid.lh:{docker_id[:32]}"}).json()["networks"]
    assert nets, f"no Neutron network for docker network {network}"
    return nets[0]["id"]


def stack(*args: str) -> None:
    host.stack(*args, timeout=300)
