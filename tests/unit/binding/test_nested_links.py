"""Nested mode's child devices and the VLAN probe, on a fake kernel that refuses what Linux refuses."""
from __future__ import annotations

import errno

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from kuryr_cnm.binding import BindingError
from kuryr_cnm.binding import nested as links
from tests.unit.binding.fake_netlink import FakeHost, FakeKernel

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


# -- the record: each child's alias names its maker, port and endpoint --------------------------

MARK = "kuryr@vm1"


@pytest.fixture
def host(kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    h = FakeHost(kernel)
    h.install(monkeypatch)
    return h


def test_a_child_is_found_by_its_alias_here_and_inside_a_container(host: FakeHost) -> None:
    links.create_child("t_cport1", "enp0s11", links.VLAN, mac="fa:16:3e:00:00:01", mtu=1450, vlan_id=7,
                       alias=links.child_alias(MARK, "port-1", "ep-1"))
    assert links.children(MARK) == [links.Child("t_cport1", "vlan", "fa:16:3e:00:00:01", "port-1", "ep-1")]
    host.move_into_sandbox("t_cport1", "/run/docker/netns/abc")
    (found,) = links.children(MARK)
    assert (found.name, found.netns, found.port_id, found.where) == (
        "eth0", "/run/docker/netns/abc", "port-1", "eth0 in /run/docker/netns/abc")


def test_only_our_children_count(host: FakeHost) -> None:
    links.create_child("t_cport2", "enp0s11", links.MACVLAN, mac="fa:16:3e:00:00:02", mtu=1450,
                       alias=links.child_alias("kcnm2@vm1", "port-2", "ep-2"))  # another plugin name
    links.create_child("t_cport3", "enp0s11", links.MACVLAN, mac="fa:16:3e:00:00:03", mtu=1450)  # no alias
    with host.own.netlink() as ipr:  # a dummy an operator gave an alias like ours
        ipr.link("add", ifname="d0", kind="dummy")
        ipr.link("set", index=host.own.by_name("d0")["index"], ifalias=links.child_alias(MARK, "p", "e"))
    assert links.children(MARK) == []


def test_a_child_whose_alias_cannot_be_set_is_not_left(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.binding import fake_netlink

    def refuse_alias(self, command, **attrs):  # type: ignore[no-untyped-def]
        if command == "set" and "ifalias" in attrs:
            raise NetlinkError(errno.EPERM, "Operation not permitted")
        return original(self, command, **attrs)
    original = fake_netlink.FakeIPRoute.link
    monkeypatch.setattr(fake_netlink.FakeIPRoute, "link", refuse_alias)
    with pytest.raises(BindingError, match="alias"):
        links.create_child("t_cport4", "enp0s11", links.IPVLAN, mac="", mtu=1450,
                           alias=links.child_alias(MARK, "p", "e"))
    assert "t_cport4" not in host.own.names()


def test_a_child_is_deleted_in_its_namespace_and_a_gone_namespace_is_fine(host: FakeHost) -> None:
    links.create_child("t_cport5", "enp0s11", links.VLAN, mac="fa:16:3e:00:00:05", mtu=1450, vlan_id=9,
                       alias=links.child_alias(MARK, "port-5", "ep-5"))
    host.move_into_sandbox("t_cport5", "/run/docker/netns/c5")
    links.delete_child("eth0", links.VLAN, "/run/docker/netns/c5")
    assert host.others["/run/docker/netns/c5"].by_name("eth0") is None
    links.delete_child("eth0", links.VLAN, "/run/docker/netns/gone")  # the container is gone, and the device


def test_a_namespace_that_cannot_be_read_is_an_error_not_an_absence(host: FakeHost) -> None:
    """Unread, a container's device would look gone, and the reconciler would delete its port."""
    links.create_child("t_cport6", "enp0s11", links.VLAN, mac="fa:16:3e:00:00:06", mtu=1450, vlan_id=6,
                       alias=links.child_alias(MARK, "port-6", "ep-6"))
    host.move_into_sandbox("t_cport6", "/run/docker/netns/c6")
    host.unreadable["/run/docker/netns/c6"] = PermissionError(errno.EPERM, "Operation not permitted")
    with pytest.raises(BindingError, match="run it as root"):
        links.children(MARK)
    host.unreadable["/run/docker/netns/c6"] = FileNotFoundError(errno.ENOENT, "No such file or directory")
    assert links.children(MARK) == []  # the container ended while we looked: its device went with it
