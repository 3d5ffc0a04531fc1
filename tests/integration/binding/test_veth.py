"""The veth pair on the real kernel: MTU, MAC, link state, TX checksum, stale and taken names."""
from __future__ import annotations

import pytest

from kuryr_cnm.binding import BindingError, interface_names
from tests import host
from tests.integration.binding.conftest import assert_nothing_left, kind, link, tx_checksumming


def test_tap_plug_makes_a_configured_veth_pair(plugger, make_port):
    port = make_port("tap", mtu=1400)
    iface = plugger.plug(port)
    assert iface == interface_names(port.port_id)
    outside, inside = link(iface.host_name), link(iface.container_name)
    assert outside["linkinfo"]["info_kind"] == inside["linkinfo"]["info_kind"] == "veth"
    assert outside["link"] == iface.container_name and inside["link"] == iface.host_name  # peers
    assert outside["mtu"] == inside["mtu"] == 1400
    assert inside["address"] == port.mac
    assert "UP" in outside["flags"] and "UP" not in inside["flags"]  # Docker brings the inside up
    assert "master" not in outside  # tap: nothing attached
    assert tx_checksumming(iface.container_name) == "on"  # no OVS userspace datapath here

    plugger.unplug(port)
    assert_nothing_left(port)


def test_netdev_datapath_turns_tx_checksum_off_on_the_container_end(plugger, make_port):
    port = make_port("ovs")  # vif_details say datapath_type netdev
    iface = plugger.plug(port)
    try:
        assert tx_checksumming(iface.container_name) == "off"
        assert tx_checksumming(iface.host_name) == "on"  # not needed on the host end
    finally:
        plugger.unplug(port)
    assert_nothing_left(port)


def test_upper_case_mac_from_neutron_is_set(plugger, make_port):
    port = make_port("tap", mac="FA:16:3E:0A:0B:0C")
    iface = plugger.plug(port)
    assert link(iface.container_name)["address"] == "fa:16:3e:0a:0b:0c"
    plugger.unplug(port)


def test_stale_veth_of_the_same_name_is_replaced(plugger, make_port):
    port = make_port("tap")
    iface = interface_names(port.port_id)
    # a crash left the host end, paired with some other name
    old_peer = "kcnmt" + port.port_id[:8]
    host.run(["ip", "link", "add", iface.host_name, "type", "veth", "peer", "name", old_peer])
    plugger.plug(port)
    assert link(iface.host_name)["link"] == iface.container_name
    assert not host.link_exists(old_peer)
    plugger.unplug(port)
    assert_nothing_left(port)


@pytest.mark.parametrize("end", ["host_name", "container_name"])
@pytest.mark.parametrize("vif_type", ["tap", "ovs"])
def test_name_taken_by_a_non_veth_device_fails_and_leaves_it_alone(plugger, make_port, end, vif_type):
    """A tun/tap of our name (what nova makes for a VM; no dummy module on this kernel)."""
    port = make_port(vif_type)
    iface = interface_names(port.port_id)
    taken = getattr(iface, end)
    host.run(["ip", "tuntap", "add", taken, "mode", "tap"])
    with pytest.raises(BindingError) as err:
        plugger.plug(port)
    assert taken in str(err.value) and "a tun device" in str(err.value) and "ip link del" in str(err.value)
    assert kind(taken) == "tun"  # not ours: untouched
    other = iface.container_name if end == "host_name" else iface.host_name
    assert not host.link_exists(other)
    assert taken not in host.ovs_ports() and iface.host_name not in host.ovs_ports()

    plugger.unplug(port)  # unplug also leaves a device it did not make alone
    assert kind(taken) == "tun"


def test_bad_mtu_is_a_binding_error_and_leaves_nothing(plugger, make_port):
    port = make_port("tap", mtu=70000)  # above veth's maximum
    with pytest.raises(BindingError) as err:
        plugger.plug(port)
    assert "mtu 70000" in str(err.value)
    assert_nothing_left(port)


def test_unplug_twice_and_unplug_of_nothing_are_fine(plugger, make_port):
    port = make_port("tap")
    plugger.unplug(port)  # never plugged
    plugger.plug(port)
    plugger.unplug(port)
    plugger.unplug(port)
    assert_nothing_left(port)
