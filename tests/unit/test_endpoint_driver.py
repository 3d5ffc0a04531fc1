"""EndpointDriver: CreateEndpoint .. DeleteEndpoint on the in-memory Neutron, with the plugin wired as
`serve` wires it (app.build) and a plugger that records what it plugs instead of making veths."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.fake_neutron import FakeNeutron
from tests.unit.wiring import DockerNet, Host, RecordingPlugger

FIRST, SECOND = "e" * 64, "f" * 64  # Docker endpoint ids
ADDRESS = "10.0.0.5"


@pytest.fixture
def neutron() -> FakeNeutron:
    return FakeNeutron()


@pytest.fixture
def host(neutron) -> Iterator[Host]:
    h = Host(neutron, "vm", plugger=RecordingPlugger())
    yield h
    h.close()


def _send(host: Host, method: str, body: dict[str, Any]) -> tuple[int, Any]:
    return host.plugin.router.dispatch(method, json.dumps(body).encode())


def _request_address(host: Host, net: DockerNet, address: str = ADDRESS) -> str:
    answer = host.call("IpamDriver.RequestAddress", {"PoolID": net.pools[0], "Address": address, "Options": {}})
    assert answer["Address"] == f"{address}/24"
    return answer["Address"]


def _release_address(host: Host, net: DockerNet, address: str = ADDRESS) -> None:
    host.call("IpamDriver.ReleaseAddress", {"PoolID": net.pools[0], "Address": address})


def _create_endpoint(host: Host, net: DockerNet, endpoint_id: str, address: str = f"{ADDRESS}/24") -> tuple[int, Any]:
    return _send(host, "NetworkDriver.CreateEndpoint", {
        "NetworkID": net.docker_id, "EndpointID": endpoint_id, "Options": {},
        "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}})


def _delete_endpoint(host: Host, net: DockerNet, endpoint_id: str) -> None:
    host.call("NetworkDriver.DeleteEndpoint", {"NetworkID": net.docker_id, "EndpointID": endpoint_id})


def _landed(host: Host, port_id: str) -> None:
    """The background writes queued so far for the port (its release, its endpoint record) are done."""
    assert host.plugin.deferred.wait_for([port_id], time.monotonic() + 10)


def test_second_endpoint_on_a_plugged_address_is_refused(neutron, host):
    """It re-plugged the port (deleting the first endpoint's veth as 'stale') and answered 200."""
    net = host.create_network("10.0.0.0/24")
    _request_address(host, net)
    (port,) = neutron.ports()
    assert _create_endpoint(host, net, FIRST) == (200, {"Interface": {"MacAddress": port.mac_address}})
    # the second endpoint's port is looked up in Neutron by address, as for a RequestAddress another
    # process served: Neutron answers with the first endpoint's port
    status, answer = _create_endpoint(host, net, SECOND)
    assert status == 409 and "already the address of endpoint eeeeeeeeeeee" in answer["Err"]
    assert host.plugger.plugged_port_ids() == [port.id] and host.plugger.unplugs == []
    # Docker retrying the first endpoint's own CreateEndpoint still gets its answer
    assert _create_endpoint(host, net, FIRST) == (200, {"Interface": {"MacAddress": port.mac_address}})
    assert host.plugger.plugged_port_ids() == [port.id]


def test_delete_endpoint_does_not_shadow_a_newer_allocation_of_its_address(neutron, host):
    """DeleteEndpoint put its port back among the allocations even when its address had been
    released and handed out again (a new port): the next CreateEndpoint for that address got
    the deleted port and failed 404 (or would plug a dead port)."""
    net = host.create_network("10.0.0.0/24")
    _request_address(host, net)
    (old,) = neutron.ports()
    assert _create_endpoint(host, net, FIRST)[0] == 200
    _landed(host, old.id)
    neutron.delete_port(old.id)  # gone from under its endpoint (not through this plugin) ...
    _request_address(host, net)  # ... and its address handed out again: a new port
    (newer,) = neutron.ports()
    _delete_endpoint(host, net, FIRST)
    assert host.plugger.unplugged_port_ids() == [old.id]
    # the next endpoint on that address gets the new port, not the deleted one
    assert _create_endpoint(host, net, SECOND) == (200, {"Interface": {"MacAddress": newer.mac_address}})
    assert host.plugger.plugged_port_ids() == [old.id, newer.id]


def test_an_address_released_before_its_delete_endpoint_does_not_come_back(neutron, host):
    """ReleaseAddress before DeleteEndpoint (out of Docker's order) deleted the endpoint's port;
    a new port then took the address and a second endpoint. The first endpoint's DeleteEndpoint
    put its dead port back among the allocations, so the last ReleaseAddress deleted the dead
    port again (404) and the live one leaked, with its network, subnet and pool."""
    net = host.create_network("10.0.0.0/24")
    _request_address(host, net)
    (first,) = neutron.ports()
    assert _create_endpoint(host, net, FIRST)[0] == 200
    _landed(host, first.id)

    _release_address(host, net)  # the first endpoint still stands
    _landed(host, first.id)  # the background delete lands
    assert neutron.ports() == []
    _request_address(host, net)  # RequestAddress made a new port ...
    (second,) = neutron.ports()
    # ... and a second endpoint's CreateEndpoint took it
    assert _create_endpoint(host, net, SECOND) == (200, {"Interface": {"MacAddress": second.mac_address}})
    _delete_endpoint(host, net, FIRST)  # its dead port must not come back at the address
    _delete_endpoint(host, net, SECOND)  # the second endpoint's DeleteEndpoint
    assert host.plugger.unplugged_port_ids() == [first.id, second.id]

    _release_address(host, net)
    _landed(host, second.id)
    assert neutron.ports() == [], "the live port leaked"
    host.remove_network(net)
    assert neutron.networks() == [] and neutron.subnets() == [] and neutron.subnetpools() == []
