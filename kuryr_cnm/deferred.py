"""Neutron writes kept off Docker's hot path.

After CreateEndpoint has plugged the container, Neutron still has to learn the
port's device_id and endpoint tags; Docker need not wait for that. The writes run
on a small thread pool, one queue position per port so that a later write to the
same port (reset, delete) can wait for the earlier one first.

A write that fails because Neutron is unreachable or overloaded (`Unavailable`, or
a 5xx) is tried again with a growing pause, for up to `retry_for` seconds, so that
a Neutron outage of a minute or two heals by itself once Neutron is back. Any other
failure, or one that outlasts that window, is logged; the port still works, and the
reconciler repairs or deletes what is left.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from kuryr_cnm import errors, neutron

LOG = logging.getLogger(__name__)

FIRST_PAUSE = 1.0  # seconds before the first retry; doubled each time, at most MAX_PAUSE
MAX_PAUSE = 15.0


def is_transient(exc: BaseException) -> bool:
    """Worth trying again later: Neutron down, timing out, or answering 5xx."""
    return isinstance(exc, errors.Unavailable) or (isinstance(exc, errors.BackendError) and exc.status >= 500)


class DeferredWrites:
    def __init__(self, workers: int = 4, retry_for: float = 180) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="neutron-bg")
        self._lock = threading.Lock()
        self._pending: dict[str, Future[None]] = {}
        self._retry_for = retry_for
        self._closing = threading.Event()

    def _attempt(self, what: str, fn: Callable[[], object]) -> None:
        """Run fn, retrying transient failures with backoff until retry_for has passed."""
        deadline = time.monotonic() + self._retry_for
        pause = FIRST_PAUSE
        while True:
            try:
                fn()
                return
            except errors.PluginError as exc:
                if not is_transient(exc) or time.monotonic() + pause > deadline or self._closing.is_set():
                    raise
                LOG.info("background %s: %s; trying again in %.0f s", what, exc.message, pause)
                self._closing.wait(pause)
                pause = min(pause * 2, MAX_PAUSE)

    def submit(self, key: str, what: str, fn: Callable[[], object]) -> None:
        def run() -> None:
            calls = neutron.start_call_log()
            try:
                self._attempt(what, fn)
                LOG.info("background %s: done [neutron: %s]", what, "; ".join(calls))
            except Exception as exc:  # logged, never raised: nobody waits on Docker's side
                LOG.warning("background %s failed: %s [neutron: %s]; the reconciler will repair it",
                            what, exc, "; ".join(calls))
            finally:
                with self._lock:
                    if self._pending.get(key) is future:
                        del self._pending[key]

        with self._lock:
            future = self._pool.submit(run)
            self._pending[key] = future

    def wait_for(self, key: str, timeout: float = 30) -> None:
        """Let a pending write to `key` land before the caller writes the same object."""
        with self._lock:
            future = self._pending.get(key)
        if future is not None:
            wait([future], timeout=timeout)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def drain(self, timeout: float = 30) -> None:
        with self._lock:
            futures = list(self._pending.values())
        wait(futures, timeout=timeout)

    def shutdown(self) -> None:
        self._closing.set()  # a write still retrying gives up: the reconciler finishes it after restart
        self._pool.shutdown(wait=True, cancel_futures=False)
