"""`macvlan` (upstream's `nested`): the container's addresses ride on the VM's port.

Each address of the container port, with the port's MAC, goes into the VM port's
allowed_address_pairs (the read-modify-write under Neutron's revision check is in
nested.pairs); the container's interface is a macvlan child of link_iface with the
port's MAC. For ML2/OVS, and Neutron older than 28.0.1: ML2/OVN from 28.0.1 on refuses a
bound port's pair whose MAC is neither its own nor a VRRP MAC (28.0.0 accepts it, and
ovn-controller drops its traffic); use ipvlan or vlan there.

So that `serve` says so at start, instead of every container failing, `check` offers Neutron
one such pair: the VM's own address with PROBE_MAC, under the revision check. Refused: the
plugin does not start. Accepted: the pair is taken out again at once (a probe's leftover,
recognised by its MAC, goes at the next start). Three requests per start (a read, the probe, its removal), and
only for macvlan.
"""
from __future__ import annotations

import logging

from kuryr_cnm import errors
from kuryr_cnm.binding import nested as links
from kuryr_cnm.nested.base import NestedError
from kuryr_cnm.nested.pairs import Pairs, PairsDriver
from kuryr_cnm.neutron import Port

LOG = logging.getLogger(__name__)

PROBE_MAC = "02:6b:63:6e:6d:00"  # locally administered, "kcnm": written by the start-up probe alone


class MacvlanDriver(PairsDriver):
    name = "macvlan"
    kind = links.MACVLAN

    def pairs_for(self, port: Port) -> Pairs:
        return [{"ip_address": f.ip_address, "mac_address": port.mac_address.lower()} for f in port.fixed_ips]

    def check(self) -> None:
        super().check()
        self._probe_pairs()

    def _probe_pairs(self) -> None:
        """Whether Neutron takes a pair with a MAC of the container's own on the VM's port: the
        pair written, then taken out again (through the same read-modify-write as containers')."""
        def with_probe(current: Pairs, parent: Port) -> Pairs:
            if not parent.host_id or not parent.fixed_ips:
                return current  # unbound: Neutron checks the pairs of bound ports only, nothing to learn yet
            return without_probe(current, parent) + [{"ip_address": parent.fixed_ips[0].ip_address,
                                                      "mac_address": PROBE_MAC}]

        def without_probe(current: Pairs, parent: Port) -> Pairs:
            return [p for p in current if p["mac_address"] != PROBE_MAC]  # a killed probe's leftover too
        try:
            parent = self.change_pairs(with_probe, "start-up probe: add a macvlan pair to")
        except errors.BadRequest as exc:
            raise NestedError(f"the VM's port {self._vm.port_id()} refuses macvlan's allowed address pairs: "
                              f"{exc.message}") from None
        except errors.Conflict as exc:
            LOG.warning("could not try a macvlan pair on the VM's port (%s); a refusal will show as each "
                        "container's error", exc.message)
            return
        try:
            self.change_pairs(without_probe, "start-up probe: remove its pair from", parent)
        except errors.FAILURES as exc:
            LOG.warning("could not take the probe pair (MAC %s) off the VM's port: %s; the next start removes it",
                        PROBE_MAC, exc.message)

    def _refusal(self, message: str) -> str:
        if "InvalidVirtualMACAddress" in message or "Virtual MAC" in message:
            return (f"{message} -- ML2/OVN (Neutron 28.0.1 and later) lets a bound port's allowed address pairs "
                    "carry only its own MAC or a VRRP MAC, so macvlan nested mode cannot work with it; use the vlan "
                    "port driver (trunk subports) or the ipvlan one (pairs with the VM port's own MAC)")
        return super()._refusal(message)
