"""`vlan`: each container port is a subport of the VM port's trunk, on its own VLAN id.

The VLAN id is the lowest one free in what Neutron's trunk holds now: no allocator in
memory that two processes (or a restarted one) could disagree on. Two plugs racing for
the same id are told apart by Neutron, which refuses the second with a Conflict; that
one reads the trunk again and takes the next free id. Removing the subport frees its id.
"""
from __future__ import annotations

import logging
import threading

from kuryr_cnm import errors
from kuryr_cnm.binding import BindingError
from kuryr_cnm.binding import nested as links
from kuryr_cnm.nested.base import NestedDriver, NestedError
from kuryr_cnm.neutron import Port

LOG = logging.getLogger(__name__)

MIN_VLAN, MAX_VLAN = 1, 4094
ATTEMPTS = 10


def lowest_free(used: set[int], skip: set[int] = frozenset()) -> int:  # type: ignore[assignment]
    """The lowest VLAN id neither on the trunk (`used`) nor being taken by this process (`skip`)."""
    for vlan in range(MIN_VLAN, MAX_VLAN + 1):
        if vlan not in used and vlan not in skip:
            return vlan
    raise errors.Conflict(f"all {MAX_VLAN} VLAN ids of the VM's trunk are taken: remove containers")


def subports(parent: Port) -> tuple[str, dict[str, int]]:
    """The trunk id and its subports (port id -> VLAN id) from the parent's trunk_details."""
    details = parent.raw.get("trunk_details")
    if not details:
        raise errors.Conflict(f"the VM's port {parent.id} is no trunk parent, which the vlan port driver needs: "
                              f"openstack network trunk create --parent-port {parent.id} <name> "
                              "(Neutron's trunk service plugin must be enabled)")
    return details["trunk_id"], {s["port_id"]: int(s["segmentation_id"]) for s in details.get("sub_ports") or ()}


class VlanDriver(NestedDriver):
    name = "vlan"
    kind = links.VLAN

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._taking: set[int] = set()  # ids this process is adding right now: fewer Conflicts
        self._trunk_id = ""  # the VM port's trunk, once read

    def check(self) -> None:
        subports(self._vm.port())
        try:
            supported = links.vlan_supported(self._vm.link_iface())
        except BindingError as exc:
            raise NestedError(str(exc)) from None
        if not supported:
            raise NestedError("this kernel cannot make VLAN devices (CONFIG_VLAN_8021Q; modprobe 8021q)")

    def _attach(self, port: Port) -> int:
        for _ in range(ATTEMPTS):
            trunk_id, current = subports(self._vm.port())
            self._trunk_id = trunk_id
            if port.id in current:
                return current[port.id]  # Docker retried, or a restart: already a subport
            with self._lock:
                vlan = lowest_free(set(current.values()), self._taking)
                self._taking.add(vlan)
            try:
                self._client.add_subport(trunk_id, port.id, vlan)
                LOG.info("port %s: subport of trunk %s on VLAN %d", port.id, trunk_id, vlan)
                return vlan
            except errors.NeutronConflict as exc:
                LOG.info("port %s: VLAN %d was taken meanwhile (%s); trying another", port.id, vlan, exc.message)
            finally:
                with self._lock:
                    self._taking.discard(vlan)
        raise errors.Conflict(f"port {port.id}: the VM's trunk refused {ATTEMPTS} VLAN ids in a row; retry")

    def _detach(self, port: Port) -> None:
        """One request on Docker's teardown path: the trunk's id is the VM port's for the VM's
        life, so the subport is removed without reading the parent first; only a NotFound
        (removed already, or the trunk was remade) reads it, to be sure."""
        if self._trunk_id:
            try:
                self._client.remove_subport(self._trunk_id, port.id)
                return
            except errors.NeutronNotFound:
                pass
        trunk_id, current = subports(self._vm.port())
        self._trunk_id = trunk_id
        if port.id not in current:
            return
        try:
            self._client.remove_subport(trunk_id, port.id)
        except errors.NeutronNotFound:
            pass  # removed meanwhile
