"""Drivers whose containers' addresses ride on the VM's port, in its allowed_address_pairs.

`macvlan` puts each address with the container port's MAC, `ipvlan` the address alone (its
MAC is then the VM port's own). The pairs are one list on one port that every container of
the VM writes, so each change is a read-modify-write under Neutron's revision check
(If-Match: revision_number=N): a writer that lost the race gets a 412, reads again and
reapplies its change.

Measured on the stack (Neutron 29, MariaDB, 8 API threads): concurrent PUTs carrying the
same If-Match revision were all accepted (5 of 10 parallel adds at revision 1), so the
check alone loses pairs. Hence, within this process, one read-modify-write at a time per
VM port (a lock), and every write is read back and redone if the change is missing.
Two processes writing the same VM port's pairs at the same instant remain exposed to
Neutron's lost update; run one kuryr-cnm per VM.
"""
from __future__ import annotations

import abc
import logging
import random
import threading
import time
from collections.abc import Callable

from kuryr_cnm import errors
from kuryr_cnm.nested.base import NestedDriver, NestedError
from kuryr_cnm.neutron import Port

LOG = logging.getLogger(__name__)

ATTEMPTS = 30
Pairs = list[dict[str, str]]


def normal(pairs: Pairs, parent: Port) -> Pairs:
    """Pairs as Neutron shows them: a pair without a MAC has the parent port's."""
    return [{"ip_address": p["ip_address"], "mac_address": (p.get("mac_address") or parent.mac_address).lower()}
            for p in pairs]


def pairs_of(parent: Port) -> Pairs:
    return normal(list(parent.raw.get("allowed_address_pairs") or ()), parent)


class PairsDriver(NestedDriver):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()  # one read-modify-write of the VM port's pairs at a time

    @abc.abstractmethod
    def pairs_for(self, port: Port) -> Pairs:
        """The pairs that carry the container port's addresses, as they are written."""

    def check(self) -> None:
        parent = self._vm.port()
        if parent.raw.get("port_security_enabled") is False:
            raise NestedError(f"the VM's port {parent.id} has port security disabled: Neutron keeps allowed "
                              "address pairs only with port security on")
        self._vm.link_iface()

    def _attach(self, port: Port) -> int:
        self._update_pairs(port, self._with, "add")
        return 0

    def _detach(self, port: Port) -> None:
        self._update_pairs(port, self._without, "remove")

    def _with(self, current: Pairs, port: Port, parent: Port) -> Pairs:
        ours = self.pairs_for(port)
        return current + [p for p, seen in zip(ours, normal(ours, parent), strict=True) if seen not in current]

    def _without(self, current: Pairs, port: Port, parent: Port) -> Pairs:
        ours = normal(self.pairs_for(port), parent)
        return [p for p in current if p not in ours]

    def _update_pairs(self, port: Port, change: Callable[[Pairs, Port, Port], Pairs], doing: str) -> None:
        with self._lock:
            self.change_pairs(lambda current, parent: change(current, port, parent), f"port {port.id}: {doing}")

    def change_pairs(self, change: Callable[[Pairs, Port], Pairs], what: str, parent: Port | None = None) -> Port:
        """The VM port's pairs read, changed by `change(current, parent)` and written under
        Neutron's revision check until the change is there; the VM's port as it is then.
        `parent`: the VM's port as just read or written (saves the first read)."""
        parent = parent or self._vm.port()
        for attempt in range(ATTEMPTS):
            current = pairs_of(parent)
            wanted = change(current, parent)
            if normal(wanted, parent) == current:
                return parent  # nothing to do: Docker retried, or it is undone already
            revision = int(parent.raw["revision_number"])
            try:
                # the PUT answers with the port as written: the loop ends when the change is
                # there, without reading the port again (two requests per container, not three)
                parent = self._client.update_port_if_revision(parent.id, revision, allowed_address_pairs=wanted)
                LOG.info("%s its pairs on the VM's port %s (revision %d)", what, parent.id, revision)
            except errors.NeutronPreconditionFailed:
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))  # another container's write won: again
                parent = self._vm.port()
            except errors.NeutronBadRequest as exc:
                raise errors.BadRequest(self._refusal(exc.message)) from None
        raise errors.Conflict(f"{what}: the VM's port {parent.id} changed under {ATTEMPTS} attempts to change its "
                              "allowed address pairs; retry")

    def _refusal(self, message: str) -> str:
        if "max" in message.lower() or "exceed" in message.lower():
            return f"{message} -- raise max_allowed_address_pair in neutron.conf (default 10) or use vlan"
        return message
