"""A kernel's table of network devices behind the part of pyroute2's IPRoute that binding uses.

`FakeKernel` holds the devices of one namespace; `kernel.netlink` stands in for
`binding.veth.netlink()` (monkeypatch it where the module under test imported it). It
answers as Linux 6.1 does (read from net/core/rtnetlink.c, net/8021q/vlan.c,
drivers/net/ipvlan/ipvlan_main.c):
* a device kind whose module is not loaded: EOPNOTSUPP "Unknown device type" (rtnl_newlink);
* a VLAN on a VLAN-challenged device (loopback is one): EOPNOTSUPP "8021q: VLANs not
  supported on device" (vlan_check_real_dev), whether 8021q is loaded or not; a second
  VLAN of one id on one parent: EEXIST "8021q: VLAN device already exists";
* an ipvlan child takes its parent's MAC whatever address it is given (ipvlan_link_new);
* a name in use: EEXIST; get or delete of a missing device: ENODEV;
* deleting a device deletes its VLAN, macvlan and ipvlan children.
"""
from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

MODULE_OF = {"vlan": "8021q"}  # the module that registers a link kind, when it is not the kind's name
CHILD_KINDS = ("vlan", "macvlan", "ipvlan")


class Link(dict):
    """An ifinfmsg as binding reads one: link["index"], link.get("ifname"), link.get(("linkinfo", "kind"))."""

    def get(self, key: Any, default: Any = None) -> Any:
        if key == ("linkinfo", "kind"):
            return self["kind"] or default
        return super().get(key, default)


class FakeKernel:
    def __init__(self, modules: tuple[str, ...] = ("dummy", "8021q", "macvlan", "ipvlan", "veth")) -> None:
        self.modules = set(modules)
        self.links: dict[int, Link] = {}
        self._next_index = 1
        self.refused: list[tuple[str, int, str]] = []  # (ifname, errno, message) of each refused add
        self._make(ifname="lo", kind=None, address="00:00:00:00:00:00", vlan_challenged=True)

    def add_nic(self, name: str, mac: str) -> Link:
        """A physical NIC (the VM's)."""
        return self._make(ifname=name, kind=None, address=mac)

    def names(self) -> set[str]:
        return {str(link["ifname"]) for link in self.links.values()}

    def by_name(self, name: str) -> Link | None:
        return next((link for link in self.links.values() if link["ifname"] == name), None)

    @contextmanager
    def netlink(self) -> Iterator[FakeIPRoute]:
        yield FakeIPRoute(self)

    def _make(self, **attrs: Any) -> Link:
        link = Link(index=self._next_index, **attrs)
        self.links[link["index"]] = link
        self._next_index += 1
        return link


class FakeIPRoute:
    def __init__(self, kernel: FakeKernel) -> None:
        self._kernel = kernel

    def get_links(self) -> list[Link]:
        return list(self._kernel.links.values())

    def link(self, command: str, **attrs: Any) -> list[Link] | None:
        kernel = self._kernel
        if command == "get":
            found = kernel.by_name(attrs["ifname"]) if "ifname" in attrs else kernel.links.get(attrs["index"])
            if found is None:
                raise NetlinkError(errno.ENODEV, "No such device")
            return [found]
        if command == "del":
            self._delete(attrs["index"])
            return None
        if command == "set":
            link = kernel.links.get(attrs.pop("index"))
            if link is None:
                raise NetlinkError(errno.ENODEV, "No such device")
            link.update(attrs)
            return None
        if command == "add":
            self._add(dict(attrs))
            return None
        raise AssertionError(f"FakeIPRoute does not model link({command!r})")

    def close(self) -> None:
        pass

    def _add(self, attrs: dict[str, Any]) -> None:
        kernel = self._kernel
        name, kind = attrs.pop("ifname"), attrs.pop("kind")
        try:
            if MODULE_OF.get(kind, kind) not in kernel.modules:
                raise NetlinkError(errno.EOPNOTSUPP, "Unknown device type")
            if kernel.by_name(name) is not None:
                raise NetlinkError(errno.EEXIST, "File exists")
            parent = None
            if kind in CHILD_KINDS:
                parent = kernel.links.get(attrs.get("link", 0))
                if parent is None:
                    raise NetlinkError(errno.ENODEV, "No such device")
            if kind == "vlan":
                assert parent is not None
                if parent.get("vlan_challenged"):
                    raise NetlinkError(errno.EOPNOTSUPP, "8021q: VLANs not supported on device")
                if any(c.get("link") == parent["index"] and c.get("vlan_id") == attrs["vlan_id"]
                       for c in kernel.links.values() if c["kind"] == "vlan"):
                    raise NetlinkError(errno.EEXIST, "8021q: VLAN device already exists")
        except NetlinkError as exc:
            kernel.refused.append((name, exc.code, str(exc)))
            raise
        if kind == "ipvlan":
            assert parent is not None
            attrs["address"] = parent["address"]
        attrs.setdefault("address", "02:00:00:00:00:%02x" % kernel._next_index)
        kernel._make(ifname=name, kind=kind, **attrs)

    def _delete(self, index: int) -> None:
        kernel = self._kernel
        if kernel.links.pop(index, None) is None:
            raise NetlinkError(errno.ENODEV, "No such device")
        for child in [c for c in kernel.links.values() if c["kind"] in CHILD_KINDS and c.get("link") == index]:
            kernel.links.pop(child["index"], None)


class FakeHost:
    """A host's network namespaces, each a FakeKernel: the plugin's own (`own`) and the
    containers' (`others`, by path), behind binding.namespaces and binding.nested's netlink
    (`install`). Docker's move of a device into a sandbox keeps its alias, as Linux does."""

    def __init__(self, own: FakeKernel) -> None:
        self.own = own
        self.others: dict[str, FakeKernel] = {}
        self.unreadable: dict[str, OSError] = {}  # namespaces setns(2) fails on, and how
        self._current = own

    def netlink(self):  # type: ignore[no-untyped-def]
        return self._current.netlink()

    def install(self, monkeypatch: Any) -> None:
        from kuryr_cnm.binding import namespaces
        from kuryr_cnm.binding import nested as links
        monkeypatch.setattr(links, "netlink", self.netlink)
        monkeypatch.setattr(namespaces, "other_namespaces", lambda: list(self.others))
        monkeypatch.setattr(namespaces, "in_each", self.in_each)

    def in_each(self, paths: list[str], work: Any) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for path in paths:
            if path not in self.others or path in self.unreadable:
                results[path] = self.unreadable.get(path) or FileNotFoundError(2, "No such file or directory", path)
                continue
            self._current = self.others[path]
            try:
                results[path] = work(path)
            except Exception as exc:  # noqa: BLE001 - as binding.namespaces.in_each hands it over
                results[path] = exc
            finally:
                self._current = self.own
        return results

    def move_into_sandbox(self, name: str, path: str, new_name: str = "eth0") -> Link:
        """What Docker does at Join: the device into the container's namespace, renamed."""
        link = self.own.by_name(name)
        assert link is not None, name
        kernel = self.others.setdefault(path, FakeKernel())
        del self.own.links[link["index"]]
        moved = kernel._make(**{**{k: v for k, v in link.items() if k != "index"}, "ifname": new_name})
        return moved

    def remove_sandbox(self, path: str) -> None:
        """The container stopped: its namespace goes, and its virtual devices with it."""
        del self.others[path]
