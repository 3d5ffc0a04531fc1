"""A gratuitous ARP from inside a container's network namespace, without pyroute2.

Why: ML2/OVN makes a port whose address is in the VM port's allowed address pairs with the
VM port's own MAC (the ipvlan driver's pairs) an OVN virtual port, and ovn-controller binds
it to the VM port when an ARP from the VM port carries the address as its sender (northd's
`inport == parent && ((arp.op == 1 && arp.spa == VIP && arp.tpa == VIP) || (arp.op == 2 &&
arp.spa == VIP))` -> `bind_vport`). Until then nothing reaches the container. So the
container announces its IPv4 addresses as soon as it has them: an ARP request whose sender
and target address are the address (RFC 5227's announcement), sent three times.

How: Docker configures the interface after Join has answered (it moves the device into the
sandbox, sets the addresses, brings it up), so a short-lived thread of its own enters the
sandbox's network namespace (setns(2) on the SandboxKey through libc: a network namespace
is a per-thread setting, and Python 3.11 has no os.setns), waits until an interface that is
UP has the address (ioctls on a socket made in that namespace), sends the frames through an
AF_PACKET socket made there too, and goes back to the plugin's namespace.
"""
from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterable

from kuryr_cnm.binding.namespaces import is_namespace, netns

LOG = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFHWADDR = 0x8913, 0x8915, 0x8927
IFF_UP = 0x1

# Docker under TCG emulation, 10 containers starting at once, took over 30 s from Join to
# the container's namespace being mounted; on a KVM guest it is well under a second
WAIT = 120.0
POLL = 0.05
MAX_POLL = 0.5  # the interval grows to this: a slow start is not polled 20 times a second
COUNT, INTERVAL = 3, 0.5


def arp_announcement(mac: str, ip: str) -> bytes:
    """A broadcast Ethernet frame with an ARP request for `ip` from `ip` at `mac` (42 bytes)."""
    hw = bytes.fromhex(mac.replace(":", ""))
    address = socket.inet_aton(ip)
    ethernet = b"\xff" * 6 + hw + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARPHRD_ETHER, ETH_P_IP, 6, 4, ARPOP_REQUEST) + hw + address + bytes(6) + address
    return ethernet + arp


def _ifreq(sock: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("16s24x", name.encode()))


def interface_with(ip: str) -> tuple[str, str] | None:
    """(name, MAC) of the interface in this thread's namespace that is UP with the IPv4 address `ip`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                flags = struct.unpack_from("H", _ifreq(sock, SIOCGIFFLAGS, name), 16)[0]
                if not flags & IFF_UP or socket.inet_ntoa(_ifreq(sock, SIOCGIFADDR, name)[20:24]) != ip:
                    continue
                mac = _ifreq(sock, SIOCGIFHWADDR, name)[18:24]
            except OSError:  # no IPv4 address yet (EADDRNOTAVAIL), or gone meanwhile (ENODEV)
                continue
            return name, ":".join(f"{b:02x}" for b in mac)
    return None


def send(name: str, frame: bytes, count: int = COUNT, interval: float = INTERVAL) -> None:
    """`frame` out of `name` (of this thread's namespace), `count` times."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:  # protocol 0: it receives nothing
        for i in range(count):
            if i:
                time.sleep(interval)
            sock.sendto(frame, (name, ETH_P_ARP))


def announce(sandbox_key: str, ips: Iterable[str], wait: float = WAIT, poll: float = POLL) -> list[str]:
    """In the sandbox, announce each IPv4 address of `ips` once an interface is up with it;
    the addresses announced (those not up within `wait` seconds are not)."""
    pending = [ip for ip in ips if ipaddress.ip_address(ip).version == 4]
    done: list[str] = []
    if not pending:
        return done
    deadline = time.monotonic() + wait
    # Docker 20.10 answers Join before it bind-mounts the container's namespace at SandboxKey
    # (seen in the VM: "No such file or directory" at once): wait for it, as for the address
    while not is_namespace(sandbox_key):
        if time.monotonic() >= deadline:
            raise FileNotFoundError(errno.ENOENT, f"no network namespace at {sandbox_key} after {wait:.0f} s")
        time.sleep(poll)
        poll = min(poll * 1.5, MAX_POLL)
    with netns(sandbox_key):
        while pending:
            for ip in list(pending):
                found = interface_with(ip)
                if found is not None:
                    send(found[0], arp_announcement(found[1], ip))
                    pending.remove(ip)
                    done.append(ip)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(poll)
            poll = min(poll * 1.5, MAX_POLL)
    return done


def announce_in_background(sandbox_key: str, ips: Iterable[str], what: str) -> threading.Thread:
    """announce() in a thread of its own (it changes its namespace), logging what it did."""
    ips = list(ips)

    def run() -> None:
        try:
            done = announce(sandbox_key, ips)
        except OSError as exc:
            LOG.warning("%s: could not announce %s in %s: %s; the address answers once the container "
                        "itself sends an ARP", what, ", ".join(ips), sandbox_key, exc)
            return
        missed = [ip for ip in ips if ip not in done and ipaddress.ip_address(ip).version == 4]
        if missed:
            LOG.warning("%s: %s was not up in %s within %.0f s: not announced", what, ", ".join(missed),
                        sandbox_key, WAIT)
        elif done:
            LOG.info("%s: announced %s (gratuitous ARP) from %s", what, ", ".join(done), sandbox_key)
    thread = threading.Thread(target=run, name=f"announce {what}", daemon=True)
    thread.start()
    return thread
