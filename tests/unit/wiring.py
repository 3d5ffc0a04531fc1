"""Plugins wired as `serve` wires them (app.build) over one FakeNeutron, one per simulated host,
and the call sequences Docker 20.10 makes for a network (shared/reference/docker-20.10-plugin-calls.md)."""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from kuryr_cnm import app, config
from kuryr_cnm.binding import HostInterface, VifPort, interface_names
from kuryr_cnm.binding.ovs import OvsPort
from tests.unit.fake_neutron import FakeNeutron


def docker_id() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


@dataclass
class DockerNet:
    docker_id: str
    pools: list[str] = field(default_factory=list)  # PoolIDs, v4 first
    gateways: list[str] = field(default_factory=list)


class RecordingPlugger:
    """binding.Plugger without veths or Open vSwitch: it records what was plugged and unplugged,
    and lists what is plugged now as OVSDB would (for an endpoint rebuilt after a restart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.plugs: list[VifPort] = []  # every plug(), in order
        self.unplugs: list[VifPort] = []  # every unplug(), in order

    def plug(self, port: VifPort) -> HostInterface:
        with self._lock:
            self.plugs.append(port)
        return interface_names(port.port_id)

    def unplug(self, port: VifPort) -> None:
        with self._lock:
            self.unplugs.append(port)

    def plugged_port_ids(self) -> list[str]:
        with self._lock:
            return [p.port_id for p in self.plugs]

    def unplugged_port_ids(self) -> list[str]:
        with self._lock:
            return [p.port_id for p in self.unplugs]

    def list_kuryr_ports(self, bridge: str = "br-int") -> list[OvsPort]:
        with self._lock:
            plugged = {p.port_id: p for p in self.plugs}
            for port in self.unplugs:
                plugged.pop(port.port_id, None)
        return [OvsPort(interface_names(p.port_id).host_name, p.port_id, p.endpoint_id, p.mac)
                for p in plugged.values()]

    def close(self) -> None:
        """Nothing held."""


class Host:
    """One host's kuryr-cnm (its own config, directory and pool) on the shared fake Neutron.
    With `plugger` (a RecordingPlugger), HostPlugging plugs through it instead of binding.Plugger."""

    def __init__(self, neutron: FakeNeutron, name: str, plugin_name: str = "kuryr",
                 plugger: RecordingPlugger | None = None, **overrides: Any) -> None:
        conf = config.load()
        conf.set_override("host", name)
        conf.set_override("plugin_name", plugin_name)
        for key, value in overrides.items():
            group, _, opt = key.rpartition("__")
            conf.set_override(opt, value, group=group or None)
        self.conf = conf
        self.neutron = neutron
        self.plugger = plugger
        if plugger is None:
            self.plugin = app.build(conf, client=neutron)
        else:
            with mock.patch.object(app, "Plugger", lambda **_: plugger):  # what app.build plugs with
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
