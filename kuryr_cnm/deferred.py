"""Neutron writes kept off Docker's hot path.

After CreateEndpoint has plugged the container, Neutron still has to learn the
port's device_id and endpoint tags; Docker need not wait for that. The writes run
on a small thread pool, one queue position per port so that a later write to the
same port (reset, delete) can wait for the earlier one first. A write that fails
is logged; the port still works, and the reconciler repairs what is missing.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from kuryr_cnm import neutron

LOG = logging.getLogger(__name__)


class DeferredWrites:
    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="neutron-bg")
        self._lock = threading.Lock()
        self._pending: dict[str, Future[None]] = {}

    def submit(self, key: str, what: str, fn: Callable[[], object]) -> None:
        def run() -> None:
            calls = neutron.start_call_log()
            try:
                fn()
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
        self._pool.shutdown(wait=True, cancel_futures=False)
