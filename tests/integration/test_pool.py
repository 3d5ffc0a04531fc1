"""The port pool, in a second kuryr-cnm with [vif_pool] enabled, against the real Neutron."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import host
from tests.integration.conftest import DockerLike
from tests.plugin_client import PluginClient

pytestmark = pytest.mark.usefixtures("no_leaks")

POOL = {"vif_pool": {"enabled": "true", "ports_pool_min": "4", "ports_pool_max": "8", "ports_pool_batch": "4",
                     "recovery_grace": "2"}}
PARALLEL = 50  # the figure: 50 starts at once right after a restart


def _pool_ports(neutron, network_id: str) -> list[dict]:
    return neutron.get("/ports", params={"network_id": network_id, "name": "kuryr-pool-port"}).json()["ports"]


def _neutron_net_id(neutron, docker_id: str) -> str:
    return neutron.get("/networks", params={"tags": f"kuryr.net.uuid.lh:{docker_id[:32]}"}).json()["networks"][0]["id"]


def _calls_for(log: str, method: str, ident: str) -> str:
    lines = [line for line in open(log) if method in line and ident in line]
    assert lines, f"no {method} line for {ident}"
    return lines[-1]


@pytest.fixture
def pooled(extra_plugin, unique):
    name = f"kcnmpool{unique}"
    log = extra_plugin(name, POOL)
    client = PluginClient(f"/run/docker/plugins/{name}.sock", timeout=60)
    docker = DockerLike(client)
    yield name, log, docker, extra_plugin
    docker.teardown()  # before extra_plugin stops the plugin: a failed test leaves nothing
    docker.plugin.close()
    client.close()


def test_start_takes_a_ready_port_with_no_neutron_request(pooled, neutron, host_id):
    name, log, docker, _ = pooled
    net = docker.create_network("10.64.0.0/24")
    net_id = _neutron_net_id(neutron, net["id"])
    host.wait_for(lambda: len(_pool_ports(neutron, net_id)) == 4, timeout=20, what="pool filled to its minimum")
    # ML2 binds bulk-created ports after it commits them: wait for the binding, as the pool does
    host.wait_for(lambda: {p["binding:vif_type"] for p in _pool_ports(neutron, net_id)} == {"ovs"}, timeout=10,
                  what="pool ports bound")
    # and the pool has taken them (it reads late-bound ones again before they count as ready)
    host.wait_for(lambda: re.search(rf"port pool of network {net_id}: \d+ ports created, [4-9]\d* ready",
                                    open(log).read()), timeout=20, what="the pool's own count of ready ports")
    assert {p["binding:host_id"] for p in _pool_ports(neutron, net_id)} == {host_id}

    ep = docker.start(net)
    line = _calls_for(log, "IpamDriver.RequestAddress", net["pools"][0][:36])
    assert "[neutron: none]" in line, line
    assert "[neutron: none]" in _calls_for(log, "NetworkDriver.CreateEndpoint", ep["id"][:12])
    ip = ep["address"].split("/")[0]

    def renamed() -> bool:
        ports = neutron.get("/ports", params={"network_id": net_id, "fixed_ips": f"ip_address={ip}"}).json()["ports"]
        return ports[0]["name"] == "kuryr-unbound-port" and ports[0]["device_id"] == ep["id"]
    host.wait_for(renamed, timeout=15, what="the handed-out port renamed and given its device_id")
    host.wait_for(lambda: len(_pool_ports(neutron, net_id)) >= 4, timeout=20, what="pool refilled")
    docker.stop(ep)
    docker.delete_network(net)  # drains the pool: no_leaks checks nothing is left


def test_fixed_ip_bypasses_the_pool(pooled, neutron):
    _, log, docker, _ = pooled
    net = docker.create_network("10.65.0.0/24")
    ep = docker.start(net, address="10.65.0.99")
    assert ep["address"] == "10.65.0.99/24"
    assert "POST /ports 201" in _calls_for(log, "IpamDriver.RequestAddress", "Address=10.65.0.99")
    docker.stop(ep)
    docker.delete_network(net)


def test_an_address_held_by_an_idle_pool_port_is_given_up_to_a_fixed_ip(pooled, neutron):
    """`--ip` of an address that a random pool port happens to hold: the pool gives it up."""
    _, log, docker, _ = pooled
    net = docker.create_network("10.77.0.0/24")
    net_id = _neutron_net_id(neutron, net["id"])
    host.wait_for(lambda: re.search(rf"port pool of network {net_id}: \d+ ports created, [4-9]\d* ready",
                                    open(log).read()), timeout=30, what="the pool's own count of ready ports")
    idle = _pool_ports(neutron, net_id)[0]
    address = idle["fixed_ips"][0]["ip_address"]
    ep = docker.start(net, address=address)
    assert ep["address"] == f"{address}/24"
    assert f"DELETE /ports/{idle['id']} 204" in _calls_for(log, "IpamDriver.RequestAddress", f"Address={address}")
    assert idle["id"] not in {p["id"] for p in neutron.get("/ports", params={"network_id": net_id}).json()["ports"]}
    docker.stop(ep)
    docker.delete_network(net)


def test_restart_finds_the_pool_and_parallel_starts_never_share_a_port(pooled, neutron, unique):
    name, log, docker, start = pooled
    net = docker.create_network("10.66.0.0/24")
    net_id = _neutron_net_id(neutron, net["id"])
    host.wait_for(lambda: len(_pool_ports(neutron, net_id)) == 4, timeout=20, what="pool filled")
    before = {p["id"] for p in _pool_ports(neutron, net_id)}
    docker.plugin.close()
    start.stop(kill=True)
    log = start(name, POOL)
    # recovery runs in the background right after the socket is up; ports left on this host by
    # earlier runs are found too, so at least this network's four
    found = host.wait_for(lambda: re.search(r"found (\d+) pool ports", open(log).read()), timeout=20,
                          what="the pool recovered")
    assert int(found.group(1)) >= 4, found.group(0)
    docker.plugin = PluginClient(f"/run/docker/plugins/{name}.sock", timeout=60)
    import time
    time.sleep(2.5)  # recovery_grace

    def one(_: int) -> dict:
        client = PluginClient(f"/run/docker/plugins/{name}.sock", timeout=120)
        try:
            return docker.worker(client).start(net)
        finally:
            client.close()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        eps = list(pool.map(one, range(PARALLEL)))
    addresses = [e["address"] for e in eps]
    assert len(set(addresses)) == PARALLEL
    ports = neutron.get("/ports", params={"network_id": net_id, "device_owner": "compute:kuryr"}).json()["ports"]
    used = [p for p in ports if any(f["ip_address"] + "/24" in addresses for f in p["fixed_ips"])]
    assert len(used) == PARALLEL and len({p["id"] for p in used}) == PARALLEL
    assert before & {p["id"] for p in used}, "the recovered pool ports were handed out"
    for e in eps:
        docker.stop(e)
    docker.delete_network(net)
