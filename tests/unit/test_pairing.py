"""DualStackPairing: a dual-stack endpoint's v4 and v6 RequestAddress share one port."""
from __future__ import annotations

import threading

import pytest

from kuryr_cnm import pairing
from kuryr_cnm.neutron import Port
from kuryr_cnm.pairing import DualStackPairing
from tests.unit.clock import Clock, fake_clock


def _port(pid: str) -> Port:
    return Port(pid, "", "net", "", (), (), "", "", "", "", {}, "", "")


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return fake_clock(monkeypatch, pairing)


def test_v6_takes_the_port_its_v4_parked():
    pairs = DualStackPairing()
    ticket = pairs.begin("net")
    pairs.park("net", ticket, _port("p1"))
    assert pairs.take("net").id == "p1"
    assert pairs.take("net") is None  # nothing parked: the v6 call makes its own port


def test_second_v4_waits_until_the_first_pair_completes():
    pairs = DualStackPairing()
    pairs.park("net", pairs.begin("net"), _port("p1"))
    began = threading.Event()
    second: list[int] = []

    def second_v4() -> None:
        second.append(pairs.begin("net"))
        began.set()

    t = threading.Thread(target=second_v4)
    t.start()
    assert not began.wait(0.2), "the second v4 went ahead while the first pair was in flight"
    assert pairs.take("net").id == "p1"
    assert began.wait(5)
    t.join(5)
    pairs.park("net", second[0], _port("p2"))
    assert pairs.take("net").id == "p2"


def test_an_expired_port_is_never_offered_to_a_late_v6(clock):
    """After the timeout the next container's v4 goes ahead; the old code still handed the
    expired port (or the next container's, which overwrote it) to whichever v6 came next."""
    pairs = DualStackPairing()
    pairs.park("net", pairs.begin("net"), _port("a"))
    clock.now += pairing.PAIRING_TIMEOUT + 0.1
    assert pairs.take("net") is None
    assert pairs.parked_ports() == {"a"}  # still known (held) until the next pair replaces it
    ticket = pairs.begin("net")  # does not wait: the parked port has expired
    assert pairs.take("net") is None  # B's port is still being made: a late v6 of A gets nothing
    pairs.park("net", ticket, _port("b"))
    assert pairs.take("net").id == "b"


def test_a_stale_ticket_neither_parks_nor_releases_the_current_pair(clock):
    """abort() of a v4 that had given up waiting released the gate the first pair held (and
    locked()-then-release() could raise when two threads did it at once)."""
    pairs = DualStackPairing()
    first = pairs.begin("net")
    pairs.park("net", first, _port("a"))
    clock.now += pairing.PAIRING_TIMEOUT + 0.1
    second = pairs.begin("net")
    pairs.abort("net", first)  # stale: nothing happens, nothing raises
    pairs.park("net", first, _port("stale"))
    pairs.park("net", second, _port("b"))
    assert pairs.take("net").id == "b"
    pairs.abort("net", second)  # already taken: nothing happens
    pairs.abort("net", second)


def test_networks_do_not_wait_for_each_other():
    pairs = DualStackPairing()
    pairs.begin("a")
    done = threading.Event()
    threading.Thread(target=lambda: (pairs.begin("b"), done.set())).start()
    assert done.wait(1)
