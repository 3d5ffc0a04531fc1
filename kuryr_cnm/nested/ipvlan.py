"""`ipvlan`: the container's addresses ride on the VM's port, with the VM port's own MAC.

The container's interface is an L2-mode ipvlan child of link_iface: it has the VM NIC's MAC
(an ipvlan device cannot have another), so each address of the container port goes into
the VM port's allowed_address_pairs as an IP alone, which Neutron gives the VM port's MAC
(the read-modify-write under Neutron's revision check is in nested.pairs). ML2/OVN accepts
such a pair on a bound port, where it refuses macvlan's (neutron/common/ovn/utils.py:
validate_port_allowed_address_pairs_vrrp_mac, Neutron 28.0.1 and later), and makes the
container's port an OVN virtual port whose parent is the VM port; ovn-controller binds it
when the VM sends an ARP with the address as sender, so the container announces its IPv4
addresses once Docker has configured them (binding.announce). ML2/OVS with port security
takes the same pairs.

Docker sets the MAC it was told on the container's interface, and the kernel refuses any
MAC change on an ipvlan device: CreateEndpoint tells Docker no MAC, and `--mac-address`
is refused.
"""
from __future__ import annotations

from kuryr_cnm.binding import announce
from kuryr_cnm.binding import nested as links
from kuryr_cnm.nested.pairs import Pairs, PairsDriver
from kuryr_cnm.neutron import Port


class IpvlanDriver(PairsDriver):
    name = "ipvlan"
    kind = links.IPVLAN
    own_mac = False

    def pairs_for(self, port: Port) -> Pairs:
        return [{"ip_address": f.ip_address} for f in port.fixed_ips]

    def joined(self, port: Port, sandbox_key: str) -> None:
        if sandbox_key:
            announce.announce_in_background(sandbox_key, [f.ip_address for f in port.fixed_ips], f"port {port.id}")
