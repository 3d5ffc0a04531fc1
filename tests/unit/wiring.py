"""Plugins wired as `serve` wires them (app.build) over one FakeNeutron, one per simulated host,
and the call sequences Docker 20.10 makes for a network (shared/reference/docker-20.10-plugin-calls.md)."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from kuryr_cnm import app, config
from tests.unit.fake_neutron import FakeNeutron


def docker_id() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


@dataclass
class DockerNet:
    docker_id: str
    pools: list[str] = field(default_factory=list)  # PoolIDs, v4 first
    gateways: list[str] = field(default_factory=list)


class Host:
    """One host's kuryr-cnm (its own config, directory and pool) on the shared fake Neutron."""

    def __init__(self, neutron: FakeNeutron, name: str, plugin_name: str = "kuryr", **overrides: Any) -> None:
        conf = config.load()
        conf.set_override("host", name)
        conf.set_override("plugin_name", plugin_name)
        for key, value in overrides.items():
            group, _, opt = key.rpartition("__")
            conf.set_override(opt, value, group=group or None)
        self.conf = conf
        self.neutron = neutron
        self.plugin = app.build(conf, client=neutron)

    def close(self) -> None:
        self.plugin.close()

    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = self.plugin.router.dispatch(method, _json(body))
        assert status == 200, f"{method} -> {status} {answer}"
        return answer

    def request_pool(self, cidr: str = "", ipam_options: dict[str, str] | None = None) -> dict[str, Any]:
        return self.call("IpamDriver.RequestPool", {"AddressSpace": "", "Pool": cidr, "SubPool": "",
                                                    "Options": ipam_options or {}, "V6": False})

    def create_network(self, cidr: str = "", options: dict[str, str] | None = None,
                       ipam_options: dict[str, str] | None = None, pool: dict[str, Any] | None = None) -> DockerNet:
        """docker network create -d kuryr --ipam-driver kuryr [--subnet cidr] [-o ...]; `pool`: the
        answer of a RequestPool made already."""
        net = DockerNet(docker_id())
        pool = pool or self.request_pool(cidr, ipam_options)
        net.pools.append(pool["PoolID"])
        gateway = self.call("IpamDriver.RequestAddress", {
            "PoolID": pool["PoolID"], "Address": "",
            "Options": {"RequestAddressType": "com.docker.network.gateway"}})["Address"]
        net.gateways.append(gateway)
        self.call("NetworkDriver.CreateNetwork", {
            "NetworkID": net.docker_id,
            "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": options or {}},
            "IPv4Data": [{"AddressSpace": "", "Gateway": gateway, "Pool": pool["Pool"]}], "IPv6Data": []})
        return net

    def remove_network(self, net: DockerNet) -> None:
        """docker network rm: ReleaseAddress (gateway), ReleasePool, DeleteNetwork."""
        for pool_id, gateway in zip(net.pools, net.gateways, strict=True):
            self.call("IpamDriver.ReleaseAddress", {"PoolID": pool_id, "Address": gateway.split("/")[0]})
            self.call("IpamDriver.ReleasePool", {"PoolID": pool_id})
        self.call("NetworkDriver.DeleteNetwork", {"NetworkID": net.docker_id})


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
