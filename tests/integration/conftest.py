"""Integration fixtures: drive the running plugin (started by `make up`) over its socket,
exactly as Docker does, and check Neutron and the host directly."""
from __future__ import annotations

import contextlib
import copy
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
    """The call sequences Docker 20.10 makes (shared/reference/docker-20.10-plugin-calls.md).

    It remembers the pools, networks and endpoints it made and has not torn down yet, so
    that teardown() removes them after a failed test too (the fixtures call it)."""

    def __init__(self, plugin: PluginClient) -> None:
        self.plugin = plugin
        self.pools: list[str] = []
        self.network_ids: list[str] = []
        self.endpoints: list[dict] = []
        self._held: list[dict] | None = None

    def ok(self, method: str, body=None) -> dict:
        if method == "NetworkDriver.CreateNetwork":
            if self._held is not None:
                self._held.append(body)
                return {}
            self.network_ids.append(body["NetworkID"])
        status, answer = self.plugin.call(method, body)
        assert status == 200, f"{method} -> {status} {answer}"
        assert "Err" not in answer, answer
        if method == "IpamDriver.RequestPool":
            self.pools.append(answer["PoolID"])
        return answer

    @contextlib.contextmanager
    def concurrent_creates(self):
        """Two `docker network create`s at once: dockerd locks per network only, so both
        RequestPools can come before both CreateNetworks. The CreateNetwork calls made
        in this block are sent, in order, when it ends."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for body in held:
                self.ok("NetworkDriver.CreateNetwork", body)

    def worker(self, plugin: PluginClient) -> "DockerLike":
        """The same bookkeeping over another connection (one per thread)."""
        other = copy.copy(self)
        other.plugin = plugin
        return other

    def teardown(self) -> None:
        """Undo what the test did not (the plugin's teardown calls are idempotent)."""
        undo = [lambda ep=ep: self.stop(ep) for ep in reversed(self.endpoints)]
        undo += [lambda p=p: self.ok("IpamDriver.ReleasePool", {"PoolID": p}) for p in reversed(self.pools)]
        undo += [lambda n=n: self.ok("NetworkDriver.DeleteNetwork", {"NetworkID": n})
                 for n in reversed(self.network_ids)]
        for action in undo:
            with contextlib.suppress(Exception):  # best effort: no_leaks reports what stays
                action()

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
            _drop(self.pools, pool)
        self.ok("NetworkDriver.DeleteNetwork", {"NetworkID": net["id"]})
        _drop(self.network_ids, net["id"])

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
        self.endpoints.append(ep)
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
        _drop(self.endpoints, ep)


def _drop(items: list, item: object) -> None:
    with contextlib.suppress(ValueError):  # a test may tear down what it never made here
        items.remove(item)


@pytest.fixture
def docker_like(plugin, cleanup) -> Iterator[DockerLike]:
    """Docker's calls; depends on `cleanup` so that its teardown runs before the test's
    pre-created Neutron resources are deleted."""
    docker = DockerLike(plugin)
    yield docker
    docker.teardown()
