"""The reconciler: Neutron's ports bound here, the host's veths and OVS ports, and the
port pool, brought back in line after a crash, a lost Docker call or a lost write.

It only ever deletes what this kuryr-cnm (this plugin name on this host) made: Neutron
ports with its mark (the description it writes at creation, or its owner tag) and bound
here; OVS ports with external_ids owner=kuryr whose Neutron port is gone; veths named
like kuryr's that no OVS port holds and no port bound here names. Ports made by
kuryr-libnetwork, by another kuryr-cnm (another host, or another plugin name on this
host) or by an operator are never touched.

In nested mode (a Nova VM) the same rules hold, with the Plugging's own record: the child
devices it made (their alias names port and endpoint), in the VM's namespace or inside the
containers, instead of OVS ports; its ports, unbound, are found by their mark; and before a
port nothing holds is deleted, its subport or address pairs are taken off the VM's port.

What it does, each pass:
* an OVS port or veth of kuryr's whose Neutron port is gone: unplugged;
* an OVS port of kuryr's whose device is gone (Open vSwitch keeps its ports across a
  reboot or a power loss, the veths are not): unplugged, and its Neutron port judged as
  one that nothing holds;
* a plugged port (OVS knows its endpoint) whose device_id or endpoint tags never
  landed: repaired from OVS's external_ids;
* a port of ours bound here that nothing holds (not plugged, not in the pool, not
  handed to Docker by this process) for longer than `grace`: deleted;
* nested mode: a child device in no container (Docker never joined it, or never deleted
  it) whose port this process does not hold, for longer than `grace`: unplugged, and its
  port deleted as one nothing holds.
"""
from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kuryr_cnm import errors, naming, neutron
from kuryr_cnm.binding import BindingError, veth
from kuryr_cnm.neutron import NeutronClient, Port
from kuryr_cnm.ownership import Ownership, Why
from kuryr_cnm.plugging import Plugged, Plugging

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


def _age_seconds(port: Port, now: datetime.datetime) -> float:
    stamp = port.raw.get("updated_at") or port.raw.get("created_at")
    if not stamp:
        return 0.0
    when = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (now - when).total_seconds()


class Reconciler:
    def __init__(self, client: NeutronClient, plugging: Plugging, owned: Ownership, *, grace: float,
                 in_use: Callable[[], set[str]], busy: Callable[[], set[str]] = set) -> None:
        """`in_use()` gives the port ids this process holds for Docker or in its pool; `busy()` those
        with background writes queued (their own write repairs or deletes them: not this pass)."""
        self._client = client
        self._plugging = plugging  # nested mode's never reads Open vSwitch
        self._ownership = owned
        self._grace = grace
        self._in_use = in_use
        self._busy = busy
        self._lock = threading.Lock()  # one pass at a time
        self.last_report: Report | None = None
        self.last_good_pass: float | None = None  # time.time() of the last pass without errors

    def run(self, dry_run: bool = False) -> Report:
        """One pass; never raises: what failed is in the report (and, for a bug, in the log
        with its traceback), and the next pass runs as usual."""
        with self._lock:
            calls = neutron.start_call_log()
            report = Report(dry_run)
            try:
                self._pass(report)
            except errors.FAILURES as exc:
                report.errors.append(exc.message)
            except BindingError as exc:
                report.errors.append(str(exc))
            except Exception as exc:  # noqa: BLE001 - a netlink error, a bug: the thread must live on
                LOG.exception("reconcile pass failed")
                report.errors.append(f"{type(exc).__name__}: {exc}")
            LOG.info("%s [neutron: %s]", report.summary(), "; ".join(calls) or "none")
            self.last_report = report
            if not report.errors:
                self.last_good_pass = time.time()
            return report

    def _pass(self, report: Report) -> None:
        # The host first, Neutron second: a veth or OVS port seen here was made after its
        # Neutron port, so that port is in the listing below unless it is really gone.
        veths = veth.list_veths(naming.HOST_VETH_PREFIX)
        plugged = self._plugging.plugged()
        ports = self._client.list_ports(**self._plugging.own_ports_filter())
        by_id = {p.id: p for p in ports}
        held = self._in_use()
        busy = self._busy()
        now = datetime.datetime.now(datetime.timezone.utc)
        plugged = self._unplug_dead(plugged, report)
        self._unplug_orphans(plugged, by_id, report)
        plugged = self._unplug_idle(plugged, by_id, held | busy, now, report)
        self._delete_stray_veths(veths, plugged, by_id, report)
        plugged_ids = {p.port_id for p in plugged}
        unheld: list[Port] = []
        for port in ports:
            if not self._ownership.owner.made(port):
                continue
            if port.id in busy:
                report.kept += 1  # its endpoint's tags or its release are queued: a repair would race them
                continue
            if port.id in plugged_ids:
                report.kept += 1
                self._repair(port, next(p for p in plugged if p.port_id == port.id), report)
            elif port.id in held or port.name == naming.POOL_PORT_NAME:
                report.kept += 1  # handed to Docker and not plugged yet, or waiting in the pool
            elif _age_seconds(port, now) >= self._grace and self._ownership.may_delete(port, Why.UNHELD, held):
                unheld.append(port)
            else:
                report.kept += 1  # too young to judge: Docker may be between calls
        self._delete_unheld(unheld, held, report)

    def _delete_unheld(self, unheld: list[Port], held: set[str], report: Report) -> None:
        """Ports nothing held at the first look; what is plugged is read once more before they
        go (nested mode: a device Docker moved between two namespaces while they were read
        was in neither)."""
        if not unheld:
            return
        again = {p.port_id for p in self._plugging.plugged() if p.where not in report.unplugged}
        for port in unheld:
            if port.id in again:
                report.kept += 1
                continue
            report.deleted.append(port.id)
            if not report.dry_run:
                self._plugging.detach(port)  # a subport or address pair of the VM's port
                self._ownership.delete_port(port, Why.UNHELD, held)

    def _unplug_dead(self, plugged: list[Plugged], report: Report) -> list[Plugged]:
        """OVS ports whose device is gone (the host rebooted): unplugged; the live ones returned."""
        for item in plugged:
            if not item.present:
                report.unplugged.append(item.where)
                if not report.dry_run:
                    self._plugging.unplug_orphan(item)
        return [p for p in plugged if p.present]

    def _unplug_idle(self, plugged: list[Plugged], by_id: dict[str, Port], held: set[str],
                     now: datetime.datetime, report: Report) -> list[Plugged]:
        """Nested mode's devices in no container, for ports this process does not hold and that
        are older than the grace: unplugged (their ports are then judged as nothing holding
        them); the others returned."""
        kept = []
        for item in plugged:
            port = by_id.get(item.port_id)
            if (item.idle and port is not None and port.id not in held
                    and _age_seconds(port, now) >= self._grace):
                report.unplugged.append(item.where)
                if not report.dry_run:
                    self._plugging.unplug_orphan(item)
            else:
                kept.append(item)
        return kept

    def _unplug_orphans(self, plugged: list[Plugged], by_id: dict[str, Port], report: Report) -> None:
        for item in plugged:
            if item.port_id in by_id or self._client.get_port(item.port_id) is not None:
                continue  # bound elsewhere now, or alive: not an orphan
            report.unplugged.append(item.where)
            if not report.dry_run:
                self._plugging.unplug_orphan(item)

    def _delete_stray_veths(self, veths: list[str], plugged: list[Plugged], by_id: dict[str, Port],
                            report: Report) -> None:
        """A tap veth attached to nothing and named after no port bound here (a crash mid-plug)."""
        attached = {p.device for p in plugged}
        live_prefixes = {naming.host_veth_name(pid) for pid in by_id}
        for name in veths:
            if name in attached or name in live_prefixes or name in report.unplugged:
                continue
            report.unplugged.append(name)
            if not report.dry_run:
                veth.delete_pair(name)

    def _repair(self, port: Port, plugged: Plugged, report: Report) -> None:
        """device_id and endpoint tags that the background write never landed."""
        endpoint_id = plugged.endpoint_id
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
        mark = [naming.DEVICE_OWNER, naming.cnm_owner_tag(self._ownership.owner.mark)]
        self._client.set_tags("ports", port.id, list(port.tags) + mark + wanted)
