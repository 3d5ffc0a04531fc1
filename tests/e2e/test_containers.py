"""Real docker against the real plugin, Neutron and OVS, on every engine."""
from __future__ import annotations

import ipaddress

import pytest

from tests import host
from tests.e2e.conftest import tcp_exchange


def test_network_create_shows_in_neutron_and_docker(docker, neutron):
    net = docker.network("n", "--subnet", "10.91.0.0/24", "--gateway", "10.91.0.1")
    docker_id = docker.inspect(net, "{{.Id}}")
    nets = neutron.get("/networks", params={"tags": f"kuryr.net.uuid.lh:{docker_id[:32]}"}).json()["networks"]
    assert len(nets) == 1 and nets[0]["name"] == f"kuryr-net-{docker_id[:8]}"
    subnets = neutron.get("/subnets", params={"network_id": nets[0]["id"]}).json()["subnets"]
    assert [(s["name"], s["cidr"], s["gateway_ip"]) for s in subnets] == [
        ("kuryr-subnet-10.91.0.0/24", "10.91.0.0/24", "10.91.0.1")]
    assert "kuryr" in host.docker(docker.engine, "info", "--format", "{{json .Plugins.Network}}").stdout


def test_two_containers_talk_icmp_and_tcp_with_neutron_mtu_and_gateway(docker, neutron):
    net = docker.network("talk", "--subnet", "10.92.0.0/24")
    a, b = docker.run("a", net), docker.run("b", net)
    ip_b = docker.ip(b, net)
    docker.exec(a, "ping", "-c", "3", "-W", "2", ip_b)
    assert tcp_exchange((docker, b), (docker, a), ip_b) == "hello over tcp"
    docker_id = docker.inspect(net, "{{.Id}}")
    neutron_net = neutron.get("/networks", params={"tags": f"kuryr.net.uuid.lh:{docker_id[:32]}"}).json()["networks"][0]
    mtu = docker.exec(a, "cat", "/sys/class/net/eth0/mtu").stdout.strip()
    assert int(mtu) == neutron_net["mtu"]
    route = docker.exec(a, "ip", "route").stdout
    assert "default via 10.92.0.1 dev eth0" in route
    ports = neutron.get("/ports", params={"network_id": neutron_net["id"]}).json()["ports"]
    macs = {p["mac_address"] for p in ports if p["device_owner"] == "compute:kuryr"}
    assert docker.exec(a, "cat", "/sys/class/net/eth0/address").stdout.strip() in macs
    host.wait_for(lambda: all(p["status"] == "ACTIVE" for p in neutron.get(
        "/ports", params={"network_id": neutron_net["id"], "device_owner": "compute:kuryr"}).json()["ports"]),
        timeout=30, what="ports ACTIVE")


def test_two_networks_are_isolated(docker):
    n1, n2 = docker.network("iso1", "--subnet", "10.93.1.0/24"), docker.network("iso2", "--subnet", "10.93.2.0/24")
    a, b = docker.run("a", n1), docker.run("b", n2)
    c = docker.run("c", n1)
    docker.exec(a, "ping", "-c", "1", "-W", "2", docker.ip(c, n1))  # the path works within a network
    out = docker.exec(a, "ping", "-c", "2", "-W", "1", docker.ip(b, n2), check=False)
    assert out.returncode != 0


def test_network_without_subnet_gets_its_own_prefix_from_the_default_pool(docker, neutron):
    n1, n2 = docker.network("auto1"), docker.network("auto2")
    s1 = docker.inspect(n1, "{{(index .IPAM.Config 0).Subnet}}")
    s2 = docker.inspect(n2, "{{(index .IPAM.Config 0).Subnet}}")
    assert s1 != s2 and s1.startswith("10.10.") and s2.startswith("10.10.")
    a = docker.run("a", n1)
    b = docker.run("b", n1)
    docker.exec(a, "ping", "-c", "2", "-W", "2", docker.ip(b, n1))
    assert docker.exec(a, "ip", "route").stdout.startswith("default via 10.10.")


def test_lifecycle_connect_disconnect_stop_start_restart(docker):
    n1, n2 = docker.network("life1", "--subnet", "10.94.1.0/24"), docker.network("life2", "--subnet", "10.94.2.0/24")
    a = docker.run("a", n1)
    b = docker.run("b", n2)
    docker("network", "connect", n2, a)
    docker.exec(a, "ping", "-c", "1", "-W", "2", docker.ip(b, n2))
    docker("network", "disconnect", n2, a)
    assert docker.exec(a, "ping", "-c", "1", "-W", "1", docker.ip(b, n2), check=False).returncode != 0
    docker("stop", "-t", "1", a)
    docker("start", a)
    docker("restart", "-t", "1", b)
    docker("network", "connect", n1, b)
    docker.exec(b, "ping", "-c", "1", "-W", "2", docker.ip(a, n1))


def test_fixed_ip_and_internal_network(docker):
    net = docker.network("int", "--subnet", "10.95.0.0/24", "--internal")
    a = docker.run("a", net, "--ip", "10.95.0.50")
    b = docker.run("b", net)
    assert docker.ip(a, net) == "10.95.0.50"
    assert "default" not in docker.exec(a, "ip", "route").stdout
    docker.exec(b, "ping", "-c", "1", "-W", "2", "10.95.0.50")
    out = docker("run", "--rm", "--network", net, "--ip", "10.95.0.50", host.TEST_IMAGE, "true", check=False)
    assert out.returncode != 0 and "10.95.0.50" in out.stderr


def test_aux_address_never_handed_out(docker):
    net = docker.network("aux", "--subnet", "10.96.0.0/29", "--aux-address", "r=10.96.0.2",
                         "--aux-address", "s=10.96.0.3")
    ips = {docker.ip(docker.run(f"c{i}", net), net) for i in range(3)}
    assert ips == {"10.96.0.4", "10.96.0.5", "10.96.0.6"}


def test_dual_stack(docker):
    net = docker.network("v6", "--ipv6", "--subnet", "10.97.0.0/24", "--subnet", "fd00:97::/64")
    a, b = docker.run("a", net), docker.run("b", net)
    v6_b = docker.ip(b, net, v6=True)
    assert v6_b.startswith("fd00:97::")
    docker.exec(a, "ping", "-c", "2", "-W", "2", v6_b)
    assert "default via fd00:97::1" in docker.exec(a, "ip", "-6", "route").stdout


@pytest.mark.parametrize("engine", ["docker28"])  # --ipv4=false is new in dockerd 28
def test_ipv6_only_network(docker, neutron):
    net = docker.network("v6only", "--ipv4=false", "--ipv6", "--subnet", "fd00:99::/64")
    assert docker.inspect(net, "{{.EnableIPv4}} {{.EnableIPv6}}") == "false true"
    docker_id = docker.inspect(net, "{{.Id}}")
    neutron_net = neutron.get("/networks", params={"tags": f"kuryr.net.uuid.lh:{docker_id[:32]}"}).json()["networks"][0]
    subnets = neutron.get("/subnets", params={"network_id": neutron_net["id"]}).json()["subnets"]
    assert [(s["ip_version"], s["cidr"]) for s in subnets] == [(6, "fd00:99::/64")]
    a, b = docker.run("a", net), docker.run("b", net)
    assert docker.ip(a, net) == ""
    v6_a, v6_b = docker.ip(a, net, v6=True), docker.ip(b, net, v6=True)
    assert v6_a != v6_b and all(ipaddress.ip_address(v) in ipaddress.ip_network("fd00:99::/64") for v in (v6_a, v6_b))
    assert set(docker.exec(a, "ls", "/sys/class/net").stdout.split()) == {"lo", "eth0"}  # no docker_gwbridge
    inet4 = [line.split()[1] for line in docker.exec(a, "ip", "-4", "addr").stdout.splitlines()
             if line.strip().startswith("inet ")]
    assert inet4 == ["127.0.0.1/8"]
    assert docker.exec(a, "ip", "-4", "route").stdout.strip() == ""
    assert v6_a in docker.exec(a, "ip", "-6", "addr", "show", "dev", "eth0").stdout
    assert "default via fd00:99::1 dev eth0" in docker.exec(a, "ip", "-6", "route").stdout
    docker.exec(a, "ping", "-6", "-c", "2", "-W", "2", v6_b)


def test_same_cidr_in_two_networks(docker):
    n1 = docker.network("same1", "--subnet", "10.98.0.0/24")
    n2 = docker.network("same2", "--subnet", "10.98.0.0/24")
    a = docker.run("a", n1, "--ip", "10.98.0.10")
    b = docker.run("b", n2, "--ip", "10.98.0.10")
    a2 = docker.run("a2", n1)
    docker.exec(a2, "ping", "-c", "1", "-W", "2", "10.98.0.10")
    assert docker.ip(b, n2) == docker.ip(a, n1) == "10.98.0.10"
