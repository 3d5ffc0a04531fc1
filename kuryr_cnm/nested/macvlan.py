"""`macvlan` (upstream's `nested`): the container's addresses ride on the VM's port.

Each address of the container port, with the port's MAC, goes into the VM port's
allowed_address_pairs (the read-modify-write under Neutron's revision check is in
nested.pairs); the container's interface is a macvlan child of link_iface with the
port's MAC. For ML2/OVS, and Neutron older than 28.0.1: ML2/OVN from 28.0.1 on refuses a
bound port's pair whose MAC is neither its own nor a VRRP MAC (28.0.0 accepts it, and
ovn-controller drops its traffic); use ipvlan or vlan there.
"""
from __future__ import annotations

from kuryr_cnm.binding import nested as links
from kuryr_cnm.nested.pairs import Pairs, PairsDriver
from kuryr_cnm.neutron import Port


class MacvlanDriver(PairsDriver):
    name = "macvlan"
    kind = links.MACVLAN

    def pairs_for(self, port: Port) -> Pairs:
        return [{"ip_address": f.ip_address, "mac_address": port.mac_address.lower()} for f in port.fixed_ips]

    def _refusal(self, message: str) -> str:
        if "InvalidVirtualMACAddress" in message or "Virtual MAC" in message:
            return (f"{message} -- ML2/OVN (Neutron 28.0.1 and later) lets a bound port's allowed address pairs "
                    "carry only its own MAC or a VRRP MAC, so macvlan nested mode cannot work with it; use the vlan "
                    "port driver (trunk subports) or the ipvlan one (pairs with the VM port's own MAC)")
        return super()._refusal(message)
