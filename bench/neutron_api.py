"""Neutron's API read directly on 127.0.0.1:9696 (never through a contender's proxy),
so the benchmark's own look-ups — polling for ACTIVE, checking for leftovers — are
never counted against a plugin.
"""
from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import urlencode

NEUTRON = ("127.0.0.1", 9696)


class Neutron:
    """A keep-alive connection per thread; noauth Neutron accepts any token."""

    def __init__(self, host: str = NEUTRON[0], port: int = NEUTRON[1]) -> None:
        self.host, self.port = host, port
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return conn

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        url = "/v2.0" + path + ("?" + urlencode(params) if params else "")
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, url, headers={"X-Auth-Token": "x", "Accept": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        if resp.status >= 400 and not (method == "DELETE" and resp.status == 404):
            raise RuntimeError(f"Neutron {method} {url}: HTTP {resp.status} {data[:200]!r}")
        return json.loads(data) if data else None

    def list(self, collection: str, **filters: str | list[str]) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = []
        for key, value in filters.items():
            for v in value if isinstance(value, list) else [value]:
                params.append((key, v))
        return self.request("GET", f"/{collection}", params)[collection]

    def delete(self, collection: str, item_id: str) -> None:
        self.request("DELETE", f"/{collection}/{item_id}")

    def port_status(self, network_id: str, ip: str) -> str | None:
        """Status of the port holding `ip` on the network, or None while there is none."""
        ports = self.list("ports", network_id=network_id, fixed_ips=f"ip_address={ip}", fields=["id", "status"])
        return ports[0]["status"] if ports else None

    def network_of_docker_network(self, docker_id: str) -> dict[str, Any] | None:
        """The Neutron network kuryr made for a Docker network (kuryr-libnetwork's tag scheme)."""
        nets = self.list("networks", tags=f"kuryr.net.uuid.lh:{docker_id[:32]}")
        return nets[0] if nets else None

    def purge_cidr(self, cidr: str) -> list[str]:
        """Delete what a Docker network on `cidr` left in Neutron (ports, subnet, network,
        subnetpool kuryrPool-<cidr>). Only touches kuryr-named objects. Returns what it deleted."""
        deleted: list[str] = []
        for subnet in self.list("subnets", cidr=cidr):
            net = self.request("GET", f"/networks/{subnet['network_id']}")["network"]
            if not net["name"].startswith("kuryr-net-"):
                continue
            for port in self.list("ports", network_id=net["id"]):
                self.delete("ports", port["id"])
                deleted.append(f"port {port['id']} ({port['name']})")
            for sid in net["subnets"]:
                self.delete("subnets", sid)
                deleted.append(f"subnet {sid}")
            self.delete("networks", net["id"])
            deleted.append(f"network {net['id']} ({net['name']})")
        for pool in self.list("subnetpools", name=f"kuryrPool-{cidr}"):
            self.delete("subnetpools", pool["id"])
            deleted.append(f"subnetpool {pool['id']} ({pool['name']})")
        return deleted

    def leftovers(self, cidr: str, docker_id: str | None) -> list[str]:
        """Anything of a bench network still in Neutron: its network (by tag or by subnet
        CIDR), ports on it, and its subnetpool."""
        found: list[str] = []
        nets = {s["network_id"] for s in self.list("subnets", cidr=cidr)}
        if docker_id:
            tagged = self.network_of_docker_network(docker_id)
            if tagged:
                nets.add(tagged["id"])
        for net_id in sorted(nets):
            found.append(f"network {net_id}")
            found += [f"port {p['id']} ({p['name']})" for p in self.list("ports", network_id=net_id)]
        found += [f"subnetpool {p['id']} ({p['name']})" for p in self.list("subnetpools", name=f"kuryrPool-{cidr}")]
        return found
