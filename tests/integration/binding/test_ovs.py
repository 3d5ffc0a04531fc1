"""vif_type ovs on the real Open vSwitch (br-int, userspace datapath), through one shared Plugger."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from kuryr_cnm.binding import BindingError, HostInterface, Plugger, interface_names
from kuryr_cnm.binding.ovs import OvsPort
from tests import host
from tests.integration.binding.conftest import OVN_DETAILS, assert_nothing_left, kind, link


def _ids(port) -> dict[str, str]:
    return {"iface-id": port.port_id, "attached-mac": port.mac, "vm-uuid": port.endpoint_id,
            "iface-status": "active", "owner": "kuryr"}


def _kuryr_ids(iface: str) -> dict[str, str]:
    """The Interface's external_ids less what ovn-controller adds once it claims the port."""
    ids = host.ovs_iface_external_ids(iface)
    return {k: v for k, v in ids.items() if not k.startswith("ovn-")}


def _ofport(iface: str) -> int:
    return int(host.run(["ovs-vsctl", "get", "Interface", iface, "ofport"]).stdout)


def test_plug_adds_the_host_end_to_br_int_with_exact_external_ids(plugger, make_port):
    port = make_port("ovs")
    iface = plugger.plug(port)
    assert iface.host_name in host.ovs_ports("br-int")
    assert _kuryr_ids(iface.host_name) == _ids(port)
    assert _ofport(iface.host_name) > 0

    plugger.unplug(port)
    assert_nothing_left(port)
    plugger.unplug(port)  # twice is fine


def test_list_kuryr_ports_sees_ours_and_only_ours(plugger, make_port):
    ours = [make_port("ovs") for _ in range(2)]
    foreign = make_port("ovs")
    for port in ours:
        plugger.plug(port)
    foreign_name = interface_names(foreign.port_id).host_name
    host.run(["ip", "tuntap", "add", foreign_name, "mode", "tap"])
    host.run(["ovs-vsctl", "add-port", "br-int", foreign_name, "--", "set", "Interface", foreign_name,
              f"external_ids:iface-id={foreign.port_id}"])

    listed = {p.name: p for p in plugger.list_kuryr_ports("br-int")}
    for port in ours:
        name = interface_names(port.port_id).host_name
        assert listed[name] == OvsPort(name=name, iface_id=port.port_id, vm_uuid=port.endpoint_id,
                                       attached_mac=port.mac)
    assert foreign_name not in listed

    for port in ours:
        plugger.unplug(port)
    left = {p.name for p in plugger.list_kuryr_ports()}
    assert not {interface_names(p.port_id).host_name for p in ours} & left


def test_list_kuryr_ports_of_a_missing_bridge_is_an_error(plugger):
    with pytest.raises(BindingError, match="br-kcnmt-none"):
        plugger.list_kuryr_ports("br-kcnmt-none")


def test_unplug_leaves_an_ovs_port_kuryr_did_not_make(plugger, make_port):
    port = make_port("ovs")
    name = interface_names(port.port_id).host_name
    host.run(["ip", "tuntap", "add", name, "mode", "tap"])  # as nova would, for a VM
    host.run(["ovs-vsctl", "add-port", "br-int", name])
    plugger.unplug(port)
    assert name in host.ovs_ports("br-int") and kind(name) == "tun"


def test_stale_ovs_port_of_the_same_name_is_taken_over(plugger, make_port):
    port = make_port("ovs")
    name = interface_names(port.port_id).host_name
    # a crash left the OVS port; its device is gone, so OVS could not open it
    host.run(["ovs-vsctl", "add-port", "br-int", name, "--", "set", "Interface", name,
              "external_ids:iface-id=stale", "external_ids:owner=kuryr"])
    plugger.plug(port)
    assert _kuryr_ids(name) == _ids(port)
    assert _ofport(name) > 0
    plugger.unplug(port)
    assert_nothing_left(port)


def test_hybrid_plug_makes_and_removes_qbr_qvb_qvo(plugger, make_port):
    port = make_port("ovs", vif_details={**OVN_DETAILS, "ovs_hybrid_plug": True})
    iface = plugger.plug(port)
    short = port.port_id[:11]
    qbr, qvb, qvo = "qbr" + short, "qvb" + short, "qvo" + short
    assert kind(qbr) == "bridge" and "UP" in link(qbr)["flags"]
    assert link(iface.host_name)["master"] == qbr and link(qvb)["master"] == qbr
    assert link(qvb)["link"] == qvo and link(qvo)["mtu"] == link(qvb)["mtu"] == port.mtu
    assert "UP" in link(qvo)["flags"] and "UP" in link(qvb)["flags"]
    ports = host.ovs_ports("br-int")
    assert qvo in ports and iface.host_name not in ports
    assert _kuryr_ids(qvo) == _ids(port)
    assert _ofport(qvo) > 0

    plugger.unplug(port)
    assert_nothing_left(port)
    plugger.unplug(port)


def test_missing_ovs_bridge_fails_and_rolls_back(plugger, make_port):
    port = make_port("ovs", vif_details={**OVN_DETAILS, "bridge_name": "br-kcnmt-none"})
    with pytest.raises(BindingError) as err:
        plugger.plug(port)
    assert "br-kcnmt-none" in str(err.value) and "ovs-vsctl br-exists" in str(err.value)
    assert_nothing_left(port)


def test_missing_ovs_bridge_in_hybrid_plug_rolls_back_the_linux_pieces(plugger, make_port):
    port = make_port("ovs", vif_details={**OVN_DETAILS, "bridge_name": "br-kcnmt-none",
                                         "ovs_hybrid_plug": True})
    with pytest.raises(BindingError):
        plugger.plug(port)
    assert_nothing_left(port)


def test_unreachable_ovsdb_fails_clearly_and_rolls_back(make_port, tmp_path):
    port = make_port("ovs")
    plugger = Plugger(bindir=str(tmp_path), ovsdb_connection="unix:/nonexistent/db.sock")
    with plugger, pytest.raises(BindingError) as err:
        plugger.plug(port)
    assert "cannot reach OVSDB at unix:/nonexistent/db.sock" in str(err.value)
    assert_nothing_left(port)


def test_each_plugger_has_its_own_ovsdb_connection(make_port, tmp_path):
    # ovsdbapp keeps one connection per backend class unless told otherwise: closing
    # one Plugger would then stop the other's connection too
    first = Plugger(bindir=str(tmp_path))
    second = Plugger(bindir=str(tmp_path), ovsdb_timeout=3)
    try:
        for plugger in (first, second):
            port = make_port("ovs")
            plugger.plug(port)
            plugger.unplug(port)
        first.close()
        port = make_port("ovs")
        second.plug(port)
        assert _kuryr_ids(interface_names(port.port_id).host_name) == _ids(port)
        second.unplug(port)
        assert_nothing_left(port)
    finally:
        second.close()
        first.close()


def test_twenty_parallel_plugs_through_one_plugger(plugger, make_port):
    ports = [make_port("ovs", vif_details={**OVN_DETAILS, "ovs_hybrid_plug": i % 4 == 0}) for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        ifaces = list(pool.map(plugger.plug, ports))
    on_bridge = host.ovs_ports("br-int")
    for port, iface in zip(ports, ifaces, strict=True):
        ovs_name = ("qvo" + port.port_id[:11]) if port.vif_details["ovs_hybrid_plug"] else iface.host_name
        assert ovs_name in on_bridge
        assert _kuryr_ids(ovs_name) == _ids(port)
        assert host.link_exists(iface.container_name)
    assert len({p.name for p in plugger.list_kuryr_ports()} & on_bridge) >= 20

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(plugger.unplug, ports))
    for port in ports:
        assert_nothing_left(port)


def test_ovs_port_that_vswitchd_cannot_open_is_an_error(plugger, make_port):
    # the binder alone, on a device that does not exist: OVS takes the row, then fails to open it
    port = make_port("ovs")
    iface = HostInterface(host_name="kcnmt" + port.port_id[:9], container_name="unused")
    binder = plugger.binder_for("ovs")
    try:
        with pytest.raises(BindingError) as err:
            binder.plug(port, iface)
        assert f"OVS could not attach {iface.host_name} to br-int" in str(err.value)
        assert "No such device" in str(err.value)
        binder.unplug(port, iface)  # what Plugger.plug's rollback does
        assert iface.host_name not in host.ovs_ports("br-int")
    finally:
        host.run(["ovs-vsctl", "--if-exists", "del-port", iface.host_name])
