"""vif_type 'bridge': the host end joins a Linux bridge; also the bridge helpers of OVS hybrid plug.

The bridge is vif_details["bridge_name"] when Neutron gives one, else "brq" +
network_id[:11] (kuryr-lib's script named it so). A missing bridge is created with
STP off and no forwarding delay, as that script did, and marked as kuryr-cnm's with
the interface alias "kuryr-cnm" (the mark survives a restart of kuryr-cnm).

Deletion policy: unplug detaches the host end, then deletes the bridge only when it
carries kuryr-cnm's mark and has no port left. A bridge someone else made (an L2
agent, the operator) is never deleted. Plug and unplug of this binder are serialised
in the process, so a bridge is not deleted between another plug's create and enslave.
"""
from __future__ import annotations

import errno
import logging
import threading

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from kuryr_cnm.binding import Binder, BindingError, HostInterface, VifPort
from kuryr_cnm.binding.veth import delete_link, find_link, link_index, link_kind, netlink

LOG = logging.getLogger(__name__)

BRIDGE = "bridge"
KURYR_MARK = "kuryr-cnm"  # IFLA_IFALIAS of the bridges kuryr-cnm made
NAME_PREFIX = "brq"


def bridge_name(port: VifPort) -> str:
    return str(port.vif_details.get("bridge_name") or NAME_PREFIX + port.network_id[:11])


def ensure_bridge(ipr: IPRoute, name: str) -> int:
    """The index of Linux bridge `name`, made (up, marked as ours) if missing."""
    link = find_link(ipr, name)
    if link is not None:
        if link_kind(link) != BRIDGE:
            raise BindingError(f"{name} exists but is a {link_kind(link) or 'physical device'}, "
                               "not a Linux bridge: rename or remove it, or set another bridge_name")
        return int(link["index"])
    try:
        ipr.link("add", ifname=name, kind=BRIDGE, br_forward_delay=0, br_stp_state=0)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:  # made by someone else just now: use it
            raise
        return link_index(ipr, name)
    index = link_index(ipr, name)
    ipr.link("set", index=index, ifalias=KURYR_MARK, state="up")
    LOG.info("created Linux bridge %s", name)
    return index


def enslave(ipr: IPRoute, ifname: str, bridge_index: int) -> None:
    ipr.link("set", index=link_index(ipr, ifname), master=bridge_index, state="up")


def release(ipr: IPRoute, ifname: str) -> None:
    """`ip link set <ifname> nomaster`, if the device is still there."""
    link = find_link(ipr, ifname)
    if link is not None and link.get("master"):
        ipr.link("set", index=link["index"], master=0)


def delete_if_unused(ipr: IPRoute, name: str) -> None:
    """Delete bridge `name` if kuryr-cnm made it and no port is left on it."""
    link = find_link(ipr, name)
    if link is None or link_kind(link) != BRIDGE or link.get("ifalias") != KURYR_MARK:
        return
    if ipr.link_lookup(master=link["index"]):
        return
    LOG.info("deleting Linux bridge %s: its last port left", name)
    delete_link(ipr, name, BRIDGE)


class BridgeBinder(Binder):
    vif_types = ("bridge",)

    def __init__(self) -> None:
        self._lock = threading.Lock()  # see the module docstring: create+enslave vs delete

    def plug(self, port: VifPort, iface: HostInterface) -> None:
        with self._lock, netlink() as ipr:
            enslave(ipr, iface.host_name, ensure_bridge(ipr, bridge_name(port)))

    def unplug(self, port: VifPort, iface: HostInterface) -> None:
        with self._lock, netlink() as ipr:
            release(ipr, iface.host_name)
            delete_if_unused(ipr, bridge_name(port))
