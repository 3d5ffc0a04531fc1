"""The port pool's lifecycle against the in-memory Neutron."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from kuryr_cnm import config, naming
from kuryr_cnm.neutron import Port
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.pool import PortPool
from tests.unit.fake_neutron import FakeNeutron
from tests.unit.wiring import Host


class AnswerHeldBack(FakeNeutron):
    """A bulk create whose ports Neutron has made, but whose answer the pool has not got yet."""

    def __init__(self) -> None:
        super().__init__()
        self.in_create, self.finish_create = threading.Event(), threading.Event()

    def create_ports(self, ports):
        made = super().create_ports(ports)
        self.in_create.set()
        assert self.finish_create.wait(10)
        return made


def _pool(neutron: FakeNeutron, *, grace: int = 0, ports_pool_min: int | None = None,
          host: str | None = None) -> PortPool:
    conf = config.load()
    conf.set_override("enabled", True, group="vif_pool")
    conf.set_override("recovery_grace", grace, group="vif_pool")
    if ports_pool_min is not None:
        conf.set_override("ports_pool_min", ports_pool_min, group="vif_pool")
    if host is not None:
        conf.set_override("host", host)
    return PortPool(conf, neutron, Ownership(neutron, Owner(conf.host, conf.plugin_name),
                                             conf.subnetpool_name_prefix))


@pytest.fixture
def neutron() -> FakeNeutron:
    return FakeNeutron()


@pytest.fixture
def subnet(neutron):
    network = neutron.make_network("kuryr-net-x")
    return neutron.make_subnet(network.id, "10.0.0.0/24")


def _pool_port(neutron: FakeNeutron, pool: PortPool, subnet, **attrs) -> Port:
    """A pool port in Neutron as this pool creates it (its description names the pool's owner)."""
    made = {"name": naming.POOL_PORT_NAME, "admin_state_up": True, "device_owner": naming.DEVICE_OWNER,
            "binding:host_id": pool._ownership.owner.host, "fixed_ips": [{"subnet_id": subnet.id}],
            "description": naming.pool_description(pool._ownership.owner.mark), **attrs}
    return neutron.make_port(subnet.network_id, **made)


def _port_ids(neutron: FakeNeutron) -> set[str]:
    return {p.id for p in neutron.ports()}


def test_drain_waits_for_a_refill_in_flight_and_leaves_none_of_its_ports(neutron, subnet):
    """ReleasePool drained the pool while a bulk create was still in flight: its ports landed
    on the subnet ReleasePool was deleting, which failed with a 409 (seen in make test)."""
    in_create, finish_create = threading.Event(), threading.Event()
    neutron.before("create_ports", lambda args: (in_create.set(), finish_create.wait(10)))
    pool = _pool(neutron)
    try:
        pool.prepare(subnet.network_id, [subnet.id])
        assert in_create.wait(10)
        drained = threading.Thread(target=pool.drain, args=(subnet.network_id,))
        drained.start()
        drained.join(0.3)
        assert drained.is_alive(), "drain returned while the bulk create was in flight"
        finish_create.set()
        drained.join(10)
        assert not drained.is_alive()
        (create,) = neutron.calls_to("create_ports")
        assert len(create["ports"]) > 0  # the batch was made in Neutron ...
        assert neutron.ports() == [], "pool ports left on the subnet ReleasePool deletes next"  # ... and is gone
        assert pool.size(subnet.network_id) == 0
    finally:
        finish_create.set()
        pool.close()


def test_an_idle_pool_port_is_deleted_for_an_address_asked_for_by_name(neutron, subnet):
    pool = _pool(neutron, ports_pool_min=0)  # no refill: the pool holds just the recovered ports
    try:
        ports = [_pool_port(neutron, pool, subnet) for _ in range(3)]
        assert pool.recover() == 3
        assert pool.give_up(ports[1]) is True
        assert _port_ids(neutron) == {ports[0].id, ports[2].id}
        assert pool.port_ids() == {ports[0].id, ports[2].id}
        assert pool.give_up(ports[1]) is False, "given up twice"
    finally:
        pool.close()


def test_only_idle_pool_ports_of_this_plugin_are_given_up(neutron, subnet):
    pool = _pool(neutron, ports_pool_min=0)
    try:
        port = _pool_port(neutron, pool, subnet)
        # another plugin's pool port on the same network and host: never found, never given up
        theirs = _pool_port(neutron, pool, subnet, description="kuryr-cnm port pool of other@host")
        assert pool.recover() == 1
        assert pool.give_up(theirs) is False
        # this pool's port as Neutron lists it once another plugin marked it, then once handed out
        neutron.update_port(port.id, description="kuryr-cnm port pool of other@host")
        assert pool.give_up(neutron.get_port(port.id)) is False
        neutron.update_port(port.id, description=naming.pool_description(pool._ownership.owner.mark),
                            device_id="endpoint")
        assert pool.give_up(neutron.get_port(port.id)) is False
        assert _port_ids(neutron) == {port.id, theirs.id} and pool.port_ids() == {port.id}
    finally:
        pool.close()


def test_recovered_ports_are_kept_within_the_grace_period(neutron, subnet):
    """A start cut short by the restart may still hold a recovered port until Docker releases it."""
    pool = _pool(neutron, grace=60)
    try:
        port = _pool_port(neutron, pool, subnet)
        assert pool.recover() == 1
        assert pool.give_up(port) is False
        assert pool.port_ids() == {port.id} and _port_ids(neutron) == {port.id}
    finally:
        pool.close()


def test_giving_up_waits_for_the_refill_that_is_making_the_port():
    neutron = AnswerHeldBack()
    network = neutron.make_network("kuryr-net-x")
    subnet = neutron.make_subnet(network.id, "10.0.0.0/24")
    pool = _pool(neutron)
    try:
        pool.prepare(network.id, [subnet.id])
        assert neutron.in_create.wait(10)
        made = neutron.ports()  # in Neutron already: a --ip lookup finds one by its address
        assert len(made) > 2
        result: list[bool] = []
        giving_up = threading.Thread(target=lambda: result.append(pool.give_up(made[2])))
        giving_up.start()
        giving_up.join(0.3)
        assert giving_up.is_alive(), "it answered while the port was being made"
        neutron.finish_create.set()
        giving_up.join(10)
        assert result == [True]
        assert made[2].id not in pool.port_ids() and made[2].id not in _port_ids(neutron)
        assert {p.id for p in made if p.id != made[2].id} <= pool.port_ids()
    finally:
        neutron.finish_create.set()
        pool.close()


def test_a_refill_whose_ports_never_bind_stops_instead_of_looping(neutron, subnet):
    """Every port of a batch unbound (ML2 cannot bind to this host): the refill created and
    deleted ports in a tight loop, forever."""
    pool = _pool(neutron, host="no-chassis")  # no OVN chassis: Neutron answers binding_failed
    try:
        pool.prepare(subnet.network_id, [subnet.id])
    finally:
        pool.close()  # waits for the refill: it must end
    creates = neutron.calls_to("create_ports")
    assert len(creates) == 1, f"the refill made {len(creates)} bulk creates, not one"
    deleted = {c["port_id"] for c in neutron.calls_to("delete_port")}
    assert len(deleted) == len(creates[0]["ports"]) > 0
    assert neutron.ports() == [] and pool.size(subnet.network_id) == 0


@pytest.fixture
def two_hosts(neutron) -> Iterator[tuple[Host, Host]]:
    here, there = (Host(neutron, name, vif_pool__enabled=True, vif_pool__ports_pool_min=2,
                        vif_pool__ports_pool_batch=2) for name in ("vm", "host2"))
    yield here, there
    here.close()
    there.close()


def test_draining_a_shared_network_leaves_the_other_hosts_pool_ports(neutron, subnet, two_hosts):
    """drain() listed every kuryr-pool-port of the network and deleted them all: on a network
    several hosts adopted, one host's `docker network rm` deleted the others' idle pool ports."""
    network_id = subnet.network_id
    here, there = two_hosts
    for host in (here, there):
        host.plugin.pool.prepare(network_id, [subnet.id])
        host.plugin.pool._pools[network_id].refill.result(timeout=10)
    theirs = {p.id for p in neutron.ports() if p.host_id == "host2"}
    assert len(theirs) == 2 and len(neutron.ports()) == 4
    here.plugin.pool.drain(network_id)
    assert _port_ids(neutron) == theirs
    # a restarted plugin here (it knows none of its pool ports) drains only its own too
    here.plugin.pool.prepare(network_id, [subnet.id])
    here.plugin.pool._pools[network_id].refill.result(timeout=10)
    restarted = Host(neutron, "vm", vif_pool__enabled=True)
    restarted.plugin.pool.drain(network_id)
    restarted.close()
    assert _port_ids(neutron) == theirs
