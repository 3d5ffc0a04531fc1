"""Integration fixtures: drive the running plugin (started by `make up`) over its socket,
exactly as Docker does, and check Neutron and the host directly."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests import host
from tests.leaks import Snapshot, assert_nothing_left
from tests.plugin_client import PluginClient


@pytest.fixture
def plugin() -> Iterator[PluginClient]:
    client = PluginClient(host.PLUGIN_SOCKET, timeout=60)
    yield client
    client.close()


@pytest.fixture
def no_leaks(neutron) -> Iterator[None]:
    before = Snapshot.take(neutron)
    yield
    assert_nothing_left(neutron, before)


def docker_id() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex


class DockerLike:
    """The call sequences Docker 20.10 makes (shared/reference/docker-20.10-plugin-calls.md)."""

    def __init__(self, plugin: PluginClient) -> None:
        self.plugin = plugin

    def ok(self, method: str, body=None) -> dict:
        status, answer = self.plugin.call(method, body)
        assert status == 200, f"{method} -> {status} {answer}"
        assert "Err" not in answer, answer
        return answer

    def create_network(self, subnet: str = "", v6_subnet: str = "", options: dict | None = None,
                       ipam_options: dict | None = None, gateway: str = "", internal: bool = False,
                       ip_range: str = "", enable_ipv6: bool = False) -> dict:
        """`enable_ipv6=True` without `v6_subnet` is `--ipv6` with no v6 --subnet: RequestPool Pool="" V6=true."""
        net = {"id": docker_id(), "pools": []}
        v4 = self.ok("IpamDriver.RequestPool", {"AddressSpace": "no_address_space", "Pool": subnet,
                                                "SubPool": ip_range,
                                                "Options": ipam_options or {}, "V6": False})
        if gateway:
            gw = self.ok("IpamDriver.RequestAddress", {"PoolID": v4["PoolID"], "Address": gateway,
                                                       "Options": {"RequestAddressType": "com.docker.network.gateway"}})
            v4_gw = gw["Address"]
        else:
            v4_gw = v4["Data"]["com.docker.network.gateway"]
        net["pools"].append(v4["PoolID"])
        ipv4 = [{"AddressSpace": "no_address_space", "Pool": v4["Pool"], "Gateway": v4_gw}]
        ipv6 = []
        if v6_subnet or enable_ipv6:
            v6 = self.ok("IpamDriver.RequestPool", {"AddressSpace": "no_address_space", "Pool": v6_subnet,
                                                    "SubPool": "", "Options": ipam_options or {}, "V6": True})
            net["pools"].append(v6["PoolID"])
            ipv6 = [{"AddressSpace": "no_address_space", "Pool": v6["Pool"],
                     "Gateway": v6["Data"]["com.docker.network.gateway"]}]
        opts = {"com.docker.network.enable_ipv6": bool(v6_subnet or enable_ipv6),
                "com.docker.network.generic": options or {}}
        if internal:
            opts["com.docker.network.internal"] = True
        self.ok("NetworkDriver.CreateNetwork", {"NetworkID": net["id"], "Options": opts,
                                                "IPv4Data": ipv4, "IPv6Data": ipv6})
        net["ipv4"], net["ipv6"] = ipv4, ipv6
        return net

    def delete_network(self, net: dict) -> None:
        for pool in net["pools"]:
            self.ok("IpamDriver.ReleasePool", {"PoolID": pool})
        self.ok("NetworkDriver.DeleteNetwork", {"NetworkID": net["id"]})

    def start(self, net: dict, address: str = "", address6: str = "") -> dict:
        ep = {"id": docker_id(), "net": net}
        addr = self.ok("IpamDriver.RequestAddress", {"PoolID": net["pools"][0], "Address": address,
                                                     "Options": None})["Address"]
        ep["address"] = addr
        iface = {"Address": addr, "AddressIPv6": "", "MacAddress": ""}
        if len(net["pools"]) > 1:
            iface["AddressIPv6"] = self.ok("IpamDriver.RequestAddress", {"PoolID": net["pools"][1],
                                                                         "Address": address6,
                                                                         "Options": None})["Address"]
            ep["address6"] = iface["AddressIPv6"]
        ep["create"] = self.ok("NetworkDriver.CreateEndpoint", {"NetworkID": net["id"], "EndpointID": ep["id"],
                                                                "Interface": iface, "Options": {}})
        ep["join"] = self.ok("NetworkDriver.Join", {"NetworkID": net["id"], "EndpointID": ep["id"],
                                                    "SandboxKey": "/var/run/docker/netns/test", "Options": {}})
        return ep

    def stop(self, ep: dict) -> None:
        ids = {"NetworkID": ep["net"]["id"], "EndpointID": ep["id"]}
        self.ok("NetworkDriver.RevokeExternalConnectivity", ids)
        self.ok("NetworkDriver.Leave", ids)
        self.ok("NetworkDriver.DeleteEndpoint", ids)
        self.ok("IpamDriver.ReleaseAddress", {"PoolID": ep["net"]["pools"][0], "Address": ep["address"].split("/")[0]})
        if "address6" in ep:
            self.ok("IpamDriver.ReleaseAddress", {"PoolID": ep["net"]["pools"][1],
                                                  "Address": ep["address6"].split("/")[0]})


@pytest.fixture
def docker_like(plugin) -> DockerLike:
    return DockerLike(plugin)
