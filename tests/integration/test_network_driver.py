"""Every NetworkDriver/IpamDriver handler over HTTP, against the real Neutron and host,
with kuryr-libnetwork 18.0.0's names and tags checked in Neutron."""
from __future__ import annotations

import pytest

from tests import host
from tests.integration.conftest import docker_id

pytestmark = pytest.mark.usefixtures("no_leaks")


def _neutron_net(neutron, docker_net_id: str) -> dict:
    nets = neutron.get("/networks", params={"tags": f"kuryr.net.uuid.lh:{docker_net_id[:32]},"
                                                    f"kuryr.net.uuid.uh:{docker_net_id[32:]}"}).json()["networks"]
    assert len(nets) == 1, nets
    return nets[0]


def _assert_status(neutron, path: str, status: int) -> None:
    assert neutron.get(path).status_code == status


def _port_by_ip(neutron, network_id: str, ip: str) -> dict:
    ports = neutron.get("/ports", params={"network_id": network_id, "fixed_ips": f"ip_address={ip}"}).json()["ports"]
    assert len(ports) == 1, ports
    return ports[0]


def test_full_lifecycle_uses_upstream_names_and_tags(docker_like, neutron):
    net = docker_like.create_network("10.81.0.0/24")
    neutron_net = _neutron_net(neutron, net["id"])
    assert neutron_net["name"] == f"kuryr-net-{net['id'][:8]}"
    pool = neutron.get(f"/subnetpools/{net['pools'][0]}").json()["subnetpool"]
    assert pool["name"] == "kuryrPool-10.81.0.0/24" and pool["prefixes"] == ["10.81.0.0/24"]
    subnet = neutron.get("/subnets", params={"network_id": neutron_net["id"]}).json()["subnets"][0]
    assert subnet["name"] == "kuryr-subnet-10.81.0.0/24" and net["pools"][0] in subnet["tags"]
    assert subnet["subnetpool_id"] == pool["id"] and subnet["gateway_ip"] == "10.81.0.1"

    ep = docker_like.start(net)
    ip = ep["address"].split("/")[0]
    port = _port_by_ip(neutron, neutron_net["id"], ip)
    assert port["name"] == "kuryr-unbound-port" and port["device_owner"] == "compute:kuryr"
    assert port["binding:host_id"] == host.hostname_id() and port["binding:vif_type"] == "ovs"
    assert ep["create"]["Interface"] == {"MacAddress": port["mac_address"]}
    join = ep["join"]
    assert join["InterfaceName"] == {"SrcName": "t_c" + port["id"][:11], "DstPrefix": "eth"}
    assert join["Gateway"] == "10.81.0.1" and join["DisableGatewayService"] is True
    tap = "tap" + port["id"][:11]
    assert host.link_exists(tap) and host.link_exists("t_c" + port["id"][:11])
    ext = host.ovs_iface_external_ids(tap)
    assert ext["iface-id"] == port["id"] and ext["vm-uuid"] == ep["id"] and ext["attached-mac"] == port["mac_address"]

    def recorded() -> bool:
        p = neutron.get(f"/ports/{port['id']}").json()["port"]
        return p["device_id"] == ep["id"] and {"compute:kuryr", f"kuryr.net.uuid.lh:{ep['id'][:32]}",
                                              f"kuryr.net.uuid.uh:{ep['id'][32:]}"} <= set(p["tags"])
    host.wait_for(recorded, timeout=15, what="device_id and endpoint tags written in the background")
    host.wait_for(lambda: neutron.get(f"/ports/{port['id']}").json()["port"]["status"] == "ACTIVE", timeout=30,
                  what="port ACTIVE")
    info = docker_like.ok("NetworkDriver.EndpointOperInfo", {"NetworkID": net["id"], "EndpointID": ep["id"]})
    assert info["Value"]["port_id"] == port["id"]

    docker_like.stop(ep)
    assert not host.link_exists(tap) and tap not in host.ovs_ports()
    host.eventually(lambda: _assert_status(neutron, f"/ports/{port['id']}", 404))  # released in the background
    docker_like.delete_network(net)
    assert neutron.get(f"/networks/{neutron_net['id']}").status_code == 404
    assert neutron.get(f"/subnetpools/{pool['id']}").status_code == 404


def test_repeated_calls_are_idempotent(docker_like, neutron):
    """Docker repeats calls after a plugin restart: nothing is made twice, nothing fails."""
    net = docker_like.create_network("10.82.0.0/24")
    body = {"NetworkID": net["id"], "Options": {"com.docker.network.generic": {}},
            "IPv4Data": net["ipv4"], "IPv6Data": []}
    docker_like.ok("NetworkDriver.CreateNetwork", body)
    _neutron_net(neutron, net["id"])  # still exactly one
    ep = docker_like.start(net)
    ids = {"NetworkID": net["id"], "EndpointID": ep["id"]}
    again = docker_like.ok("NetworkDriver.CreateEndpoint", dict(ids, Interface={"Address": ep["address"]}))
    assert again == ep["create"]
    docker_like.stop(ep)
    docker_like.stop(ep)  # every teardown call a second time
    docker_like.delete_network(net)
    docker_like.delete_network(net)


def test_network_without_subnet_is_carved_from_default_pool(docker_like, neutron):
    nets = [docker_like.create_network() for _ in range(2)]
    cidrs = [n["ipv4"][0]["Pool"] for n in nets]
    assert cidrs[0] != cidrs[1]
    for n, cidr in zip(nets, cidrs):
        assert cidr.startswith("10.10.") and cidr.endswith("/24")
        neutron_net = _neutron_net(neutron, n["id"])
        assert neutron_net["name"] == f"kuryr-net-{n['id'][:8]}" and "kuryr-cnm.pending" not in neutron_net["tags"]
        subnet = neutron.get("/subnets", params={"network_id": neutron_net["id"]}).json()["subnets"][0]
        assert subnet["cidr"] == cidr and subnet["name"] == f"kuryr-subnet-{cidr}"
    ep = docker_like.start(nets[0])
    assert ep["join"]["Gateway"] == cidrs[0].replace("0/24", "1")
    docker_like.stop(ep)
    for n in nets:
        docker_like.delete_network(n)


def test_gateway_given_by_docker(docker_like, neutron):
    net = docker_like.create_network("10.83.0.0/24", gateway="10.83.0.254")
    ep = docker_like.start(net)
    assert ep["join"]["Gateway"] == "10.83.0.254"
    status, answer = docker_like.plugin.call("IpamDriver.RequestAddress", {
        "PoolID": net["pools"][0], "Address": "10.83.0.9", "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    assert status == 409 and "differs from the gateway 10.83.0.254" in answer["Err"]
    docker_like.stop(ep)
    docker_like.delete_network(net)


def test_internal_network_has_no_gateway(docker_like, neutron):
    net = docker_like.create_network("10.84.0.0/24", internal=True)
    subnet = neutron.get("/subnets", params={"network_id": _neutron_net(neutron, net["id"])["id"]}).json()["subnets"][0]
    assert subnet["gateway_ip"] is None
    ep = docker_like.start(net)
    assert "Gateway" not in ep["join"] and ep["join"]["DisableGatewayService"] is True
    docker_like.stop(ep)
    docker_like.delete_network(net)


def test_fixed_ip_and_address_in_use(docker_like, neutron):
    net = docker_like.create_network("10.85.0.0/24")
    ep = docker_like.start(net, address="10.85.0.77")
    assert ep["address"] == "10.85.0.77/24"
    status, answer = docker_like.plugin.call("IpamDriver.RequestAddress",
                                             {"PoolID": net["pools"][0], "Address": "10.85.0.77", "Options": None})
    assert status == 409 and "in use" in answer["Err"]
    docker_like.stop(ep)
    docker_like.delete_network(net)


def test_existing_network_and_port_are_adopted_and_reset(docker_like, neutron, cleanup, unique):
    existing = neutron.post("/networks", json={"network": {"name": f"kcnmt-existing-{unique}"}}).json()["network"]
    cleanup(lambda: neutron.delete(f"/networks/{existing['id']}"))
    sub = neutron.post("/subnets", json={"subnet": {"network_id": existing["id"], "cidr": "10.86.0.0/24",
                                                    "ip_version": 4, "name": f"kcnmt-existing-{unique}"}}).json()["subnet"]
    pre = neutron.post("/ports", json={"port": {"network_id": existing["id"], "name": f"kcnmt-pre-{unique}",
                                                "fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.86.0.20"}]}}
                       ).json()["port"]
    cleanup(lambda: neutron.delete(f"/ports/{pre['id']}"))
    opts = {"neutron.net.name": existing["name"]}
    net = docker_like.create_network("10.86.0.0/24", options=opts, ipam_options={})
    adopted = neutron.get(f"/networks/{existing['id']}").json()["network"]
    assert f"kuryr.net.existing:{net['id'][:12]}" in adopted["tags"] and adopted["name"] == existing["name"]
    ep = docker_like.start(net, address="10.86.0.20")
    assert ep["create"]["Interface"] == {"MacAddress": pre["mac_address"]}
    port = neutron.get(f"/ports/{pre['id']}").json()["port"]
    assert "kuryr.port.existing" in port["tags"] and port["binding:host_id"] == host.hostname_id()
    docker_like.stop(ep)

    def reset() -> None:  # the release lands in the background
        port = neutron.get(f"/ports/{pre['id']}").json()["port"]
        assert port["binding:host_id"] == "" and port["device_owner"] == "" and "kuryr.port.existing" not in port["tags"]
    host.eventually(reset)
    docker_like.delete_network(net)
    kept = neutron.get(f"/networks/{existing['id']}").json()["network"]
    assert not [t for t in kept["tags"] if t.startswith("kuryr")]
    assert neutron.get(f"/subnets/{sub['id']}").status_code == 200


def test_aux_addresses_are_kept_out_of_allocation(docker_like, neutron):
    net_id = docker_id()
    pool = docker_like.ok("IpamDriver.RequestPool", {"Pool": "10.87.0.0/29", "SubPool": "", "Options": {}, "V6": False})
    aux = docker_like.ok("IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Address": "10.87.0.2", "Options": None})
    assert aux["Address"] == "10.87.0.2/29"
    docker_like.ok("NetworkDriver.CreateNetwork", {
        "NetworkID": net_id, "Options": {}, "IPv6Data": [],
        "IPv4Data": [{"Pool": "10.87.0.0/29", "Gateway": "10.87.0.1/29", "AuxAddresses": {"r": "10.87.0.2/29"}}]})
    net = {"id": net_id, "pools": [pool["PoolID"]]}
    eps = [docker_like.start(net) for _ in range(4)]
    assert sorted(e["address"] for e in eps) == ["10.87.0.3/29", "10.87.0.4/29", "10.87.0.5/29", "10.87.0.6/29"]
    status, answer = docker_like.plugin.call("IpamDriver.RequestAddress",
                                             {"PoolID": pool["PoolID"], "Address": "", "Options": None})
    assert status == 409 and "no free address" in answer["Err"]
    for e in eps:
        docker_like.stop(e)
    docker_like.ok("IpamDriver.ReleaseAddress", {"PoolID": pool["PoolID"], "Address": "10.87.0.2"})
    docker_like.delete_network(net)


def test_dual_stack_endpoint_gets_one_port(docker_like, neutron):
    net = docker_like.create_network("10.88.0.0/24", v6_subnet="fd00:88::/64")
    ep = docker_like.start(net)
    neutron_net = _neutron_net(neutron, net["id"])
    port = _port_by_ip(neutron, neutron_net["id"], ep["address"].split("/")[0])
    assert {f["ip_address"] for f in port["fixed_ips"]} == {ep["address"].split("/")[0], ep["address6"].split("/")[0]}
    assert ep["join"]["GatewayIPv6"] == "fd00:88::1"
    docker_like.stop(ep)
    docker_like.delete_network(net)


def test_unknown_network_is_a_clear_404(docker_like):
    status, answer = docker_like.plugin.call("NetworkDriver.CreateEndpoint", {
        "NetworkID": docker_id(), "EndpointID": docker_id(), "Interface": {"Address": "10.0.0.2/24"}})
    assert status == 404 and "docker network rm" in answer["Err"]


@pytest.mark.parametrize("method", ["NetworkDriver.CreateNetwork", "NetworkDriver.CreateEndpoint",
                                    "NetworkDriver.Join", "NetworkDriver.DeleteEndpoint",
                                    "IpamDriver.RequestPool", "IpamDriver.RequestAddress",
                                    "IpamDriver.ReleaseAddress", "IpamDriver.ReleasePool"])
def test_empty_body_is_400_and_server_keeps_serving(plugin, method):
    status, _, raw = plugin.raw(method, b"")
    assert status == 400 and b"empty" in raw
    status, _, raw = plugin.raw(method, b"[1,2")
    assert status == 400
    assert plugin.call("Plugin.Activate")[0] == 200


def test_rollback_when_the_host_interface_name_is_taken(docker_like, neutron):
    net = docker_like.create_network("10.89.0.0/24")
    addr = docker_like.ok("IpamDriver.RequestAddress", {"PoolID": net["pools"][0], "Address": "", "Options": None})
    port = _port_by_ip(neutron, _neutron_net(neutron, net["id"])["id"], addr["Address"].split("/")[0])
    squatter = "tap" + port["id"][:11]
    host.run(["ip", "link", "add", squatter, "type", "bridge"])  # no dummy module here
    try:
        ovs_before = host.ovs_ports()
        status, answer = docker_like.plugin.call("NetworkDriver.CreateEndpoint", {
            "NetworkID": net["id"], "EndpointID": docker_id(), "Interface": {"Address": addr["Address"]}})
        assert status != 200 and port["id"] in answer["Err"]
        assert host.ovs_ports() == ovs_before and not host.link_exists("t_c" + port["id"][:11])
    finally:
        host.run(["ip", "link", "del", squatter], check=False)
    # Docker then releases the address: the port goes, nothing is left (no_leaks)
    docker_like.ok("IpamDriver.ReleaseAddress", {"PoolID": net["pools"][0], "Address": addr["Address"].split("/")[0]})
    docker_like.delete_network(net)


def test_gw_alloc_check_and_swarm_calls(docker_like):
    assert docker_like.ok("NetworkDriver.GwAllocCheck", {"Options": {"com.docker.network.internal": True}}) == {
        "SkipIPv4": True, "SkipIPv6": True}
    assert docker_like.ok("NetworkDriver.GwAllocCheck", {"Options": {}}) == {"SkipIPv4": False, "SkipIPv6": False}
    nid = docker_id()
    assert docker_like.ok("NetworkDriver.AllocateNetwork", {"NetworkID": nid, "Options": {"a": "b"}}) == {
        "Options": {"a": "b"}}
    assert docker_like.ok("NetworkDriver.FreeNetwork", {"NetworkID": nid}) == {}
    assert docker_like.ok("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": {}}) == {}
    assert docker_like.ok("NetworkDriver.DiscoverDelete", {"DiscoveryType": 1, "DiscoveryData": {}}) == {}


def test_mac_of_a_pre_created_port_without_its_ip_is_a_clear_409(docker_like, neutron, cleanup, unique):
    net = docker_like.create_network("10.80.0.0/24")
    network_id = _neutron_net(neutron, net["id"])["id"]
    pre = neutron.post("/ports", json={"port": {"network_id": network_id, "name": f"kcnmt-pre-{unique}"}}
                       ).json()["port"]
    cleanup(lambda: neutron.delete(f"/ports/{pre['id']}"))
    addr = docker_like.ok("IpamDriver.RequestAddress", {"PoolID": net["pools"][0], "Address": "", "Options": None})
    status, answer = docker_like.plugin.call("NetworkDriver.CreateEndpoint", {
        "NetworkID": net["id"], "EndpointID": docker_id(),
        "Interface": {"Address": addr["Address"], "MacAddress": pre["mac_address"]}})
    assert status == 409 and "--ip" in answer["Err"] and pre["mac_address"] in answer["Err"]
    docker_like.ok("IpamDriver.ReleaseAddress", {"PoolID": net["pools"][0], "Address": addr["Address"].split("/")[0]})
    neutron.delete(f"/ports/{pre['id']}")
    docker_like.delete_network(net)
