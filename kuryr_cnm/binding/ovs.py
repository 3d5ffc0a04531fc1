"""vif_type 'ovs': the port's device on an Open vSwitch bridge, tagged for OVN / the OVS agent.

Plug adds the device to vif_details["bridge_name"] (default br-int), creating the
Port if missing and setting the Interface's external_ids (iface-id, attached-mac,
vm-uuid, iface-status, owner=kuryr) in one OVSDB transaction, as
`ovs-vsctl --may-exist add-port ... -- set Interface ...` does. ovn-controller
claims the port by iface-id. Afterwards the Interface must have an OpenFlow port
number, else OVS could not open the device and plugging fails with OVS's reason.

Hybrid plug (vif_details["ovs_hybrid_plug"], Neutron's iptables-hybrid firewall) puts
a Linux bridge between, as nova/os-vif do: tap -> qbr<id> <- qvb<id> = qvo<id> -> OVS.
Unplug removes both layouts, whichever is there, so it does not depend on
vif_details being the same as at plug time. It deletes only OVS ports whose
Interface has external_ids:owner=kuryr: a port of the same name that someone
else made is left alone.

OVSDB: one persistent connection per `Ovsdb` (so per Plugger), opened on first use,
shared by all threads: ovsdbapp queues every transaction to the connection's own
thread, and the IDL reconnects by itself when ovsdb-server restarts.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl

from kuryr_cnm import naming
from kuryr_cnm.binding import Binder, BindingError, HostInterface, VifPort
from kuryr_cnm.binding.bridge import BRIDGE, enslave, ensure_bridge
from kuryr_cnm.binding.veth import VETH, add_veth, delete_link, netlink, set_up

LOG = logging.getLogger(__name__)

DEFAULT_BRIDGE = "br-int"
OWNER = "kuryr"  # external_ids:owner of every Interface kuryr plugged
# all plugging needs; Open_vSwitch for next_cfg, which makes a transaction wait for vswitchd
OVSDB_TABLES = ("Open_vSwitch", "Bridge", "Port", "Interface")


@dataclass(frozen=True, order=True)
class OvsPort:
    """An OVS interface kuryr plugged, as found in OVSDB."""

    name: str
    iface_id: str  # the Neutron port id
    vm_uuid: str  # the Docker endpoint id
    attached_mac: str


@dataclass(frozen=True)
class HybridNames:
    qbr: str  # Linux bridge holding the tap
    qvb: str  # bridge end of the veth pair into OVS
    qvo: str  # OVS end


def hybrid_names(port_id: str) -> HybridNames:
    return HybridNames(*(naming.device_name(prefix, port_id) for prefix in naming.HYBRID_PREFIXES))


def is_hybrid(port: VifPort) -> bool:
    # Neutron sends a JSON boolean; accept the string forms some plugins send
    return str(port.vif_details.get("ovs_hybrid_plug", False)).lower() == "true"


def external_ids(port: VifPort) -> dict[str, str]:
    return {"iface-id": port.port_id, "attached-mac": port.mac.lower(),
            "vm-uuid": port.endpoint_id, "iface-status": "active", "owner": OWNER}


class _Backend(impl_idl.OvsdbIdl):
    """ovsdbapp's backend, holding its connection per instance.

    ovsdbapp keeps the connection in a class attribute that only the first
    instance in a process sets: a second Plugger (or one made after close())
    would silently get the first, maybe stopped, connection.
    """

    @property
    def ovsdb_connection(self) -> connection.Connection:
        return self._connection

    @ovsdb_connection.setter
    def ovsdb_connection(self, conn: connection.Connection) -> None:
        self._connection = conn


class Ovsdb:
    """The process's OVSDB connection, opened on first use and again after a failure."""

    def __init__(self, remote: str, *, timeout: float = 10) -> None:
        self.remote = remote
        self._timeout = timeout
        self._lock = threading.Lock()
        self._api: _Backend | None = None

    def api(self) -> impl_idl.OvsdbIdl:
        with self._lock:
            if self._api is None:
                self._api = self._connect()
            return self._api

    def close(self) -> None:
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.ovsdb_connection.stop(timeout=self._timeout)

    def _connect(self) -> _Backend:
        try:
            idl = connection.OvsdbIdl.from_server(self.remote, "Open_vSwitch", helper_tables=OVSDB_TABLES)
        except Exception as exc:
            raise self._unreachable(exc) from exc
        try:
            return _Backend(connection.Connection(idl=idl, timeout=self._timeout))
        except Exception as exc:
            idl.close()
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: Exception) -> BindingError:
        return BindingError(f"cannot reach OVSDB at {self.remote}: {exc}; check that ovsdb-server "
                            "runs (ovs-vsctl show) and the ovsdb_connection option; the next "
                            "request tries again")


@contextmanager
def _ovsdb_errors(what: str, hint: str) -> Iterator[None]:
    """Turn ovsdbapp's exceptions (RowNotFound, TimeoutException, ...) into a BindingError."""
    try:
        yield
    except BindingError:
        raise
    except Exception as exc:
        raise BindingError(f"{what}: {type(exc).__name__}: {exc}; {hint}") from exc


def _scalar(value: Any) -> Any:
    """An optional OVSDB column reads as [] or [x]."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


class OvsBinder(Binder):
    vif_types = ("ovs",)

    def __init__(self, ovsdb: Ovsdb) -> None:
        self._ovsdb = ovsdb

    def plug(self, port: VifPort, iface: HostInterface) -> None:
        bridge = str(port.vif_details.get("bridge_name") or DEFAULT_BRIDGE)
        device = self._plug_hybrid(port, iface) if is_hybrid(port) else iface.host_name
        self._add_port(bridge, device, external_ids(port))

    def unplug(self, port: VifPort, iface: HostInterface) -> None:
        names = hybrid_names(port.port_id)
        self._del_ports((iface.host_name, names.qvo))
        with netlink() as ipr:
            delete_link(ipr, names.qvb, VETH)  # qvo goes with it
            delete_link(ipr, names.qbr, BRIDGE)

    def list_kuryr_ports(self, bridge: str = DEFAULT_BRIDGE) -> list[OvsPort]:
        """The interfaces on `bridge` with external_ids owner=kuryr, sorted by name."""
        api = self._ovsdb.api()
        with _ovsdb_errors(f"could not list kuryr's ports on OVS bridge {bridge}",
                           f"check that the bridge exists (ovs-vsctl br-exists {bridge})"):
            on_bridge = set(api.list_ifaces(bridge).execute(check_error=True, log_errors=False))
            rows = api.db_find("Interface", ("external_ids", "=", {"owner": OWNER}),
                               columns=["name", "external_ids"]).execute(check_error=True, log_errors=False)
        return sorted(OvsPort(name=row["name"], iface_id=row["external_ids"].get("iface-id", ""),
                              vm_uuid=row["external_ids"].get("vm-uuid", ""),
                              attached_mac=row["external_ids"].get("attached-mac", ""))
                      for row in rows if row["name"] in on_bridge)

    def _plug_hybrid(self, port: VifPort, iface: HostInterface) -> str:
        """tap and qvb into a per-port Linux bridge; returns the qvo end for OVS."""
        names = hybrid_names(port.port_id)
        with netlink() as ipr:
            qbr = ensure_bridge(ipr, names.qbr)
            add_veth(ipr, names.qvb, names.qvo, mtu=port.mtu)
            set_up(ipr, names.qvo)
            enslave(ipr, names.qvb, qbr)
            enslave(ipr, iface.host_name, qbr)
        return names.qvo

    def _add_port(self, bridge: str, device: str, ids: dict[str, str]) -> None:
        api = self._ovsdb.api()
        with _ovsdb_errors(f"could not add {device} to OVS bridge {bridge}",
                           f"check that OVSDB answers and the bridge exists (ovs-vsctl br-exists "
                           f"{bridge}): ovn-controller or the OVS agent creates it"):
            with api.transaction(check_error=True, log_errors=False) as txn:
                txn.add(api.add_port(bridge, device, may_exist=True))
                # an Interface left by a crash keeps its row: set its ids all the same
                txn.add(api.db_set("Interface", device, ("external_ids", ids), if_exists=False))
            (row,) = api.db_list("Interface", [device], columns=["ofport", "error"],
                                 if_exists=False).execute(check_error=True, log_errors=False)
        ofport = _scalar(row["ofport"])
        if ofport is None or ofport < 0:
            raise BindingError(f"OVS could not attach {device} to {bridge}: "
                               f"{_scalar(row['error']) or 'no OpenFlow port number'}; "
                               "check that ovs-vswitchd runs and its log")
        LOG.debug("OVS port %s on %s (ofport %s): %s", device, bridge, ofport, ids)

    def _del_ports(self, devices: Sequence[str]) -> None:
        """Delete those of `devices` that are OVS ports kuryr made (owner=kuryr)."""
        api = self._ovsdb.api()
        with _ovsdb_errors(f"could not delete OVS ports {', '.join(devices)}",
                           "check OVSDB (ovs-vsctl show) and delete them by hand "
                           "(ovs-vsctl --if-exists del-port <name>)"):
            rows = api.db_list("Interface", list(devices), columns=["name", "external_ids"],
                               if_exists=True).execute(check_error=True, log_errors=False)
            ours = [row["name"] for row in rows if row["external_ids"].get("owner") == OWNER]
            if not ours:
                return
            with api.transaction(check_error=True, log_errors=False) as txn:
                for device in ours:
                    txn.add(api.del_port(device, if_exists=True))
