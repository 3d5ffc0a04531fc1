"""End to end on the real stack: two Neutron ports plugged by the Plugger carry ICMP and TCP.

TCP proves the TX checksum offload of the container ends is off: on the OVS userspace
datapath ping works without it, TCP does not.
"""
from __future__ import annotations

import subprocess
import uuid

from kuryr_cnm.binding import VifPort
from tests import host


def _network(neutron, cleanup, unique: str):
    net = neutron.create_network(name=f"kcnmt-bind-{unique}")
    cleanup(lambda: neutron.delete_network(net, ignore_missing=True))
    subnet = neutron.create_subnet(name=f"kcnmt-bind-{unique}", network_id=net.id, ip_version=4,
                                   cidr="10.98.0.0/24", enable_dhcp=False)
    cleanup(lambda: neutron.delete_subnet(subnet, ignore_missing=True))
    return net, subnet


def _vif_port(neutron, cleanup, net, host_id: str, name: str) -> VifPort:
    endpoint_id = uuid.uuid4().hex * 2
    port = neutron.create_port(network_id=net.id, name=name, binding_host_id=host_id,
                               device_owner="compute:kuryr", device_id=endpoint_id)
    cleanup(lambda: neutron.delete_port(port, ignore_missing=True))
    return VifPort(port_id=port.id, mac=port.mac_address, network_id=net.id, project_id=port.project_id,
                   endpoint_id=endpoint_id, vif_type=port.binding_vif_type,
                   vif_details=port.binding_vif_details, mtu=net.mtu)


def _into_namespace(container_name: str, ns: str, address: str) -> None:
    """What Docker does after Join: move, rename, address, up."""
    host.run(["ip", "link", "set", container_name, "netns", ns])
    host.run(["ip", "-n", ns, "link", "set", container_name, "name", "eth0"])
    host.run(["ip", "-n", ns, "addr", "add", address, "dev", "eth0"])
    host.run(["ip", "-n", ns, "link", "set", "eth0", "up"])


def test_two_plugged_ports_talk_icmp_and_tcp(plugger, neutron, cleanup, unique, host_id, netns):
    net, subnet = _network(neutron, cleanup, unique)
    ports = [_vif_port(neutron, cleanup, net, host_id, f"kcnmt-bind{i}-{unique}") for i in (1, 2)]
    assert {p.vif_type for p in ports} == {"ovs"} and ports[0].vif_details["datapath_type"] == "netdev"
    prefix = subnet.cidr.split("/")[1]
    ips = [neutron.get_port(p.port_id).fixed_ips[0]["ip_address"] for p in ports]
    spaces = [netns("bind-a"), netns("bind-b")]
    for port, ns, ip in zip(ports, spaces, ips, strict=True):
        iface = plugger.plug(port)
        cleanup(lambda port=port: plugger.unplug(port))
        _into_namespace(iface.container_name, ns, f"{ip}/{prefix}")
    for port in ports:
        host.wait_for(lambda port=port: neutron.get_port(port.port_id).status == "ACTIVE", timeout=30,
                      what=f"port {port.port_id} ACTIVE")

    host.netns_exec(spaces[0], "busybox", "ping", "-c", "3", "-W", "2", ips[1], timeout=30)
    def listening() -> bool:  # 5000 is 0x1388; busybox nc may listen on tcp6
        return ":1388" in host.netns_exec(spaces[1], "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout

    server = subprocess.Popen(["ip", "netns", "exec", spaces[1], "busybox", "nc", "-l", "-p", "5000"],
                              stdout=subprocess.PIPE, text=True)
    try:
        host.wait_for(listening, timeout=10, what="nc listening on port 5000")
        host.run(["ip", "netns", "exec", spaces[0], "busybox", "nc", "-w", "5", ips[1], "5000"],
                 input=f"hello {unique}\n", timeout=20)
        out, _ = server.communicate(timeout=20)
    finally:
        server.kill()
        server.wait()
    assert out.strip() == f"hello {unique}"
