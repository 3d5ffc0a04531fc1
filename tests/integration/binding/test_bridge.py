"""vif_type bridge with real Linux bridges: create, share, delete only what kuryr made."""
from __future__ import annotations

import pytest

from kuryr_cnm.binding import BindingError
from tests import host
from tests.integration.binding.conftest import assert_nothing_left, kind, link


def _sysfs(bridge: str, attr: str) -> str:
    with open(f"/sys/class/net/{bridge}/bridge/{attr}") as f:
        return f.read().strip()


def test_brq_bridge_is_made_shared_and_deleted_with_its_last_port(plugger, make_port):
    first = make_port("bridge")
    second = make_port("bridge", network_id=first.network_id)
    bridge = "brq" + first.network_id[:11]
    host_names = [plugger.plug(p).host_name for p in (first, second)]
    try:
        assert kind(bridge) == "bridge" and "UP" in link(bridge)["flags"]
        assert link(bridge)["ifalias"] == "kuryr-cnm"
        assert _sysfs(bridge, "stp_state") == "0" and _sysfs(bridge, "forward_delay") == "0"
        for name in host_names:
            assert link(name)["master"] == bridge and "UP" in link(name)["flags"]

        plugger.unplug(first)
        assert host.link_exists(bridge)  # the second port still uses it
        assert link(host_names[1])["master"] == bridge
    finally:
        plugger.unplug(second)
    assert not host.link_exists(bridge)
    assert_nothing_left(first)
    assert_nothing_left(second)
    plugger.unplug(second)


def test_existing_bridge_from_vif_details_is_used_and_kept(plugger, make_port, cleanup, unique):
    bridge = f"kcnmt-br{unique[:6]}"
    host.run(["ip", "link", "add", bridge, "type", "bridge"])
    cleanup(lambda: host.run(["ip", "link", "del", bridge], check=False))
    port = make_port("bridge", vif_details={"bridge_name": bridge})
    iface = plugger.plug(port)
    assert link(iface.host_name)["master"] == bridge

    plugger.unplug(port)
    assert kind(bridge) == "bridge"  # not kuryr's: kept, even empty
    assert_nothing_left(port)


def test_bridge_name_taken_by_another_kind_fails_and_rolls_back(plugger, make_port, cleanup):
    port = make_port("bridge")
    taken = "brq" + port.network_id[:11]
    host.run(["ip", "tuntap", "add", taken, "mode", "tap"])
    cleanup(lambda: host.run(["ip", "link", "del", taken], check=False))
    with pytest.raises(BindingError) as err:
        plugger.plug(port)
    assert taken in str(err.value) and "not a Linux bridge" in str(err.value)
    assert kind(taken) == "tun"
    assert_nothing_left(port)


def test_host_end_released_before_the_veth_goes(plugger, make_port):
    port = make_port("bridge")
    iface = plugger.plug(port)
    plugger.binder_for("bridge").unplug(port, iface)  # the binder's half of unplug alone
    assert host.link_exists(iface.host_name) and "master" not in link(iface.host_name)
    plugger.unplug(port)
    assert_nothing_left(port)
