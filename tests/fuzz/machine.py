"""Docker-like call sequences in generated orders: a hypothesis state machine over
pools, networks, addresses and endpoints, with repeated and out-of-order calls.

In-order calls must succeed and keep the invariants (distinct addresses inside the
pool, an interface name from Join, the gateway Docker was given); repeated teardown
calls must succeed again; out-of-order calls must fail clearly (4xx) or be harmless.
teardown() takes everything down the way Docker does, and every call must succeed.
"""
from __future__ import annotations

import hashlib
import ipaddress
import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from tests.fuzz.session import Session
from tests.fuzz.strategies import exposed_port
from tests.fuzz.wire import Answer

STATEFUL_V4 = ipaddress.ip_network("10.200.0.0/17")
DEFAULT_POOL_V4 = ipaddress.ip_network("10.10.0.0/16")  # the stack's `kuryr` subnetpool
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}
MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
CLEAR_FAILURES = (400, 404, 409)


@dataclass
class Context:
    """What the machines of one run share."""
    session: Session
    neutron: Any  # openstacksdk network proxy, to note the network of each carved pool
    cidrs: Iterator[str] = field(default_factory=lambda: (str(n) for n in STATEFUL_V4.subnets(new_prefix=28)))
    carved_networks: set[str] = field(default_factory=set)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def new_id(self) -> str:
        """A Docker id never used before: hypothesis repeats drawn values across examples, Docker
        never repeats an id, and a plugin may still hold an id an earlier example sent."""
        return hashlib.sha256(f"{self.run_id}-{next(self._ids)}".encode()).hexdigest()


@dataclass(eq=False)
class PoolM:
    pool_id: str
    cidr: str
    gateway: str  # the address only
    carved: bool
    released: bool = False
    net: "NetM | None" = None


@dataclass(eq=False)
class NetM:
    net_id: str
    pool: PoolM
    internal: bool
    aux: str  # "" or an address kept out of allocation
    deleted: bool = False


@dataclass(eq=False)
class AddrM:
    pool: PoolM
    ip: str
    released: bool = False
    ep: "EpM | None" = None


@dataclass(eq=False)
class EpM:
    ep_id: str
    net: NetM
    addr: AddrM
    create_body: dict[str, Any]
    create_answer: dict[str, Any]
    port_id: str = ""
    deleted: bool = False


def expect(answer: Answer, *statuses: int, what: str = "") -> Answer:
    assert answer.status in statuses, f"{what}: expected {statuses}, got {answer.status} {answer.json}"
    return answer


class PluginMachine(RuleBasedStateMachine):
    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.pools: list[PoolM] = []
        self.nets: list[NetM] = []
        self.addrs: list[AddrM] = []
        self.eps: list[EpM] = []
        self.repeatable: list[tuple[str, dict[str, Any]]] = []  # teardown calls that succeeded once

    # -- helpers --
    def call(self, method: str, body: Any) -> Answer:
        return self.ctx.session.call(method, body, "stateful")

    def ok(self, method: str, body: Any, what: str = "") -> Answer:
        answer = expect(self.call(method, body), 200, what=what or method)
        if method.split(".")[1] in ("Leave", "DeleteEndpoint", "ReleaseAddress", "DeleteNetwork", "ReleasePool",
                                    "RevokeExternalConnectivity"):
            self.repeatable.append((method, body))
        return answer

    def live_pools(self) -> list[PoolM]:
        return [p for p in self.pools if not p.released]

    def live_addrs(self, pool: PoolM) -> list[AddrM]:
        return [a for a in self.addrs if a.pool is pool and not a.released]

    def endpoint_addresses(self) -> list[AddrM]:
        return [a for a in self.addrs if a.ep is not None and not a.ep.deleted and not a.released]

    def live_eps(self) -> list[EpM]:
        return [e for e in self.eps if not e.deleted]

    @staticmethod
    def ids(ep: EpM) -> dict[str, str]:
        return {"NetworkID": ep.net.net_id, "EndpointID": ep.ep_id}

    # -- pools and networks --
    @precondition(lambda self: len(self.live_pools()) < 3)
    @rule(data=st.data())
    def request_pool(self, data: st.DataObject) -> None:
        self._request_pool(data)

    @precondition(lambda self: len(self.live_pools()) < 3)
    @rule(data=st.data())
    def docker_network_create(self, data: st.DataObject) -> None:
        """`docker network create`: RequestPool, the gateway, CreateNetwork in one go."""
        self._create_network(self._request_pool(data), data)

    def _request_pool(self, data: st.DataObject) -> PoolM:
        carve = data.draw(st.integers(0, 7), label="carve") == 0 and not any(p.carved for p in self.live_pools())
        cidr = "" if carve else next(self.ctx.cidrs)
        answer = self.ok("IpamDriver.RequestPool", {"AddressSpace": "no_address_space", "Pool": cidr,
                                                    "SubPool": "", "Options": {}, "V6": False}).json
        got = ipaddress.ip_network(answer["Pool"])
        assert answer["PoolID"] and (got.subnet_of(DEFAULT_POOL_V4) if carve else str(got) == cidr), answer
        gateway = answer["Data"]["com.docker.network.gateway"]
        assert gateway == f"{next(got.hosts())}/{got.prefixlen}", answer
        if carve:  # the pending network RequestPool made: the leak check looks for it
            subnet = self.ctx.neutron.get(f"/subnets/{answer['PoolID']}").json()["subnet"]
            self.ctx.carved_networks.add(subnet["network_id"])
        self.pools.append(PoolM(answer["PoolID"], str(got), gateway.split("/")[0], carve))
        return self.pools[-1]

    @precondition(lambda self: any(p.net is None for p in self.pools))
    @rule(data=st.data())
    def create_network(self, data: st.DataObject) -> None:
        self._create_network(data.draw(st.sampled_from([p for p in self.pools if p.net is None]), label="pool"), data)

    def _create_network(self, pool: PoolM, data: st.DataObject) -> None:
        gw = self.call("IpamDriver.RequestAddress", {"PoolID": pool.pool_id, "Address": "", "Options": GATEWAY})
        if pool.released:
            expect(gw, *CLEAR_FAILURES, what="gateway of a released pool")
            gateway = f"{pool.gateway}/28"
        else:
            gateway = expect(gw, 200, what="gateway").json["Address"]
            assert gateway.split("/")[0] == pool.gateway, gw.json
        internal = data.draw(st.integers(0, 3), label="internal") == 0
        aux = ""
        if not pool.carved and data.draw(st.integers(0, 4), label="aux") == 0:
            aux = str(list(ipaddress.ip_network(pool.cidr).hosts())[-1])
            echo = self.call("IpamDriver.RequestAddress", {"PoolID": pool.pool_id, "Address": aux, "Options": None})
            expect(echo, 200, *(CLEAR_FAILURES if pool.released else ()), what="aux address")
        net_id = self.ctx.new_id()
        options: dict[str, Any] = {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}}
        if internal:
            options["com.docker.network.internal"] = True
        ipv4: dict[str, Any] = {"AddressSpace": "no_address_space", "Pool": pool.cidr, "Gateway": gateway}
        if aux:
            ipv4["AuxAddresses"] = {"router": f"{aux}/{ipaddress.ip_network(pool.cidr).prefixlen}"}
        answer = self.call("NetworkDriver.CreateNetwork", {"NetworkID": net_id, "Options": options,
                                                           "IPv4Data": [ipv4], "IPv6Data": []})
        expect(answer, *((200,) if not pool.released else (200,) + CLEAR_FAILURES), what="CreateNetwork")
        if answer.status == 200:  # also after a released pool: it then has a network to delete
            pool.net = NetM(net_id, pool, internal, aux)
            self.nets.append(pool.net)

    @precondition(lambda self: any(not n.deleted for n in self.nets))
    @rule(data=st.data())
    def repeat_create_network(self, data: st.DataObject) -> None:
        """Docker retries CreateNetwork after a plugin restart: nothing is made twice."""
        net = data.draw(st.sampled_from([n for n in self.nets if not n.deleted]), label="net")
        ipv4 = {"AddressSpace": "no_address_space", "Pool": net.pool.cidr,
                "Gateway": f"{net.pool.gateway}/{ipaddress.ip_network(net.pool.cidr).prefixlen}"}
        self.ok("NetworkDriver.CreateNetwork", {"NetworkID": net.net_id, "Options": {}, "IPv4Data": [ipv4],
                                                "IPv6Data": []}, "repeated CreateNetwork")

    @precondition(lambda self: any(not n.deleted for n in self.nets))
    @rule(data=st.data())
    def delete_network(self, data: st.DataObject) -> None:
        net = data.draw(st.sampled_from([n for n in self.nets if not n.deleted]), label="net")
        busy = bool(self.live_addrs(net.pool)) and not net.pool.released and not net.deleted
        answer = self.call("NetworkDriver.DeleteNetwork", {"NetworkID": net.net_id})
        expect(answer, 409 if busy else 200, what=f"DeleteNetwork (addresses held: {busy})")
        if answer.status == 200:
            net.deleted = True
            self.repeatable.append(("NetworkDriver.DeleteNetwork", {"NetworkID": net.net_id}))

    @precondition(lambda self: bool(self.live_pools()))
    @rule(data=st.data())
    def release_pool(self, data: st.DataObject) -> None:
        """Docker's `network rm`: the gateway address, then the pool (then DeleteNetwork)."""
        pool = data.draw(st.sampled_from(self.live_pools()), label="pool")
        self.ok("IpamDriver.ReleaseAddress", {"PoolID": pool.pool_id, "Address": pool.gateway}, "gateway release")
        busy = bool(self.live_addrs(pool)) and pool.net is not None and not pool.net.deleted and not pool.released
        answer = self.call("IpamDriver.ReleasePool", {"PoolID": pool.pool_id})
        expect(answer, 409 if busy else 200, what=f"ReleasePool (addresses held: {busy})")
        if answer.status == 200:
            pool.released = True
            self.repeatable.append(("IpamDriver.ReleasePool", {"PoolID": pool.pool_id}))

    # -- addresses --
    @precondition(lambda self: any(p.net is not None for p in self.pools))
    @rule(data=st.data())
    def request_address(self, data: st.DataObject) -> None:
        self._request_address(data.draw(st.sampled_from([p for p in self.pools if p.net is not None]), label="pool"),
                              data)

    @precondition(lambda self: any(p.net is not None and not p.net.deleted and not p.released for p in self.pools))
    @rule(data=st.data())
    def docker_run(self, data: st.DataObject) -> None:
        """`docker run`: RequestAddress, CreateEndpoint, Join, ProgramExternalConnectivity."""
        pool = data.draw(st.sampled_from([p for p in self.pools if p.net is not None and not p.net.deleted
                                          and not p.released]), label="pool")
        addr = self._request_address(pool, data)
        ep = self._create_endpoint(addr, data) if addr is not None else None
        if ep is not None:
            self._join(ep)
            self._external_connectivity(ep, data)

    def _request_address(self, pool: PoolM, data: st.DataObject) -> AddrM | None:
        assert pool.net is not None
        live = not pool.released and not pool.net.deleted
        held = {a.ip for a in self.live_addrs(pool)}
        net = ipaddress.ip_network(pool.cidr)
        choice = data.draw(st.sampled_from(["any", "any", "free", "held"]), label="address kind")
        address = ""
        if choice == "free":
            address = data.draw(st.sampled_from([str(h) for h in net.hosts()]), label="address")
        elif choice == "held" and held:
            address = data.draw(st.sampled_from(sorted(held)), label="held address")
        answer = self.call("IpamDriver.RequestAddress", {"PoolID": pool.pool_id, "Address": address, "Options": None})
        if not live:
            expect(answer, 200, *CLEAR_FAILURES, what="RequestAddress on a removed network")
        elif address in held:
            expect(answer, 409, what=f"RequestAddress of {address}, held or reserved")
        else:
            expect(answer, 200, 409, what="RequestAddress")
        if answer.status != 200:
            return None
        got = answer.json["Address"]
        ip = got.split("/")[0]
        assert got == f"{ip}/{net.prefixlen}" and ipaddress.ip_address(ip) in net, answer.json
        if live:
            assert ip not in held, f"{ip} handed out twice: {sorted(held)}"
            # an --internal network has no gateway in Neutron, so its address is free
            assert address or ip not in {pool.net.aux, "" if pool.net.internal else pool.gateway}, answer.json
            assert not address or ip == address, answer.json
        self.addrs.append(AddrM(pool, ip))
        return self.addrs[-1]

    @precondition(lambda self: any(not a.released for a in self.addrs))
    @rule(data=st.data())
    def release_address(self, data: st.DataObject) -> None:
        addr = data.draw(st.sampled_from([a for a in self.addrs if not a.released]), label="address")
        self.ok("IpamDriver.ReleaseAddress", {"PoolID": addr.pool.pool_id, "Address": addr.ip})
        addr.released = True

    # -- endpoints --
    @precondition(lambda self: any(a.ep is None and not a.released for a in self.addrs))
    @rule(data=st.data())
    def create_endpoint(self, data: st.DataObject) -> None:
        self._create_endpoint(data.draw(st.sampled_from([a for a in self.addrs if a.ep is None and not a.released]),
                                        label="addr"), data)

    def _create_endpoint(self, addr: AddrM, data: st.DataObject) -> EpM | None:
        assert addr.pool.net is not None
        net = addr.pool.net
        live = not net.deleted and not addr.pool.released
        mac = data.draw(st.one_of(st.just(""), st.just(""), st.binary(min_size=5, max_size=5).map(
            lambda b: "02:" + ":".join(f"{x:02x}" for x in b))), label="mac")
        ep_id = self.ctx.new_id()
        prefix = ipaddress.ip_network(addr.pool.cidr).prefixlen
        body = {"NetworkID": net.net_id, "EndpointID": ep_id,
                "Interface": {"Address": f"{addr.ip}/{prefix}", "AddressIPv6": "", "MacAddress": mac},
                "Options": {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []}}
        answer = self.call("NetworkDriver.CreateEndpoint", body)
        expect(answer, *((200,) if live else (200,) + CLEAR_FAILURES), what="CreateEndpoint")
        if answer.status != 200:
            return None
        iface = answer.json["Interface"]
        assert iface == {} if mac else MAC.match(iface.get("MacAddress", "")), answer.json
        ep = EpM(ep_id, net, addr, body, answer.json)
        addr.ep = ep
        self.eps.append(ep)
        info = self.ok("NetworkDriver.EndpointOperInfo", self.ids(ep)).json["Value"]
        ep.port_id = info["port_id"]
        assert info["mac_address"] == (mac or iface["MacAddress"]), info
        return ep

    @precondition(lambda self: bool(self.live_eps()))
    @rule(data=st.data())
    def repeat_create_endpoint(self, data: st.DataObject) -> None:
        ep = data.draw(st.sampled_from(self.live_eps()), label="endpoint")
        again = self.ok("NetworkDriver.CreateEndpoint", ep.create_body, "repeated CreateEndpoint").json
        assert again == ep.create_answer, (again, ep.create_answer)

    @precondition(lambda self: bool(self.live_eps()))
    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        self._join(data.draw(st.sampled_from(self.live_eps()), label="endpoint"))

    def _join(self, ep: EpM) -> None:
        body = dict(self.ids(ep), SandboxKey="/var/run/docker/netns/0123456789ab",
                    Options={"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []})
        answer = self.ok("NetworkDriver.Join", body, "Join").json
        assert answer["InterfaceName"]["SrcName"].startswith("t_c") and answer["InterfaceName"]["DstPrefix"], answer
        if not ep.addr.pool.released and not ep.net.deleted:  # else no subnet, so no gateway, is left
            assert answer.get("Gateway") == (None if ep.net.internal else ep.addr.pool.gateway), answer

    @precondition(lambda self: bool(self.live_eps()))
    @rule(data=st.data())
    def external_connectivity(self, data: st.DataObject) -> None:
        self._external_connectivity(data.draw(st.sampled_from(self.live_eps()), label="endpoint"), data)

    def _external_connectivity(self, ep: EpM, data: st.DataObject) -> None:
        exposed = data.draw(st.lists(exposed_port, max_size=4), label="exposed ports")
        answer = self.call("NetworkDriver.ProgramExternalConnectivity", dict(self.ids(ep), Options={
            "com.docker.network.endpoint.exposedports": exposed, "com.docker.network.portmap": []}))
        expect(answer, 200, 400, what="ProgramExternalConnectivity")
        if data.draw(st.booleans(), label="revoke now"):
            self.ok("NetworkDriver.RevokeExternalConnectivity", self.ids(ep))

    @precondition(lambda self: bool(self.live_eps()))
    @rule(data=st.data())
    def oper_info(self, data: st.DataObject) -> None:
        ep = data.draw(st.sampled_from(self.live_eps()), label="endpoint")
        info = self.ok("NetworkDriver.EndpointOperInfo", self.ids(ep)).json["Value"]
        assert info["port_id"] == ep.port_id, info

    @precondition(lambda self: bool(self.eps))
    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        """docker stop: Revoke, Leave, DeleteEndpoint; then, maybe later, ReleaseAddress."""
        ep = data.draw(st.sampled_from(self.eps), label="endpoint")
        self.ok("NetworkDriver.RevokeExternalConnectivity", self.ids(ep))
        self.ok("NetworkDriver.Leave", self.ids(ep))
        self.ok("NetworkDriver.DeleteEndpoint", self.ids(ep))
        ep.deleted = True
        if not ep.addr.released and data.draw(st.booleans(), label="release now"):
            self.release(ep.addr)

    def release(self, addr: AddrM) -> None:
        self.ok("IpamDriver.ReleaseAddress", {"PoolID": addr.pool.pool_id, "Address": addr.ip})
        addr.released = True

    # -- repeated and out-of-order calls --
    @precondition(lambda self: bool(self.repeatable))
    @rule(data=st.data())
    def repeat_teardown_call(self, data: st.DataObject) -> None:
        """Docker repeats teardown calls: they succeed again. Not a ReleaseAddress of an address
        handed out again since: Docker repeats a call it has not seen answered, never one that
        came before a later RequestAddress of the same address (repeating it would take the
        address from its new holder, which no plugin can tell from a real release)."""
        held = {(a.pool.pool_id, a.ip) for a in self.addrs if not a.released}
        calls = [(m, b) for m, b in self.repeatable
                 if not (m == "IpamDriver.ReleaseAddress" and (b["PoolID"], b["Address"]) in held)]
        if not calls:
            return
        method, body = data.draw(st.sampled_from(calls), label="call")
        self.ok(method, body, f"repeated {method}")

    @precondition(lambda self: any(e.deleted for e in self.eps))
    @rule(data=st.data())
    def call_deleted_endpoint(self, data: st.DataObject) -> None:
        """Join, EndpointOperInfo or ProgramExternalConnectivity after DeleteEndpoint."""
        ep = data.draw(st.sampled_from([e for e in self.eps if e.deleted]), label="endpoint")
        method = data.draw(st.sampled_from(["Join", "EndpointOperInfo", "ProgramExternalConnectivity"]))
        answer = self.call(f"NetworkDriver.{method}", dict(self.ids(ep), Options={}))
        expect(answer, 200, *CLEAR_FAILURES, what=f"{method} of a deleted endpoint")
        if answer.status == 200:
            ep.deleted = False  # the plugin found it again (its port still exists): Docker would delete it

    @precondition(lambda self: bool(self.endpoint_addresses()))
    @rule(data=st.data())
    def second_endpoint_on_address(self, data: st.DataObject) -> None:
        """CreateEndpoint with an address that another endpoint holds: refused clearly."""
        addr = data.draw(st.sampled_from(self.endpoint_addresses()), label="addr")
        assert addr.ep is not None
        body = dict(addr.ep.create_body, EndpointID=self.ctx.new_id())
        answer = self.call("NetworkDriver.CreateEndpoint", body)
        expect(answer, *CLEAR_FAILURES, what="CreateEndpoint on an address another endpoint holds")

    def teardown(self) -> None:
        """Everything goes, in Docker's order; each call must succeed."""
        for ep in self.live_eps():
            for method in ("RevokeExternalConnectivity", "Leave", "DeleteEndpoint"):
                self.ok(f"NetworkDriver.{method}", self.ids(ep), f"teardown {method}")
            ep.deleted = True
        for addr in self.addrs:
            if not addr.released:
                self.release(addr)
        for pool in self.live_pools():
            self.ok("IpamDriver.ReleaseAddress", {"PoolID": pool.pool_id, "Address": pool.gateway})
            self.ok("IpamDriver.ReleasePool", {"PoolID": pool.pool_id}, "teardown ReleasePool")
            pool.released = True
        for net in self.nets:
            if not net.deleted:
                self.ok("NetworkDriver.DeleteNetwork", {"NetworkID": net.net_id}, "teardown DeleteNetwork")
                net.deleted = True
