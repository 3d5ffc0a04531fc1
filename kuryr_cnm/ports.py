"""The port ledger: every port this process holds for Docker, in one explicit state, under one lock.

A port enters when RequestAddress hands its address to Docker and leaves when its release
(delete or reset) has landed. In between it is in exactly one state:

    ALLOCATED   RequestAddress answered; its CreateEndpoint has not come (or came from another
                process: then the port is found in Neutron by address)
    PLUGGED     an endpoint holds it (CreateEndpoint, or an endpoint rebuilt after a restart)
    UNPLUGGED   its endpoint was deleted; Docker's ReleaseAddress comes next and needs no lookup
    RELEASING   ReleaseAddress queued its delete (or reset); a --ip for one of its addresses,
                ReleasePool and DeleteNetwork wait for it

A port released while an endpoint still held it (a client out of Docker's order) is
remembered, bounded, so that the endpoint's DeleteEndpoint does not bring it back.
ALLOCATED and UNPLUGGED are left by a lost Docker call (Docker died between RequestAddress and
CreateEndpoint, or before ReleaseAddress): they expire after STALE_AFTER, and the port is then
no longer held, so the reconciler may delete it. Everything here can be rebuilt from Neutron and
the host: a restart loses only what expiry would drop.
"""
from __future__ import annotations

import enum
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from kuryr_cnm.directory import DockerNetwork
from kuryr_cnm.neutron import Port

# A lost CreateEndpoint or ReleaseAddress: Docker sends them within seconds of the call before.
STALE_AFTER = 600.0
RELEASED_MEMORY = 4096  # port ids; each costs ~100 bytes


class State(enum.Enum):
    ALLOCATED = "allocated"
    PLUGGED = "plugged"
    UNPLUGGED = "unplugged"
    RELEASING = "releasing"


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    network: DockerNetwork
    port: Port
    host_ifname: str
    container_ifname: str
    adopted: bool  # a pre-created port: reset, not deleted, on release
    recovered: bool = False  # rebuilt after a restart: what this process did to it is unknown


@dataclass
class _Entry:
    port: Port
    state: State
    since: float = field(default_factory=lambda: time.monotonic())
    endpoint: Endpoint | None = None  # PLUGGED only


class PortLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}  # port id ->
        self._by_address: dict[tuple[str, str], str] = {}  # (network id, ip) -> port id, ALLOCATED/UNPLUGGED
        self._by_endpoint: dict[str, str] = {}  # endpoint id -> port id, PLUGGED
        self._released_from_endpoint: dict[str, None] = {}  # ordered, oldest dropped past the cap

    # -- RequestAddress --
    def allocate(self, port: Port) -> None:
        """Handed to Docker (again: a --ip6 swap updates the port)."""
        with self._lock:
            self._forget(port.id)
            self._enter(port, State.ALLOCATED)

    def address(self, network_id: str, ip: str) -> Port | None:
        """The port handed out (or unplugged, waiting for its release) at this address."""
        with self._lock:
            entry = self._entries.get(self._by_address.get((network_id, ip), ""))
            return entry.port if entry is not None and not self._stale(entry) else None

    # -- CreateEndpoint, DeleteEndpoint --
    def plug(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._forget(endpoint.port.id)
            self._enter(endpoint.port, State.PLUGGED, endpoint)

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        with self._lock:
            entry = self._entries.get(self._by_endpoint.get(endpoint_id, ""))
            return entry.endpoint if entry is not None else None

    def endpoint_holding(self, port_id: str) -> Endpoint | None:
        with self._lock:
            entry = self._entries.get(port_id)
            return entry.endpoint if entry is not None else None

    def unplug(self, endpoint: Endpoint) -> None:
        """Its endpoint is gone; its ReleaseAddress comes next. Not over a newer allocation of the
        same address, not over a release in flight, and never for a port released from under its
        endpoint."""
        port = endpoint.port
        with self._lock:
            entry = self._entries.get(port.id)
            if entry is not None and entry.endpoint is not None and entry.endpoint.endpoint_id == endpoint.endpoint_id:
                self._by_endpoint.pop(endpoint.endpoint_id, None)
                entry.endpoint = None
            if self._released_from_endpoint.pop(port.id, "absent") is None:
                if entry is not None and entry.state is State.PLUGGED:
                    self._forget(port.id)
                return
            if entry is not None and entry.state is State.RELEASING:
                return
            self._forget(port.id)
            if any((port.network_id, f.ip_address) in self._by_address for f in port.fixed_ips):
                return  # the address was handed out again meanwhile
            self._enter(port, State.UNPLUGGED)

    # -- ReleaseAddress --
    def released(self, port: Port, *, by_lookup: bool) -> None:
        """Docker released the port's address. `by_lookup`: it was not in the ledger as handed out
        (an endpoint may still hold it: its device_id may not be written yet), so remember it."""
        with self._lock:
            entry = self._entries.get(port.id)
            if entry is None or entry.state is not State.PLUGGED:
                self._forget(port.id)
            if by_lookup:
                self._released_from_endpoint[port.id] = None
                while len(self._released_from_endpoint) > RELEASED_MEMORY:
                    del self._released_from_endpoint[next(iter(self._released_from_endpoint))]

    def start_release(self, port: Port) -> None:
        """Its delete (or reset) is queued. An endpoint that still holds it (released out of
        Docker's order) keeps it until its DeleteEndpoint."""
        with self._lock:
            entry = self._entries.get(port.id)
            endpoint = entry.endpoint if entry is not None else None
            self._forget(port.id)
            self._enter(port, State.RELEASING, endpoint)

    def end_release(self, port: Port) -> None:
        with self._lock:
            entry = self._entries.get(port.id)
            if entry is None or entry.state is not State.RELEASING:
                return
            if entry.endpoint is not None:  # its DeleteEndpoint has not come: it unplugs the veth
                entry.state, entry.since = State.PLUGGED, time.monotonic()
                return
            self._forget(port.id)

    def releasing(self, network_id: str, ip: str) -> str | None:
        """The port whose queued release holds this address."""
        with self._lock:
            return next((e.port.id for e in self._in(State.RELEASING)
                         if e.port.network_id == network_id and e.port.has_ip(ip)), None)

    def releasing_on(self, network_id: str) -> set[str]:
        with self._lock:
            return {e.port.id for e in self._in(State.RELEASING) if e.port.network_id == network_id}

    # -- for the rest of the process --
    def on_network(self, network_id: str) -> set[str]:
        """Ports of the network this process may still write in the background."""
        with self._lock:
            return {pid for pid, e in self._entries.items()
                    if e.port.network_id == network_id and e.state is not State.PLUGGED}

    def held(self) -> set[str]:
        """Ports that nothing may delete as lost or unheld: handed out, plugged, being released."""
        with self._lock:
            return {pid for pid, e in self._entries.items() if not self._stale(e)}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {s.value: sum(1 for _ in self._in(s)) for s in State}

    # -- under the lock --
    def _enter(self, port: Port, state: State, endpoint: Endpoint | None = None) -> None:
        self._entries[port.id] = _Entry(port, state, endpoint=endpoint)
        if state in (State.ALLOCATED, State.UNPLUGGED):
            for fixed in port.fixed_ips:
                self._by_address[(port.network_id, fixed.ip_address)] = port.id
        if endpoint is not None:
            self._by_endpoint[endpoint.endpoint_id] = port.id

    def _forget(self, port_id: str) -> None:
        entry = self._entries.pop(port_id, None)
        if entry is None:
            return
        for fixed in entry.port.fixed_ips:
            key = (entry.port.network_id, fixed.ip_address)
            if self._by_address.get(key) == port_id:
                del self._by_address[key]
        if entry.endpoint is not None and self._by_endpoint.get(entry.endpoint.endpoint_id) == port_id:
            del self._by_endpoint[entry.endpoint.endpoint_id]

    def _in(self, state: State) -> Iterator[_Entry]:
        return (e for e in self._entries.values() if e.state is state)

    @staticmethod
    def _stale(entry: _Entry) -> bool:
        return entry.state in (State.ALLOCATED, State.UNPLUGGED) and time.monotonic() - entry.since > STALE_AFTER
