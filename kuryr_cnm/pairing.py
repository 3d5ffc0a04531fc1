"""Pairing a dual-stack endpoint's v4 and v6 RequestAddress, which Docker does not tie together.

Docker asks for the v4 address, then (after the v4 answer) for the v6 one, with nothing in
either call to say they belong to one endpoint. The v4 call creates one port holding both
addresses and parks it here; the v6 call takes it. One pair is in flight per network at a
time: the next v4 call waits until the parked port is taken, so concurrent containers never
swap halves and no placeholder port is made and deleted.

The state is one record per network under one condition variable, each with a ticket: only
the call that began a pair can park or abort it. A pair whose v6 call never comes (a client
that is not Docker, a Docker that died) expires PAIRING_TIMEOUT after it was parked; its port
is then no longer offered, so a late v6 call makes its own port (and that endpoint fails with a
clear Conflict in CreateEndpoint) instead of taking another container's parked port.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass

from kuryr_cnm import deadline
from kuryr_cnm.neutron import Port

LOG = logging.getLogger(__name__)

# How long a parked v4 port waits for its v6 RequestAddress (Docker sends it at once)
PAIRING_TIMEOUT = 2.0


@dataclass
class _Pair:
    ticket: int
    port: Port | None = None  # None: the v4 call is still making it
    parked_at: float = 0.0


class DualStackPairing:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._pairs: dict[str, _Pair] = {}  # network id -> the pair in flight
        self._tickets = itertools.count(1)

    def begin(self, network_id: str) -> int:
        """Wait for the network's pair in flight to complete (or its parked port to expire, or
        this request's deadline); returns the ticket of the new pair."""
        until = deadline.current()
        with self._changed:
            while (pair := self._pairs.get(network_id)) is not None:
                now = time.monotonic()
                expires = pair.parked_at + PAIRING_TIMEOUT if pair.port is not None else until
                if now >= min(expires, until):
                    LOG.warning("dual-stack pairing on network %s: the v6 request for port %s never came; "
                                "it is no longer offered", network_id, pair.port.id if pair.port else "(being made)")
                    break
                self._changed.wait(min(expires, until) - now)
            ticket = next(self._tickets)
            self._pairs[network_id] = _Pair(ticket)
            return ticket

    def park(self, network_id: str, ticket: int, port: Port) -> None:
        with self._changed:
            pair = self._pairs.get(network_id)
            if pair is not None and pair.ticket == ticket:
                pair.port, pair.parked_at = port, time.monotonic()

    def abort(self, network_id: str, ticket: int) -> None:
        """The v4 call failed: let the next one go."""
        with self._changed:
            pair = self._pairs.get(network_id)
            if pair is not None and pair.ticket == ticket:
                del self._pairs[network_id]
                self._changed.notify_all()

    def take(self, network_id: str) -> Port | None:
        """The parked port for a v6 call, if one is parked and not expired."""
        with self._changed:
            pair = self._pairs.get(network_id)
            if pair is None or pair.port is None or time.monotonic() >= pair.parked_at + PAIRING_TIMEOUT:
                return None
            del self._pairs[network_id]
            self._changed.notify_all()
            return pair.port

    def parked_ports(self) -> set[str]:
        with self._changed:
            return {p.port.id for p in self._pairs.values() if p.port is not None}
