"""DeferredWrites: per-key order, waiting on some keys only, and retries of transient Neutron failures."""
from __future__ import annotations

import threading
import time

import pytest

from kuryr_cnm import deferred, errors
from kuryr_cnm.deferred import DeferredWrites


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(deferred, "FIRST_PAUSE", 0.01)
    monkeypatch.setattr(deferred, "MAX_PAUSE", 0.02)


def flaky(failures: int, exc: Exception) -> tuple[list[int], callable]:
    tries: list[int] = []

    def write() -> None:
        tries.append(1)
        if len(tries) <= failures:
            raise exc
    return tries, write


@pytest.mark.parametrize("exc", [errors.NeutronUnavailable("PUT /ports/p1", "Neutron is unreachable"),
                                 errors.neutron_error(500, "PUT /ports/p1", "boom")])
def test_a_transient_failure_is_retried_until_it_lands(exc):
    writes = DeferredWrites(retry_for=5)
    tries, write = flaky(3, exc)
    writes.submit("p1", "release port p1", write)
    writes.drain(timeout=5)
    assert len(tries) == 4
    writes.shutdown()


@pytest.mark.parametrize("exc", [errors.neutron_error(s, "PUT /ports/p1", str(s)) for s in (409, 400, 404, 401)])
def test_a_refusal_is_not_retried(exc, caplog):
    writes = DeferredWrites(retry_for=5)
    tries, write = flaky(3, exc)
    writes.submit("p1", "release port p1", write)
    writes.drain(timeout=5)
    assert len(tries) == 1
    assert "the reconciler will repair it" in caplog.text
    writes.shutdown()


def test_retries_stop_after_the_window():
    writes = DeferredWrites(retry_for=0.1)
    tries, write = flaky(10_000, errors.NeutronUnavailable("PUT /ports/p1", "down"))
    writes.submit("p1", "release port p1", write)
    writes.drain(timeout=5)
    assert 2 <= len(tries) < 50
    assert writes.pending() == 0
    writes.shutdown()


# --- per-key ordering and waiting on keys ------------------------------------------------
# Synchronisation is by Events only; a generous WAIT bounds each wait so that a broken
# implementation fails instead of hanging. No test sleeps.

WAIT = 5.0


def blocker(log: list[str], name: str) -> tuple[threading.Event, threading.Event, callable]:
    """A job that says when it started and then blocks until released."""
    started, release = threading.Event(), threading.Event()

    def job() -> None:
        log.append(f"{name} start")
        started.set()
        assert release.wait(WAIT), f"{name} was never released"
        log.append(f"{name} end")
    return started, release, job


def recorder(log: list[str], name: str, event: threading.Event | None = None) -> callable:
    def job() -> None:
        log.append(name)
        if event is not None:
            event.set()
    return job


def test_jobs_of_one_key_run_one_at_a_time_in_submission_order():
    """A reset of a port must not land before (or while) that port's earlier tag write runs."""
    writes = DeferredWrites(workers=2)
    log: list[str] = []
    a_started, a_release, a = blocker(log, "A")
    b_started = threading.Event()
    c_started = threading.Event()
    try:
        writes.submit("k", "A", a)
        assert a_started.wait(WAIT)
        writes.submit("k", "B", recorder(log, "B", b_started))
        # C, of another key, is submitted after B: once C has run, a worker was free for B,
        # so B not having started means it is held back behind A, not merely not scheduled yet
        writes.submit("other", "C", recorder(log, "C", c_started))
        assert c_started.wait(WAIT)
        assert not b_started.is_set(), f"B started while A of the same key was still running: {log}"
        assert writes.pending_keys() == {"k"}
        assert writes.pending() == 1
        a_release.set()
        assert writes.wait_for(["k"], time.monotonic() + WAIT)
        assert [e for e in log if e != "C"] == ["A start", "A end", "B"]
        assert writes.pending() == 0
    finally:
        a_release.set()
        writes.shutdown()


def test_many_jobs_of_one_key_keep_their_order():
    writes = DeferredWrites(workers=4)
    log: list[str] = []
    try:
        for i in range(50):
            writes.submit("k", f"job {i}", recorder(log, str(i)))
        assert writes.wait_for(["k"], time.monotonic() + WAIT)
        assert log == [str(i) for i in range(50)]
    finally:
        writes.shutdown()


def test_a_blocked_key_with_queued_work_holds_up_no_other_key():
    """Work queued behind a blocked key waits in its queue, not on a worker: with two
    workers, one busy on the blocked key, every other key's job still runs."""
    writes = DeferredWrites(workers=2)
    log: list[str] = []
    a_started, a_release, a = blocker(log, "A")
    others = [threading.Event() for _ in range(5)]
    try:
        writes.submit("k", "A", a)
        assert a_started.wait(WAIT)
        for i in range(3):
            writes.submit("k", f"k{i}", recorder(log, f"k{i}"))
        for i, done in enumerate(others):
            writes.submit(f"other{i}", f"o{i}", recorder(log, f"o{i}", done))
        assert all(done.wait(WAIT) for done in others), f"another key was held up: {log}"
        assert writes.wait_for([f"other{i}" for i in range(5)], time.monotonic() + WAIT)
        assert writes.pending_keys() == {"k"}
        assert log[0] == "A start" and not any(e.startswith("k") for e in log)
        a_release.set()
        assert writes.wait_for(["k"], time.monotonic() + WAIT)
        assert [e for e in log if not e.startswith("o")] == ["A start", "A end", "k0", "k1", "k2"]
    finally:
        a_release.set()
        writes.shutdown()


@pytest.mark.parametrize("exc", [RuntimeError("bug"), errors.neutron_error(409, "PUT /ports/p1", "409"),
                                 errors.NeutronUnavailable("PUT /ports/p1", "down")])
def test_a_job_that_raises_does_not_stop_the_later_jobs_of_its_key(exc, caplog):
    writes = DeferredWrites(workers=2, retry_for=0)
    log: list[str] = []
    a_started, a_release, a = blocker(log, "A")

    def failing() -> None:
        log.append("fails")
        raise exc
    try:
        writes.submit("k", "A", a)
        assert a_started.wait(WAIT)
        writes.submit("k", "failing write", failing)
        writes.submit("k", "B", recorder(log, "B"))
        a_release.set()
        assert writes.wait_for(["k"], time.monotonic() + WAIT)
        assert log == ["A start", "A end", "fails", "B"]
        assert "background failing write failed" in caplog.text
        assert writes.pending() == 0
    finally:
        a_release.set()
        writes.shutdown()


def test_wait_for_a_key_does_not_wait_for_a_blocked_other_key():
    writes = DeferredWrites(workers=2)
    log: list[str] = []
    y_started, y_release, y = blocker(log, "Y")
    try:
        writes.submit("y", "Y", y)
        assert y_started.wait(WAIT)
        writes.submit("x", "X", recorder(log, "X"))
        # y stays blocked until after wait_for returns: waiting on y would return False
        assert writes.wait_for(["x"], time.monotonic() + WAIT) is True
        assert "X" in log and "Y end" not in log
        assert writes.pending_keys() == {"y"}
        assert writes.wait_for([], time.monotonic() + WAIT) is True
        assert writes.wait_for(["never-submitted"], time.monotonic() + WAIT) is True
    finally:
        y_release.set()
        writes.shutdown()


class _SpyCondition(threading.Condition):
    """DeferredWrites' condition, telling when a waiter has gone to sleep on it (white-box:
    lets a test release a job only after wait_for has noted what it waits for)."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_wait_for_waits_for_every_job_queued_so_far_for_its_keys():
    writes = DeferredWrites(workers=2)
    writes._changed = spy = _SpyCondition(writes._lock)
    log: list[str] = []
    a_started, a_release, a = blocker(log, "A")
    b_started, b_release, b = blocker(log, "B")
    result: list[tuple[bool, list[str]]] = []
    try:
        writes.submit("k", "A", a)
        writes.submit("k", "B", b)
        writes.submit("j", "J", recorder(log, "J"))
        assert a_started.wait(WAIT)
        waiter = threading.Thread(
            target=lambda: result.append((writes.wait_for(["k", "j"], time.monotonic() + WAIT), list(log))))
        waiter.start()
        assert spy.waiting.wait(WAIT)  # wait_for has taken its snapshot: A and B both still to land
        a_release.set()
        assert b_started.wait(WAIT)
        b_release.set()
        waiter.join(WAIT)
        assert not waiter.is_alive()
        landed, seen = result[0]
        assert landed is True
        assert {"A end", "B end", "J"} <= set(seen), f"wait_for returned before all of k had landed: {seen}"
    finally:
        a_release.set()
        b_release.set()
        writes.shutdown()


def test_wait_for_gives_up_at_the_deadline_while_its_key_blocks():
    writes = DeferredWrites(workers=2)
    log: list[str] = []
    k_started, k_release, k = blocker(log, "K")
    try:
        writes.submit("k", "K", k)
        assert k_started.wait(WAIT)
        deadline = time.monotonic() + 0.1
        assert writes.wait_for(["k"], deadline) is False
        assert time.monotonic() >= deadline
        assert writes.wait_for(["k"], time.monotonic() - 1) is False  # a past deadline: no wait
        assert writes.pending_keys() == {"k"} and "K end" not in log
        k_release.set()
        assert writes.wait_for(["k"], time.monotonic() + WAIT) is True
    finally:
        k_release.set()
        writes.shutdown()


def test_wait_for_refuses_a_bare_key():
    """wait_for("port-id", ...) would wait on each character of the id."""
    writes = DeferredWrites()
    try:
        with pytest.raises(TypeError):
            writes.wait_for("p1", time.monotonic() + WAIT)
    finally:
        writes.shutdown()


def test_drain_waits_for_every_key_and_times_out_on_a_blocked_one():
    writes = DeferredWrites(workers=2)
    log: list[str] = []
    k_started, k_release, k = blocker(log, "K")
    try:
        writes.submit("k", "K", k)
        writes.submit("j", "J", recorder(log, "J"))
        assert k_started.wait(WAIT)
        assert writes.drain(timeout=0.05) is False
        k_release.set()
        assert writes.drain(timeout=WAIT) is True
        assert set(log) == {"K start", "K end", "J"} and writes.pending() == 0
    finally:
        k_release.set()
        writes.shutdown()


def test_submit_is_refused_once_shut_down():
    writes = DeferredWrites()
    writes.shutdown()
    with pytest.raises(RuntimeError):
        writes.submit("k", "late write", lambda: None)
    assert writes.pending() == 0


def test_a_superseding_write_drops_the_queued_ones_of_its_key():
    """A release queued behind its port's tag write made both requests; the delete makes the
    tag write pointless (50 stops then `docker network rm` waited for 100 writes, not 50)."""
    import threading
    writes = DeferredWrites(workers=1, retry_for=1)
    gate, ran = threading.Event(), []
    writes.submit("other", "blocker", lambda: gate.wait(5))  # the one worker is busy
    writes.submit("p1", "record endpoint", lambda: ran.append("record"))
    dropped_done = []
    writes.submit("p1", "record endpoint again", lambda: ran.append("record2"), done=lambda: dropped_done.append(1))
    writes.submit("p1", "release port p1", lambda: ran.append("release"), supersedes=True)
    gate.set()
    assert writes.drain(timeout=5)
    assert ran == ["release"] and dropped_done == [1] and writes.pending() == 0
    writes.shutdown()
