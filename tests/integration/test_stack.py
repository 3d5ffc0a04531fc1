"""The all-in-one stack itself: Neutron binds ports to this host, OVS/OVN carry
traffic between namespaces, and every TCP listener of the stack is on loopback."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Callable

import pytest

from tests import host


def _make_network(neutron, cleanup, unique: str, cidr: str = "10.99.0.0/24"):
    net = neutron.create_network(name=f"kcnmt-net-{unique}")
    cleanup(lambda: neutron.delete_network(net, ignore_missing=True))
    subnet = neutron.create_subnet(name=f"kcnmt-subnet-{unique}", network_id=net.id,
                                   ip_version=4, cidr=cidr, enable_dhcp=False)
    cleanup(lambda: neutron.delete_subnet(subnet, ignore_missing=True))
    return net, subnet


def _bound_port(neutron, cleanup, net, host_id: str, name: str):
    port = neutron.create_port(network_id=net.id, name=name, binding_host_id=host_id,
                               device_owner="compute:kuryr", device_id=name)
    cleanup(lambda: neutron.delete_port(port, ignore_missing=True))
    return port


def test_port_bound_to_this_host_gets_vif_type_ovs(neutron, cleanup, unique, host_id):
    net, _ = _make_network(neutron, cleanup, unique)
    port = _bound_port(neutron, cleanup, net, host_id, f"kcnmt-port-{unique}")
    assert port.binding_vif_type == "ovs"
    assert port.binding_vif_details["bridge_name"] == "br-int"
    assert port.binding_vif_details["datapath_type"] == "netdev"
    assert port.mac_address and port.fixed_ips


def test_port_bound_to_unknown_host_fails_binding(neutron, cleanup, unique):
    net, _ = _make_network(neutron, cleanup, unique)
    port = _bound_port(neutron, cleanup, net, f"nosuchhost-{unique}", f"kcnmt-port-{unique}")
    assert port.binding_vif_type == "binding_failed"


def _plug(neutron, cleanup, port, subnet, ns: str, mtu: int) -> str:
    """What the driver will do, by hand: veth, container end in `ns`, host end on br-int."""
    host_if, peer = f"kt{port.id[:11]}", f"kp{port.id[:11]}"
    host.run(["ip", "link", "add", host_if, "mtu", str(mtu), "type", "veth", "peer", "name", peer, "mtu", str(mtu)])
    cleanup(lambda: host.run(["ip", "link", "del", host_if], check=False))
    cleanup(lambda: host.run(["ovs-vsctl", "--if-exists", "del-port", "br-int", host_if]))
    host.run(["ip", "link", "set", peer, "netns", ns])
    prefix = subnet.cidr.split("/")[1]
    ip = port.fixed_ips[0]["ip_address"]
    for cmd in (["link", "set", peer, "name", "eth0"], ["link", "set", "eth0", "address", port.mac_address],
                ["addr", "add", f"{ip}/{prefix}", "dev", "eth0"], ["link", "set", "eth0", "up"]):
        host.run(["ip", "-n", ns, *cmd])
    # the userspace datapath does not complete partial checksums: TCP needs TX offload off
    host.netns_exec(ns, "ethtool", "-K", "eth0", "tx", "off")
    host.run(["ip", "link", "set", host_if, "up"])
    host.run(["ovs-vsctl", "--may-exist", "add-port", "br-int", host_if, "--", "set", "Interface", host_if,
              f"external_ids:iface-id={port.id}", f"external_ids:attached-mac={port.mac_address}",
              "external_ids:iface-status=active"])
    return ip


def test_two_namespaces_on_br_int_talk_icmp_and_tcp(neutron, cleanup, unique, host_id, netns):
    net, subnet = _make_network(neutron, cleanup, unique)
    ports = [_bound_port(neutron, cleanup, net, host_id, f"kcnmt-port{i}-{unique}") for i in (1, 2)]
    spaces = [netns("a"), netns("b")]
    ips = [_plug(neutron, cleanup, p, subnet, ns, net.mtu) for p, ns in zip(ports, spaces)]
    for port in ports:
        host.wait_for(lambda: neutron.get_port(port.id).status == "ACTIVE", timeout=30,
                      what=f"port {port.id} ACTIVE")

    host.netns_exec(spaces[0], "busybox", "ping", "-c", "3", "-W", "2", ips[1], timeout=30)

    server = subprocess.Popen(["ip", "netns", "exec", spaces[1], "busybox", "nc", "-l", "-p", "5000"],
                              stdout=subprocess.PIPE, text=True)
    try:
        host.wait_for(lambda: ":1388" in host.netns_exec(spaces[1], "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout,
                      timeout=10, what="nc listening on 5000")
        host.run(["ip", "netns", "exec", spaces[0], "busybox", "nc", "-w", "5", ips[1], "5000"],
                 input=f"hello {unique}\n", timeout=20)
        out, _ = server.communicate(timeout=20)
    finally:
        server.kill()
    assert out.strip() == f"hello {unique}"


def _stack_pids() -> set[int]:
    """PIDs of every daemon `make up` started, and all their descendants."""
    pidfiles = [os.path.join(d, f) for d in ("/opt/kuryr-cnm/run", "/opt/kuryr-cnm/run/mysqld",
                                             "/var/run/openvswitch", "/var/run/ovn")
                if os.path.isdir(d) for f in os.listdir(d) if f.endswith(".pid")]
    pidfiles += [sock.removesuffix(".sock") + ".pid" for sock in host.ENGINES.values()]
    roots = {int(open(f).read().strip()) for f in pidfiles if os.path.exists(f)}
    children: dict[int, set[int]] = {}
    for process in host.processes().values():
        children.setdefault(process.ppid, set()).add(process.pid)
    pids, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in pids:
            pids.add(pid)
            todo.extend(children.get(pid, ()))
    return pids


# The simulated hosts' underlay (stack/lib/hosts.sh): Neutron and the OVN SB DB also listen on
# the main host's address on it, for the hosts' namespaces; nothing else is allowed off loopback.
UNDERLAY = ipaddress.ip_network("198.18.0.0/15")


def _listen_address(line: str) -> str:
    local = line.split()[3]
    return local.rsplit(":", 1)[0].strip("[]").split("%")[0]


def _allowed(addr: str) -> bool:
    return addr != "*" and (ipaddress.ip_address(addr).is_loopback or ipaddress.ip_address(addr) in UNDERLAY)


@pytest.mark.parametrize("proto", ["t", "u"])
def test_every_stack_listener_is_on_loopback(proto):
    pids = _stack_pids()
    assert len(pids) >= 10, f"expected the whole stack running, found pids {pids}"
    out = host.run(["ss", f"-l{proto}npH"]).stdout
    seen = 0
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if not owners & pids:
            continue
        seen += 1
        assert _allowed(_listen_address(line)), f"stack listens off loopback and the underlay: {line}"
    if proto == "t":
        assert seen >= 4, "expected Neutron, MariaDB and the OVN NB/SB listeners"


@pytest.mark.parametrize("name", host.simulated_hosts())
def test_a_simulated_host_listens_on_nothing_but_loopback_and_the_underlay(name):
    out = host.run(["ip", "netns", "exec", name, "ss", "-ltunpH"]).stdout
    for line in out.splitlines():
        assert _allowed(_listen_address(line)), f"{name} listens off loopback and the underlay: {line}"


def test_default_subnetpools_exist(neutron):
    pools = {p.name: p for p in neutron.subnet_pools()}
    assert pools["kuryr"].prefixes == ["10.10.0.0/16"]
    assert pools["kuryr"].default_prefix_length == 24
    assert pools["kuryr6"].ip_version == 6
