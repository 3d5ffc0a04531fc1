"""Neutron writes kept off Docker's hot path.

After CreateEndpoint has plugged the container, Neutron still has to learn the
port's device_id and endpoint tags; Docker need not wait for that. Each write is
submitted with a key (the port's id) and queued behind the earlier writes of that
key: a key's writes run one at a time in submission order, on at most one worker
of a small pool, while other keys' writes run on the other workers. A request that
is about to touch some ports waits (`wait_for`) for their queued writes only.

A write that fails because Neutron is unreachable or overloaded (`Unavailable`, or
a 5xx) is tried again with a growing pause, for up to `retry_for` seconds, so that
a Neutron outage of a minute or two heals by itself once Neutron is back. Any other
failure, or one that outlasts that window, is logged and the key's next write runs;
the port still works, and the reconciler repairs or deletes what is left.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from kuryr_cnm import deadline, errors, neutron

LOG = logging.getLogger(__name__)

FIRST_PAUSE = 1.0  # seconds before the first retry; doubled each time, at most MAX_PAUSE
MAX_PAUSE = 15.0


def is_transient(exc: BaseException) -> bool:
    """Worth trying again later: Neutron down, timing out, or answering 5xx."""
    return isinstance(exc, (errors.NeutronUnavailable, errors.NeutronServerError))


def _quietly(what: str, done: Callable[[], object]) -> None:
    try:
        done()
    except Exception:  # noqa: BLE001 - the caller's bookkeeping must not strand the key's queue
        LOG.exception("background %s: its completion step failed", what)


class _Queue:
    """One key's writes not finished yet. `submitted` and `finished` only grow, so a
    waiter that noted `submitted` knows its writes have landed once `finished` reaches it."""
    __slots__ = ("finished", "jobs", "submitted")

    def __init__(self) -> None:
        self.jobs: deque[tuple[str, Callable[[], object], Callable[[], object] | None]] = deque()
        self.submitted = 0
        self.finished = 0


class DeferredWrites:
    def __init__(self, workers: int = 4, retry_for: float = 180) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="neutron-bg")
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified whenever a write finishes
        # a key is here from its first queued write until its queue is empty and its last
        # write finished; exactly one pool task serves it meanwhile
        self._queues: dict[str, _Queue] = {}
        self._retry_for = retry_for
        self._closing = threading.Event()

    def _attempt(self, what: str, fn: Callable[[], object]) -> None:
        """Run fn, retrying transient failures with backoff until retry_for has passed."""
        give_up_at = time.monotonic() + self._retry_for
        pause = FIRST_PAUSE
        while True:
            try:
                fn()
                return
            except errors.FAILURES as exc:
                if not is_transient(exc) or time.monotonic() + pause > give_up_at or self._closing.is_set():
                    raise
                LOG.info("background %s: %s; trying again in %.0f s", what, exc.message, pause)
                self._closing.wait(pause)
                pause = min(pause * 2, MAX_PAUSE)

    def _run(self, what: str, fn: Callable[[], object]) -> None:
        calls = neutron.start_call_log()
        try:
            self._attempt(what, fn)
            LOG.info("background %s: done [neutron: %s]", what, "; ".join(calls))
        except Exception as exc:  # noqa: BLE001 - logged, never raised: nobody waits on Docker's side
            LOG.warning("background %s failed: %s [neutron: %s]; the reconciler will repair it",
                        what, exc, "; ".join(calls))
        except BaseException:  # not even that may leave the key's later writes stranded
            LOG.exception("background %s aborted [neutron: %s]", what, "; ".join(calls))

    def _serve(self, key: str, queue: _Queue) -> None:
        """The one task serving `key`: its writes in order, until its queue is empty."""
        while True:
            with self._lock:
                if not queue.jobs:
                    del self._queues[key]
                    return
                what, fn, done = queue.jobs.popleft()  # popped, not done: the key stays pending
            try:
                self._run(what, fn)
                if done is not None:
                    _quietly(what, done)
            finally:
                with self._lock:
                    queue.finished += 1
                    self._changed.notify_all()

    def submit(self, key: str, what: str, fn: Callable[[], object], done: Callable[[], object] | None = None,
               *, supersedes: bool = False) -> None:
        """Queue fn behind the earlier writes of `key`; `done()` runs once fn has landed or been
        given up, after all its retries (not after each attempt). `supersedes`: the writes of `key`
        still queued (not started) are dropped, as fn makes them pointless (a delete after a tag
        write). RuntimeError once shutdown() began."""
        with self._lock:
            if self._closing.is_set():
                raise RuntimeError("DeferredWrites is shut down")
            queue = self._queues.get(key)
            if queue is None:
                queue = _Queue()
                self._pool.submit(self._serve, key, queue)  # raises once shut down: nothing queued
                self._queues[key] = queue
            if supersedes:
                for dropped, _fn, dropped_done in queue.jobs:
                    LOG.info("background %s: dropped, %s supersedes it", dropped, what)
                    if dropped_done is not None:
                        _quietly(dropped, dropped_done)
                queue.finished += len(queue.jobs)
                queue.jobs.clear()
            queue.jobs.append((what, fn, done))
            queue.submitted += 1

    def wait_for(self, keys: Iterable[str], deadline: float) -> bool:
        """Wait until every write queued so far for `keys` has finished (True), or until the
        time.monotonic() value `deadline` has passed (False). Other keys are not waited on."""
        if isinstance(keys, str):
            raise TypeError("wait_for takes an iterable of keys, not one key")
        with self._changed:
            return self._wait(set(keys), deadline)

    def settle(self, keys: Iterable[str], why: str) -> bool:
        """wait_for under the deadline of the Docker request being served; a warning if it
        passed (the caller goes on: Neutron answers what is still in the way)."""
        keys = set(keys)
        if self.wait_for(keys, deadline.current()):
            return True
        LOG.warning("%s: background writes to %s had not landed by the request's deadline; going on",
                    why, ", ".join(sorted(keys)[:5]))
        return False

    def _wait(self, keys: Iterable[str], deadline: float) -> bool:  # holding self._lock
        targets = [(q, q.submitted) for q in (self._queues.get(k) for k in keys) if q is not None]
        while not all(q.finished >= n for q, n in targets):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.wait(left)
        return True

    def pending_keys(self) -> set[str]:
        """The keys with writes queued or running."""
        with self._lock:
            return set(self._queues)

    def pending(self) -> int:
        """How many keys have writes queued or running."""
        with self._lock:
            return len(self._queues)

    def drain(self, timeout: float = 30) -> bool:
        """Wait up to `timeout` seconds for every write queued so far, of every key."""
        deadline = time.monotonic() + timeout
        with self._changed:
            return self._wait(list(self._queues), deadline)

    def shutdown(self) -> None:
        self._closing.set()  # a write still retrying gives up: the reconciler finishes it after restart
        self._pool.shutdown(wait=True, cancel_futures=False)  # queued writes still get one try
