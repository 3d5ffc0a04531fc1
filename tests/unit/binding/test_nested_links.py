"""Nested mode's child devices and the VLAN probe, on a fake kernel that refuses what Linux refuses."""
from __future__ import annotations

import errno

import pytest

from kuryr_cnm.binding import BindingError
from kuryr_cnm.binding import nested as links
from tests.unit.binding.fake_netlink import FakeKernel

NIC_MAC = "fa:16:3e:aa:aa:aa"


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    k = FakeKernel()
    k.add_nic("enp0s11", NIC_MAC)
    monkeypatch.setattr(links, "netlink", k.netlink)
    return k


def test_fake_kernel_refuses_a_vlan_on_loopback_as_linux_does(kernel: FakeKernel) -> None:
    with kernel.netlink() as ipr, pytest.raises(Exception) as err:
        ipr.link("add", ifname="v", kind="vlan", link=1, vlan_id=2)
    assert err.value.code == errno.EOPNOTSUPP and "VLANs not supported on device" in str(err.value)


def test_vlan_probe_says_yes_with_8021q_and_leaves_nothing(kernel: FakeKernel) -> None:
    before = kernel.names()
    assert links.vlan_supported() is True  # a dummy parent: link_iface is not needed
    assert kernel.names() == before
    assert kernel.refused == []  # in particular, no VLAN tried on lo


def test_vlan_probe_says_no_without_8021q(kernel: FakeKernel) -> None:
    kernel.modules.discard("8021q")
    before = kernel.names()
    assert links.vlan_supported("enp0s11") is False
    assert kernel.names() == before


def test_vlan_probe_without_dummy_devices_uses_link_iface(kernel: FakeKernel) -> None:
    kernel.modules.discard("dummy")
    before = kernel.names()
    assert links.vlan_supported("enp0s11") is True
    assert kernel.names() == before
    kernel.modules.discard("8021q")
    assert links.vlan_supported("enp0s11") is False
    with pytest.raises(BindingError, match="link_iface"):
        links.vlan_supported("")


def test_vlan_probe_replaces_the_leftover_of_a_killed_probe(kernel: FakeKernel) -> None:
    with kernel.netlink() as ipr:
        ipr.link("add", ifname="kcnm-vprobe", kind="dummy")
    assert links.vlan_supported("enp0s11") is True
    assert "kcnm-vprobe" not in kernel.names()
