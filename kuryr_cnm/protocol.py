"""Typed requests and responses of Docker's libnetwork remote and IPAM plugin API.

The wire format is moby/libnetwork docs/remote.md and docs/ipam.md;
shared/reference/docker-20.10-plugin-calls.md shows what Docker 20.10 really sends.
Each request type has `parse(body)`, which checks the body Docker sent and raises
BadRequest with a sentence an operator can act on; handlers then work on typed,
validated values only.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from kuryr_cnm import naming
from kuryr_cnm.errors import BadRequest

NETWORK_DRIVER = "NetworkDriver"
IPAM_DRIVER = "IpamDriver"

# Docker's own option keys
OPT_GENERIC = "com.docker.network.generic"
OPT_ENABLE_IPV6 = "com.docker.network.enable_ipv6"
OPT_INTERNAL = "com.docker.network.internal"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_EXPOSED_PORTS = "com.docker.network.endpoint.exposedports"
OPT_MAC_ADDRESS = "com.docker.network.endpoint.macaddress"
OPT_REQUEST_ADDRESS_TYPE = "RequestAddressType"
GATEWAY_ADDRESS_TYPE = "com.docker.network.gateway"
POOL_DATA_GATEWAY = "com.docker.network.gateway"

# a local network/endpoint id is 64 hex characters; swarm's are 25 lowercase alphanumerics
_DOCKER_ID = re.compile(r"^([0-9a-f]{64}|[0-9a-z]{25})$")
_MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


# --- field readers -----------------------------------------------------------------

def _shown(value: str) -> str:
    """A value quoted in an error: Docker's bodies can carry megabytes, the Err and log line need not."""
    return repr(value) if len(value) <= 80 else repr(value[:80]) + f"... ({len(value)} characters)"


def _object(method: str, body: Any) -> dict[str, Any]:
    if body is None:
        raise BadRequest(
            f"{method} needs a JSON body but got an empty one. Docker sends an empty body when it "
            "retries a call after the plugin restarted; the operation can be retried from docker.")
    if not isinstance(body, dict):
        raise BadRequest(f"{method}: the body must be a JSON object, not {type(body).__name__}")
    return body


def _str(method: str, body: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{method}: {key} is required")
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{method}: {key} must be a string")
    return value


def _docker_id(method: str, body: dict[str, Any], key: str) -> str:
    value = _str(method, body, key, required=True)
    if not _DOCKER_ID.match(value):
        raise BadRequest(f"{method}: {key} {_shown(value)} is not a Docker id (64 hex characters)")
    return value


def _pool_id(method: str, body: dict[str, Any]) -> str:
    value = _str(method, body, "PoolID", required=True)
    if not naming.is_neutron_id(value):  # kuryr's PoolIDs are subnetpool or subnet ids
        raise BadRequest(f"{method}: PoolID {_shown(value)} is not a kuryr pool id (a Neutron subnetpool "
                         "or subnet id)")
    return value


def _map(method: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{method}: {key} must be a JSON object")
    return value


def _bool(method: str, body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{method}: {key} must be true or false")
    return value


def _cidr(method: str, key: str, value: str) -> str:
    """A CIDR as Docker writes it; returned normalised (host bits allowed, as in 'ip/len')."""
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        raise BadRequest(f"{method}: {key} {_shown(value)} is not an address/prefix") from None
    return value


def _address(method: str, key: str, value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise BadRequest(f"{method}: {key} {_shown(value)} is not an IP address") from None


def mac_or_empty(method: str, key: str, value: str) -> str:
    if value and not _MAC.match(value):
        raise BadRequest(f"{method}: {key} {_shown(value)} is not a MAC address")
    return value.lower()


def generic_options(options: dict[str, Any]) -> dict[str, str]:
    """The user's `docker network create -o k=v` options (values always strings)."""
    generic = options.get(OPT_GENERIC) or {}
    return {str(k): str(v) for k, v in generic.items()} if isinstance(generic, dict) else {}


_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0", ""})


def parse_bool(what: str, value: str) -> bool:
    """One reading of a yes/no string for every option (oslo's strutils words)."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise BadRequest(f"{what}={_shown(value)} is not true or false")


@dataclass(frozen=True)
class NeutronRef:
    """A Neutron resource named by a user's option: by id (`*.uuid`) or by name (`*.name`)."""
    uuid: str = ""
    name: str = ""

    def __bool__(self) -> bool:
        return bool(self.uuid or self.name)


@dataclass(frozen=True)
class NeutronOptions:
    """The `neutron.*` options of `docker network create -o` (CreateNetwork) or `--ipam-opt`
    (RequestPool), read once: handlers use these typed values, never the raw strings, so that
    every option means the same in both (kuryr-libnetwork's recipes pass them to both)."""
    net: NeutronRef = NeutronRef()
    net_shared: bool = False
    subnet_v4: NeutronRef = NeutronRef()
    subnet_v6: NeutronRef = NeutronRef()
    pool_v4: NeutronRef = NeutronRef()
    pool_v6: NeutronRef = NeutronRef()
    mtu: int = 0  # com.docker.network.driver.mtu; 0: the Neutron network's

    def subnet(self, v6: bool) -> NeutronRef:
        return self.subnet_v6 if v6 else self.subnet_v4

    def pool(self, v6: bool) -> NeutronRef:
        return self.pool_v6 if v6 else self.pool_v4

    @classmethod
    def parse(cls, method: str, opts: dict[str, str]) -> "NeutronOptions":
        def ref(kind: str) -> NeutronRef:
            return NeutronRef(opts.get(f"{kind}.uuid", "").strip(), opts.get(f"{kind}.name", "").strip())
        mtu = opts.get(OPT_MTU, "").strip()
        if mtu and not (mtu.isdigit() and 68 <= int(mtu) <= 65535):
            raise BadRequest(f"{method}: {OPT_MTU}={_shown(mtu)} is not an MTU (68 to 65535)")
        return cls(net=ref("neutron.net"),
                   net_shared=parse_bool(f"{method}: neutron.net.shared", opts.get("neutron.net.shared", "")),
                   subnet_v4=ref("neutron.subnet"), subnet_v6=ref("neutron.subnet.v6"),
                   pool_v4=ref("neutron.pool"), pool_v6=ref("neutron.pool.v6"), mtu=int(mtu or 0))


# --- NetworkDriver requests ---------------------------------------------------------

@dataclass(frozen=True)
class IPAMData:
    address_space: str
    pool: str  # CIDR
    gateway: str  # "ip/len" or ""
    aux_addresses: dict[str, str]

    @classmethod
    def parse_list(cls, method: str, body: dict[str, Any], key: str) -> list["IPAMData"]:
        items = body.get(key) or []
        if not isinstance(items, list):
            raise BadRequest(f"{method}: {key} must be a list")
        out = []
        for item in items:
            item = _object(method, item)
            pool = _cidr(method, f"{key}.Pool", _str(method, item, "Pool", required=True))
            gateway = _str(method, item, "Gateway")
            if gateway:
                _cidr(method, f"{key}.Gateway", gateway)
            aux = _map(method, item, "AuxAddresses")
            out.append(cls(_str(method, item, "AddressSpace"), pool, gateway,
                           {str(k): str(v) for k, v in aux.items()}))
        return out


@dataclass(frozen=True)
class CreateNetworkRequest:
    network_id: str
    options: dict[str, Any]
    ipv4_data: list[IPAMData]
    ipv6_data: list[IPAMData]
    neutron: NeutronOptions  # from the generic (-o) options

    @property
    def internal(self) -> bool:
        return bool(self.options.get(OPT_INTERNAL))

    @classmethod
    def parse(cls, body: Any) -> "CreateNetworkRequest":
        m = "NetworkDriver.CreateNetwork"
        b = _object(m, body)
        options = _map(m, b, "Options")
        return cls(_docker_id(m, b, "NetworkID"), options,
                   IPAMData.parse_list(m, b, "IPv4Data"), IPAMData.parse_list(m, b, "IPv6Data"),
                   NeutronOptions.parse(m, generic_options(options)))


@dataclass(frozen=True)
class NetworkRequest:
    """DeleteNetwork and FreeNetwork."""
    network_id: str

    @classmethod
    def parse(cls, body: Any, method: str = "NetworkDriver.DeleteNetwork") -> "NetworkRequest":
        return cls(_docker_id(method, _object(method, body), "NetworkID"))


@dataclass(frozen=True)
class AllocateNetworkRequest:
    network_id: str
    options: dict[str, Any]

    @classmethod
    def parse(cls, body: Any) -> "AllocateNetworkRequest":
        m = "NetworkDriver.AllocateNetwork"
        b = _object(m, body)
        return cls(_docker_id(m, b, "NetworkID"), _map(m, b, "Options"))


@dataclass(frozen=True)
class GwAllocCheckRequest:
    internal: bool

    @classmethod
    def parse(cls, body: Any) -> "GwAllocCheckRequest":
        m = "NetworkDriver.GwAllocCheck"
        options = _map(m, _object(m, body), "Options") if body is not None else {}
        return cls(bool(options.get(OPT_INTERNAL)))


@dataclass(frozen=True)
class EndpointInterface:
    address: str  # "ip/len" or ""
    address_ipv6: str
    mac_address: str


@dataclass(frozen=True)
class CreateEndpointRequest:
    network_id: str
    endpoint_id: str
    interface: EndpointInterface
    options: dict[str, Any]

    @classmethod
    def parse(cls, body: Any) -> "CreateEndpointRequest":
        m = "NetworkDriver.CreateEndpoint"
        b = _object(m, body)
        iface = _map(m, b, "Interface")
        address = _str(m, iface, "Address")
        address6 = _str(m, iface, "AddressIPv6")
        if address:
            _cidr(m, "Interface.Address", address)
        if address6:
            _cidr(m, "Interface.AddressIPv6", address6)
        if not address and not address6:
            raise BadRequest(f"{m}: Interface has no Address; use kuryr as the network's "
                             "IPAM driver too (--ipam-driver kuryr)")
        mac = mac_or_empty(m, "Interface.MacAddress", _str(m, iface, "MacAddress"))
        return cls(_docker_id(m, b, "NetworkID"), _docker_id(m, b, "EndpointID"),
                   EndpointInterface(address, address6, mac), _map(m, b, "Options"))


@dataclass(frozen=True)
class EndpointRequest:
    """EndpointOperInfo, DeleteEndpoint, Leave, RevokeExternalConnectivity,
    ProgramExternalConnectivity (with Options) and Join (with SandboxKey and Options)."""
    network_id: str
    endpoint_id: str
    options: dict[str, Any] = field(default_factory=dict)
    sandbox_key: str = ""

    @classmethod
    def parse(cls, body: Any, method: str) -> "EndpointRequest":
        b = _object(method, body)
        return cls(_docker_id(method, b, "NetworkID"), _docker_id(method, b, "EndpointID"),
                   _map(method, b, "Options"), _str(method, b, "SandboxKey"))


# --- IpamDriver requests --------------------------------------------------------------

@dataclass(frozen=True)
class RequestPoolRequest:
    address_space: str
    pool: str  # "" = let the driver choose
    sub_pool: str
    options: dict[str, str]
    v6: bool
    neutron: NeutronOptions  # from the --ipam-opt options

    @classmethod
    def parse(cls, body: Any) -> "RequestPoolRequest":
        m = "IpamDriver.RequestPool"
        b = _object(m, body)
        pool = _str(m, b, "Pool")
        sub_pool = _str(m, b, "SubPool")
        for key, value in (("Pool", pool), ("SubPool", sub_pool)):
            if value:
                try:
                    ipaddress.ip_network(value, strict=False)
                except ValueError:
                    raise BadRequest(f"{m}: {key} {_shown(value)} is not a CIDR") from None
        v6 = _bool(m, b, "V6")
        for key, value in (("Pool", pool), ("SubPool", sub_pool)):
            if value and (ipaddress.ip_network(value, strict=False).version == 6) != v6:
                raise BadRequest(f"{m}: {key} {value} does not match V6={v6}")
        opts = {str(k): str(v) for k, v in _map(m, b, "Options").items()}
        return cls(_str(m, b, "AddressSpace"), pool, sub_pool, opts, v6, NeutronOptions.parse(m, opts))


@dataclass(frozen=True)
class PoolRequest:
    """ReleasePool."""
    pool_id: str

    @classmethod
    def parse(cls, body: Any) -> "PoolRequest":
        m = "IpamDriver.ReleasePool"
        return cls(_pool_id(m, _object(m, body)))


@dataclass(frozen=True)
class RequestAddressRequest:
    pool_id: str
    address: str  # "" = any free address
    options: dict[str, str]

    @property
    def is_gateway(self) -> bool:
        return self.options.get(OPT_REQUEST_ADDRESS_TYPE) == GATEWAY_ADDRESS_TYPE

    @property
    def mac_address(self) -> str:
        """Set only when the IPAM driver reports RequiresMACAddress."""
        return self.options.get(OPT_MAC_ADDRESS, "").lower()

    @classmethod
    def parse(cls, body: Any) -> "RequestAddressRequest":
        m = "IpamDriver.RequestAddress"
        b = _object(m, body)
        address = _str(m, b, "Address")
        if address:
            address = _address(m, "Address", address)
        opts = {str(k): str(v) for k, v in _map(m, b, "Options").items()}
        mac_or_empty(m, "Options." + OPT_MAC_ADDRESS, opts.get(OPT_MAC_ADDRESS, ""))
        return cls(_pool_id(m, b), address, opts)


@dataclass(frozen=True)
class ReleaseAddressRequest:
    pool_id: str
    address: str

    @classmethod
    def parse(cls, body: Any) -> "ReleaseAddressRequest":
        m = "IpamDriver.ReleaseAddress"
        b = _object(m, body)
        return cls(_pool_id(m, b),
                   _address(m, "Address", _str(m, b, "Address", required=True)))


# --- responses --------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivateResponse:
    implements: tuple[str, ...] = (NETWORK_DRIVER, IPAM_DRIVER)

    def to_json(self) -> dict[str, Any]:
        return {"Implements": list(self.implements)}


@dataclass(frozen=True)
class NetworkCapabilities:
    scope: str
    connectivity_scope: str
    gw_alloc_checker: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"Scope": self.scope, "ConnectivityScope": self.connectivity_scope,
                "GwAllocChecker": self.gw_alloc_checker}


@dataclass(frozen=True)
class IpamCapabilities:
    requires_mac_address: bool
    requires_request_replay: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"RequiresMACAddress": self.requires_mac_address,
                "RequiresRequestReplay": self.requires_request_replay}


@dataclass(frozen=True)
class AddressSpaces:
    local: str
    global_: str

    def to_json(self) -> dict[str, Any]:
        return {"LocalDefaultAddressSpace": self.local, "GlobalDefaultAddressSpace": self.global_}


@dataclass(frozen=True)
class StaticRoute:
    destination: str
    next_hop: str

    def to_json(self) -> dict[str, Any]:
        return {"Destination": self.destination, "RouteType": 0, "NextHop": self.next_hop}


@dataclass(frozen=True)
class JoinResponse:
    src_name: str
    dst_prefix: str
    gateway: str = ""
    gateway_ipv6: str = ""
    static_routes: tuple[StaticRoute, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "InterfaceName": {"SrcName": self.src_name, "DstPrefix": self.dst_prefix},
            # Never let Docker attach docker_gwbridge: Neutron provides the gateway,
            # or the network is --internal and must have none.
            "DisableGatewayService": True,
        }
        if self.gateway:
            out["Gateway"] = self.gateway
        if self.gateway_ipv6:
            out["GatewayIPv6"] = self.gateway_ipv6
        if self.static_routes:
            out["StaticRoutes"] = [r.to_json() for r in self.static_routes]
        return out
