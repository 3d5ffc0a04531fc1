"""`docker run --expose`: a security group per port that opens the exposed ports.

kuryr-libnetwork looked the port up by a name it never gave single-stack ports, so
its `--expose` silently did nothing (its defect §4.11). Here the port is known from
the endpoint, and the group is named `<port id>-exposed_ports` as upstream names it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from kuryr_cnm import errors, naming
from kuryr_cnm.neutron import NeutronClient, Port
from kuryr_cnm.ownership import Ownership
from kuryr_cnm.protocol import OPT_EXPOSED_PORTS

LOG = logging.getLogger(__name__)

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}


def port_ranges(exposed: list[Mapping[str, Any]]) -> list[tuple[str, int, int]]:
    """(protocol, min, max) per run of consecutive ports, as upstream merges them."""
    by_proto: dict[str, list[int]] = {}
    for item in exposed:
        proto_number, port = _exposed_port(item)
        proto = PROTOCOLS.get(proto_number)
        if proto is None:
            continue
        by_proto.setdefault(proto, []).append(port)
    out = []
    for proto, ports in sorted(by_proto.items()):
        ports = sorted(set(ports))
        start = prev = ports[0]
        for p in ports[1:] + [None]:
            if p is not None and p == prev + 1:
                prev = p
                continue
            out.append((proto, start, prev))
            if p is not None:
                start = prev = p
    return out


def _exposed_port(item: Any) -> tuple[int, int]:
    """(protocol number, port) of one of Docker's {"Proto": 6, "Port": 80} entries."""
    proto = item.get("Proto", 0) if isinstance(item, Mapping) else None
    port = item.get("Port", 0) if isinstance(item, Mapping) else None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (proto, port)) or not 0 <= port <= 65535:
        raise errors.BadRequest(f"NetworkDriver.ProgramExternalConnectivity: exposed port {str(item)[:100]} "
                                "is not {\"Proto\": <number>, \"Port\": <0-65535>}")
    return proto, port


class Exposure:
    def __init__(self, client: NeutronClient, owned: Ownership) -> None:
        self._client = client
        self._owned = owned
        self._lock = threading.Lock()
        self._exposed: set[str] = set()  # ports given a group by this process

    def exposed(self, port_id: str) -> bool:
        with self._lock:
            return port_id in self._exposed

    def expose(self, port: Port, options: Mapping[str, Any]) -> None:
        exposed = options.get(OPT_EXPOSED_PORTS) or []
        ranges = port_ranges(exposed) if isinstance(exposed, list) else []
        if not ranges:
            return  # nothing exposed: no Neutron call at all
        name = naming.exposed_sg_name(port.id)
        if self._client.list_security_groups(name=name):
            return  # Docker retried
        sg_id = self._client.create_security_group(name, f"docker --expose for port {port.id}")
        try:
            for proto, low, high in ranges:
                rule: dict[str, Any] = dict(security_group_id=sg_id, direction="ingress", protocol=proto,
                                            ethertype="IPv4")
                if proto != "icmp":
                    rule.update(port_range_min=low, port_range_max=high)
                self._client.create_security_group_rule(**rule)
            current = self._client.get_port(port.id)
            groups = list(current.security_groups if current else port.security_groups) + [sg_id]
            self._client.update_port(port.id, security_groups=groups)
            with self._lock:
                self._exposed.add(port.id)
        except Exception:
            self._owned.delete_exposure_group({"id": sg_id, "name": name}, port, "ProgramExternalConnectivity rollback")
            raise

    def revoke(self, port: Port) -> None:
        with self._lock:
            self._exposed.discard(port.id)
        groups = self._client.list_security_groups(name=naming.exposed_sg_name(port.id))
        if not groups:
            return
        current = self._client.get_port(port.id)
        ids = {g["id"] for g in groups}
        if current is not None:
            self._client.update_port(port.id, security_groups=[g for g in current.security_groups if g not in ids])
        for group in groups:
            self._owned.delete_exposure_group(group, current or port, "RevokeExternalConnectivity")
