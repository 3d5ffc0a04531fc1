"""Host side of plugging a container into Neutron's L2: the veth pair and its binding.

The driver asks Neutron for the port, turns the answer into a `VifPort`, and calls
`Plugger.plug()`; Docker then moves the container end into the sandbox. Nothing here
talks to Neutron. One binder per `binding:vif_type` attaches the host end of the
pair: `ovs` (Open vSwitch, with or without the iptables-hybrid bridge), `bridge`
(Linux bridge), `tap` (nothing to do: routed setups) and, for every other type,
the operator's script `<bindir>/<vif_type>` called as kuryr-lib called it.

The caller owns one `Plugger` per process; it holds the only state (one OVSDB
connection, shared by every request thread) and must be `close()`d at exit.
"""
from __future__ import annotations

import abc
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kuryr_cnm import naming

LOG = logging.getLogger(__name__)

# vif types Neutron uses to say "not bound here": no binder can do anything with them
UNBOUND_VIF_TYPES = {
    "unbound": "is not bound to any host: create or update it with binding:host_id "
               "set to this host's name (the chassis name OVN knows it by)",
    "binding_failed": "could not be bound by Neutron: check that binding:host_id is this "
                      "host's name and that the OVN controller (or L2 agent) on it is alive",
}


@dataclass(frozen=True)
class VifPort:
    """What binding needs to know about one Neutron port."""

    port_id: str
    mac: str  # the port's MAC; the container end gets it
    network_id: str
    project_id: str
    endpoint_id: str  # Docker's endpoint id (OVS external_ids vm-uuid)
    vif_type: str  # binding:vif_type
    vif_details: Mapping[str, Any] = field(hash=False)  # binding:vif_details
    mtu: int  # the Neutron network's MTU, already reduced if Docker asked for less

    @property
    def userspace_datapath(self) -> bool:
        """OVS netdev datapath: it does not complete partial checksums (TCP breaks)."""
        return self.vif_details.get("datapath_type") == "netdev"


@dataclass(frozen=True)
class HostInterface:
    host_name: str  # stays in the host namespace, attached by the binder
    container_name: str  # Docker moves it into the sandbox after Join


def interface_names(port_id: str) -> HostInterface:
    """The veth names of a port (naming.py has the rule, as kuryr-libnetwork named them)."""
    return HostInterface(host_name=naming.host_veth_name(port_id), container_name=naming.container_veth_name(port_id))


class BindingError(Exception):
    """Plugging or unplugging failed; the message says what failed and what to do next."""


class Binder(abc.ABC):
    """Attaches the host end of a port's veth pair for some vif types."""

    vif_types: tuple[str, ...] = ()

    def check(self, port: VifPort) -> None:  # noqa: B027 - optional hook, nothing by default
        """Fail before anything is created if this binder cannot plug `port`."""

    @abc.abstractmethod
    def plug(self, port: VifPort, iface: HostInterface) -> None:
        """Attach `iface.host_name` (it exists and is up)."""

    @abc.abstractmethod
    def unplug(self, port: VifPort, iface: HostInterface) -> None:
        """Undo `plug`, also a partial one; anything already gone is fine."""


class Plugger:
    """Plugs and unplugs ports; one per process, safe to use from many threads."""

    def __init__(self, *, bindir: str, ovsdb_connection: str = "unix:/var/run/openvswitch/db.sock",
                 ovsdb_timeout: float = 10, script_timeout: float = 30,
                 binders: Iterable[Binder] = ()) -> None:
        """`binders` come before the built-in ones, so they can replace one for a vif type."""
        self._ovsdb = ovs.Ovsdb(ovsdb_connection, timeout=ovsdb_timeout)
        self._ovs = ovs.OvsBinder(self._ovsdb)
        self._fallback: Binder = script.ScriptBinder(bindir, timeout=script_timeout)
        self._binders: dict[str, Binder] = {}
        for binder in (*binders, self._ovs, bridge.BridgeBinder(), tap.TapBinder()):
            for vif_type in binder.vif_types:
                self._binders.setdefault(vif_type, binder)

    def binder_for(self, vif_type: str) -> Binder:
        """The binder for a vif type; unknown types go to the script binder."""
        if vif_type in UNBOUND_VIF_TYPES:
            raise BindingError(f"cannot plug a port whose binding:vif_type is {vif_type!r}: "
                               f"the port {UNBOUND_VIF_TYPES[vif_type]}")
        return self._binders.get(vif_type, self._fallback)

    def plug(self, port: VifPort) -> HostInterface:
        """Create the veth pair and bind its host end; on failure leave nothing behind."""
        binder = self.binder_for(port.vif_type)
        binder.check(port)
        iface = interface_names(port.port_id)
        veth.create_pair(iface.host_name, iface.container_name, mac=port.mac, mtu=port.mtu,
                         tx_checksum=not port.userspace_datapath)
        try:
            binder.plug(port, iface)
        except BaseException as exc:
            self._roll_back(binder, port, iface)
            if isinstance(exc, Exception) and not isinstance(exc, BindingError):
                raise _failure("plugging", port, exc) from exc
            raise
        LOG.info("plugged port %s (%s) as %s", port.port_id, port.vif_type, iface.host_name)
        return iface

    def unplug(self, port: VifPort) -> None:
        """Unbind and delete the veth pair; unplugging what is not there is fine."""
        iface = interface_names(port.port_id)
        error = self._unbind(port, iface)
        # Delete the veth even when unbinding failed: the container's link goes with
        # its endpoint, and a retried unplug only has the binder's part left to do.
        veth.delete_pair(iface.host_name)
        if error is not None:
            raise error
        LOG.info("unplugged port %s (%s)", port.port_id, port.vif_type)

    def list_kuryr_ports(self, bridge: str = "br-int") -> list[ovs.OvsPort]:
        """OVS ports on `bridge` that kuryr plugged, to rebuild state after a restart."""
        return self._ovs.list_kuryr_ports(bridge)

    def close(self) -> None:
        self._ovsdb.close()

    def __enter__(self) -> Plugger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _unbind(self, port: VifPort, iface: HostInterface) -> BindingError | None:
        if port.vif_type in UNBOUND_VIF_TYPES:
            # A port that lost its binding since it was plugged was most likely plugged
            # into OVS here; removing an OVS port of our name is harmless otherwise.
            try:
                self._ovs.unplug(port, iface)
            except Exception as exc:
                LOG.warning("port %s (%s): best-effort OVS clean-up failed: %s",
                            port.port_id, port.vif_type, exc)
            return None
        try:
            self._binders.get(port.vif_type, self._fallback).unplug(port, iface)
        except Exception as exc:
            return exc if isinstance(exc, BindingError) else _failure("unplugging", port, exc)
        return None

    def _roll_back(self, binder: Binder, port: VifPort, iface: HostInterface) -> None:
        for undo in (lambda: binder.unplug(port, iface), lambda: veth.delete_pair(iface.host_name)):
            try:
                undo()
            except Exception as exc:  # keep undoing; the plug error is the one to report
                LOG.error("port %s: rollback step failed, clean up by hand: %s", port.port_id, exc)


def _failure(doing: str, port: VifPort, exc: Exception) -> BindingError:
    return BindingError(f"{doing} port {port.port_id} (vif_type {port.vif_type}) failed: "
                        f"{type(exc).__name__}: {exc}")


# Last: the implementation modules import the types above from this package.
from kuryr_cnm.binding import bridge, ovs, script, tap, veth  # noqa: E402
