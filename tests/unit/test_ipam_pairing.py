import threading
import time

from kuryr_cnm import ipam_driver
from kuryr_cnm.ipam_driver import DualStackPairing
from kuryr_cnm.neutron import Port


def _port(pid: str) -> Port:
    return Port(pid, "", "net", "", (), (), "", "", "", "", {}, "", "")


def test_v6_takes_the_port_its_v4_parked():
    pairing = DualStackPairing()
    pairing.begin("net")
    pairing.park("net", _port("p1"))
    assert pairing.take("net").id == "p1"
    assert pairing.take("net") is None  # nothing parked: the v6 call makes its own port


def test_second_v4_waits_until_the_first_pair_completes():
    pairing = DualStackPairing()
    pairing.begin("net")
    pairing.park("net", _port("p1"))
    order = []

    def second():
        pairing.begin("net")
        order.append("second v4")
        pairing.park("net", _port("p2"))

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.1)
    order.append("first v6")
    assert pairing.take("net").id == "p1"
    t.join(timeout=5)
    assert order == ["first v6", "second v4"]
    assert pairing.take("net").id == "p2"


def test_a_v6_that_never_comes_does_not_block_forever(monkeypatch):
    monkeypatch.setattr(ipam_driver, "PAIRING_TIMEOUT", 0.2)
    pairing = DualStackPairing()
    pairing.begin("net")
    pairing.park("net", _port("p1"))
    started = time.monotonic()
    pairing.begin("net")  # gives up waiting after the timeout
    assert time.monotonic() - started < 2


def test_networks_do_not_wait_for_each_other():
    pairing = DualStackPairing()
    pairing.begin("a")
    started = time.monotonic()
    pairing.begin("b")
    assert time.monotonic() - started < 0.1
