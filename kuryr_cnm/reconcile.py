"""The reconciler: Neutron's ports bound here, the host's veths and OVS ports, and the
port pool, brought back in line after a crash, a lost Docker call or a lost write.

It only ever deletes what this kuryr-cnm (this plugin name on this host) made: Neutron
ports with its mark (the description it writes at creation, or its owner tag) and bound
here; OVS ports with external_ids owner=kuryr whose Neutron port is gone; veths named
like kuryr's that no OVS port holds and no port bound here names. Ports made by
kuryr-libnetwork, by another kuryr-cnm (another host, or another plugin name on this
host) or by an operator are never touched.

What it does, each pass:
* an OVS port or veth of kuryr's whose Neutron port is gone: unplugged;
* a plugged port (OVS knows its endpoint) whose device_id or endpoint tags never
  landed: repaired from OVS's external_ids;
* a port of ours bound here that nothing holds (not plugged, not in the pool, not
  handed to Docker by this process) for longer than `grace`: deleted.
"""
from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kuryr_cnm import errors, naming, neutron
from kuryr_cnm.binding import BindingError, Plugger, VifPort, veth
from kuryr_cnm.binding.ovs import OvsPort
from kuryr_cnm.neutron import NeutronClient, Port

LOG = logging.getLogger(__name__)


@dataclass
class Report:
    dry_run: bool
    unplugged: list[str] = field(default_factory=list)  # OVS port / veth names
    repaired: list[str] = field(default_factory=list)  # port ids
    deleted: list[str] = field(default_factory=list)  # port ids
    kept: int = 0  # ports of ours that something still holds
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would" if self.dry_run else "did"
        return (f"reconcile ({verb}): unplug {len(self.unplugged)} {self.unplugged}, repair "
                f"{len(self.repaired)} {self.repaired}, delete {len(self.deleted)} {self.deleted}; "
                f"{self.kept} ports in use; {len(self.errors)} errors {self.errors}")


def is_ours(port: Port, host: str, owner: str) -> bool:
    """Made by this kuryr-cnm (`owner`, see naming.owner): its mark, and bound here."""
    if port.host_id != host:
        return False
    description = port.raw.get("description") or ""
    return (naming.cnm_owner_tag(owner) in port.tags
            or description in (naming.cnm_description(owner), naming.pool_description(owner)))


def is_lost_address(port: Port, host: str, owner: str, held: set[str]) -> bool:
    """A port of ours that no endpoint ever took (no device_id) and this process does not
    hold: an address whose answer a crash or a timeout lost on its way to Docker. Safe to
    delete once Docker releases the network or pool it is in."""
    return (is_ours(port, host, owner) and not port.device_id and port.id not in held
            and port.name != naming.POOL_PORT_NAME)


def delete_lost_addresses(client: NeutronClient, ports: list[Port], host: str, owner: str, held: set[str],
                          call: str) -> list[Port]:
    """Delete the lost addresses among `ports` (is_lost_address); return the other ports.
    Only for a Docker `call` (ReleasePool, DeleteNetwork) that comes once no endpoint is left."""
    remaining = []
    for port in ports:
        if is_lost_address(port, host, owner, held):
            LOG.info("%s: deleting port %s of network %s, an address no endpoint took", call, port.id,
                     port.network_id)
            client.delete_port(port.id)
        else:
            remaining.append(port)
    return remaining


def _age_seconds(port: Port, now: datetime.datetime) -> float:
    stamp = port.raw.get("updated_at") or port.raw.get("created_at")
    if not stamp:
        return 0.0
    when = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (now - when).total_seconds()


class Reconciler:
    def __init__(self, client: NeutronClient, plugger: Plugger, host: str, plugin_name: str, *, grace: float,
                 in_use: Callable[[], set[str]]) -> None:
        """`in_use()` gives the port ids this process holds for Docker or in its pool."""
        self._client = client
        self._plugger = plugger
        self._host = host
        self._owner = naming.owner(host, plugin_name)
        self._grace = grace
        self._in_use = in_use
        self._lock = threading.Lock()  # one pass at a time

    def run(self, dry_run: bool = False) -> Report:
        with self._lock:
            calls = neutron.start_call_log()
            report = Report(dry_run)
            try:
                self._pass(report)
            except errors.PluginError as exc:
                report.errors.append(exc.message)
            except BindingError as exc:
                report.errors.append(str(exc))
            LOG.info("%s [neutron: %s]", report.summary(), "; ".join(calls) or "none")
            return report

    def _pass(self, report: Report) -> None:
        # The host first, Neutron second: a veth or OVS port seen here was made after its
        # Neutron port, so that port is in the listing below unless it is really gone.
        veths = veth.list_veths("tap")
        plugged = self._plugger.list_kuryr_ports()
        ports = self._client.list_ports(**{"binding:host_id": self._host})
        by_id = {p.id: p for p in ports}
        self._unplug_orphans(plugged, by_id, report)
        self._delete_stray_veths(veths, plugged, by_id, report)
        plugged_ids = {p.iface_id for p in plugged}
        held = self._in_use()
        now = datetime.datetime.now(datetime.timezone.utc)
        for port in ports:
            if not is_ours(port, self._host, self._owner):
                continue
            if port.id in plugged_ids:
                report.kept += 1
                self._repair(port, next(p for p in plugged if p.iface_id == port.id), report)
            elif port.id in held or port.name == naming.POOL_PORT_NAME:
                report.kept += 1  # handed to Docker and not plugged yet, or waiting in the pool
            elif _age_seconds(port, now) >= self._grace:
                report.deleted.append(port.id)
                if not report.dry_run:
                    self._client.delete_port(port.id)
            else:
                report.kept += 1  # too young to judge: Docker may be between calls

    def _unplug_orphans(self, plugged: list[OvsPort], by_id: dict[str, Port], report: Report) -> None:
        for ovs_port in plugged:
            if ovs_port.iface_id in by_id or self._client.get_port(ovs_port.iface_id) is not None:
                continue  # bound elsewhere now, or alive: not an orphan
            report.unplugged.append(ovs_port.name)
            if not report.dry_run:
                self._plugger.unplug(VifPort(
                    port_id=ovs_port.iface_id, mac=ovs_port.attached_mac, network_id="", project_id="",
                    endpoint_id=ovs_port.vm_uuid, vif_type="ovs", vif_details={}, mtu=0))

    def _delete_stray_veths(self, veths: list[str], plugged: list[OvsPort], by_id: dict[str, Port],
                            report: Report) -> None:
        """A tap veth attached to nothing and named after no port bound here (a crash mid-plug)."""
        attached = {p.name for p in plugged}
        live_prefixes = {naming.host_veth_name(pid) for pid in by_id}
        for name in veths:
            if name in attached or name in live_prefixes or name in report.unplugged:
                continue
            report.unplugged.append(name)
            if not report.dry_run:
                veth.delete_pair(name)

    def _repair(self, port: Port, plugged: OvsPort, report: Report) -> None:
        """device_id and endpoint tags that the background write never landed."""
        endpoint_id = plugged.vm_uuid
        wanted = naming.id_tags(endpoint_id)
        if not endpoint_id or (set(wanted) <= set(port.tags) and port.device_id):
            return
        report.repaired.append(port.id)
        if report.dry_run:
            return
        attrs = {} if port.device_id else {"device_id": endpoint_id}
        if port.name == naming.POOL_PORT_NAME:
            attrs["name"] = naming.UNBOUND_PORT_NAME
        if attrs:
            self._client.update_port(port.id, **attrs)
        mark = [naming.DEVICE_OWNER, naming.cnm_owner_tag(self._owner)]
        self._client.set_tags("ports", port.id, list(port.tags) + mark + wanted)
