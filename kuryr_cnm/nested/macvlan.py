"""`macvlan` (upstream's `nested`): the container's addresses ride on the VM's port.

Each address of the container port, with the port's MAC, goes into the VM port's
allowed_address_pairs. The pairs are one list on one port that every container of the
VM writes, so each change is a read-modify-write under Neutron's revision check
(If-Match: revision_number=N): a writer that lost the race gets a 412, reads again and
reapplies its change.

Measured on the stack (Neutron 29, MariaDB, 8 API threads): concurrent PUTs carrying the
same If-Match revision were all accepted (5 of 10 parallel adds at revision 1), so the
check alone loses pairs. Hence, within this process, one read-modify-write at a time per
VM port (a lock), and every write is read back and redone if the change is missing.
Two processes writing the same VM port's pairs at the same instant remain exposed to
Neutron's lost update; run one macvlan kuryr-cnm per VM.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from kuryr_cnm import errors
from kuryr_cnm.binding import nested as links
from kuryr_cnm.nested.base import NestedDriver, NestedError
from kuryr_cnm.neutron import Port

LOG = logging.getLogger(__name__)

ATTEMPTS = 30
Pairs = list[dict[str, str]]


def pairs_of(port: Port) -> list[dict[str, str]]:
    return [{"ip_address": p["ip_address"], "mac_address": (p.get("mac_address") or port.mac_address).lower()}
            for p in port.raw.get("allowed_address_pairs") or ()]


def with_pairs(pairs: Pairs, port: Port) -> Pairs:
    wanted = [{"ip_address": f.ip_address, "mac_address": port.mac_address} for f in port.fixed_ips]
    return pairs + [p for p in wanted if p not in pairs]


def without_pairs(pairs: Pairs, port: Port) -> Pairs:
    ips = {f.ip_address for f in port.fixed_ips}
    return [p for p in pairs if not (p["ip_address"] in ips and p["mac_address"] == port.mac_address)]


class MacvlanDriver(NestedDriver):
    name = "macvlan"
    kind = links.MACVLAN

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()  # one read-modify-write of the VM port's pairs at a time

    def check(self) -> None:
        parent = self._vm.port()
        if parent.raw.get("port_security_enabled") is False:
            raise NestedError(f"the VM's port {parent.id} has port security disabled: Neutron keeps allowed "
                              "address pairs only with port security on")
        self._vm.link_iface()

    def _attach(self, port: Port) -> int:
        self._update_pairs(port, with_pairs, "add")
        return 0

    def _detach(self, port: Port) -> None:
        self._update_pairs(port, without_pairs, "remove")

    def _update_pairs(self, port: Port, change: Callable[[Pairs, Port], Pairs], doing: str) -> None:
        with self._lock:
            self._update_pairs_locked(port, change, doing)

    def _update_pairs_locked(self, port: Port, change: Callable[[Pairs, Port], Pairs], doing: str) -> None:
        for attempt in range(ATTEMPTS):
            parent = self._vm.port()
            current = pairs_of(parent)
            wanted = change(current, port)
            if wanted == current:
                return  # nothing to do: Docker retried, or it is undone already
            revision = int(parent.raw["revision_number"])
            try:
                self._client.update_port_if_revision(parent.id, revision, allowed_address_pairs=wanted)
                LOG.info("port %s: %s its pairs on the VM's port %s (revision %d)", port.id, doing, parent.id,
                         revision)
                continue  # read back: the loop ends when the change is there
            except errors.NeutronPreconditionFailed:
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))  # another container's write won: again
            except errors.NeutronBadRequest as exc:
                raise errors.BadRequest(self._refusal(parent, exc.message)) from None
        raise errors.Conflict(f"port {port.id}: the VM's port {parent.id} changed under {ATTEMPTS} attempts "
                              f"to {doing} its allowed address pairs; retry")

    @staticmethod
    def _refusal(parent: Port, message: str) -> str:
        if "InvalidVirtualMACAddress" in message or "Virtual MAC" in message:
            return (f"{message} -- ML2/OVN (Neutron 29 here) lets a bound port's allowed address pairs carry "
                    "only its own MAC or a VRRP MAC, so macvlan nested mode cannot work with it; use the vlan "
                    "port driver (trunk subports)")
        if "max" in message.lower() or "exceed" in message.lower():
            return f"{message} -- raise max_allowed_address_pair in neutron.conf (default 10) or use vlan"
        return message
