"""IpamDriver's RequestAddress and ReleaseAddress on the in-memory Neutron."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.unit.fake_neutron import FakeNeutron
from tests.unit.wiring import Host


@pytest.fixture
def neutron() -> FakeNeutron:
    return FakeNeutron()


@pytest.fixture
def host(neutron) -> Iterator[Host]:
    h = Host(neutron, "vm")
    yield h
    h.close()


def _aux_address(host: Host, pool_id: str, address: str) -> tuple[int, dict]:
    """RequestAddress of an --aux-address, as Docker sends it while it creates the network."""
    body = {"PoolID": pool_id, "Address": address, "Options": {}}
    return host.plugin.router.dispatch("IpamDriver.RequestAddress", json.dumps(body).encode())


def test_address_from_a_pool_that_does_not_exist_is_not_found(neutron, host):
    """RequestAddress with an address (an --aux-address) on a released or unknown pool answered
    200 with a made-up /32; it is a 404 like the gateway request on such a pool."""
    status, answer = _aux_address(host, str(uuid.uuid4()), "10.0.0.9")
    assert status == 404 and "does not exist" in answer["Err"]
    pool = host.request_pool("10.0.0.0/28")
    # a pool whose network is not created yet: the address is only echoed, with the pool's prefix
    assert _aux_address(host, pool["PoolID"], "10.0.0.9") == (200, {"Address": "10.0.0.9/28", "Data": {}})
    host.call("IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})
    assert neutron.subnetpools() == []
    status, answer = _aux_address(host, pool["PoolID"], "10.0.0.9")
    assert status == 404 and "does not exist" in answer["Err"]
    assert neutron.ports() == []  # an aux address holds no port
