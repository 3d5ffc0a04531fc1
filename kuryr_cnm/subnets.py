"""Making Neutron subnets for Docker pools: carving a prefix out of a subnetpool,
and the address arithmetic around gateways and auxiliary addresses."""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from kuryr_cnm import errors, naming
from kuryr_cnm.neutron import NeutronClient, Subnet, SubnetPool

LOG = logging.getLogger(__name__)

CARVE_ATTEMPTS = 8

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def default_gateway(cidr: str) -> str:
    """The address Neutron picks for a subnet's gateway: the first host."""
    net = ipaddress.ip_network(cidr, strict=False)
    return str(next(net.hosts()) if net.num_addresses > 2 else net.network_address)


def with_prefix(address: str, cidr: str) -> str:
    return f"{address}/{ipaddress.ip_network(cidr, strict=False).prefixlen}"


def free_prefixes(pool: SubnetPool, used: Iterable[str], prefixlen: int) -> list[str]:
    """Prefixes of `prefixlen` in the pool that overlap nothing in `used`, first ones first
    (at most 64: enough candidates to retry on a conflict)."""
    taken = [ipaddress.ip_network(c) for c in used]
    found: list[str] = []
    for prefix in pool.prefixes:
        parent = ipaddress.ip_network(prefix)
        if prefixlen < parent.prefixlen:
            continue
        for candidate in parent.subnets(new_prefix=prefixlen):
            if not any(candidate.overlaps(t) for t in taken):
                found.append(str(candidate))
                if len(found) >= 64:
                    return found
    return found


def _prefix_taken(exc: errors.NeutronError) -> bool:
    """Another allocator has the prefix: Neutron 29 answers 500 SubnetAllocationError ("Cannot
    allocate requested subnet from the available set of prefixes"), other releases 409. Any
    other refusal (an overlap on the network is a 400 InvalidInput) is no reason to retry."""
    return isinstance(exc, errors.NeutronConflict) or (
        exc.kind == "SubnetAllocationError" and "Cannot allocate requested subnet" in exc.neutron_message)


def _pool_exhausted(exc: errors.NeutronError) -> bool:
    return exc.kind == "SubnetAllocationError" and "Insufficient prefix space" in exc.neutron_message


def carve_subnet(client: NeutronClient, pool: SubnetPool, network_id: str, *, cidr: str = "",
                 enable_dhcp: bool = True, gateway: str | None = "") -> Subnet:
    """Allocate a subnet from `pool` on `network_id`: the given CIDR, or the first free
    prefix of the pool's default length. Neutron's allocation is the reservation; when
    another allocator took the prefix first, try the next free one."""
    prefixlen = pool.default_prefixlen or (24 if pool.ip_version == 4 else 64)
    for _attempt in range(CARVE_ATTEMPTS):
        if cidr:
            candidates = [cidr]
        else:
            used = [s.cidr for s in client.list_subnets(subnetpool_id=pool.id)]
            candidates = free_prefixes(pool, used, prefixlen)[:3]
        if not candidates:
            raise errors.Conflict(
                f"subnetpool {pool.name} ({', '.join(pool.prefixes)}) has no free /{prefixlen} left; "
                "remove unused networks, add a prefix to the pool, or pass --subnet")
        for candidate in candidates:
            attrs: dict[str, Any] = dict(
                network_id=network_id, ip_version=pool.ip_version, subnetpool_id=pool.id,
                cidr=candidate, name=naming.subnet_name(candidate), enable_dhcp=enable_dhcp)
            if gateway is None:
                attrs["gateway_ip"] = None
            elif gateway:
                attrs["gateway_ip"] = gateway
            try:
                return client.create_subnet(**attrs)
            except errors.NeutronError as exc:
                if _pool_exhausted(exc):
                    raise errors.Conflict(f"subnetpool {pool.name} ({', '.join(pool.prefixes)}) has no free "
                                          f"/{prefixlen} left ({exc.neutron_message}); remove unused networks, "
                                          "add a prefix to the pool, or pass --subnet") from None
                if not _prefix_taken(exc):
                    raise  # Neutron's own message reaches Docker
                if cidr:
                    raise errors.Conflict(
                        f"{cidr} cannot be allocated from subnetpool {pool.name}: {exc.message}") from None
                LOG.info("prefix %s of pool %s was taken meanwhile (%s); trying the next",
                         candidate, pool.name, exc.message)
    raise errors.Conflict(f"could not carve a /{prefixlen} from subnetpool {pool.name} after "
                          f"{CARVE_ATTEMPTS} attempts: other allocators keep taking them; retry")


def allocation_pools(cidr: str, gateway: str | None, exclude: Iterable[str]) -> list[dict[str, str]]:
    """The subnet's allocation pools: every host address except the gateway and `exclude`
    (Docker's --aux-address values, which must never reach a container)."""
    net = ipaddress.ip_network(cidr, strict=False)
    skip = sorted({ipaddress.ip_address(a) for a in exclude if a} |
                  ({ipaddress.ip_address(gateway)} if gateway else set()))
    first = net.network_address + (1 if net.version == 4 or net.prefixlen < 127 else 0)
    last = net.broadcast_address - (1 if net.version == 4 and net.prefixlen < 31 else 0)
    pools, start = [], first
    for ip in skip:
        if ip < start or ip > last:
            continue
        if ip > start:
            pools.append((start, ip - 1))
        start = ip + 1
    if start <= last:
        pools.append((start, last))
    return [{"start": str(a), "end": str(b)} for a, b in pools]
