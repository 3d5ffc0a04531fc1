"""Nested mode's local side: the container's interface as a child device of the VM's NIC.

`vlan`: an 802.1Q child of link_iface with the subport's VLAN id; `macvlan`: a macvlan
(bridge mode, so containers of one VM reach each other) child with the port's MAC;
`ipvlan`: an L2-mode ipvlan child, which always has link_iface's MAC (the kernel gives it
its parent's; it cannot have another). Each gets the MTU and is left DOWN, like the
container end of a veth: Docker moves it into the sandbox, renames it and brings it up; at
sandbox removal Docker moves it back under its old name and DeleteEndpoint deletes it
here. Nothing here talks to Neutron.

Each child's alias (IFLA_IFALIAS, which survives Docker's move into the sandbox and its
rename) records who made it and for which port and endpoint: `kuryr-cnm <plugin>@<host> port
<port id> endpoint <endpoint id>`. That is the host's record of what is plugged, which the
reconciler reads back after a restart (`children`), in the VM's namespace and in every
container's.
"""
from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from kuryr_cnm.binding import BindingError, namespaces
from kuryr_cnm.binding.veth import claim_name, delete_link, find_link, link_kind, netlink

LOG = logging.getLogger(__name__)

VLAN = "vlan"
MACVLAN = "macvlan"
IPVLAN = "ipvlan"
CHILD_KINDS = (VLAN, MACVLAN, IPVLAN)
_MODULES = {VLAN: "CONFIG_VLAN_8021Q / modprobe 8021q", MACVLAN: "CONFIG_MACVLAN / modprobe macvlan",
            IPVLAN: "CONFIG_IPVLAN / modprobe ipvlan"}
IPVLAN_MODE_L2 = 0  # the kernel's default is L3, which answers no ARP: OVN would never bind the address
ALIAS_PREFIX = "kuryr-cnm "


def child_alias(mark: str, port_id: str, endpoint_id: str) -> str:
    """The alias a child is made with (at most 256 bytes: a host name is at most 64)."""
    return f"{ALIAS_PREFIX}{mark} port {port_id} endpoint {endpoint_id}"


@dataclass(frozen=True)
class Child:
    """A child device kuryr-cnm made, as found on this host."""
    name: str  # its name where it is now (Docker renames it in the sandbox)
    kind: str
    mac: str
    port_id: str
    endpoint_id: str
    netns: str = ""  # "" for the plugin's own namespace, else a path to the container's

    @property
    def where(self) -> str:
        return self.name if not self.netns else f"{self.name} in {self.netns}"


def _parse_alias(alias: str, mark: str) -> tuple[str, str] | None:
    """(port id, endpoint id) from an alias `mark` wrote; None for any other alias."""
    words = alias.split()
    if len(words) != 6 or alias != child_alias(mark, words[3], words[5]):
        return None
    return words[3], words[5]


def link_mac(name: str) -> str | None:
    """The MAC of a device in this namespace, None if there is no such device."""
    with netlink() as ipr:
        link = find_link(ipr, name)
    return str(link.get("address")).lower() if link is not None else None


def link_with_mac(mac: str) -> str | None:
    """The name of the (non-child) device carrying `mac`: the VM's NIC, found by its port's MAC."""
    with netlink() as ipr:
        for link in ipr.get_links():
            kind = link.get(("linkinfo", "kind"))
            if str(link.get("address") or "").lower() == mac.lower() and kind not in CHILD_KINDS:
                return str(link.get("ifname"))
    return None


DUMMY = "dummy"
_PROBE_PARENT, _PROBE_VLAN = "kcnm-vprobe", "kcnm-vprobe.2"


def vlan_supported(link_iface: str = "") -> bool:
    """Whether this kernel makes 802.1Q devices (CONFIG_VLAN_8021Q).

    The probe is a VLAN on a throwaway dummy device, deleted at once (its VLAN goes with it).
    Not on `lo`: the kernel refuses a VLAN on any VLAN-challenged device (loopback is one)
    with EOPNOTSUPP, "8021q: VLANs not supported on device", with 8021q loaded or not. Without
    dummy devices (CONFIG_DUMMY), the probe's VLAN goes on link_iface itself, left DOWN."""
    with netlink() as ipr:
        claim_name(ipr, _PROBE_PARENT, DUMMY)  # a leftover of a probe that was killed
        try:
            ipr.link("add", ifname=_PROBE_PARENT, kind=DUMMY)
        except NetlinkError as exc:
            if exc.code != errno.EOPNOTSUPP or not link_iface:
                raise BindingError(f"cannot probe for VLAN support: no dummy device ({exc}); set "
                                   "[binding] link_iface") from exc
            return _vlan_on(ipr, link_iface, _PROBE_VLAN)
        try:
            return _vlan_on(ipr, _PROBE_PARENT, _PROBE_VLAN)
        finally:
            delete_link(ipr, _PROBE_PARENT, DUMMY)


def _vlan_on(ipr: IPRoute, parent_name: str, name: str) -> bool:
    """Make (and delete) a VLAN child of parent_name: False if this kernel has no 802.1Q."""
    parent = find_link(ipr, parent_name)
    if parent is None:
        raise BindingError(f"cannot probe for VLAN support: {parent_name} does not exist")
    claim_name(ipr, name, VLAN)
    try:
        ipr.link("add", ifname=name, kind=VLAN, link=parent["index"], vlan_id=4094)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            return True  # parent_name already has a VLAN 4094: 802.1Q works
        if exc.code == errno.EOPNOTSUPP:  # "Unknown device type": no 8021q module
            return False
        raise BindingError(f"cannot probe for VLAN support on {parent_name}: {exc}") from exc
    delete_link(ipr, name, VLAN)
    return True


def create_child(name: str, link_iface: str, kind: str, *, mac: str, mtu: int, vlan_id: int = 0,
                 alias: str = "") -> None:
    """A `kind` child of link_iface named `name` (a stale one of ours is replaced) with `alias`
    (child_alias); all or nothing."""
    with netlink() as ipr:
        parent = find_link(ipr, link_iface)
        if parent is None:
            raise BindingError(f"link_iface {link_iface} does not exist: set [binding] link_iface to the VM's NIC")
        claim_name(ipr, name, kind)
        attrs: dict[str, object] = {"ifname": name, "kind": kind, "link": parent["index"], "mtu": mtu}
        if kind == VLAN:
            attrs.update(address=mac.lower(), vlan_id=vlan_id)
        elif kind == IPVLAN:
            attrs["ipvlan_mode"] = IPVLAN_MODE_L2  # no address: it has its parent's
        else:
            attrs.update(address=mac.lower(), macvlan_mode="bridge")
        shown = f"{link_iface}'s" if kind == IPVLAN else mac
        try:
            ipr.link("add", **attrs)
        except NetlinkError as exc:
            hint = (f"this kernel has no {kind} devices ({_MODULES[kind]})" if exc.code == errno.EOPNOTSUPP else
                    f"{link_iface} already has macvlan children (or is in a bridge): ipvlan cannot share it"
                    if kind == IPVLAN and exc.code == errno.EBUSY else
                    f"check the MTU ({mtu} must not exceed {link_iface}'s) and that the MAC is not in use")
            raise BindingError(f"could not create {kind} {name} on {link_iface} (mac {shown}"
                               f"{f', vlan {vlan_id}' if kind == VLAN else ''}): {exc}; {hint}") from exc
        if alias:
            _set_alias(ipr, name, kind, alias)
    LOG.info("created %s %s on %s (mac %s%s)", kind, name, link_iface, shown, f", vlan {vlan_id}" if vlan_id else "")


def _set_alias(ipr: IPRoute, name: str, kind: str, alias: str) -> None:
    """The record of what the child is for (RTM_NEWLINK does not take an alias: a second write)."""
    try:
        (link,) = ipr.link("get", ifname=name)
        ipr.link("set", index=link["index"], ifalias=alias)
    except NetlinkError as exc:
        delete_link(ipr, name, kind)
        raise BindingError(f"could not record what {kind} {name} is for (its alias): {exc}") from exc


def delete_child(name: str, kind: str, netns: str = "") -> None:
    """Delete our child device, here or in the namespace at `netns`; a missing one is fine (the
    container took it along)."""
    def delete(_: str = "") -> None:
        with netlink() as ipr:
            delete_link(ipr, name, kind)
    try:
        if not netns:
            delete()
            return
        result = namespaces.in_each([netns], delete)[netns]
        if isinstance(result, NetlinkError):
            raise result
        if isinstance(result, OSError):
            LOG.info("not deleting %s %s: its namespace %s is gone, and the device with it", kind, name, netns)
    except NetlinkError as exc:
        raise BindingError(f"could not delete {kind} {name}{f' in {netns}' if netns else ''}: {exc}; delete it "
                           f"by hand (ip link del {name})") from exc


def children(mark: str) -> list[Child]:
    """The child devices `mark` (this plugin on this host) made: in this namespace and in every
    other one on the host (the containers'), found by their alias."""
    found = _children_here(mark, "")
    for path, result in namespaces.in_each(namespaces.other_namespaces(), lambda p: _children_here(mark, p)).items():
        if isinstance(result, OSError) and result.errno in (errno.ENOENT, errno.ESRCH):
            LOG.debug("network namespace %s went while it was read: %s", path, result)
            continue
        if isinstance(result, Exception):
            # a container's device not seen would look like a container that is gone, whose
            # port the reconciler deletes: no answer rather than a wrong one
            raise BindingError(f"could not read the devices in network namespace {path}: {result}; kuryr-cnm "
                               "needs CAP_SYS_ADMIN and CAP_NET_ADMIN (run it as root)")
        found.extend(result)
    return found


def _children_here(mark: str, netns: str) -> list[Child]:
    with netlink() as ipr:
        links = ipr.get_links()
    found = []
    for link in links:
        kind = link_kind(link)
        ids = _parse_alias(str(link.get("ifalias") or ""), mark) if kind in CHILD_KINDS else None
        if ids is not None:
            found.append(Child(str(link.get("ifname")), str(kind), str(link.get("address") or "").lower(), *ids,
                               netns=netns))
    return found
