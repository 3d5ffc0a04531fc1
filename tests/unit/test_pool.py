"""The port pool's lifecycle against a fake Neutron client."""
from __future__ import annotations

import threading
from unittest.mock import MagicMock

from kuryr_cnm import config, naming
from kuryr_cnm.neutron import FixedIP, Port
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.pool import PortPool


def _ownership(conf, client) -> Ownership:
    return Ownership(client, Owner(conf.host, conf.plugin_name), conf.subnetpool_name_prefix)


HOST = config.load().host


def _pool_port(i: int) -> Port:
    """A pool port as this host's plugin (the default name) creates it."""
    return Port(f"pool{i}", "kuryr-pool-port", "net", f"fa:16:3e:00:00:0{i}", (FixedIP("sub", f"10.0.0.{i}"),), (),
                "compute:kuryr", "", HOST, "ovs", {}, "DOWN", "proj",
                raw={"description": naming.pool_description(naming.owner(HOST, "kuryr"))})


def test_drain_waits_for_a_refill_in_flight_and_leaves_none_of_its_ports():
    """ReleasePool drained the pool while a bulk create was still in flight: its ports landed
    on the subnet ReleasePool was deleting, which failed with a 409 (seen in make test)."""
    conf = config.load()
    conf.set_override("enabled", True, group="vif_pool")
    client = MagicMock()
    in_create, finish_create = threading.Event(), threading.Event()
    made = [_pool_port(i) for i in range(1, 5)]

    def slow_bulk_create(bodies):
        in_create.set()
        assert finish_create.wait(10)
        return made[:len(bodies)]
    client.create_ports.side_effect = slow_bulk_create
    client.list_ports.return_value = []
    pool = PortPool(conf, client, _ownership(conf, client))
    try:
        pool.prepare("net", ["sub"])
        assert in_create.wait(10)
        drained = threading.Thread(target=pool.drain, args=("net",))
        drained.start()
        drained.join(0.3)
        assert drained.is_alive(), "drain returned while the bulk create was in flight"
        finish_create.set()
        drained.join(10)
        assert not drained.is_alive()
        created = made[:len(client.create_ports.call_args.args[0])]
        assert {c.args[0] for c in client.delete_port.call_args_list} == {p.id for p in created}
        assert pool.size("net") == 0
    finally:
        finish_create.set()
        pool.close()


def _enabled_pool(client, grace: int = 0) -> PortPool:
    conf = config.load()
    conf.set_override("enabled", True, group="vif_pool")
    conf.set_override("recovery_grace", grace, group="vif_pool")
    return PortPool(conf, client, _ownership(conf, client))


def _mine(pool: PortPool, i: int) -> Port:
    """A pool port as this plugin creates it (its description names the pool's owner)."""
    port = _pool_port(i)
    return Port(**{**port.__dict__, "raw": {"description": naming.pool_description(pool._ownership.owner.mark)}})


def test_an_idle_pool_port_is_deleted_for_an_address_asked_for_by_name():
    client = MagicMock()
    client.create_ports.return_value = []
    pool = _enabled_pool(client)
    try:
        ports = [_mine(pool, i) for i in range(1, 4)]
        client.list_ports.return_value = ports
        assert pool.recover() == 3
        assert pool.give_up(ports[1]) is True
        client.delete_port.assert_called_once_with(ports[1].id)
        assert pool.port_ids() == {ports[0].id, ports[2].id}
        assert pool.give_up(ports[1]) is False, "given up twice"
    finally:
        pool.close()


def test_only_idle_pool_ports_of_this_plugin_are_given_up():
    client = MagicMock()
    client.create_ports.return_value = []
    pool = _enabled_pool(client)
    try:
        port = _mine(pool, 1)
        client.list_ports.return_value = [port]
        pool.recover()
        foreign = Port(**{**port.__dict__, "raw": {"description": "kuryr-cnm port pool of other@host"}})
        in_use = Port(**{**port.__dict__, "device_id": "endpoint"})
        assert pool.give_up(foreign) is False and pool.give_up(in_use) is False
        assert pool.port_ids() == {port.id} and not client.delete_port.called
    finally:
        pool.close()


def test_recovered_ports_are_kept_within_the_grace_period():
    """A start cut short by the restart may still hold a recovered port until Docker releases it."""
    client = MagicMock()
    client.create_ports.return_value = []
    pool = _enabled_pool(client, grace=60)
    try:
        port = _mine(pool, 1)
        client.list_ports.return_value = [port]
        pool.recover()
        assert pool.give_up(port) is False and pool.port_ids() == {port.id} and not client.delete_port.called
    finally:
        pool.close()


def test_giving_up_waits_for_the_refill_that_is_making_the_port():
    client = MagicMock()
    in_create, finish_create = threading.Event(), threading.Event()
    pool = _enabled_pool(client)
    made = [_mine(pool, i) for i in range(1, 5)]

    def slow_bulk_create(bodies):
        in_create.set()
        assert finish_create.wait(10)
        return made[:len(bodies)]
    client.create_ports.side_effect = slow_bulk_create
    try:
        pool.prepare("net", ["sub"])
        assert in_create.wait(10)
        result: list[bool] = []
        giving_up = threading.Thread(target=lambda: result.append(pool.give_up(made[2])))
        giving_up.start()
        giving_up.join(0.3)
        assert giving_up.is_alive(), "it answered while the port was being made"
        finish_create.set()
        giving_up.join(10)
        assert result == [True] and made[2].id not in pool.port_ids()
    finally:
        finish_create.set()
        pool.close()


def test_a_refill_whose_ports_never_bind_stops_instead_of_looping():
    """Every port of a batch unbound (ML2 cannot bind to this host): the refill created and
    deleted ports in a tight loop, forever."""
    client = MagicMock()
    unbound = [Port(**{**_pool_port(i).__dict__, "vif_type": "binding_failed"}) for i in range(1, 5)]
    client.create_ports.side_effect = lambda bodies: unbound[:len(bodies)]
    client.get_port.side_effect = lambda port_id: next(p for p in unbound if p.id == port_id)
    pool = _enabled_pool(client)
    try:
        pool.prepare("net", ["sub"])
    finally:
        pool.close()  # waits for the refill: it must end
    assert client.create_ports.call_count == 1
    assert {c.args[0] for c in client.delete_port.call_args_list} == {p.id for p in unbound}


def test_draining_a_shared_network_leaves_the_other_hosts_pool_ports():
    """drain() listed every kuryr-pool-port of the network and deleted them all: on a network
    several hosts adopted, one host's `docker network rm` deleted the others' idle pool ports."""
    from tests.unit.fake_neutron import FakeNeutron
    from tests.unit.wiring import Host

    neutron = FakeNeutron()
    network = neutron.make_network("shared")
    subnet = neutron.make_subnet(network.id, "10.30.0.0/24")
    here, there = (Host(neutron, name, vif_pool__enabled=True, vif_pool__ports_pool_min=2,
                        vif_pool__ports_pool_batch=2) for name in ("vm", "host2"))
    try:
        for host in (here, there):
            host.plugin.pool.prepare(network.id, [subnet.id])
            host.plugin.pool._pools[network.id].refill.result(timeout=10)
        theirs = {p.id for p in neutron.ports() if p.host_id == "host2"}
        assert len(theirs) == 2 and len(neutron.ports()) == 4
        here.plugin.pool.drain(network.id)
        assert {p.id for p in neutron.ports()} == theirs
        # a restarted plugin here (it knows none of its pool ports) drains only its own too
        here.plugin.pool.prepare(network.id, [subnet.id])
        here.plugin.pool._pools[network.id].refill.result(timeout=10)
        restarted = Host(neutron, "vm", vif_pool__enabled=True)
        restarted.plugin.pool.drain(network.id)
        restarted.close()
        assert {p.id for p in neutron.ports()} == theirs
    finally:
        here.close()
        there.close()
