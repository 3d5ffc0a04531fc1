"""The veth pair between a container and the host, made with pyroute2's IPRoute.

Decisions:
* The container end gets the port's MAC and the MTU, and is left DOWN. Docker moves
  it into the sandbox (which takes a link down anyway), renames it and brings it up
  once its addresses are set. Bringing it up here would only let the host's kernel
  send IPv6 router solicitations and DAD probes with the port's MAC from the wrong
  namespace before the container exists.
* The host end gets the MTU and is brought UP: the binder attaches it right away.
* TX checksum offload is turned off on the container end when asked (the OVS
  userspace datapath does not complete partial checksums: ping works, TCP does not),
  with the SIOCETHTOOL ioctl (ETHTOOL_STXCSUM, as `ethtool -K <dev> tx off`) through
  pyroute2's ioctl wrapper. The setting is a device feature, so it survives Docker's
  move into the sandbox and the rename.
* A name already taken by a veth is a leftover of ours (a crash between plug and
  unplug: the names derive from the port id) and is deleted and made again. A name
  taken by any other kind of device is not ours: plugging fails and touches nothing.

pyroute2 0.9: the synchronous IPRoute drives its own asyncio loop, so one instance
must never be used by two threads at once. Each operation opens its own socket
(`netlink()`, well under a millisecond) instead of sharing one.
"""
from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pyroute2 import IPRoute
from pyroute2.ethtool.ioctl import IoctlEthtool
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from kuryr_cnm.binding import BindingError

LOG = logging.getLogger(__name__)

VETH = "veth"


@contextmanager
def netlink() -> Iterator[IPRoute]:
    """An rtnetlink socket for one operation in one thread (no multicast groups)."""
    ipr = IPRoute(groups=0)
    try:
        yield ipr
    finally:
        ipr.close()


def find_link(ipr: IPRoute, name: str) -> ifinfmsg | None:
    try:
        (link,) = ipr.link("get", ifname=name)
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise
    return link


def link_kind(link: ifinfmsg) -> str | None:
    """'veth', 'bridge', 'dummy', ...; None for a physical device."""
    kind = link.get(("linkinfo", "kind"))
    return str(kind) if kind else None


def link_index(ipr: IPRoute, name: str) -> int:
    link = find_link(ipr, name)
    if link is None:
        raise BindingError(f"network device {name} vanished while plugging; it may have been "
                           "deleted by another tool: retry, and check what manages devices of that name")
    return int(link["index"])


def set_up(ipr: IPRoute, name: str) -> None:
    ipr.link("set", index=link_index(ipr, name), state="up")


def claim_name(ipr: IPRoute, name: str, kind: str) -> None:
    """Free `name` for a new device of `kind`: delete a leftover of that kind, refuse any other."""
    link = find_link(ipr, name)
    if link is None:
        return
    found = link_kind(link)
    if found != kind:
        raise BindingError(
            f"cannot create {kind} {name}: a {found or 'physical'} device of that name exists and "
            f"kuryr-cnm deletes only devices it made; remove it (ip link del {name}) if it is a "
            "leftover, then retry")
    LOG.warning("deleting stale %s %s, left over from an earlier plug", kind, name)
    ipr.link("del", index=link["index"])


def delete_link(ipr: IPRoute, name: str, kind: str) -> None:
    """Delete `name` if it is a `kind` device; a missing one is fine, another kind is left alone."""
    link = find_link(ipr, name)
    if link is None:
        return
    if link_kind(link) != kind:
        LOG.warning("not deleting %s: it is a %s, not the %s kuryr-cnm made",
                    name, link_kind(link) or "physical device", kind)
        return
    try:
        ipr.link("del", index=link["index"])
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:  # gone in between: fine
            raise


def add_veth(ipr: IPRoute, name: str, peer: str, *, mtu: int, peer_mac: str | None = None) -> None:
    """Create the pair `name`/`peer` (both DOWN), replacing a stale veth of either name."""
    for each in (name, peer):
        claim_name(ipr, each, VETH)
    peer_attrs: dict[str, object] = {"ifname": peer, "mtu": mtu}
    if peer_mac:
        peer_attrs["address"] = peer_mac.lower()
    ipr.link("add", ifname=name, kind=VETH, mtu=mtu, peer=peer_attrs)


def disable_tx_checksum(name: str) -> None:
    """`ethtool -K <name> tx off`, by ioctl (ETHTOOL_STXCSUM) in this namespace."""
    ethtool = IoctlEthtool(name)
    try:
        ethtool.set_offload_flag("tx-checksumming", 0)
    finally:
        ethtool.close()


def create_pair(host_name: str, container_name: str, *, mac: str, mtu: int,
                tx_checksum: bool = True) -> None:
    """The port's veth pair, configured as the module docstring says; all or nothing."""
    with netlink() as ipr:
        try:
            add_veth(ipr, host_name, container_name, mtu=mtu, peer_mac=mac)
        except NetlinkError as exc:
            raise BindingError(
                f"could not create veth pair {host_name}/{container_name} (mtu {mtu}, mac {mac}): "
                f"{exc}; check the network's MTU and the port's MAC in Neutron") from exc
        try:
            if not tx_checksum:
                disable_tx_checksum(container_name)
            set_up(ipr, host_name)
        except Exception as exc:
            delete_link(ipr, host_name, VETH)
            raise BindingError(f"could not configure veth pair {host_name}/{container_name}: "
                               f"{type(exc).__name__}: {exc}") from exc


def list_veths(prefix: str) -> list[str]:
    """Names of the veths in this namespace whose name starts with `prefix` (for the reconciler)."""
    with netlink() as ipr:
        return sorted(str(link.get("ifname")) for link in ipr.get_links()
                      if str(link.get("ifname") or "").startswith(prefix) and link_kind(link) == VETH)


def link_names() -> set[str]:
    """Every network device in this namespace, by name (one dump)."""
    with netlink() as ipr:
        return {str(link.get("ifname")) for link in ipr.get_links()}


def delete_pair(host_name: str) -> None:
    """Delete the pair by its host end (the peer goes with it); idempotent."""
    try:
        with netlink() as ipr:
            delete_link(ipr, host_name, VETH)
    except NetlinkError as exc:
        raise BindingError(f"could not delete veth {host_name}: {exc}; "
                           f"delete it by hand (ip link del {host_name})") from exc
