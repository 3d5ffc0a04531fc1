"""NetworkDriver's CreateNetwork and DeleteNetwork on FakeNeutron."""
from __future__ import annotations

import json

from tests.unit.fake_neutron import FakeNeutron
from tests.unit.wiring import Host


def test_delete_network_keeps_an_address_waiting_for_its_create_endpoint():
    """DeleteNetwork's orphan sweep deleted the port of a RequestAddress whose CreateEndpoint had
    not come yet (ReleasePool's sweep already kept those): that CreateEndpoint then failed 404."""
    neutron = FakeNeutron()
    host = Host(neutron, "vm")
    try:
        net = host.create_network("10.40.0.0/24")
        host.call("IpamDriver.RequestAddress", {"PoolID": net.pools[0], "Address": "", "Options": {}})
        status, answer = host.plugin.router.dispatch(
            "NetworkDriver.DeleteNetwork", json.dumps({"NetworkID": net.docker_id}).encode())
        assert status == 409 and "still has ports" in answer["Err"]
        assert len(neutron.ports()) == 1
    finally:
        host.close()


def test_delete_network_does_not_wait_for_another_networks_background_writes():
    """DeleteNetwork and ReleasePool drained every network's background writes (up to 30 s):
    one network's slow deletes held up another network's `docker network rm`."""
    import threading
    import time

    neutron = FakeNeutron()
    host = Host(neutron, "vm")
    try:
        busy, idle = host.create_network("10.41.0.0/24"), host.create_network("10.42.0.0/24")
        address = host.call("IpamDriver.RequestAddress", {"PoolID": busy.pools[0], "Address": "", "Options": {}})
        (port,) = neutron.ports()
        neutron.update_port(port.id, device_id="e" * 64)
        gate, started = threading.Event(), threading.Event()
        neutron.before("delete_port", lambda args: (started.set(), gate.wait(10)))
        host.call("IpamDriver.ReleaseAddress", {"PoolID": busy.pools[0], "Address": address["Address"].split("/")[0]})
        assert started.wait(5)  # the busy network's delete is in flight and will be for a while
        t0 = time.monotonic()
        host.remove_network(idle)
        assert time.monotonic() - t0 < 2
        gate.set()
        host.remove_network(busy)
        assert not neutron.ports() and not neutron.networks()
    finally:
        gate.set()
        host.close()


def test_a_carved_subnet_moves_to_the_adopted_network_and_its_placeholder_goes():
    """No --subnet on an adopted network: the prefix carved on the pending network is carved again
    on the adopted one; the pending subnet and network go through the ownership rule, and the
    operator's network stays when the Docker network goes."""
    neutron = FakeNeutron()
    default = neutron.make_subnetpool("kuryr", ["10.10.0.0/16"], 24)
    theirs = neutron.make_network("operators-net")
    host = Host(neutron, "vm")
    try:
        net = host.create_network(options={"neutron.net.uuid": theirs.id})
        assert [n.id for n in neutron.networks()] == [theirs.id]
        (moved,) = neutron.subnets()
        assert moved.network_id == theirs.id and net.pools[0] in moved.tags
        host.remove_network(net)
        assert [n.id for n in neutron.networks()] == [theirs.id] and not neutron.subnets()
        assert neutron.subnetpools() == [default]
    finally:
        host.close()
