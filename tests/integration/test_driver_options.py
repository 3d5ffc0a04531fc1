"""Docker's driver and IPAM options over HTTP, exactly as Docker 20.10 sends them, checked in
Neutron, OVS and on the host: `-o neutron.net.*`, `neutron.pool.*`, `neutron.subnet.*`
(kuryr-libnetwork 18's contract, shared/reference/kuryr-libnetwork-18.md §1.2, §1.4, §1.5),
`--ipv6` without subnets, `--ip6`, `com.docker.network.driver.mtu`, subnet host routes,
`--expose`, `--ip-range`, parallel container starts, and the one log line per call.

Address ranges of this file: 10.60.0.0/16-10.69.0.0/16 and fd00:60::/32 (other files use others).
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import host
from tests.integration.conftest import DockerLike, docker_id
from tests.plugin_client import PluginClient

pytestmark = pytest.mark.usefixtures("no_leaks")

EXPOSED_PORTS = "com.docker.network.endpoint.exposedports"


@pytest.fixture
def docker(docker_like: DockerLike) -> DockerLike:
    return docker_like


# --- Neutron and host helpers -----------------------------------------------------

COLLECTIONS = {"network": "networks", "subnet": "subnets", "subnetpool": "subnetpools", "port": "ports"}


def _make(neutron, cleanup, kind: str, **attrs) -> dict:
    """Pre-create a Neutron object (what an operator made before Docker); deleted after the test."""
    resp = neutron.post(f"/{COLLECTIONS[kind]}", json={kind: attrs})
    assert resp.status_code == 201, resp.text
    made = resp.json()[kind]
    cleanup(lambda: neutron.delete(f"/{COLLECTIONS[kind]}/{made['id']}"))
    return made


def _assert_empty(items: list) -> None:
    assert items == []


def _get(neutron, kind: str, obj_id: str) -> dict:
    resp = neutron.get(f"/{COLLECTIONS[kind]}/{obj_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()[kind]


def _list(neutron, kind: str, **filters) -> list[dict]:
    return neutron.get(f"/{COLLECTIONS[kind]}", params=filters).json()[COLLECTIONS[kind]]


def _docker_net(neutron, net: dict) -> dict:
    """The one Neutron network tagged with the Docker network's id."""
    nets = _list(neutron, "network", tags=f"kuryr.net.uuid.lh:{net['id'][:32]},kuryr.net.uuid.uh:{net['id'][32:]}")
    assert len(nets) == 1, nets
    return nets[0]


def _kuryr_tags(obj: dict) -> list[str]:
    return [t for t in obj["tags"] if t.startswith(("kuryr", "compute:kuryr"))]


def _ip(cidr: str) -> str:
    return cidr.split("/")[0]


def _port_id(docker: DockerLike, ep: dict) -> str:
    info = docker.ok("NetworkDriver.EndpointOperInfo", {"NetworkID": ep["net"]["id"], "EndpointID": ep["id"]})
    return info["Value"]["port_id"]


def _link_mtu(name: str) -> int:
    return json.loads(host.run(["ip", "-j", "link", "show", "dev", name]).stdout)[0]["mtu"]


def _ids(ep: dict) -> dict:
    return {"NetworkID": ep["net"]["id"], "EndpointID": ep["id"]}


def _log_offset() -> int:
    return os.path.getsize(host.plugin_log_path())


def _log_lines(offset: int, *needles: str) -> list[str]:
    """Lines of the plugin log written since `offset` that contain every needle."""
    with open(host.plugin_log_path(), "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return [line for line in text.splitlines() if all(n in line for n in needles)]


def _one_log_line(offset: int, *needles: str) -> str:
    host.wait_for(lambda: _log_lines(offset, *needles), timeout=5, what=f"a log line with {needles}")
    lines = _log_lines(offset, *needles)
    assert len(lines) == 1, lines
    return lines[0]


# --- 1. neutron.net.uuid / neutron.net.shared -------------------------------------------

def test_net_uuid_adopts_the_network_and_reuses_its_subnet(docker, neutron, cleanup, unique):
    existing = _make(neutron, cleanup, "network", name=f"kcnmt-adopt-{unique}")
    subnet = _make(neutron, cleanup, "subnet", network_id=existing["id"], ip_version=4, cidr="10.60.0.0/24",
                   name=f"kcnmt-adopt-{unique}")

    net = docker.create_network("10.60.0.0/24", options={"neutron.net.uuid": existing["id"]})
    adopted = _get(neutron, "network", existing["id"])
    assert adopted["name"] == existing["name"]
    assert {f"kuryr.net.uuid.lh:{net['id'][:32]}", f"kuryr.net.uuid.uh:{net['id'][32:]}",
            f"kuryr.net.existing:{net['id'][:12]}"} <= set(adopted["tags"])
    subnets = _list(neutron, "subnet", network_id=existing["id"])
    assert [s["id"] for s in subnets] == [subnet["id"]], "a kuryr-subnet-* was made instead of reusing the subnet"
    assert net["pools"][0] in subnets[0]["tags"]

    ep = docker.start(net)
    assert ipaddress.ip_address(_ip(ep["address"])) in ipaddress.ip_network("10.60.0.0/24")
    assert ep["join"]["Gateway"] == subnet["gateway_ip"]
    assert _get(neutron, "port", _port_id(docker, ep))["network_id"] == existing["id"]
    docker.stop(ep)
    docker.delete_network(net)

    kept = _get(neutron, "network", existing["id"])
    assert kept["name"] == existing["name"] and not _kuryr_tags(kept)
    kept_subnet = _get(neutron, "subnet", subnet["id"])
    assert kept_subnet["tags"] == []
    assert neutron.get(f"/subnetpools/{net['pools'][0]}").status_code == 404  # kuryrPool-10.60.0.0/24 went


@pytest.mark.parametrize("network_shared, option", [(False, "true"), (True, "false")])
def test_net_shared_mismatch_is_a_clear_409(docker, neutron, cleanup, unique, network_shared, option):
    cidr = "10.60.1.0/24" if network_shared else "10.60.2.0/24"
    existing = _make(neutron, cleanup, "network", name=f"kcnmt-shared-{unique}", shared=network_shared)
    _make(neutron, cleanup, "subnet", network_id=existing["id"], ip_version=4, cidr=cidr, name=f"kcnmt-shared-{unique}")
    pool = docker.ok("IpamDriver.RequestPool", {"AddressSpace": "no_address_space", "Pool": cidr, "SubPool": "",
                                                "Options": {}, "V6": False})
    status, answer = docker.plugin.call("NetworkDriver.CreateNetwork", {
        "NetworkID": docker_id(), "IPv6Data": [],
        "Options": {"com.docker.network.enable_ipv6": False,
                    "com.docker.network.generic": {"neutron.net.uuid": existing["id"], "neutron.net.shared": option}},
        "IPv4Data": [{"AddressSpace": "no_address_space", "Pool": pool["Pool"],
                      "Gateway": pool["Data"]["com.docker.network.gateway"]}]})
    assert status == 409, answer
    assert existing["id"] in answer["Err"] and f"shared={network_shared}" in answer["Err"]
    assert not _kuryr_tags(_get(neutron, "network", existing["id"]))
    assert [s["tags"] for s in _list(neutron, "subnet", network_id=existing["id"])] == [[]]
    docker.ok("IpamDriver.ReleasePool", {"PoolID": pool["PoolID"]})  # Docker's rollback of the failed create


# --- 2. neutron.pool.name / neutron.pool.uuid ------------------------------------------------

def _pool_option(pool: dict, ref: str) -> dict:
    return {f"neutron.pool.{ref}": pool["name"] if ref == "name" else pool["id"]}


@pytest.mark.parametrize("ref, cidr", [("name", "10.61.0.0/24"), ("uuid", "10.61.1.0/24")])
def test_pool_option_with_its_only_prefix_adopts_the_pool(docker, neutron, cleanup, unique, ref, cidr):
    pool = _make(neutron, cleanup, "subnetpool", name=f"kcnmt-pool-{unique}", prefixes=[cidr], default_prefixlen=24)
    opt = _pool_option(pool, ref)
    net = docker.create_network(cidr, options=opt, ipam_options=opt)  # upstream's recipe: in -o and --ipam-opt
    assert net["pools"] == [pool["id"]]
    assert "kuryr.subnetpool.existing" in _get(neutron, "subnetpool", pool["id"])["tags"]
    subnet, = _list(neutron, "subnet", network_id=_docker_net(neutron, net)["id"])
    assert subnet["cidr"] == cidr and subnet["subnetpool_id"] == pool["id"]

    ep = docker.start(net)
    assert ipaddress.ip_address(_ip(ep["address"])) in ipaddress.ip_network(cidr)
    docker.stop(ep)
    docker.delete_network(net)
    kept = _get(neutron, "subnetpool", pool["id"])  # not deleted: it is the operator's
    assert "kuryr.subnetpool.existing" not in kept["tags"]
    assert _list(neutron, "subnet", subnetpool_id=pool["id"]) == []


@pytest.mark.parametrize("ref, prefix", [("name", "10.62.0.0/20"), ("uuid", "10.62.16.0/20")])
def test_pool_option_without_subnet_carves_from_that_pool(docker, neutron, cleanup, unique, ref, prefix):
    pool = _make(neutron, cleanup, "subnetpool", name=f"kcnmt-carve-{unique}", prefixes=[prefix], default_prefixlen=26)
    opt = _pool_option(pool, ref)
    net = docker.create_network(options=opt, ipam_options=opt)
    cidr = net["ipv4"][0]["Pool"]
    assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(prefix))
    assert ipaddress.ip_network(cidr).prefixlen == 26
    subnet, = _list(neutron, "subnet", network_id=_docker_net(neutron, net)["id"])
    assert subnet["cidr"] == cidr and subnet["subnetpool_id"] == pool["id"]

    ep = docker.start(net)
    assert ipaddress.ip_address(_ip(ep["address"])) in ipaddress.ip_network(cidr)
    assert ep["join"]["Gateway"] == subnet["gateway_ip"]
    docker.stop(ep)
    docker.delete_network(net)
    assert "kuryr.subnetpool.existing" not in _get(neutron, "subnetpool", pool["id"])["tags"]
    assert _list(neutron, "subnet", subnetpool_id=pool["id"]) == []


@pytest.mark.parametrize("requested", ["", "10.61.9.0/24"])
def test_missing_pool_name_is_a_clear_404(docker, unique, requested):
    name = f"kcnmt-nopool-{unique}"
    status, answer = docker.plugin.call("IpamDriver.RequestPool", {
        "AddressSpace": "no_address_space", "Pool": requested, "SubPool": "",
        "Options": {"neutron.pool.name": name}, "V6": False})
    assert status == 404 and name in answer["Err"] and "neutron.pool.name" in answer["Err"], answer


# --- 3. overlapping CIDRs: neutron.subnet.* + neutron.net.name, pre-created ports ----------

@pytest.mark.parametrize("creates", ["one_after_the_other", "concurrent"])
def test_same_cidr_in_two_networks_each_adopts_its_own_port(docker, neutron, cleanup, unique, host_id, creates):
    """kuryr-libnetwork's fullstack test_container_ipam_release_address_with_existing_port_same_ip
    (LP#1782947): two networks with the same CIDR, each with a pre-created port 10.63.0.10;
    releasing one network's address must not touch the other's port. The networks are created
    one after the other (upstream's recipe), or as two concurrent `docker network create`s
    interleave: both RequestPools, then both CreateNetworks (each PoolID must still tag only
    its own network's subnet)."""
    sides = []
    for side in ("a", "b"):
        name = f"kcnmt-ovl{side}-{unique}"
        network = _make(neutron, cleanup, "network", name=name)
        subnet = _make(neutron, cleanup, "subnet", network_id=network["id"], ip_version=4, cidr="10.63.0.0/24",
                       name=name)
        port = _make(neutron, cleanup, "port", network_id=network["id"], name=name,
                     fixed_ips=[{"subnet_id": subnet["id"], "ip_address": "10.63.0.10"}])
        sides.append((network, subnet, port))
    # network a names its subnet, network b gives its uuid; as upstream's recipe, in -o and --ipam-opt
    subnet_opts = [{"neutron.subnet.name": sides[0][1]["name"]}, {"neutron.subnet.uuid": sides[1][1]["id"]}]
    with docker.concurrent_creates() if creates == "concurrent" else contextlib.nullcontext():
        nets = [docker.create_network("10.63.0.0/24", options={"neutron.net.name": network["name"], **opt},
                                      ipam_options=opt) for (network, _, _), opt in zip(sides, subnet_opts)]
    eps = [docker.start(net, address="10.63.0.10") for net in nets]
    for net, (network, subnet, port) in zip(nets, sides):
        assert _get(neutron, "subnet", subnet["id"])["tags"] == net["pools"]
    for ep, (network, subnet, port) in zip(eps, sides):
        assert ep["address"] == "10.63.0.10/24"
        assert _port_id(docker, ep) == port["id"]
        assert ep["create"]["Interface"] == {"MacAddress": port["mac_address"]}
        assert ep["join"]["InterfaceName"]["SrcName"] == "t_c" + port["id"][:11]
        adopted = _get(neutron, "port", port["id"])
        assert "kuryr.port.existing" in adopted["tags"] and adopted["binding:host_id"] == host_id

    docker.stop(eps[0])

    def reset() -> None:  # the release lands in the background
        released = _get(neutron, "port", sides[0][2]["id"])
        assert released["binding:host_id"] == "" and released["device_owner"] == "" and not _kuryr_tags(released)
    host.eventually(reset)
    untouched = _get(neutron, "port", sides[1][2]["id"])
    assert untouched["binding:host_id"] == host_id and untouched["device_owner"] == "compute:kuryr"
    assert "kuryr.port.existing" in untouched["tags"] and host.link_exists("tap" + untouched["id"][:11])
    assert _port_id(docker, eps[1]) == untouched["id"]

    docker.stop(eps[1])
    for net in nets:
        docker.delete_network(net)
    for network, subnet, port in sides:
        assert not _kuryr_tags(_get(neutron, "network", network["id"]))
        assert _get(neutron, "subnet", subnet["id"])["tags"] == []
        kept = _get(neutron, "port", port["id"])  # DeleteNetwork waited for pending releases
        assert kept["binding:host_id"] == "" and not _kuryr_tags(kept)


# --- 4./5. dual stack: default pools, --ip6 ---------------------------------------------------

def test_dual_stack_with_both_pools_from_the_default_pools(docker, neutron):
    net = docker.create_network(enable_ipv6=True)  # --ipv6, no --subnet: RequestPool Pool="" V6=false, then V6=true
    v4, v6 = net["ipv4"][0]["Pool"], net["ipv6"][0]["Pool"]
    assert ipaddress.ip_network(v4).subnet_of(ipaddress.ip_network("10.10.0.0/16"))
    assert ipaddress.ip_network(v6).subnet_of(ipaddress.ip_network("fd00:10:10::/48"))
    network = _docker_net(neutron, net)
    subnets = {s["ip_version"]: s for s in _list(neutron, "subnet", network_id=network["id"])}
    assert sorted(subnets) == [4, 6] and len(_list(neutron, "subnet", network_id=network["id"])) == 2
    assert (subnets[4]["cidr"], subnets[6]["cidr"]) == (v4, v6)

    ep = docker.start(net)
    assert ep["join"]["Gateway"] == subnets[4]["gateway_ip"]
    assert ep["join"]["GatewayIPv6"] == subnets[6]["gateway_ip"]
    port = _get(neutron, "port", _port_id(docker, ep))
    assert sorted(f["ip_address"] for f in port["fixed_ips"]) == sorted([_ip(ep["address"]), _ip(ep["address6"])])
    assert [p["id"] for p in _list(neutron, "port", network_id=network["id"], device_owner="compute:kuryr")] == \
        [port["id"]]
    docker.stop(ep)
    docker.delete_network(net)


@pytest.mark.parametrize("v4_subnet, v6_subnet, address, address6", [
    ("10.64.0.0/24", "fd00:60:64::/64", "", "fd00:60:64::202"),
    ("10.64.1.0/24", "fd00:60:65::/64", "10.64.1.201", "fd00:60:65::201"),
])
def test_ip6_on_dual_stack_gives_exactly_that_address(docker, neutron, v4_subnet, v6_subnet, address, address6):
    net = docker.create_network(v4_subnet, v6_subnet=v6_subnet)
    ep = docker.start(net, address=address, address6=address6)
    assert ep["address6"] == f"{address6}/64"
    if address:
        assert ep["address"] == f"{address}/24"
    port = _get(neutron, "port", _port_id(docker, ep))
    assert sorted(f["ip_address"] for f in port["fixed_ips"]) == sorted([_ip(ep["address"]), address6])
    network_id = _docker_net(neutron, net)["id"]
    assert [p["id"] for p in _list(neutron, "port", network_id=network_id, device_owner="compute:kuryr")] == \
        [port["id"]]
    docker.stop(ep)
    docker.delete_network(net)


# --- 6. com.docker.network.driver.mtu -----------------------------------------------------------

@pytest.mark.parametrize("asked, smaller, cidr", [("1300", True, "10.65.1.0/24"), ("9000", False, "10.65.2.0/24")])
def test_driver_mtu_option_lowers_the_veth_mtu_only(docker, neutron, asked, smaller, cidr):
    net = docker.create_network(cidr, options={"com.docker.network.driver.mtu": asked})
    neutron_mtu = _docker_net(neutron, net)["mtu"]
    assert (int(asked) < neutron_mtu) == smaller, f"Neutron's MTU is {neutron_mtu}: pick other values"
    ep = docker.start(net)
    port_id = _port_id(docker, ep)
    expected = int(asked) if smaller else neutron_mtu
    veths = ("tap" + port_id[:11], "t_c" + port_id[:11])
    assert [_link_mtu(name) for name in veths] == [expected, expected], veths
    docker.stop(ep)
    docker.delete_network(net)


# --- 7. subnet host routes ----------------------------------------------------------------------

def test_host_route_added_after_create_network_reaches_join(docker, neutron):
    net = docker.create_network("10.65.0.0/24")
    subnet, = _list(neutron, "subnet", network_id=_docker_net(neutron, net)["id"])
    route = {"destination": "10.69.128.0/24", "nexthop": "10.65.0.254"}
    resp = neutron.put(f"/subnets/{subnet['id']}", json={"subnet": {"host_routes": [route]}})
    assert resp.status_code == 200, resp.text
    ep = docker.start(net)  # a new endpoint, after the route was added
    assert ep["join"].get("StaticRoutes") == [{"Destination": "10.69.128.0/24", "RouteType": 0,
                                                "NextHop": "10.65.0.254"}]
    docker.stop(ep)
    docker.delete_network(net)


# --- 8. --expose ------------------------------------------------------------------------------------

def test_expose_makes_a_security_group_on_the_port_and_revoke_removes_it(docker, neutron):
    net = docker.create_network("10.66.0.0/24")
    ep = docker.start(net)
    port_id = _port_id(docker, ep)
    default_groups = _get(neutron, "port", port_id)["security_groups"]
    assert default_groups, "the port should have its project's default security group"
    exposed = [{"Proto": 6, "Port": 80}, {"Proto": 6, "Port": 81}, {"Proto": 17, "Port": 53}]
    docker.ok("NetworkDriver.ProgramExternalConnectivity",
              dict(_ids(ep), Options={EXPOSED_PORTS: exposed, "com.docker.network.portmap": []}))

    group, = neutron.get("/security-groups", params={"name": f"{port_id}-exposed_ports"}).json()["security_groups"]
    ingress = sorted((r["protocol"], r["port_range_min"], r["port_range_max"])
                     for r in group["security_group_rules"] if r["direction"] == "ingress")
    assert ingress == [("tcp", 80, 81), ("udp", 53, 53)]
    assert sorted(_get(neutron, "port", port_id)["security_groups"]) == sorted(default_groups + [group["id"]])

    docker.ok("NetworkDriver.RevokeExternalConnectivity", _ids(ep))
    assert _get(neutron, "port", port_id)["security_groups"] == default_groups
    assert neutron.get(f"/security-groups/{group['id']}").status_code == 404
    docker.stop(ep)
    docker.delete_network(net)


def test_no_exposed_ports_means_no_security_group_and_no_neutron_call(docker, neutron):
    net = docker.create_network("10.66.1.0/24")
    ep = docker.start(net)
    port_id = _port_id(docker, ep)
    offset = _log_offset()
    docker.ok("NetworkDriver.ProgramExternalConnectivity",
              dict(_ids(ep), Options={EXPOSED_PORTS: [], "com.docker.network.portmap": []}))
    line = _one_log_line(offset, "NetworkDriver.ProgramExternalConnectivity", f"NetworkID={net['id'][:12]}",
                         f"EndpointID={ep['id'][:12]}")
    assert line.endswith("[neutron: none]"), line
    assert neutron.get("/security-groups", params={"name": f"{port_id}-exposed_ports"}).json()["security_groups"] == []
    docker.stop(ep)
    docker.delete_network(net)


# --- 9. --ip-range (SubPool) --------------------------------------------------------------------------

def test_ip_range_is_the_subnet_and_addresses_stay_inside_it(docker, neutron):
    """kuryr-libnetwork makes the SubPool the Neutron subnet (its fullstack test expects
    kuryr-subnet-<ip-range>) and answers it as the pool, which Docker then uses."""
    net = docker.create_network("10.67.0.0/24", ip_range="10.67.0.128/25")
    ip_range = ipaddress.ip_network("10.67.0.128/25")
    assert net["ipv4"][0]["Pool"] == str(ip_range)
    subnet, = _list(neutron, "subnet", network_id=_docker_net(neutron, net)["id"])
    assert subnet["cidr"] == str(ip_range) and subnet["name"] == f"kuryr-subnet-{ip_range}"
    assert ipaddress.ip_address(subnet["gateway_ip"]) in ip_range

    # the fixed address first: a dynamic one may be any free address of the range
    eps = [docker.start(net, address="10.67.0.200")] + [docker.start(net) for _ in range(3)]
    addresses = [ipaddress.ip_interface(ep["address"]) for ep in eps]
    assert all(a.ip in ip_range and a.network == ip_range for a in addresses), addresses
    assert len(set(addresses)) == 4 and str(addresses[0].ip) == "10.67.0.200"
    assert all(ep["join"]["Gateway"] == subnet["gateway_ip"] for ep in eps)
    for ep in eps:
        docker.stop(ep)
    docker.delete_network(net)


# --- 10. concurrency ------------------------------------------------------------------------------------

PARALLEL = 15


class DockerDialer(PluginClient):
    """A connection as dockerd's plugin client makes it: a dial the plugin refuses (EAGAIN, its
    listen backlog is full) is retried after 1, 2, 4, 8 s (moby pkg/plugins/client.go). Nothing
    was sent when the dial failed, so the retry is safe."""

    def raw(self, method: str, body: bytes = b""):
        for pause in (1, 2, 4, 8, None):
            try:
                return super().raw(method, body)
            except BlockingIOError:
                if pause is None:
                    raise
                self._conn.close()  # http.client dials again on the next request
                time.sleep(pause)


def test_parallel_starts_and_stops_on_one_network(docker, neutron):
    net = docker.create_network("10.68.0.0/24")

    def in_parallel(action, args):
        """`action(worker, arg)` per arg, each in its own thread with its own connection, all at once."""
        barrier = threading.Barrier(len(args))

        def run(arg):
            client = DockerDialer(host.PLUGIN_SOCKET, timeout=120)
            try:
                barrier.wait(timeout=30)
                return action(docker.worker(client), arg)
            finally:
                client.close()
        with ThreadPoolExecutor(len(args)) as pool:
            return list(pool.map(run, args))

    def start(worker, _):
        ep = worker.start(net)
        return ep, _port_id(worker, ep)

    started = in_parallel(start, range(PARALLEL))
    eps = [ep for ep, _ in started]
    port_ids = {port_id for _, port_id in started}
    assert len({ep["address"] for ep in eps}) == PARALLEL and len(port_ids) == PARALLEL
    network_id = _docker_net(neutron, net)["id"]
    ports = {p["id"]: p for p in _list(neutron, "port", network_id=network_id, device_owner="compute:kuryr")}
    assert set(ports) == port_ids
    for ep, port_id in started:
        assert [f["ip_address"] for f in ports[port_id]["fixed_ips"]] == [_ip(ep["address"])]
    taps = {"tap" + p[:11] for p in port_ids}
    assert taps <= host.ovs_ports()
    assert taps | {"t_c" + p[:11] for p in port_ids} <= host.host_links()

    in_parallel(lambda worker, ep: worker.stop(ep), eps)
    # the ports are released in the background after ReleaseAddress answers
    host.eventually(lambda: _assert_empty(_list(neutron, "port", network_id=network_id,
                                                 device_owner="compute:kuryr")), timeout=30)
    assert not taps & (host.host_links() | host.ovs_ports())
    docker.delete_network(net)


def test_a_burst_of_connections_is_accepted():
    """15 `docker run`s at once: dockerd's goroutines dial in parallel (Go dials are non-blocking,
    so a full backlog is an immediate EAGAIN). One thread dialling in a tight loop is the
    closest Python gets to that speed."""
    clients, refused = [], 0
    try:
        for _ in range(PARALLEL):
            client = PluginClient(host.PLUGIN_SOCKET, timeout=30)
            clients.append(client)
            try:
                client._conn.connect()
            except BlockingIOError:
                refused += 1
                client._conn.close()
        assert refused == 0, f"{refused} of {PARALLEL} simultaneous dials were refused (EAGAIN)"
        assert all(c.call("Plugin.Activate")[0] == 200 for c in clients)
    finally:
        for client in clients:
            client.close()


# --- 11. the log line per Docker call ---------------------------------------------------------------------

def test_one_info_log_line_per_docker_call(docker):
    net = docker.create_network("10.69.0.0/24")
    offset = _log_offset()
    ep = docker.start(net)
    for method in ("NetworkDriver.CreateEndpoint", "NetworkDriver.Join"):
        line = _one_log_line(offset, method, f"NetworkID={net['id'][:12]}", f"EndpointID={ep['id'][:12]}")
        assert " INFO " in line, line
        assert re.search(r" -> ok \(\d+ ms\) \[neutron: [^\]]+\]$", line), line
    docker.stop(ep)
    docker.delete_network(net)
