"""Names and values derived from a Neutron port: pure functions, no host access."""
from __future__ import annotations

import dataclasses

import pytest

from kuryr_cnm.binding import HostInterface, VifPort, interface_names
from kuryr_cnm.binding.bridge import bridge_name
from kuryr_cnm.binding.ovs import external_ids, hybrid_names, is_hybrid

PORT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
OVN_DETAILS = {"port_filter": True, "connectivity": "l2", "ovs_create_tap": True,
               "bridge_name": "br-int", "datapath_type": "netdev", "bound_drivers": {"0": "ovn"}}


def _port(**changes: object) -> VifPort:
    port = VifPort(port_id=PORT_ID, mac="FA:16:3E:AA:BB:CC", network_id="9" * 8 + "-aaaa-bbbb",
                   project_id="proj", endpoint_id="e" * 64, vif_type="ovs",
                   vif_details=OVN_DETAILS, mtu=1442)
    return dataclasses.replace(port, **changes)


def test_interface_names_are_kuryr_libnetworks():
    expected = HostInterface(host_name="tap0f1e2d3c-4b", container_name="t_c0f1e2d3c-4b")
    assert interface_names(PORT_ID) == expected


def test_interface_names_fit_linux_ifnamsiz():
    names = interface_names(PORT_ID)
    assert len(names.host_name) == len(names.container_name) == 14  # Linux allows 15


def test_interface_names_need_a_port_id():
    with pytest.raises(ValueError):
        interface_names("")


def test_hybrid_names_follow_nova():
    names = hybrid_names(PORT_ID)
    assert (names.qbr, names.qvb, names.qvo) == ("qbr0f1e2d3c-4b", "qvb0f1e2d3c-4b", "qvo0f1e2d3c-4b")


def test_external_ids_are_exact():
    assert external_ids(_port()) == {
        "iface-id": PORT_ID, "attached-mac": "fa:16:3e:aa:bb:cc", "vm-uuid": "e" * 64,
        "iface-status": "active", "owner": "kuryr"}


@pytest.mark.parametrize("value,expected", [(True, True), ("True", True), ("true", True),
                                            (False, False), ("False", False), (None, False)])
def test_hybrid_plug_flag(value, expected):
    assert is_hybrid(_port(vif_details={**OVN_DETAILS, "ovs_hybrid_plug": value})) is expected


def test_hybrid_plug_is_off_without_the_key():
    assert not is_hybrid(_port())


def test_userspace_datapath_only_for_netdev():
    assert _port().userspace_datapath
    assert not _port(vif_details={**OVN_DETAILS, "datapath_type": "system"}).userspace_datapath
    assert not _port(vif_details={}).userspace_datapath


def test_bridge_name_defaults_to_brq_and_network_id():
    port = _port(vif_type="bridge", vif_details={}, network_id="1234567890abcdef")
    assert bridge_name(port) == "brq1234567890a"


def test_bridge_name_from_vif_details():
    assert bridge_name(_port(vif_type="bridge", vif_details={"bridge_name": "brfoo"})) == "brfoo"


def test_vif_port_is_immutable_and_hashable():
    port = _port()
    with pytest.raises(dataclasses.FrozenInstanceError):
        port.mtu = 1500  # type: ignore[misc]
    assert hash(port) == hash(_port())  # vif_details (a dict) is left out of the hash
