"""PoolMap: Docker's pools and Neutron both ways, one rule for a pool named by option."""
from __future__ import annotations

import json

import pytest

from tests.unit.fake_neutron import FakeNeutron
from tests.unit.wiring import Host


@pytest.fixture
def host():
    neutron = FakeNeutron()
    neutron.make_subnetpool("kuryr", ["10.10.0.0/16"], 24)
    h = Host(neutron, "vm")
    yield h
    h.close()


def _create(host: Host, cidr: str, ipam: dict, generic: dict) -> tuple[int, dict]:
    pool = host.request_pool(cidr, ipam)
    gateway = host.call("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "", "Options": {
        "RequestAddressType": "com.docker.network.gateway"}})["Address"]
    body = {"NetworkID": "d" * 64, "Options": {"com.docker.network.generic": generic},
            "IPv4Data": [{"AddressSpace": "", "Gateway": gateway, "Pool": pool["Pool"]}], "IPv6Data": []}
    return host.plugin.router.dispatch("NetworkDriver.CreateNetwork", json.dumps(body).encode())


def test_a_pool_name_that_several_pools_have_is_refused_by_create_network_too(host):
    """RequestPool refused a neutron.pool.name matching several pools; CreateNetwork (upstream's
    recipe passes the name to -o too) silently took the first one Neutron listed."""
    first = host.neutron.make_subnetpool("ops-pool", ["10.60.0.0/24"], 24)
    host.neutron.make_subnetpool("ops-pool", ["10.61.0.0/24"], 24)
    status, answer = _create(host, "10.60.0.0/24", {"neutron.pool.uuid": first.id}, {"neutron.pool.name": "ops-pool"})
    assert status == 409 and "matches 2 subnetpools" in answer["Err"] and "neutron.pool.uuid" in answer["Err"]
    status, answer = host.plugin.router.dispatch("IpamDriver.RequestPool", json.dumps(
        {"Pool": "10.60.0.0/24", "Options": {"neutron.pool.name": "ops-pool"}, "V6": False}).encode())
    assert status == 409 and "matches 2 subnetpools" in answer["Err"]


def test_a_pool_named_by_option_is_adopted_and_its_subnet_found_both_ways(host):
    pool = host.neutron.make_subnetpool("ops-pool", ["10.62.0.0/24"], 24)
    status, _ = _create(host, "10.62.0.0/24", {"neutron.pool.name": "ops-pool"}, {"neutron.pool.name": "ops-pool"})
    assert status == 200
    (subnet,) = [s for s in host.neutron.subnets() if s.cidr == "10.62.0.0/24"]
    assert subnet.subnetpool_id == pool.id and pool.id in subnet.tags
    fresh = Host(host.neutron, "vm")  # a restarted plugin finds the subnet from the PoolID alone
    try:
        assert [s.id for s in fresh.plugin.ipam._pools.subnets_of(pool.id)] == [subnet.id]
    finally:
        fresh.close()
