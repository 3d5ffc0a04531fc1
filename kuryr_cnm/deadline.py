"""One deadline per Docker request for whatever it waits on (background writes, a pool refill).

Docker has no timeout of its own for a plugin call, but a user waits behind every one: a request
that waits on other work gives up at its deadline and goes on (or fails) with a clear message,
instead of stacking one 30 s wait on another. `app.logged` starts the deadline of each request;
work outside a request (the reconciler, a pool refill) gets a fresh budget each time it asks.
"""
from __future__ import annotations

import contextvars
import time

# What a `docker network rm` after 50 containers may wait for their deletes to land (Neutron here
# deletes 2-4 ports a second when busy): the 30 s the previous whole-queue drain allowed.
REQUEST_BUDGET = 30.0

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)


def start(budget: float = REQUEST_BUDGET) -> float:
    """Begin the current request's budget; returns its deadline (time.monotonic())."""
    deadline = time.monotonic() + budget
    _DEADLINE.set(deadline)
    return deadline


def current() -> float:
    """The deadline of the request being served in this thread, else a fresh budget from now."""
    deadline = _DEADLINE.get()
    return deadline if deadline is not None else time.monotonic() + REQUEST_BUDGET


def remaining() -> float:
    return max(0.0, current() - time.monotonic())
