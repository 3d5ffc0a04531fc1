"""Fixtures shared by the integration and e2e tiers (the unit tier uses none of them)."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import openstack
import pytest

from tests import host


@pytest.fixture(scope="session")
def neutron() -> "openstack.network.v2._proxy.Proxy":
    """openstacksdk's network proxy on the stack's Neutron (cloud 'aio' in clouds.yaml)."""
    conn = openstack.connect(cloud=host.NEUTRON_CLOUD)
    conn.network.get("/extensions")  # fail here, clearly, if Neutron is down
    return conn.network


@pytest.fixture(scope="session")
def host_id() -> str:
    return host.hostname_id()


@pytest.fixture
def unique() -> str:
    """A short random suffix for names of resources a test makes."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def cleanup() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Register undo actions; they run last-in first-out even when the test fails."""
    actions: list[Callable[[], object]] = []
    yield actions.append
    errors = []
    for action in reversed(actions):
        try:
            action()
        except Exception as exc:  # keep undoing the rest
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def netns(cleanup: Callable[[Callable[[], object]], None], unique: str) -> Callable[[str], str]:
    """Factory: netns(tag) makes a throw-away network namespace and returns its name."""
    def make(tag: str) -> str:
        name = f"kcnmt-{tag}-{unique}"
        host.netns_add(name)
        cleanup(lambda: host.netns_del(name))
        return name
    return make
