"""What a fuzz run left in Neutron and on the host, scoped to that run: its address
ranges, the Docker ids it sent, the PoolIDs and port ids it got back. Other tests run
at the same time, so a whole-host snapshot would blame the fuzzer for their resources."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from tests import host
from tests.fuzz.machine import STATEFUL_V4
from tests.fuzz.session import Made
from tests.fuzz.strategies import STATELESS_V4, STATELESS_V6

RANGES = (STATEFUL_V4, STATELESS_V4, STATELESS_V6)
ID_LH_TAG = "kuryr.net.uuid.lh:"  # kuryr-libnetwork's tag for a Docker id's first half


def _in_ranges(value: str) -> bool:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return any(net.version == r.version and net.subnet_of(r) for r in RANGES)


def find(neutron: Any, made: Made, carved_networks: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Neutron resources (and host interfaces) of this run that still exist."""
    get = lambda path, key: neutron.get(path).json()[key]  # noqa: E731
    tags = {ID_LH_TAG + i[:32] for i in made.docker_ids if len(i) >= 32}
    subnets = get("/subnets", "subnets")
    subnet_nets = {s["network_id"] for s in subnets if _in_ranges(s["cidr"]) or s["id"] in made.pool_ids}
    networks = [n for n in get("/networks", "networks")
                if n["id"] in subnet_nets or n["id"] in carved_networks or tags & set(n.get("tags") or ())]
    net_ids = {n["id"] for n in networks}
    ports = [p for p in get("/ports", "ports")
             if p["network_id"] in net_ids or p["id"] in made.port_ids
             # a fuzzed id may be "": it must not claim every port that has no device_id
             or (p.get("device_id") and p["device_id"] in made.docker_ids)
             or any(_in_ranges(f["ip_address"]) for f in p.get("fixed_ips") or ())]
    groups = {pid + "-exposed_ports" for pid in made.port_ids | {p["id"] for p in ports}}
    links = host.host_links() | host.ovs_ports()
    out = {
        # network:* ports (dhcp, router) go with their network
        "ports": [p for p in ports if not (p.get("device_owner") or "").startswith("network:")],
        "subnets": [s for s in subnets if s["network_id"] in net_ids or _in_ranges(s["cidr"])],
        "networks": networks,
        "subnetpools": [p for p in get("/subnetpools", "subnetpools")
                        if p["id"] in made.pool_ids or any(_in_ranges(c) for c in p.get("prefixes") or ())],
        "security_groups": [g for g in get("/security-groups", "security_groups") if g["name"] in groups],
        "host_interfaces": [{"id": name} for pid in made.port_ids
                            for name in ("tap" + pid[:11], "t_c" + pid[:11]) if name in links],
    }
    return {kind: items for kind, items in out.items() if items}


def delete(neutron: Any, left: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Remove what a failed run left, so the shared stack stays clean; returns any errors."""
    problems = []
    for name in [i["id"] for i in left.get("host_interfaces", [])]:
        if name.startswith("tap"):
            host.run(["ovs-vsctl", "--if-exists", "del-port", "br-int", name], check=False)
        host.run(["ip", "link", "del", name], check=False)
    for kind, path in (("ports", "ports"), ("security_groups", "security-groups"), ("subnets", "subnets"),
                       ("networks", "networks"), ("subnetpools", "subnetpools")):
        for item in left.get(kind, []):
            resp = neutron.delete(f"/{path}/{item['id']}")
            if resp.status_code not in (204, 404):
                problems.append(f"DELETE /{path}/{item['id']} -> {resp.status_code} {resp.text[:200]}")
    return problems


def summary(left: dict[str, list[dict[str, Any]]]) -> str:
    return "; ".join(f"{kind}: " + ", ".join(f"{i['id']} {i.get('name', '')} {i.get('cidr', '')}".strip()
                                             for i in items) for kind, items in left.items())
