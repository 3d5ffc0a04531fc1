"""Snapshot what kuryr-cnm can leave behind — Neutron ports, networks, subnets,
subnetpools, security groups, host veths and OVS ports — and compare after a test."""
from __future__ import annotations

from dataclasses import dataclass

from tests import host


@dataclass(frozen=True)
class Snapshot:
    ports: frozenset[str]
    networks: frozenset[str]
    subnets: frozenset[str]
    subnetpools: frozenset[str]
    security_groups: frozenset[str]
    links: frozenset[str]
    ovs_ports: frozenset[str]

    @classmethod
    def take(cls, neutron) -> "Snapshot":
        def ids(items):
            return frozenset(i["id"] for i in items)
        get = lambda path, key: neutron.get(path).json()[key]  # noqa: E731
        return cls(
            ids(get("/ports", "ports")), ids(get("/networks", "networks")), ids(get("/subnets", "subnets")),
            ids(get("/subnetpools", "subnetpools")), ids(get("/security-groups", "security_groups")),
            frozenset(n for n in host.host_links() if n.startswith(("tap", "t_c", "qbr", "qvb", "qvo"))),
            frozenset(host.ovs_ports()))

    def new_since(self, before: "Snapshot") -> dict[str, set[str]]:
        out = {}
        for field in self.__dataclass_fields__:
            extra = set(getattr(self, field)) - set(getattr(before, field))
            if extra:
                out[field] = extra
        return out


def assert_nothing_left(neutron, before: Snapshot, settle: float = 10) -> None:
    """Wait up to `settle` s for background writes/cleanup, then require no new resource."""
    leftover: dict[str, set[str]] = {}

    def clean() -> bool:
        nonlocal leftover
        leftover = Snapshot.take(neutron).new_since(before)
        return not leftover
    try:
        host.wait_for(clean, timeout=settle, interval=0.5, what="kuryr resources to be cleaned up")
    except AssertionError:
        raise AssertionError(f"resources left behind: {leftover}") from None
