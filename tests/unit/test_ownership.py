"""The one ownership rule, and networks, subnets and pools that several Docker networks share."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from kuryr_cnm import naming, ownership
from kuryr_cnm.neutron import FixedIP, Port
from kuryr_cnm.ownership import Owner, Why, may_delete_port
from tests.unit.fake_neutron import FakeNeutron
from tests.unit.wiring import Host

ME = Owner("vm", "kuryr")


def _port(*, host: str = "vm", tags: tuple[str, ...] = (), description: str = "", name: str = "kuryr-unbound-port",
          device_id: str = "", device_owner: str = "compute:kuryr", pid: str = "p1") -> Port:
    return Port(pid, name, "net", "fa:16:3e:00:00:01", (FixedIP("sub", "10.0.0.5"),), tags, device_owner,
                device_id, host, "ovs", {}, "ACTIVE", "proj", raw={"description": description})


MINE = naming.cnm_description("kuryr@vm")
MY_POOL = naming.pool_description("kuryr@vm")


@pytest.mark.parametrize("port,why,allowed", [
    (_port(description=MINE), Why.RELEASED, True),
    (_port(description=MINE), Why.LOST, True),
    (_port(description=MINE, device_id="e" * 64), Why.LOST, False),  # an endpoint took it
    (_port(description=MINE, device_id="e" * 64), Why.UNHELD, True),
    (_port(tags=(naming.cnm_owner_tag("kuryr@vm"),), device_id="e" * 64), Why.RELEASED, True),
    (_port(description=MY_POOL, name=naming.POOL_PORT_NAME), Why.POOL, True),
    (_port(description=MY_POOL, name=naming.POOL_PORT_NAME), Why.LOST, False),  # the pool's own
    (_port(description=MY_POOL, name=naming.POOL_PORT_NAME), Why.UNHELD, False),
    (_port(description=MINE), Why.POOL, False),  # handed out: not an idle pool port
    (_port(description=MINE, tags=(naming.PORT_EXISTING_TAG,)), Why.RELEASED, False),  # adopted: reset
    (_port(description=MINE, host="host2"), Why.RELEASED, False),  # bound to another host
    (_port(description=naming.pool_description("kuryr@host2"), name=naming.POOL_PORT_NAME, host="host2"),
     Why.POOL, False),
    (_port(description=naming.pool_description("kuryr@host2"), name=naming.POOL_PORT_NAME, host=""),
     Why.POOL, False),
    (_port(description=naming.cnm_description("kcnm2@vm")), Why.RELEASED, False),  # another plugin here
    (_port(tags=(naming.cnm_owner_tag("kuryr@host2"), naming.DEVICE_OWNER), host=""), Why.RELEASED, False),
    (_port(tags=(naming.DEVICE_OWNER,)), Why.RELEASED, True),  # kuryr-libnetwork's, Docker here released it
    (_port(tags=(naming.DEVICE_OWNER,)), Why.LOST, False),
    (_port(tags=(naming.DEVICE_OWNER,)), Why.UNHELD, False),
    (_port(device_owner="compute:nova", name="vm-port"), Why.RELEASED, False),  # an operator's
])
def test_the_rule(port, why, allowed):
    assert may_delete_port(port, ME, why) is allowed


def test_a_held_port_is_never_lost_nor_unheld():
    port = _port(description=MINE)
    assert not may_delete_port(port, ME, Why.LOST, held={"p1"})
    assert not may_delete_port(port, ME, Why.UNHELD, held={"p1"})
    assert may_delete_port(port, ME, Why.RELEASED, held={"p1"})


@pytest.fixture
def neutron() -> FakeNeutron:
    fake = FakeNeutron()
    fake.make_subnetpool("kuryr", ["10.10.0.0/16"], 24)
    return fake


@pytest.fixture
def hosts(neutron) -> Iterator[tuple[Host, Host]]:
    one, two = Host(neutron, "vm"), Host(neutron, "host2")
    yield one, two
    one.close()
    two.close()


def _kuryr_state(neutron: FakeNeutron) -> tuple[int, int, int]:
    return (len([n for n in neutron.networks() if n.name.startswith("kuryr-net-")]),
            len([s for s in neutron.subnets() if s.name.startswith("kuryr-subnet-")]),
            len([p for p in neutron.subnetpools() if p.name.startswith("kuryrPool-")]))


@pytest.mark.parametrize("first_out", ["adopter", "creator"])
def test_a_network_shared_by_two_hosts_goes_with_the_last_one(neutron, hosts, first_out):
    """Host 2 adopts host 1's Neutron network with the same --subnet (kuryr-libnetwork's
    multi-host recipe). Host 2's `docker network rm` deleted the kuryr-subnet of the adopted
    network (and a ReleasePool of a shared PoolID its subnet pool): host 1's network lost its
    subnet. Whichever host leaves first, nothing goes until the last one leaves."""
    creator, adopter = hosts
    mine = creator.create_network("10.20.0.0/24")
    network = next(n for n in neutron.networks() if n.name == naming.network_name(mine.docker_id))
    theirs = adopter.create_network("10.20.0.0/24", options={"neutron.net.uuid": network.id})
    assert _kuryr_state(neutron) == (1, 1, 2)
    first, second = ((adopter, theirs), (creator, mine)) if first_out == "adopter" else \
        ((creator, mine), (adopter, theirs))
    first[0].remove_network(first[1])
    assert _kuryr_state(neutron)[:2] == (1, 1), "the network or its subnet went while a Docker network used it"
    assert [s.cidr for s in neutron.subnets()] == ["10.20.0.0/24"]
    # the host still there can still hand out addresses on it
    second[0].call("IpamDriver.RequestAddress", {"PoolID": second[1].pools[0], "Address": "", "Options": {}})
    assert len([p for p in neutron.ports() if p.network_id == network.id]) == 1
    for port in neutron.ports():
        neutron.delete_port(port.id)
    second[0].remove_network(second[1])
    assert _kuryr_state(neutron) == (0, 0, 0)


def test_a_pool_id_two_docker_networks_hold_is_released_by_the_last(neutron, hosts):
    """Two hosts' RequestPool for one CIDR can get the same kuryrPool (it is free at both
    requests; kuryr-libnetwork hands every host the same one). The second host, on the first
    one's network, released the pool: the first ReleasePool deleted the subnet pool and the
    subnet the other Docker network still used."""
    creator, adopter = hosts
    pool = creator.request_pool("10.21.0.0/24")
    same = adopter.request_pool("10.21.0.0/24")
    assert same["PoolID"] == pool["PoolID"]
    mine = creator.create_network(pool=pool)
    network = next(n for n in neutron.networks() if n.name == naming.network_name(mine.docker_id))
    theirs = adopter.create_network(pool=same, options={"neutron.net.uuid": network.id})
    adopter.remove_network(theirs)
    assert [p.id for p in neutron.subnetpools() if p.name.startswith("kuryrPool-")] == [pool["PoolID"]]
    assert [s.cidr for s in neutron.subnets() if s.network_id == network.id] == ["10.21.0.0/24"]
    creator.remove_network(mine)
    assert _kuryr_state(neutron) == (0, 0, 0)


def test_delete_network_waits_for_a_release_retrying_through_an_outage(neutron, hosts, monkeypatch):
    """The released port's mark went after its first failed attempt, so DeleteNetwork no longer
    waited for the retry and failed 409 "still has ports" (make test's Neutron outage, seen)."""
    import threading

    from kuryr_cnm import errors
    host, _ = hosts
    in_backoff = threading.Event()

    class Closing(threading.Event):
        def wait(self, timeout=None):  # the worker's pause between attempts: the first one failed
            in_backoff.set()
            return super().wait(0.2)
    host.plugin.deferred._closing = Closing()
    net = host.create_network("10.22.0.0/24")
    address = host.call("IpamDriver.RequestAddress", {"PoolID": net.pools[0], "Address": "", "Options": {}})
    (port,) = neutron.ports()
    neutron.update_port(port.id, device_id="e" * 64)  # its endpoint came and went: no lost address
    neutron.fail_next("delete_port", errors.NeutronUnavailable("DELETE /ports/x", "Neutron is unreachable",
                                                               status=0))
    host.call("IpamDriver.ReleaseAddress", {"PoolID": net.pools[0], "Address": address["Address"].split("/")[0]})
    assert in_backoff.wait(5)
    host.remove_network(net)  # was a 409 while the release was still retrying
    assert _kuryr_state(neutron) == (0, 0, 0) and not neutron.ports()


def test_a_default_pool_is_never_listed_nor_touched_when_a_carved_network_goes(neutron, hosts):
    """Releasing a carved subnet asked Neutron twice whether the default pool `kuryr` was unused,
    a pool kuryr never deletes: two reads more per `docker network rm`."""
    host, _ = hosts
    (default,) = neutron.subnetpools()
    net = host.create_network()  # no --subnet: carved from `kuryr`
    neutron.reset_calls()
    host.remove_network(net)
    asked = [c for c in neutron.calls_to("list_subnets") if default.id in (c.get("subnetpool_id"), c.get("tags"))]
    assert asked == [] and neutron.subnetpools() == [default] and _kuryr_state(neutron) == (0, 0, 0)


# --- a network that one host leaves while another joins it ----------------------------------

def _create_call(host: Host, cidr: str, network_id: str) -> tuple[int, dict]:
    """host's `docker network create --subnet cidr -o neutron.net.uuid=network_id`: (status of
    CreateNetwork, its answer), after RequestPool and the gateway's RequestAddress."""
    import json

    from tests.unit.wiring import docker_id
    pool = host.request_pool(cidr)
    gateway = host.call("IpamDriver.RequestAddress", {
        "PoolID": pool["PoolID"], "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    body = {"NetworkID": docker_id(), "Options": {"com.docker.network.enable_ipv6": False,
                                                  "com.docker.network.generic": {"neutron.net.uuid": network_id}},
            "IPv4Data": [{"AddressSpace": "", "Gateway": gateway["Address"], "Pool": pool["Pool"]}], "IPv6Data": []}
    status, answer = host.plugin.router.dispatch("NetworkDriver.CreateNetwork", json.dumps(body).encode())
    return status, answer


def _made_network(neutron: FakeNeutron, host: Host, cidr: str):
    """host's Docker network on `cidr` and the Neutron network kuryr made for it."""
    net = host.create_network(cidr)
    return net, next(n for n in neutron.networks() if n.name == naming.network_name(net.docker_id))


def _join_once(joiner: Host, cidr: str, network_id: str, joined: list) -> Callable[[object], None]:
    """A FakeNeutron hook: the first time it runs, `joiner` creates a Docker network on
    `network_id` (its (status, answer) goes into `joined`)."""
    def hook(_args: object) -> None:
        if not joined:
            joined.append(_create_call(joiner, cidr, network_id))
    return hook


def test_a_host_joining_before_the_last_one_leaves_keeps_the_network(neutron, hosts):
    """Host 1 removes the last Docker network of its network; host 2 adopts that network after
    host 1 read its users and before host 1 deleted anything. Before the claim, host 1 deleted
    the subnet and the network under host 2's new Docker network."""
    creator, joiner = hosts
    mine, network = _made_network(neutron, creator, "10.23.0.0/24")
    joined: list = []
    join_first = _join_once(joiner, "10.23.0.0/24", network.id, joined)
    neutron.before("update_network_if_revision", join_first)  # the claim
    neutron.before("delete_subnet", join_first)  # the old code's first delete
    creator.remove_network(mine)
    assert joined and joined[0][0] == 200, joined
    assert _kuryr_state(neutron)[:2] == (1, 1), "the network or its subnet went under the host that joined it"
    now = neutron.get_network(network.id)
    assert ownership.docker_users(now) and not ownership.deletion_claim(now)


def test_a_host_joining_after_the_claim_backs_out_and_the_network_goes(neutron, hosts):
    """The claim landed first: host 2's CreateNetwork is refused with a clear message, leaves no
    tag behind, and host 1's rm removes everything."""
    creator, joiner = hosts
    mine, network = _made_network(neutron, creator, "10.24.0.0/24")
    joined: list = []
    join = _join_once(joiner, "10.24.0.0/24", network.id, joined)
    users_after_join: list = []

    def join_during_deletion(args: object) -> None:
        join(args)
        users_after_join.append(ownership.docker_users(neutron.get_network(network.id)))
    neutron.before("delete_subnet", join_during_deletion)
    creator.remove_network(mine)
    assert users_after_join[0] == [mine.docker_id[:32]], "the joiner's tags stayed"
    status, answer = joined[0]
    assert status == 409 and "is being deleted by kuryr@vm" in answer["Err"], answer
    assert _kuryr_state(neutron)[:2] == (0, 0)


def test_a_claim_of_a_plugin_that_died_while_deleting_expires(neutron, hosts):
    creator, joiner = hosts
    _, network = _made_network(neutron, creator, "10.25.0.0/24")
    stale = f"{ownership.DELETING_PREFIX}kuryr@host9 at {time.time() - ownership.CLAIM_EXPIRES - 1:.0f}"
    neutron.update_network(network.id, description=stale)
    assert ownership.deletion_claim(neutron.get_network(network.id)) is None
    assert _create_call(joiner, "10.25.0.0/24", network.id)[0] == 200
    neutron.update_network(network.id, description=f"{ownership.DELETING_PREFIX}kuryr@host8 at {time.time():.0f}")
    status, answer = _create_call(joiner, "10.25.0.0/24", network.id)
    assert status == 409 and "kuryr@host8" in answer["Err"]


def test_two_hosts_joining_at_once_both_stay_users(neutron, hosts):
    """Each joining host wrote the network's whole tag list as it had read it: the second write
    dropped the first host's tags, and that host's Docker network no longer counted as a user
    (the next rm elsewhere deleted the network under it)."""
    creator, second = hosts
    third = Host(neutron, "host3")
    try:
        mine = creator.create_network("10.26.0.0/24")
        network = next(n for n in neutron.networks() if n.name == naming.network_name(mine.docker_id))
        joined: list = []
        started = []

        def third_joins_meanwhile(_args):
            if not started:
                started.append(True)  # its own tag writes come here too
                joined.append(_create_call(third, "10.26.0.0/24", network.id))
        for method in ("set_tags", "add_tag"):  # the old code's write, the new one's
            neutron.before(method, third_joins_meanwhile)
        assert _create_call(second, "10.26.0.0/24", network.id)[0] == 200
        assert joined[0][0] == 200
        assert len(ownership.docker_users(neutron.get_network(network.id))) == 3
    finally:
        third.close()


# --- gc --dead-host ---------------------------------------------------------------------------

def _ports_of(neutron: FakeNeutron, host: str) -> list[Port]:
    return [p for p in neutron.ports() if p.host_id == host]


def test_a_dead_hosts_ports_and_share_of_a_network_go_and_the_others_stay(neutron):
    """host3 died with a container and pool ports on a network it shared with vm and host2, and
    a network of its own: gc --dead-host host3 on vm takes host3's Docker network off the shared
    one (host2's and vm's still use it), deletes host3's ports and its own network, and leaves
    every other host's ports."""
    vm, two = Host(neutron, "vm"), Host(neutron, "host2", vif_pool__enabled=True, vif_pool__ports_pool_min=2)
    three = Host(neutron, "host3", vif_pool__enabled=True, vif_pool__ports_pool_min=2)
    try:
        shared = vm.create_network("10.30.0.0/24")
        network = next(n for n in neutron.networks() if n.name == naming.network_name(shared.docker_id))
        two.create_network("10.30.0.0/24", options={"neutron.net.uuid": network.id})
        theirs = three.create_network("10.30.0.0/24", options={"neutron.net.uuid": network.id})
        own = three.create_network("10.31.0.0/24")
        (own_id,) = [n.id for n in neutron.networks() if n.name == naming.network_name(own.docker_id)]
        three.call("IpamDriver.RequestAddress", {"PoolID": theirs.pools[0], "Address": "", "Options": {}})
        # host3 dies: nothing of it runs any more (its pool refills were still making ports, and gc
        # met one made after its list: CI saw "subnet ... still has ports"); host2's refills are done
        three.close()
        two.close()
        two_ports = {p.id for p in _ports_of(neutron, "host2")}
        assert _ports_of(neutron, "host3")
        neutron.dead_hosts.add("host3")
        report = vm.plugin.ownership.forget_dead_host("host3")
        assert _ports_of(neutron, "host3") == [] and set(report.ports)
        assert {p.id for p in _ports_of(neutron, "host2")} == two_ports
        now = neutron.get_network(network.id)
        users = ownership.docker_users(now)
        assert len(users) == 2 and shared.docker_id[:32] in users and theirs.docker_id[:32] not in users
        assert not naming.host_users(now.tags, "host3") and naming.host_users(now.tags, "host2")
        assert not [t for t in now.tags if theirs.docker_id[32:44] in t or theirs.docker_id[:12] in t]
        assert sorted(report.left_networks) == sorted([network.id, own_id]) and report.deleted_networks == [own_id]
        assert own_id not in {n.id for n in neutron.networks()}
        assert [s.cidr for s in neutron.subnets()] == ["10.30.0.0/24"]
    finally:
        for h in (vm, two, three):
            h.close()


def test_gc_of_a_dead_host_is_refused_while_its_chassis_is_alive(neutron, hosts):
    from kuryr_cnm import errors
    vm, two = hosts
    two.create_network("10.32.0.0/24")
    with pytest.raises(errors.Conflict, match="host2 is alive"):
        vm.plugin.ownership.forget_dead_host("host2")
    assert len(neutron.networks()) == 1


def test_a_dry_run_of_gc_of_a_dead_host_changes_nothing(neutron, hosts):
    vm, two = hosts
    two.create_network("10.33.0.0/24")
    two.call("IpamDriver.RequestAddress", {"PoolID": two.create_network("10.34.0.0/24").pools[0], "Address": "",
                                           "Options": {}})
    neutron.dead_hosts.add("host2")
    neutron.reset_calls()
    report = vm.plugin.ownership.forget_dead_host("host2", dry_run=True)
    assert neutron.writes() == 0 and len(report.deleted_networks) == 2 and len(report.ports) == 1
