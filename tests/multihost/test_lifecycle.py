"""One Neutron network's life across hosts: the Docker networks on every host that use it, removed in
every order, and created on one host while the last user removes it on another."""
from __future__ import annotations

import concurrent.futures
import time

import pytest

from tests import host
from tests.multihost.conftest import ALL, MAIN, Cluster


def _pool_ports(neutron, network_id: str, engine: str) -> set[str]:
    """A host's idle pool ports on the network (the simulated hosts run with the pool on)."""
    owner = host.hostname_id() if engine == MAIN else engine
    ports = neutron.get("/ports", params={"network_id": network_id,
                                          "description": f"kuryr-cnm port pool of kuryr@{owner}"}).json()["ports"]
    return {p["id"] for p in ports}


def _exists(neutron, path: str) -> bool:
    return neutron.get(path).status_code == 200


def _container_works(cluster: Cluster, engine: str, network: str, subnet_gateway_net: str) -> str:
    """A new container on the network on `engine` starts and gets an address; its name."""
    name = cluster[engine].run(f"w{len(cluster[engine].containers)}", network)
    assert cluster[engine].ip(name, network).startswith(subnet_gateway_net)
    return name


ORDERS = {
    "creator first": [(MAIN,), ("host2",), ("host3",)],
    "creator last": [("host3",), ("host2",), (MAIN,)],
    "two at once": [(MAIN, "host2"), ("host3",)],
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_network_rm_in_any_order_keeps_it_for_the_hosts_that_still_use_it(cluster, neutron, order):
    """Only the last `docker network rm` removes the Neutron network, its subnet and pool, whichever
    host made it; until then the others keep working on it, and no host's rm deletes another
    host's pool ports."""
    net = cluster.span("rm", "10.98.0.0/24", neutron)
    (subnet,) = neutron.get("/subnets", params={"network_id": net.neutron_id}).json()["subnets"]
    first = {engine: _container_works(cluster, engine, net.name, "10.98.0.") for engine in ALL}
    cluster[MAIN].exec(first[MAIN], "ping", "-c", "2", "-W", "2", cluster["host3"].ip(first["host3"], net.name))
    remaining = list(ALL)
    for step in ORDERS[order]:
        for engine in step:
            cluster[engine]("rm", "-f", *cluster[engine].containers)
            cluster[engine].containers.clear()
        others = [e for e in remaining if e not in step]
        pools_before = {e: _pool_ports(neutron, net.neutron_id, e) for e in others}
        with concurrent.futures.ThreadPoolExecutor(len(step)) as pool:
            results = list(pool.map(lambda e: cluster[e]("network", "rm", net.name, check=False), step))
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
        for engine in step:
            cluster[engine].networks.remove(net.name)
        remaining = others
        if not remaining:
            host.wait_for(lambda: not _exists(neutron, f"/networks/{net.neutron_id}"), timeout=30,
                          what="the Neutron network to go with its last Docker network")
            assert not _exists(neutron, f"/subnets/{subnet['id']}")
            if subnet["subnetpool_id"]:
                assert not _exists(neutron, f"/subnetpools/{subnet['subnetpool_id']}")
            break
        assert _exists(neutron, f"/networks/{net.neutron_id}") and _exists(neutron, f"/subnets/{subnet['id']}")
        for engine in remaining:
            assert pools_before[engine] <= _pool_ports(neutron, net.neutron_id, engine), \
                f"{step}'s rm deleted {engine}'s pool ports"
        started = {engine: _container_works(cluster, engine, net.name, "10.98.0.") for engine in remaining}
        if len(remaining) == 2:
            a, b = remaining
            cluster[a].exec(started[a], "ping", "-c", "2", "-W", "2", cluster[b].ip(started[b], net.name))


def test_create_on_one_host_while_the_last_user_removes_it_on_another(cluster, neutron):
    """host2 joins a network at the moment the main host's rm of its last Docker network runs.
    Either host2's create succeeds and the network stays (and works there), or it is refused
    with a clear message and the network goes: never a create that succeeded on a network that
    is then deleted under it."""
    outcomes = []
    for i, rm_later in enumerate((0.0, 0.4, 0.8, 1.2, 1.6)):  # the rm a little later each time: both outcomes
        net = cluster.span(f"race{i}", f"10.99.{i}.0/24", neutron, (MAIN,))
        join = ["network", "create", "-d", "kuryr", "--ipam-driver", "kuryr", "--subnet", net.subnet,
                "-o", f"neutron.net.uuid={net.neutron_id}", net.name]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            joined = pool.submit(cluster["host2"], *join, check=False)
            time.sleep(rm_later)
            removed = pool.submit(cluster[MAIN], "network", "rm", net.name, check=False)
        assert removed.result().returncode == 0, removed.result().stderr
        cluster[MAIN].networks.remove(net.name)
        if joined.result().returncode == 0:
            cluster["host2"].networks.append(net.name)
            assert _exists(neutron, f"/networks/{net.neutron_id}"), "created on host2, deleted under it"
            _container_works(cluster, "host2", net.name, f"10.99.{i}.")
            outcomes.append("joined")
        else:
            err = joined.result().stderr
            clear = ("being deleted", "deleted meanwhile", "could not be found", "not found")
            assert any(why in err.lower() for why in clear), err
            path = f"/networks/{net.neutron_id}"
            host.wait_for(lambda path=path: not _exists(neutron, path), timeout=30, what="the claimed network to go")
            outcomes.append("refused")
    print("create during rm:", outcomes)
