"""DeferredWrites: transient Neutron failures are retried with backoff, others are not."""
from __future__ import annotations

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


@pytest.mark.parametrize("exc", [errors.Unavailable("Neutron is unreachable"), errors.BackendError("500 boom")])
def test_a_transient_failure_is_retried_until_it_lands(exc):
    writes = DeferredWrites(retry_for=5)
    tries, write = flaky(3, exc)
    writes.submit("p1", "release port p1", write)
    writes.drain(timeout=5)
    assert len(tries) == 4
    writes.shutdown()


@pytest.mark.parametrize("exc", [errors.Conflict("409"), errors.BadRequest("400"), errors.NotFound("404")])
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
    tries, write = flaky(10_000, errors.Unavailable("down"))
    writes.submit("p1", "release port p1", write)
    writes.drain(timeout=5)
    assert 2 <= len(tries) < 50
    assert writes.pending() == 0
    writes.shutdown()
