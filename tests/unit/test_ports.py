"""The port ledger: one state per port, the transitions Docker's calls make, and expiry."""
from __future__ import annotations

import pytest

from kuryr_cnm import ports
from kuryr_cnm.directory import DockerNetwork
from kuryr_cnm.neutron import FixedIP, Network, Port
from kuryr_cnm.ports import Endpoint, PortLedger, State
from tests.unit.clock import Clock, fake_clock

NET = DockerNetwork("d" * 64, Network("net", "kuryr-net-x", 1500, False, (), ("sub",), "proj"), ())


def _port(pid: str, ip: str = "10.0.0.5") -> Port:
    return Port(pid, "kuryr-unbound-port", "net", "fa:16:3e:00:00:01", (FixedIP("sub", ip),), (), "compute:kuryr",
                "", "vm", "ovs", {}, "DOWN", "proj")


def _endpoint(port: Port, eid: str = "e" * 64) -> Endpoint:
    return Endpoint(eid, NET, port, "tap" + port.id, "t_c" + port.id, False)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return fake_clock(monkeypatch, ports)


def test_a_docker_lifecycle_walks_the_states_and_leaves_nothing():
    ledger, port = PortLedger(), _port("p1")
    ledger.allocate(port)
    assert ledger.counts()["allocated"] == 1 and ledger.address("net", "10.0.0.5") == port
    ep = _endpoint(port)
    ledger.plug(ep)
    assert ledger.endpoint(ep.endpoint_id) == ep and ledger.endpoint_holding("p1") == ep
    assert ledger.address("net", "10.0.0.5") is None and ledger.on_network("net") == set()
    ledger.unplug(ep)
    assert ledger.endpoint(ep.endpoint_id) is None and ledger.address("net", "10.0.0.5") == port
    ledger.released(port, by_lookup=False)
    ledger.start_release(port)
    assert ledger.releasing("net", "10.0.0.5") == "p1" and ledger.on_network("net") == {"p1"}
    assert ledger.held() == {"p1"}
    ledger.end_release(port)
    assert ledger.held() == set() and all(n == 0 for n in ledger.counts().values())


def test_a_port_released_under_its_endpoint_is_not_brought_back_by_its_delete_endpoint():
    ledger, port = PortLedger(), _port("p1")
    ep = _endpoint(port)
    ledger.plug(ep)
    ledger.released(port, by_lookup=True)  # ReleaseAddress before DeleteEndpoint (out of Docker's order)
    ledger.start_release(port)
    assert ledger.endpoint(ep.endpoint_id) == ep  # DeleteEndpoint still finds it and unplugs the veth
    ledger.end_release(port)
    assert ledger.endpoint(ep.endpoint_id) == ep and ledger.counts()[State.PLUGGED.value] == 1
    ledger.unplug(ep)
    assert ledger.address("net", "10.0.0.5") is None and ledger.held() == set()


def test_unplug_does_not_shadow_a_newer_allocation_of_the_address():
    ledger, old, new = PortLedger(), _port("p1"), _port("p2")
    ep = _endpoint(old)
    ledger.plug(ep)
    ledger.allocate(new)
    ledger.unplug(ep)
    assert ledger.address("net", "10.0.0.5") == new and ledger.held() == {"p2"}


def test_unplug_during_a_release_in_flight_keeps_the_release(clock):
    ledger, port = PortLedger(), _port("p1")
    ep = _endpoint(port)
    ledger.plug(ep)
    ledger.start_release(port)
    ledger.unplug(ep)
    assert ledger.releasing("net", "10.0.0.5") == "p1" and ledger.on_network("net") == {"p1"}


def test_a_lost_docker_call_expires_but_a_plugged_port_never_does(clock):
    """RequestAddress answered and Docker died: the port stayed held forever, so the reconciler
    never deleted it."""
    ledger = PortLedger()
    ledger.allocate(_port("lost", "10.0.0.6"))
    plugged = _port("plugged", "10.0.0.7")
    ledger.plug(_endpoint(plugged))
    clock.now += ports.STALE_AFTER + 1
    assert ledger.held() == {"plugged"} and ledger.address("net", "10.0.0.6") is None
