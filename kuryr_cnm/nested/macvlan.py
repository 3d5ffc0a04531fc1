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
recognised by its MAC, goes at the next start). Two writes of the VM's port per start, and
only for macvlan.
"""
from __future__ import annotations

import logging

from kuryr_cnm import errors
from kuryr_cnm.binding import nested as links
from kuryr_cnm.nested.base import NestedError
from kuryr_cnm.nested.pairs import ATTEMPTS, Pairs, PairsDriver, pairs_of
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
        """Whether Neutron takes a pair with a MAC of the container's own on the VM's port."""
        for _ in range(ATTEMPTS):
            parent = self._vm.port()
            if not parent.host_id or not parent.fixed_ips:
                return  # unbound: Neutron checks the pairs of bound ports only, nothing to learn yet
            kept = [p for p in pairs_of(parent) if p["mac_address"] != PROBE_MAC]
            probe = {"ip_address": parent.fixed_ips[0].ip_address, "mac_address": PROBE_MAC}
            try:
                self._client.update_port_if_revision(parent.id, int(parent.raw["revision_number"]),
                                                     allowed_address_pairs=kept + [probe])
            except errors.NeutronPreconditionFailed:
                continue  # a container's write came first: read again
            except errors.NeutronBadRequest as exc:
                raise NestedError(f"the VM's port {parent.id} refuses macvlan's allowed address pairs: "
                                  f"{self._refusal(exc.message)}") from None
            self._remove_probe()
            return
        LOG.warning("could not try a macvlan pair on the VM's port: it changed under %d attempts; a refusal "
                    "will show as each container's error", ATTEMPTS)

    def _remove_probe(self) -> None:
        for _ in range(ATTEMPTS):
            parent = self._vm.port()
            current = pairs_of(parent)
            kept = [p for p in current if p["mac_address"] != PROBE_MAC]
            if kept == current:
                return
            try:
                self._client.update_port_if_revision(parent.id, int(parent.raw["revision_number"]),
                                                     allowed_address_pairs=kept)
            except errors.NeutronPreconditionFailed:
                continue
        LOG.warning("could not take the probe pair (MAC %s) off the VM's port: the next start removes it",
                    PROBE_MAC)

    def _refusal(self, message: str) -> str:
        if "InvalidVirtualMACAddress" in message or "Virtual MAC" in message:
            return (f"{message} -- ML2/OVN (Neutron 28.0.1 and later) lets a bound port's allowed address pairs "
                    "carry only its own MAC or a VRRP MAC, so macvlan nested mode cannot work with it; use the vlan "
                    "port driver (trunk subports) or the ipvlan one (pairs with the VM port's own MAC)")
        return super()._refusal(message)
