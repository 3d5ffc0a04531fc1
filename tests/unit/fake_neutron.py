"""An in-memory Neutron behind NeutronClient's interface, for unit tests of the drivers.

`FakeNeutron` offers every public method of `kuryr_cnm.neutron.NeutronClient` with the
same signature, returns the same typed records (built with their `from_api` from dicts
shaped like Neutron's API JSON, so `Port.raw` has description, revision_number,
created_at/updated_at, allowed_address_pairs, trunk_details, ...) and raises what the
client raises: each refusal carries the HTTP status Neutron would answer, mapped to a
`kuryr_cnm.errors` class by `neutron_error` (one place, like the client's `_error_for`).

What it models, as ML2/OVN in Neutron 29 (the stack's) answered when probed:
* list filters: every keyword compares to the attribute (a list value means any of;
  booleans and integers compared as Neutron converts them; mac_address case-blind);
  `tags` (all of), `tags-any`, `not-tags`, `not-tags-any` take "a,b" or a list; ports'
  `fixed_ips` takes "ip_address=X" / "subnet_id=Y" / "ip_address_substr=Z" or a list
  (ip_address values any of, subnet_id values any of, both kinds: both must hold).
  An unknown filter is a 400, as Neutron's filter-validation answers.
* creation defaults: uuid4 ids, project `fake_project_id`, network mtu 1442 (geneve),
  shared False, status ACTIVE, revision 1; subnet gateway the first host unless
  gateway_ip=None, allocation pools all hosts but the gateway; subnetpool prefix
  lengths as strings ("24") as Neutron returns them; port status DOWN, a unique
  fa:16:3e MAC, the project's default security group, binding from binding:host_id.
* Unknown attributes in a POST or PUT are a 400, and so are `tags` in a network,
  subnet or subnetpool POST. Tags in a port POST are accepted and dropped: Neutron 29
  here stores them only with the tag_ports_during_bulk_creation ML2 extension driver,
  which the stack does not load.
* subnets from a pool: the first free prefix of default_prefixlen (or `prefixlen`),
  or the given cidr if it is free in the pool; subnets of one network and IP version
  come from one pool (400); a cidr overlapping another subnet of the network is a 400.
* addresses: without fixed_ips one address from the network's IPv4 subnets and one
  from its stateful IPv6 ones (the first subnet with room; in the common one-of-each
  case an address in every subnet), plus an EUI-64 address in each SLAAC or
  dhcpv6-stateless one; the LOWEST free address of the allocation pools (Neutron
  picks one of the first few at random: do not assert on a particular one against the
  stack); never one address twice; in use and exhausted are 409s with Neutron's text.
  update_port(fixed_ips=...) keeps what is named again (by address, or by subnet) and
  releases the rest, as Neutron does.
* MAC change of a bound port (vif_type not unbound/binding_failed) is a 409; a bound
  port's allowed address pair with a foreign MAC that is no VRRP MAC is a 400 (OVN);
  pairs on a port without port security are a 409.
* revision_number goes up by one on every change of a resource, tags included (an
  update that changes nothing leaves it); If-Match on a stale revision is a 412.
* deletes: a missing resource is fine (the client takes the 404); a subnet holding
  addresses of ports (other than network:dhcp / network:distributed ones, whose
  addresses go) is a 409; a network with such ports is a 409, else its auto ports and
  subnets go with it; a subnetpool with subnets is refused (see below); a trunk
  parent or subport is a 409; a security group in use (or the default one) is a 409.
* tags on networks, subnets, subnetpools, ports, trunks, security groups: at most 50,
  each at most `max_tag_len` characters (400).
* trunks (`make_trunk`): add_subport refuses a taken VLAN id or a port already on a
  trunk (409), a VLAN id outside 1..4094 (400), a missing port (404); a subport gets
  device_owner trunk:subport, binding:profile parent_name/tag and vif_type ovs (OVN's
  trunk driver), and loses them when removed; the parent shows trunk_details.
* security groups and rules, minimal (a duplicate rule is a 409).

Where it differs from Neutron 29, or answers as it does with a class attribute to change it:
* a cidr already allocated in a subnetpool, and an exhausted pool: 500 SubnetAllocationError
  as Neutron 29 answers (POOL_ALLOCATION_STATUS; older Neutrons answer 409).
* deleting a subnetpool with subnets: 400 SubnetPoolDeleteError (SUBNETPOOL_IN_USE_STATUS).
* tagging a missing resource: Neutron 29 answers 500; the fake 404
  (TAG_MISSING_RESOURCE_STATUS).
* tag length: Neutron 29 allows 255 characters; the fake 60 by default (the limit of
  older Neutrons, which kuryr-libnetwork's tag layout keeps to; see kuryr_cnm.naming).

What it does not model: ports going ACTIVE (no agents, status stays DOWN), DHCP or
metadata ports being made (make them with device_owner="network:dhcp"), routers,
floating IPs, quotas, RBAC and projects, pagination, sorting and `fields`, retries on
a reset connection, the client's timeouts, address scopes, segments, DNS, QoS, port
binding profiles beyond trunks, MTU checks of subports, and random address choice.

Test hooks: `calls` (every public call as (method, args)), `requests` (each request
as "VERB /path STATUS", as the client's call log has it), `writes()`, `fail_next()`,
`before()`, and helpers (`make_network`, `make_subnet`, `make_subnetpool`,
`make_port`, `make_trunk`, `networks()`, `subnets()`, `subnetpools()`, `ports()`,
`trunks()`, `security_groups()`, `raw()`) that set up or read state without counting.
"""
from __future__ import annotations

import copy
import functools
import inspect
import ipaddress
import itertools
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from kuryr_cnm import errors, naming, neutron
from kuryr_cnm.neutron import Network, NeutronClient, Port, Subnet, SubnetPool

PROJECT_ID = "fake_project_id"  # what the stack's noauth Neutron gives every resource
KNOWN_HOSTS = frozenset({"vm", "host2", "host3"})  # hosts with an OVN chassis: ports bind there
DEFAULT_MTU = 1442  # geneve under ML2/OVN on a 1500 underlay
MAX_TAGS = 50
MAX_FIXED_IPS = 5  # [DEFAULT] max_fixed_ips_per_port
AUTO_DELETE_OWNERS = frozenset({"network:dhcp", "network:distributed", "network:floatingip_agent_gateway"})
SUBPORT_OWNER = "trunk:subport"
UNPLUGGED_VIF_TYPES = ("unbound", "binding_failed")
VRRP_MAC_PREFIXES = {4: "00:00:5e:00:01", 6: "00:00:5e:00:02"}
OVS_VIF_DETAILS: Mapping[str, Any] = {"port_filter": True, "connectivity": "l2", "ovs_create_tap": True,
                                      "bridge_name": "br-int", "datapath_type": "netdev",
                                      "bound_drivers": {"0": "ovn"}}

# GET /extensions of the stack's Neutron 29 (ML2/OVN, service plugins ovn-router and trunk)
EXTENSIONS = frozenset({
    "address-group", "address-scope", "agent", "allowed-address-pairs", "auto-allocated-topology",
    "availability_zone", "binding", "binding-extended", "default-subnetpools", "dhcp_agent_scheduler",
    "dns-domain-ports", "dns-integration", "dns-integration-domain-keywords", "empty-string-filtering",
    "enable-default-route-bfd", "enable-default-route-ecmp", "ext-gw-mode", "external-gateway-multihoming",
    "external-net", "extra_dhcp_opt", "extraroute", "extraroute-atomic", "filter-validation",
    "fip-port-details", "flavors", "floating-ip-port-forwarding-detail", "floating-ip-router-writable",
    "floatingip-pools", "ip-substring-filtering", "l3-agent-scheduler-ha-chassis-priority", "l3-flavors",
    "l3-ha", "l3_agent_scheduler", "multi-provider", "net-mtu", "net-mtu-writable", "network-ip-availability",
    "network-ip-availability-details", "network_availability_zone", "pagination", "port-device-profile",
    "port-mac-address-regenerate", "port-numa-affinity-policy", "port-numa-affinity-policy-socket",
    "port-security", "project-id", "provider", "qinq", "quota-check-limit", "quota-check-limit-default",
    "quota_details", "quotas", "rbac-address-scope", "rbac-policies", "rbac-security-groups",
    "revision-if-match", "router", "router-enable-snat", "router_availability_zone", "security-group",
    "security-groups-default-rules", "security-groups-default-statefulness",
    "security-groups-normalized-cidr", "security-groups-remote-address-group",
    "security-groups-rules-belongs-to-default-sg", "security-groups-shared-filtering", "service-type",
    "sorting", "standard-attr-description", "standard-attr-revisions", "standard-attr-tag",
    "standard-attr-timestamp", "stateful-security-group", "subnet-dns-publish-fixed-ip",
    "subnet-external-network", "subnet-service-types", "subnet_allocation", "subnet_onboard",
    "subnetpool-prefix-ops", "tag-creation", "trunk", "trunk-details", "vlan-transparent",
})

# attributes a POST may carry (besides the ones a PUT may change)
_NETWORK_PUT = frozenset({"name", "description", "shared", "mtu", "admin_state_up", "port_security_enabled",
                          "router:external", "dns_domain", "is_default", "availability_zone_hints"})
_NETWORK_POST = _NETWORK_PUT | {"project_id", "tenant_id", "provider:network_type", "provider:physical_network",
                                "provider:segmentation_id", "vlan_transparent", "qinq"}
_SUBNET_PUT = frozenset({"name", "description", "gateway_ip", "allocation_pools", "enable_dhcp", "host_routes",
                         "dns_nameservers", "service_types", "dns_publish_fixed_ip"})
_SUBNET_POST = _SUBNET_PUT | {"network_id", "ip_version", "cidr", "subnetpool_id", "prefixlen", "project_id",
                              "tenant_id", "ipv6_ra_mode", "ipv6_address_mode", "segment_id"}
_SUBNETPOOL_POST = frozenset({"name", "description", "prefixes", "default_prefixlen", "min_prefixlen",
                              "max_prefixlen", "shared", "is_default", "address_scope_id", "default_quota",
                              "project_id", "tenant_id"})
_PORT_PUT = frozenset({"name", "description", "admin_state_up", "mac_address", "fixed_ips", "device_owner",
                       "device_id", "binding:host_id", "binding:profile", "binding:vnic_type", "security_groups",
                       "port_security_enabled", "allowed_address_pairs", "extra_dhcp_opts"})
_PORT_POST = _PORT_PUT | {"network_id", "project_id", "tenant_id", "tags"}

_COMMON_FILTERS = frozenset({"id", "name", "description", "project_id", "tenant_id", "revision_number",
                             "tags", "tags-any", "not-tags", "not-tags-any"})
FILTERS: Mapping[str, frozenset[str]] = {
    "networks": _COMMON_FILTERS | {"shared", "mtu", "status", "admin_state_up", "router:external",
                                   "port_security_enabled", "provider:network_type", "provider:physical_network",
                                   "provider:segmentation_id", "is_default"},
    "subnets": _COMMON_FILTERS | {"network_id", "cidr", "ip_version", "gateway_ip", "subnetpool_id", "enable_dhcp",
                                  "ipv6_ra_mode", "ipv6_address_mode"},
    "subnetpools": _COMMON_FILTERS | {"ip_version", "default_prefixlen", "min_prefixlen", "max_prefixlen",
                                      "shared", "is_default", "address_scope_id"},
    "ports": _COMMON_FILTERS | {"network_id", "mac_address", "device_owner", "device_id", "binding:host_id",
                                "binding:vif_type", "binding:vnic_type", "status", "admin_state_up",
                                "security_groups", "fixed_ips", "port_security_enabled"},
    "security-groups": _COMMON_FILTERS | {"stateful", "shared"},
}
TAGGABLE = ("networks", "subnets", "subnetpools", "ports", "trunks", "security-groups")

_SUCCESS = {"GET": 200, "POST": 201, "PUT": 200, "DELETE": 204}
WRITE_VERBS = frozenset({"POST", "PUT", "DELETE"})


class Refused(Exception):
    """Neutron's answer to a request it refuses: the HTTP status, NeutronError's message and type."""

    def __init__(self, status: int, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def neutron_error(status: int, label: str, message: str, kind: str = "") -> errors.NeutronError:
    """What NeutronClient raises for a refusal: the client's own mapping, so the two never differ."""
    return neutron._error_for(status, label, message, kind)


Call = tuple[str, dict[str, Any]]  # (method name, its arguments by name, **attrs spread)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _api(verb: str, path: str, *, none_on_404: bool = False) -> Callable[[F], F]:
    """One NeutronClient method: one request `verb path` (path formatted with the arguments).
    `none_on_404`: the client takes a 404 as an answer (deletes, remove_tag, get_* but get_network)."""
    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def call(self: FakeNeutron, *args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(self, *args, **kwargs)
            named: dict[str, Any] = {}
            for name, value in list(bound.arguments.items())[1:]:
                if sig.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                    named.update(value)
                else:
                    named[name] = value
            return self._serve(fn.__name__, verb, path.format(**named), named, none_on_404,
                               lambda: fn(self, *args, **kwargs))
        call.__api__ = True  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]
    return wrap


@dataclass
class _Failure:
    exc: BaseException
    applied: bool


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]


def _tag_values(value: Any) -> set[str]:
    return {t for v in _listed(value) for t in str(v).split(",") if t}


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise Refused(400, f"Invalid input for operation: '{value}' cannot be converted to boolean.")


def _equal(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, bool):
        return _as_bool(wanted) == actual
    if isinstance(actual, int):
        try:
            return int(wanted) == actual
        except (TypeError, ValueError):
            raise Refused(400, f"Invalid input for operation: '{wanted}' is not an integer.") from None
    if isinstance(actual, list):
        return any(_equal(a, wanted) for a in actual)
    if actual is None:
        return wanted is None
    return str(actual) == str(wanted)


def _fixed_ips_match(port: Mapping[str, Any], value: Any) -> bool:
    wanted: dict[str, set[str]] = {"ip_address": set(), "subnet_id": set(), "ip_address_substr": set()}
    for item in _listed(value):
        key, sep, val = str(item).partition("=")
        if not sep or key not in wanted:
            raise Refused(400, f"Invalid input for operation: fixed_ips filter {item!r} is not "
                               "ip_address=, subnet_id= or ip_address_substr=.")
        wanted[key].add(val)
    held = port["fixed_ips"]
    ips, subnet_ids, substrings = wanted["ip_address"], wanted["subnet_id"], wanted["ip_address_substr"]
    return ((not ips or any(f["ip_address"] in ips for f in held))
            and (not subnet_ids or any(f["subnet_id"] in subnet_ids for f in held))
            and all(any(s in f["ip_address"] for f in held) for s in substrings))


def check_filters(collection: str, filters: Mapping[str, Any]) -> None:
    """A key Neutron does not filter the collection on is a 400 (filter-validation), with or
    without resources to filter; so is a fixed_ips value it cannot read."""
    unknown = sorted(k for k in filters if k not in FILTERS[collection])
    if unknown:
        raise Refused(400, f"{unknown} is invalid attribute for filtering")
    if "fixed_ips" in filters:
        _fixed_ips_match({"fixed_ips": []}, filters["fixed_ips"])


def matches(collection: str, resource: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Neutron's list filters (checked by check_filters) on one resource."""
    tags = set(resource.get("tags") or ())
    for key, value in filters.items():
        if key == "tags":
            ok = _tag_values(value) <= tags
        elif key == "tags-any":
            ok = bool(_tag_values(value) & tags)
        elif key == "not-tags":
            ok = not _tag_values(value) <= tags
        elif key == "not-tags-any":
            ok = not _tag_values(value) & tags
        elif key == "fixed_ips":
            ok = _fixed_ips_match(resource, value)
        elif key == "mac_address":
            ok = str(resource["mac_address"]).lower() in {str(v).lower() for v in _listed(value)}
        else:
            ok = any(_equal(resource.get(key), v) for v in _listed(value))
        if not ok:
            return False
    return True


def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(cidr)
    except ValueError:
        raise Refused(400, f"Invalid input for operation: '{cidr}' is not a valid IP subnet.") from None


def _ip(address: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(str(address))
    except ValueError:
        raise Refused(400, f"Invalid input for operation: '{address}' is not a valid IP address.") from None


def _host_in(cidr: str, address: str) -> bool:
    """Neutron's check_subnet_ip: in the subnet, not its network address nor (v4) broadcast."""
    net, ip = ipaddress.ip_network(cidr), ipaddress.ip_address(address)
    if ip not in net or ip.version != net.version:
        return False
    if net.version == 4 and net.prefixlen < 31:
        return ip not in (net.network_address, net.broadcast_address)
    return net.version == 4 or ip != net.network_address


def default_pools(cidr: str, gateway: str | None) -> list[dict[str, str]]:
    """Neutron's generate_pools: every host address but the gateway."""
    net = ipaddress.ip_network(cidr)
    first, last = int(net.network_address), int(net.broadcast_address)
    if first != last and net.version == 6:
        first += 1  # the subnet-router anycast address
    elif first != last and net.prefixlen <= 30:
        first, last = first + 1, last - 1  # network and broadcast addresses
    ranges = [(first, last)]
    if gateway is not None and first <= int(ipaddress.ip_address(gateway)) <= last:
        gw = int(ipaddress.ip_address(gateway))
        ranges = [(a, b) for a, b in ((first, gw - 1), (gw + 1, last)) if a <= b]
    address = type(net.network_address)
    return [{"start": str(address(a)), "end": str(address(b))} for a, b in ranges]


def _eui64(cidr: str, mac: str) -> str:
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    net = ipaddress.IPv6Network(cidr)
    return str(net.network_address + int.from_bytes(bytes(iid), "big"))


class FakeNeutron(NeutronClient):
    """An in-memory Neutron 29 (ML2/OVN) behind NeutronClient's methods; see the module docstring.

    One lock: each call is served whole under it (hooks run before, outside it)."""

    POOL_ALLOCATION_STATUS = 500  # Neutron 29: 500 SubnetAllocationError (older ones: 409)
    SUBNETPOOL_IN_USE_STATUS = 400  # Neutron 29: 400 SubnetPoolDeleteError
    TAG_MISSING_RESOURCE_STATUS = 404  # Neutron 29: 500

    def __init__(self, hosts: Iterable[str] = (), *, project_id: str = PROJECT_ID, max_tag_len: int = 60,
                 extensions: Iterable[str] = EXTENSIONS, seed: int | None = None) -> None:
        # no super().__init__: there is no connection; _request refuses anything not modelled
        self.hosts: set[str] = set(KNOWN_HOSTS) | set(hosts)
        self.dead_hosts: set[str] = set()  # their chassis stopped answering (list_agents: alive False)
        self.project_id = project_id
        self.max_tag_len = max_tag_len
        self._extensions = frozenset(extensions)
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._db: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in TAGGABLE}
        self._segmentation_id = 1000
        self.calls: list[Call] = []
        self.requests: list[str] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._hooks: dict[str, Callable[[dict[str, Any]], object]] = {}
        self.default_security_group_id = self._make_security_group("default", "Default security group")

    # -- the machinery of a call ---------------------------------------------------------

    def _request(self, method: str, path: str, **_: Any) -> Any:
        raise AssertionError(f"FakeNeutron does not model {method} {path}: a NeutronClient method "
                             "was added without its fake in tests/unit/fake_neutron.py")

    def _serve(self, method: str, verb: str, path: str, args: dict[str, Any], none_on_404: bool,
               run: Callable[[], Any]) -> Any:
        with self._lock:
            self.calls.append((method, _copied(args)))
            hook = self._hooks.get(method)
        if hook is not None:
            hook(args)
        parts = path.split("/")
        if len(parts) >= 3 and not naming.is_neutron_id(parts[2]):  # the client sends nothing
            if none_on_404:
                return None
            raise errors.NeutronNotFound(f"{verb} {path[:120]}",
                                         f"{parts[2][:60]!r} is not a Neutron id: no {parts[1]} has it")
        label = f"{verb} {path}"
        with self._lock:
            queue = self._failures.get(method)
            failure = queue.pop(0) if queue else None
            if failure is not None and not failure.applied:
                self._log(label, f"injected {type(failure.exc).__name__}")
                raise failure.exc
            try:
                result = run()
            except Refused as refused:
                self._log(label, str(refused.status))
                if refused.status == 404 and none_on_404:
                    return None
                raise neutron_error(refused.status, label, refused.message, refused.kind) from None
            self._log(label, str(_SUCCESS[verb]))
        if failure is not None:
            raise failure.exc  # applied, but the answer is lost
        return result

    def _log(self, label: str, status: str) -> None:
        self.requests.append(f"{label} {status}")
        call_log = neutron._CALLS.get()  # the handler's log line, as the real client fills it
        if call_log is not None:
            call_log.append(f"{label} {status} 0ms")

    # -- test controls -------------------------------------------------------------------

    def writes(self) -> int:
        """Requests that change something (POST, PUT, DELETE) made so far."""
        with self._lock:
            return sum(1 for r in self.requests if r.split(" ", 1)[0] in WRITE_VERBS)

    def reads(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.startswith("GET "))

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The arguments of each call of `method`, in order."""
        _check_method(method)
        with self._lock:
            return [args for name, args in self.calls if name == method]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()

    def fail_next(self, method: str, exc: BaseException, *, applied: bool = False) -> None:
        """The next call of `method` raises `exc` (once; several queue up). With `applied` the
        call takes effect first and then raises: Neutron did it, but the answer was lost."""
        _check_method(method)
        with self._lock:
            self._failures.setdefault(method, []).append(_Failure(exc, applied))

    def before(self, method: str, fn: Callable[[dict[str, Any]], object] | None) -> None:
        """Run fn(args) before every call of `method` (outside the lock: it may block on an
        Event while other threads call the fake); None removes it."""
        _check_method(method)
        with self._lock:
            if fn is None:
                self._hooks.pop(method, None)
            else:
                self._hooks[method] = fn

    def add_host(self, host: str) -> None:
        with self._lock:
            self.hosts.add(host)

    # -- helpers for tests: state without counted calls ----------------------------------

    def _setup(self, label: str, make: Callable[[], T]) -> T:
        """A helper's work under the lock; a refusal raises what the client would."""
        with self._lock:
            try:
                return make()
            except Refused as refused:
                raise neutron_error(refused.status, label, refused.message, refused.kind) from None

    def make_network(self, name: str = "", **attrs: Any) -> Network:
        net = self._setup("POST /networks", lambda: self._create_network({"name": name, **attrs}))
        return Network.from_api(self._view("networks", net))

    def make_subnet(self, network_id: str, cidr: str | None = None, **attrs: Any) -> Subnet:
        """A subnet of `cidr`, or from attrs["subnetpool_id"]; ip_version follows from either."""
        def make() -> dict[str, Any]:
            if cidr is not None:
                attrs["cidr"] = cidr
                attrs.setdefault("ip_version", _net(cidr).version)
            elif attrs.get("subnetpool_id"):
                attrs.setdefault("ip_version", self._find("subnetpools", attrs["subnetpool_id"])["ip_version"])
            return self._create_subnet({"network_id": network_id, **attrs})
        return Subnet.from_api(self._view("subnets", self._setup("POST /subnets", make)))

    def make_subnetpool(self, name: str, prefixes: Iterable[str], default_prefixlen: int | None = None,
                        **attrs: Any) -> SubnetPool:
        attrs.update(name=name, prefixes=list(prefixes))
        if default_prefixlen is not None:
            attrs["default_prefixlen"] = default_prefixlen
        pool = self._setup("POST /subnetpools", lambda: self._create_subnetpool(attrs))
        return SubnetPool.from_api(self._view("subnetpools", pool))

    def make_port(self, network_id: str, **attrs: Any) -> Port:
        port = self._setup("POST /ports", lambda: self._create_port({"network_id": network_id, **attrs}))
        return Port.from_api(self._view("ports", port))

    def make_trunk(self, parent_port_id: str, name: str = "") -> str:
        """A trunk on the port (which then shows trunk_details); its id."""
        return self._setup("POST /trunks", lambda: self._create_trunk(parent_port_id, name))

    def _create_trunk(self, parent_port_id: str, name: str) -> str:
        parent = self._find("ports", parent_port_id)
        self._check_not_on_trunk(parent["id"])
        now = _now()
        trunk: dict[str, Any] = {"id": str(uuid.uuid4()), "name": name, "description": "", "port_id": parent["id"],
                 "status": "ACTIVE", "admin_state_up": True, "sub_ports": [], "tags": [],
                 "project_id": self.project_id, "tenant_id": self.project_id, "revision_number": 1,
                 "created_at": now, "updated_at": now}
        self._db["trunks"][trunk["id"]] = trunk
        return trunk["id"]

    def networks(self) -> list[Network]:
        with self._lock:
            return [Network.from_api(self._view("networks", n)) for n in self._db["networks"].values()]

    def subnets(self) -> list[Subnet]:
        with self._lock:
            return [Subnet.from_api(self._view("subnets", s)) for s in self._db["subnets"].values()]

    def subnetpools(self) -> list[SubnetPool]:
        with self._lock:
            return [SubnetPool.from_api(self._view("subnetpools", p)) for p in self._db["subnetpools"].values()]

    def ports(self) -> list[Port]:
        with self._lock:
            return [Port.from_api(self._view("ports", p)) for p in self._db["ports"].values()]

    def trunks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view("trunks", t) for t in self._db["trunks"].values()]

    def security_groups(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view("security-groups", g) for g in self._db["security-groups"].values()]

    def raw(self, collection: str, resource_id: str) -> dict[str, Any]:
        """A copy of the resource as Neutron would show it (KeyError if there is none)."""
        with self._lock:
            return self._view(collection, self._db[collection][resource_id])

    # -- networks ------------------------------------------------------------------------

    @_api("GET", "/networks")
    def list_networks(self, **filters: Any) -> list[Network]:
        return [Network.from_api(d) for d in self._list("networks", filters)]

    @_api("GET", "/networks/{network_id}")
    def get_network(self, network_id: str) -> Network:
        return Network.from_api(self._view("networks", self._find("networks", network_id)))

    @_api("POST", "/networks")
    def create_network(self, **attrs: Any) -> Network:
        return Network.from_api(self._view("networks", self._create_network(attrs)))

    @_api("PUT", "/networks/{network_id}")
    def update_network(self, network_id: str, **attrs: Any) -> Network:
        net = self._find("networks", network_id)
        _check_attrs(attrs, _NETWORK_PUT, net)
        if "mtu" in attrs:
            attrs["mtu"] = int(attrs["mtu"])
        self._change(net, attrs)
        return Network.from_api(self._view("networks", net))

    @_api("PUT", "/networks/{network_id}")
    def update_network_if_revision(self, network_id: str, revision: int, **attrs: Any) -> Network:
        """PUT only if the network is still at `revision`: PreconditionFailed (412) if it moved on."""
        net = self._find("networks", network_id)
        if net["revision_number"] != int(revision):
            raise Refused(412, f"Constrained to {revision}, but current revision is {net['revision_number']}")
        return self.update_network.__wrapped__(self, network_id, **attrs)  # type: ignore[attr-defined]

    @_api("DELETE", "/networks/{network_id}", none_on_404=True)
    def delete_network(self, network_id: str) -> None:
        net = self._find("networks", network_id)
        ports = [p for p in self._db["ports"].values() if p["network_id"] == net["id"]]
        busy = [p["id"] for p in ports if p["device_owner"] not in AUTO_DELETE_OWNERS]
        if busy:
            raise Refused(409, f"Unable to complete operation on network {net['id']}. There are one or more "
                               f"ports still in use on the network, id for these ports is: {','.join(busy)}.")
        for port in ports:
            self._remove_port(port)
        for subnet_id in list(net["subnets"]):
            del self._db["subnets"][subnet_id]
        del self._db["networks"][net["id"]]

    # -- subnets -------------------------------------------------------------------------

    @_api("GET", "/subnets")
    def list_subnets(self, **filters: Any) -> list[Subnet]:
        return [Subnet.from_api(d) for d in self._list("subnets", filters)]

    @_api("GET", "/subnets/{subnet_id}", none_on_404=True)
    def get_subnet(self, subnet_id: str) -> Subnet | None:
        return Subnet.from_api(self._view("subnets", self._find("subnets", subnet_id)))

    @_api("POST", "/subnets")
    def create_subnet(self, **attrs: Any) -> Subnet:
        return Subnet.from_api(self._view("subnets", self._create_subnet(attrs)))

    @_api("PUT", "/subnets/{subnet_id}")
    def update_subnet(self, subnet_id: str, **attrs: Any) -> Subnet:
        subnet = self._find("subnets", subnet_id)
        _check_attrs(attrs, _SUBNET_PUT, subnet)
        cidr = subnet["cidr"]
        gateway = attrs.get("gateway_ip", subnet["gateway_ip"])
        if gateway is not None:
            self._check_gateway(cidr, gateway)
            holder = next((p["id"] for p in self._db["ports"].values()
                           if any(f["subnet_id"] == subnet["id"] and f["ip_address"] == gateway
                                  for f in p["fixed_ips"])), None)
            if holder and gateway != subnet["gateway_ip"]:
                raise Refused(409, f"Current gateway ip {gateway} already in use by port {holder}. "
                                   "Unable to update.")
        pools = self._checked_pools(cidr, attrs["allocation_pools"]) if "allocation_pools" in attrs \
            else subnet["allocation_pools"]
        _check_gateway_out_of_pools(gateway, pools)
        changes = {**attrs, "gateway_ip": gateway, "allocation_pools": pools}
        if "host_routes" in attrs:
            changes["host_routes"] = [{"destination": r["destination"], "nexthop": r["nexthop"]}
                                      for r in attrs["host_routes"] or ()]
        self._change(subnet, changes)
        return Subnet.from_api(self._view("subnets", subnet))

    @_api("DELETE", "/subnets/{subnet_id}", none_on_404=True)
    def delete_subnet(self, subnet_id: str) -> None:
        subnet = self._find("subnets", subnet_id)
        holders = [p for p in self._db["ports"].values()
                   if any(f["subnet_id"] == subnet["id"] for f in p["fixed_ips"])]
        if any(p["device_owner"] not in AUTO_DELETE_OWNERS for p in holders):
            raise Refused(409, f"Unable to complete operation on subnet {subnet['id']}: One or more ports "
                               "have an IP allocation from this subnet.")
        for port in holders:
            self._change(port, {"fixed_ips": [f for f in port["fixed_ips"] if f["subnet_id"] != subnet["id"]]})
        net = self._db["networks"][subnet["network_id"]]
        self._change(net, {"subnets": [s for s in net["subnets"] if s != subnet["id"]]})
        del self._db["subnets"][subnet["id"]]

    # -- subnetpools ---------------------------------------------------------------------

    @_api("GET", "/subnetpools")
    def list_subnetpools(self, **filters: Any) -> list[SubnetPool]:
        return [SubnetPool.from_api(d) for d in self._list("subnetpools", filters)]

    @_api("GET", "/subnetpools/{pool_id}", none_on_404=True)
    def get_subnetpool(self, pool_id: str) -> SubnetPool | None:
        return SubnetPool.from_api(self._view("subnetpools", self._find("subnetpools", pool_id)))

    @_api("POST", "/subnetpools")
    def create_subnetpool(self, **attrs: Any) -> SubnetPool:
        return SubnetPool.from_api(self._view("subnetpools", self._create_subnetpool(attrs)))

    @_api("DELETE", "/subnetpools/{pool_id}", none_on_404=True)
    def delete_subnetpool(self, pool_id: str) -> None:
        pool = self._find("subnetpools", pool_id)
        if any(s["subnetpool_id"] == pool["id"] for s in self._db["subnets"].values()):
            raise Refused(self.SUBNETPOOL_IN_USE_STATUS,
                          "Unable to delete subnet pool: Subnet pool has existing allocations.", "SubnetPoolDeleteError")
        del self._db["subnetpools"][pool["id"]]

    # -- ports ---------------------------------------------------------------------------

    @_api("GET", "/ports")
    def list_ports(self, **filters: Any) -> list[Port]:
        return [Port.from_api(d) for d in self._list("ports", filters)]

    @_api("GET", "/ports/{port_id}", none_on_404=True)
    def get_port(self, port_id: str) -> Port | None:
        return Port.from_api(self._view("ports", self._find("ports", port_id)))

    @_api("POST", "/ports")
    def create_port(self, **attrs: Any) -> Port:
        return Port.from_api(self._view("ports", self._create_port(attrs)))

    @_api("POST", "/ports")
    def create_ports(self, ports: list[dict[str, Any]]) -> list[Port]:
        """Bulk create: one request, all or nothing."""
        made: list[dict[str, Any]] = []
        try:
            for attrs in ports:
                made.append(self._create_port(dict(attrs)))
        except Refused:
            for port in made:
                self._remove_port(port)
            raise
        return [Port.from_api(self._view("ports", p)) for p in made]

    @_api("PUT", "/ports/{port_id}")
    def update_port(self, port_id: str, **attrs: Any) -> Port:
        return Port.from_api(self._view("ports", self._update_port(self._find("ports", port_id), attrs)))

    @_api("DELETE", "/ports/{port_id}", none_on_404=True)
    def delete_port(self, port_id: str) -> None:
        port = self._find("ports", port_id)
        self._check_not_on_trunk(port["id"], deleting=True)
        self._remove_port(port)

    @_api("PUT", "/ports/{port_id}")
    def update_port_if_revision(self, port_id: str, revision: int, **attrs: Any) -> Port:
        """PUT only if the port is still at `revision` (revision-if-match extension): a read-modify-write
        that cannot drop a concurrent writer's change. PreconditionFailed (412) if it moved on."""
        port = self._find("ports", port_id)
        if port["revision_number"] != int(revision):
            raise Refused(412, f"Constrained to {revision}, but current revision is {port['revision_number']}")
        return Port.from_api(self._view("ports", self._update_port(port, attrs)))

    # -- trunks --------------------------------------------------------------------------

    @_api("GET", "/trunks/{trunk_id}")
    def get_trunk(self, trunk_id: str) -> dict[str, Any]:
        return self._view("trunks", self._find("trunks", trunk_id))

    @_api("PUT", "/trunks/{trunk_id}/add_subports")
    def add_subport(self, trunk_id: str, port_id: str, segmentation_id: int) -> None:
        """One subport, VLAN-tagged: Conflict (409) if the VLAN id or the port is taken on the trunk."""
        trunk = self._find("trunks", trunk_id)
        if not isinstance(segmentation_id, int) or not 1 <= segmentation_id <= 4094:
            raise Refused(400, f"Invalid input for operation: Segmentation ID '{segmentation_id}' is not in range.")
        port = self._find("ports", port_id)
        if any(s["segmentation_id"] == segmentation_id for s in trunk["sub_ports"]):
            raise Refused(409, f"segmentation_type vlan and segmentation_id {segmentation_id} already in use on "
                               f"trunk {trunk['id']}.")
        if port["id"] == trunk["port_id"] or self._trunk_of_subport(port["id"]) is not None:
            raise Refused(409, f"Port {port['id']} is in use by another trunk.")
        self._change(trunk, {"sub_ports": trunk["sub_ports"] + [
            {"port_id": port["id"], "segmentation_type": "vlan", "segmentation_id": segmentation_id}]})
        parent = self._db["ports"][trunk["port_id"]]
        profile = {**port["binding:profile"], "parent_name": parent["id"], "tag": segmentation_id}
        self._change(port, {"device_owner": SUBPORT_OWNER, "binding:profile": profile,
                            "binding:vif_type": "ovs", "status": parent["status"]})

    @_api("PUT", "/trunks/{trunk_id}/remove_subports")
    def remove_subport(self, trunk_id: str, port_id: str) -> None:
        """NotFound if the port is no subport of the trunk (any more)."""
        trunk = self._find("trunks", trunk_id)
        if not any(s["port_id"] == port_id for s in trunk["sub_ports"]):
            raise Refused(404, f"SubPort {port_id} on trunk {trunk['id']} could not be found.")
        self._change(trunk, {"sub_ports": [s for s in trunk["sub_ports"] if s["port_id"] != port_id]})
        port = self._db["ports"].get(port_id)
        if port is not None:
            profile = {k: v for k, v in port["binding:profile"].items() if k not in ("parent_name", "tag")}
            self._change(port, {"device_owner": "", "binding:profile": profile, "binding:vif_type": "unbound",
                                "binding:vif_details": {}})

    # -- tags (networks, subnets and subnetpools cannot take tags at creation) -------------

    @_api("PUT", "/{collection}/{resource_id}/tags")
    def set_tags(self, collection: str, resource_id: str, tags: Iterable[str]) -> None:
        """Replace all tags of a resource: one request."""
        resource = self._tagged(collection, resource_id)
        wanted = list(tags)
        for tag in wanted:
            self._check_tag(tag)
        if len(set(wanted)) > MAX_TAGS:
            raise Refused(400, f"Bad {collection} request: The number of tags exceed the per-resource limit "
                               f"of {MAX_TAGS}.")
        self._change(resource, {"tags": sorted(set(wanted))})

    @_api("PUT", "/{collection}/{resource_id}/tags/{tag}")
    def add_tag(self, collection: str, resource_id: str, tag: str) -> None:
        resource = self._tagged(collection, resource_id)
        self._check_tag(tag)
        if tag not in resource["tags"]:
            if len(resource["tags"]) >= MAX_TAGS:
                raise Refused(400, f"Bad {collection} request: The number of tags exceed the per-resource limit "
                                   f"of {MAX_TAGS}.")
            self._change(resource, {"tags": sorted(resource["tags"] + [tag])})

    @_api("DELETE", "/{collection}/{resource_id}/tags/{tag}", none_on_404=True)
    def remove_tag(self, collection: str, resource_id: str, tag: str) -> None:
        resource = self._tagged(collection, resource_id)
        if tag not in resource["tags"]:
            raise Refused(404, f"Tag {tag} could not be found.")
        self._change(resource, {"tags": [t for t in resource["tags"] if t != tag]})

    # -- security groups -----------------------------------------------------------------

    @_api("POST", "/security-groups")
    def create_security_group(self, name: str, description: str = "") -> str:
        return self._make_security_group(name, description)

    @_api("POST", "/security-group-rules")
    def create_security_group_rule(self, **attrs: Any) -> None:
        group = self._find("security-groups", str(attrs.get("security_group_id") or ""))
        direction = attrs.get("direction")
        if direction not in ("ingress", "egress"):
            raise Refused(400, f"Invalid input for direction. Reason: '{direction}' is not in "
                               "['ingress', 'egress'].")
        rule = self._rule(group["id"], direction, **{k: v for k, v in attrs.items()
                                                     if k not in ("security_group_id", "direction")})
        same = {k: v for k, v in rule.items() if k not in ("id", "created_at", "updated_at", "revision_number")}
        if any({k: r.get(k) for k in same} == same for r in group["security_group_rules"]):
            raise Refused(409, "Security group rule already exists.")
        self._change(group, {"security_group_rules": group["security_group_rules"] + [rule]})

    @_api("GET", "/security-groups")
    def list_security_groups(self, **filters: Any) -> list[dict[str, Any]]:
        return self._list("security-groups", filters)

    @_api("DELETE", "/security-groups/{sg_id}", none_on_404=True)
    def delete_security_group(self, sg_id: str) -> None:
        group = self._find("security-groups", sg_id)
        if group["id"] == self.default_security_group_id:
            raise Refused(409, "Insufficient rights for removing default security group.")
        if any(group["id"] in p["security_groups"] for p in self._db["ports"].values()):
            raise Refused(409, f"Security Group {group['id']} in use.")
        del self._db["security-groups"][group["id"]]

    # -- service -------------------------------------------------------------------------

    @_api("GET", "/agents")
    def list_agents(self, **filters: Any) -> list[dict[str, Any]]:
        """One OVN Controller agent per host in `hosts`, alive unless the host is in `dead_hosts`."""
        agents = [{"id": h, "host": h, "agent_type": "OVN Controller agent", "binary": "ovn-controller",
                   "alive": h not in self.dead_hosts, "admin_state_up": True} for h in sorted(self.hosts)]
        return [a for a in agents if all(str(a.get(k)) == str(v) for k, v in filters.items())]

    @_api("GET", "/extensions")
    def extensions(self) -> set[str]:
        return set(self._extensions)

    # -- the store -----------------------------------------------------------------------

    def _find(self, collection: str, resource_id: str) -> dict[str, Any]:
        found = self._db.get(collection, {}).get(resource_id)
        if found is None:
            kind = {"networks": "Network", "subnets": "Subnet", "subnetpools": "Subnet pool", "ports": "Port",
                    "trunks": "Trunk", "security-groups": "Security group"}.get(collection, collection)
            raise Refused(404, f"{kind} {resource_id} could not be found.")
        return found

    def _tagged(self, collection: str, resource_id: str) -> dict[str, Any]:
        if collection not in TAGGABLE:
            raise Refused(404, "The resource could not be found.")
        if resource_id not in self._db[collection]:
            raise Refused(self.TAG_MISSING_RESOURCE_STATUS,
                          f"Resource {collection} {resource_id} could not be found.")
        return self._db[collection][resource_id]

    def _check_tag(self, tag: str) -> None:
        if not isinstance(tag, str) or not tag or len(tag) > self.max_tag_len:
            raise Refused(400, f"Invalid input for operation: '{tag}' exceeds maximum length of "
                               f"{self.max_tag_len}.")

    def _list(self, collection: str, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        check_filters(collection, filters)
        return [self._view(collection, r) for r in self._db[collection].values() if matches(collection, r, filters)]

    def _view(self, collection: str, resource: Mapping[str, Any]) -> dict[str, Any]:
        """The resource as Neutron shows it: a copy, with what is computed at read time."""
        shown = copy.deepcopy(dict(resource))
        if collection == "ports":
            trunk = next((t for t in self._db["trunks"].values() if t["port_id"] == resource["id"]), None)
            if trunk is not None:
                shown["trunk_details"] = {"trunk_id": trunk["id"], "sub_ports": [
                    {**s, "mac_address": self._db["ports"][s["port_id"]]["mac_address"]}
                    for s in trunk["sub_ports"] if s["port_id"] in self._db["ports"]]}
        return shown

    def _change(self, resource: dict[str, Any], changes: Mapping[str, Any]) -> None:
        """Apply changes; a real change bumps revision_number and updated_at."""
        changed = {k: copy.deepcopy(v) for k, v in changes.items() if resource.get(k) != v}
        if changed:
            resource.update(changed)
            resource["revision_number"] += 1
            resource["updated_at"] = _now()

    def _stamp(self, resource: dict[str, Any], revision: int) -> dict[str, Any]:
        now = _now()
        resource.update(project_id=self.project_id, tenant_id=self.project_id, tags=[], created_at=now,
                        updated_at=now, revision_number=revision)
        resource.setdefault("description", "")
        return resource

    def _create_network(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _check_attrs(attrs, _NETWORK_POST)
        self._segmentation_id += 1
        net: dict[str, Any] = {
               "id": str(uuid.uuid4()), "name": "", "admin_state_up": True, "mtu": DEFAULT_MTU, "status": "ACTIVE",
               "subnets": [], "shared": False, "port_security_enabled": True, "router:external": False,
               "provider:network_type": "geneve", "provider:physical_network": None,
               "provider:segmentation_id": self._segmentation_id, "vlan_transparent": False, "qinq": False,
               "is_default": False, "availability_zone_hints": [], "availability_zones": [],
               "ipv4_address_scope": None, "ipv6_address_scope": None}
        self._stamp(net, revision=1)
        net.update({k: v for k, v in attrs.items() if k not in ("project_id", "tenant_id")})
        net["mtu"] = int(net["mtu"])
        self._db["networks"][net["id"]] = net
        return net

    def _create_subnetpool(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _check_attrs(attrs, _SUBNETPOOL_POST)
        prefixes = [_net(p) for p in attrs.get("prefixes") or ()]
        if not prefixes:
            raise Refused(400, "Empty subnet pool prefix list.")
        versions = {p.version for p in prefixes}
        if len(versions) != 1:
            raise Refused(400, "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
        version = versions.pop()
        min_len = int(attrs.get("min_prefixlen") or (8 if version == 4 else 64))
        max_len = int(attrs.get("max_prefixlen") or (32 if version == 4 else 128))
        default_len = int(attrs.get("default_prefixlen") or min_len)
        if not min_len <= default_len <= max_len:
            raise Refused(400, f"Illegal prefix bounds: default_prefixlen={default_len}, min_prefixlen={min_len}, "
                               f"max_prefixlen={max_len}.")
        pool: dict[str, Any] = {"id": str(uuid.uuid4()), "name": attrs.get("name") or "", "ip_version": version,
                "prefixes": [str(p) for p in sorted(prefixes)], "default_prefixlen": str(default_len),
                "min_prefixlen": str(min_len), "max_prefixlen": str(max_len), "shared": bool(attrs.get("shared")),
                "is_default": bool(attrs.get("is_default")), "default_quota": attrs.get("default_quota"),
                "address_scope_id": attrs.get("address_scope_id"), "description": attrs.get("description") or ""}
        self._stamp(pool, revision=0)
        self._db["subnetpools"][pool["id"]] = pool
        return pool

    def _create_subnet(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _check_attrs(attrs, _SUBNET_POST)
        net = self._find("networks", str(attrs.get("network_id") or ""))
        if attrs.get("ip_version") not in (4, 6, "4", "6"):
            raise Refused(400, "Failed to parse request. Required attribute 'ip_version' not specified")
        version = int(attrs["ip_version"])
        pool_id = attrs.get("subnetpool_id")
        siblings = [self._db["subnets"][s] for s in net["subnets"]]
        if any(s["ip_version"] == version and s["subnetpool_id"] != pool_id for s in siblings):
            raise Refused(400, "Subnets hosted on the same network must be allocated from the same subnet pool.")
        if pool_id:
            pool = self._find("subnetpools", pool_id)
            if pool["ip_version"] != version:
                raise Refused(400, "Invalid input for operation: ip_version does not match the subnet pool's.")
            cidr = self._allocate_prefix(pool, attrs.get("cidr"), attrs.get("prefixlen"))
        elif attrs.get("cidr"):
            cidr = str(attrs["cidr"])
        else:
            raise Refused(400, "Bad subnets request: a subnetpool must be specified in the absence of a cidr.")
        try:
            net_cidr = ipaddress.ip_network(cidr)
        except ValueError:
            loose = ipaddress.ip_network(cidr, strict=False) if "/" in cidr else None
            hint = f", '{loose}' is recommended" if loose else ""
            raise Refused(400, f"Invalid input for operation: '{cidr}' isn't a recommended CIDR{hint}.") from None
        if net_cidr.version != version:
            raise Refused(400, "Invalid input for operation: cidr and ip_version do not match.")
        if any(net_cidr.overlaps(ipaddress.ip_network(s["cidr"])) for s in siblings if s["ip_version"] == version):
            raise Refused(400, f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
                               f"{net['id']} overlaps with another subnet.")
        if "gateway_ip" in attrs:
            gateway = attrs["gateway_ip"]
        else:
            gateway = str(net_cidr.network_address + 1) if net_cidr.num_addresses > 2 else None
        if gateway is not None:
            self._check_gateway(str(net_cidr), gateway)
        pools = self._checked_pools(str(net_cidr), attrs["allocation_pools"]) if attrs.get("allocation_pools") \
            else default_pools(str(net_cidr), gateway)
        _check_gateway_out_of_pools(gateway, pools)
        subnet: dict[str, Any] = {"id": str(uuid.uuid4()), "name": attrs.get("name") or "", "network_id": net["id"],
                  "ip_version": version, "subnetpool_id": pool_id or None,
                  "enable_dhcp": _as_bool(attrs.get("enable_dhcp", True)),
                  "ipv6_ra_mode": attrs.get("ipv6_ra_mode"), "ipv6_address_mode": attrs.get("ipv6_address_mode"),
                  "gateway_ip": gateway, "cidr": str(net_cidr), "allocation_pools": pools,
                  "host_routes": [{"destination": r["destination"], "nexthop": r["nexthop"]}
                                  for r in attrs.get("host_routes") or ()],
                  "dns_nameservers": list(attrs.get("dns_nameservers") or ()),
                  "description": attrs.get("description") or "", "router:external": net["router:external"],
                  "service_types": list(attrs.get("service_types") or ())}
        self._stamp(subnet, revision=0)
        self._db["subnets"][subnet["id"]] = subnet
        self._change(net, {"subnets": net["subnets"] + [subnet["id"]]})
        return subnet

    def _allocate_prefix(self, pool: dict[str, Any], cidr: Any, prefixlen: Any) -> str:
        taken = [ipaddress.ip_network(s["cidr"]) for s in self._db["subnets"].values()
                 if s["subnetpool_id"] == pool["id"]]
        prefixes = [ipaddress.ip_network(p) for p in pool["prefixes"]]
        if cidr:
            want = _net(str(cidr))
            length = want.prefixlen
        else:
            length = int(prefixlen or pool["default_prefixlen"])
        if not int(pool["min_prefixlen"]) <= length <= int(pool["max_prefixlen"]):
            raise Refused(400, f"Unable to allocate subnet with prefix length {length}, allowed prefix lengths "
                               f"are {pool['min_prefixlen']}..{pool['max_prefixlen']}.")
        if cidr:
            inside = want.version == pool["ip_version"] and any(want.subnet_of(p) for p in prefixes)  # type: ignore[arg-type]
            if inside and not any(want.overlaps(t) for t in taken):
                return str(want)
            raise Refused(self.POOL_ALLOCATION_STATUS, "Failed to allocate subnet: Cannot allocate requested "
                                                       "subnet from the available set of prefixes.",
                          "SubnetAllocationError")
        for prefix in prefixes:
            if length < prefix.prefixlen:
                continue
            for candidate in prefix.subnets(new_prefix=length):
                if not any(candidate.overlaps(t) for t in taken):
                    return str(candidate)
        raise Refused(self.POOL_ALLOCATION_STATUS,
                      f"Failed to allocate subnet: Insufficient prefix space to allocate subnet size /{length}.",
                      "SubnetAllocationError")

    @staticmethod
    def _check_gateway(cidr: str, gateway: Any) -> None:
        if _ip(gateway) not in ipaddress.ip_network(cidr):
            raise Refused(400, f"Invalid input for operation: Gateway IP {gateway} is not in subnet {cidr}.")

    @staticmethod
    def _checked_pools(cidr: str, pools: Any) -> list[dict[str, str]]:
        net = ipaddress.ip_network(cidr)
        ranges = []
        for pool in pools or ():
            start, end = _ip(pool["start"]), _ip(pool["end"])
            if start not in net or end not in net or int(start) > int(end):
                raise Refused(400, f"The allocation pool {start}-{end} spans beyond the subnet cidr {cidr}.")
            ranges.append((int(start), int(end)))
        ranges.sort()
        address = type(net.network_address)
        for (_, end_), (start_, _) in itertools.pairwise(ranges):
            if start_ <= end_:
                raise Refused(409, f"Found overlapping allocation pools: {address(start_)} overlaps "
                                   f"{address(end_)} in subnet {cidr}.")
        return [{"start": str(address(a)), "end": str(address(b))} for a, b in ranges]

    # -- ports: creation, addresses, updates ---------------------------------------------

    def _create_port(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _check_attrs(attrs, _PORT_POST)
        attrs.pop("tags", None)  # accepted and dropped, as Neutron 29 here does (module docstring)
        net = self._find("networks", str(attrs.get("network_id") or ""))
        mac = self._checked_mac(net["id"], attrs["mac_address"]) if attrs.get("mac_address") else self._new_mac()
        security = _as_bool(attrs.get("port_security_enabled", net["port_security_enabled"]))
        port: dict[str, Any] = {"id": str(uuid.uuid4()), "name": attrs.get("name") or "", "network_id": net["id"],
                "mac_address": mac, "admin_state_up": _as_bool(attrs.get("admin_state_up", True)),
                "status": "DOWN", "device_id": attrs.get("device_id") or "",
                "device_owner": attrs.get("device_owner") or "", "fixed_ips": [], "allowed_address_pairs": [],
                "extra_dhcp_opts": list(attrs.get("extra_dhcp_opts") or ()), "security_groups": [],
                "description": attrs.get("description") or "",
                "binding:vnic_type": attrs.get("binding:vnic_type") or "normal",
                "binding:profile": dict(attrs.get("binding:profile") or {}),
                "binding:host_id": attrs.get("binding:host_id") or "", "binding:vif_type": "unbound",
                "binding:vif_details": {}, "port_security_enabled": security}
        self._stamp(port, revision=1)
        requested = attrs.get("fixed_ips")
        port["fixed_ips"] = self._default_ips(port) if requested is None else self._assign_ips(port, requested)
        groups = attrs.get("security_groups")
        if groups and not security:
            raise Refused(400, "Port security must be enabled and port must have an IP address in order to use "
                               "security groups.")
        port["security_groups"] = self._checked_groups(groups) if groups is not None else \
            ([self.default_security_group_id] if security else [])
        port["allowed_address_pairs"] = self._checked_pairs(port, attrs.get("allowed_address_pairs") or [])
        self._bind(port)
        self._db["ports"][port["id"]] = port
        return port

    def _update_port(self, port: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
        """The port as it would be with attrs, checked whole, then applied at once."""
        _check_attrs(attrs, _PORT_PUT, port)
        new = {**port, **copy.deepcopy(attrs)}
        if "mac_address" in attrs:
            mac = str(attrs["mac_address"]).lower()
            if mac != port["mac_address"]:
                if port["binding:vif_type"] not in UNPLUGGED_VIF_TYPES:
                    raise Refused(409, f"Unable to complete operation on port {port['id']}, port is already bound, "
                                       f"port type: {port['binding:vif_type']}, old_mac {port['mac_address']}, "
                                       f"new_mac {mac}.")
                mac = self._checked_mac(port["network_id"], mac)
            new["mac_address"] = mac
        if "fixed_ips" in attrs:
            new["fixed_ips"] = self._assign_ips(port, attrs["fixed_ips"] or [], current=port["fixed_ips"])
        if "security_groups" in attrs:
            new["security_groups"] = self._checked_groups(attrs["security_groups"] or [])
        for flag in ("port_security_enabled", "admin_state_up"):
            new[flag] = _as_bool(new[flag])
        if not new["port_security_enabled"] and new["security_groups"]:
            raise Refused(409, "Port has security group associated. Cannot disable port security or ip address "
                               "until security group is removed.")
        new["allowed_address_pairs"] = self._checked_pairs(new, new["allowed_address_pairs"] or [])
        new["binding:host_id"] = new["binding:host_id"] or ""
        new["binding:profile"] = dict(new["binding:profile"] or {})
        self._bind(new)
        if new["binding:vif_type"] not in UNPLUGGED_VIF_TYPES:
            _check_vrrp_macs(new)
        self._change(port, new)
        return port

    def _remove_port(self, port: Mapping[str, Any]) -> None:
        for trunk in [t for t in self._db["trunks"].values() if t["port_id"] == port["id"]]:
            del self._db["trunks"][trunk["id"]]
        self._db["ports"].pop(port["id"], None)

    def _bind(self, port: dict[str, Any]) -> None:
        """binding:vif_type and details from binding:host_id, as ML2/OVN answers."""
        if port["device_owner"] == SUBPORT_OWNER:
            port["binding:vif_type"] = "ovs"  # bound through its trunk
            return
        host = port["binding:host_id"]
        if not host:
            port["binding:vif_type"], port["binding:vif_details"] = "unbound", {}
        elif host in self.hosts:
            port["binding:vif_type"], port["binding:vif_details"] = "ovs", dict(OVS_VIF_DETAILS)
        else:
            port["binding:vif_type"], port["binding:vif_details"] = "binding_failed", {}

    def _new_mac(self) -> str:
        used = {p["mac_address"] for p in self._db["ports"].values()}
        while True:
            mac = "fa:16:3e:" + ":".join(f"{self._rng.randrange(256):02x}" for _ in range(3))
            if mac not in used:
                return mac

    def _checked_mac(self, network_id: str, mac: str) -> str:
        parts = mac.lower().split(":")
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
            raise Refused(400, f"Invalid input for mac_address. Reason: '{mac}' is not a valid MAC address.")
        mac = ":".join(parts)
        if any(p["network_id"] == network_id and p["mac_address"] == mac for p in self._db["ports"].values()):
            raise Refused(409, f"Unable to complete operation for network {network_id}. The mac address {mac} "
                               "is in use.")
        return mac

    def _checked_groups(self, groups: Iterable[str]) -> list[str]:
        return [self._find("security-groups", g)["id"] for g in groups]

    @staticmethod
    def _checked_pairs(port: Mapping[str, Any], pairs: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
        checked = []
        for pair in pairs:
            _ip(str(pair["ip_address"]).split("/")[0])
            checked.append({"ip_address": str(pair["ip_address"]),
                            "mac_address": str(pair.get("mac_address") or port["mac_address"]).lower()})
        if checked and not port["port_security_enabled"]:
            raise Refused(409, "Port Security must be enabled in order to have allowed address pairs on a port.")
        return checked

    def _used(self, subnet_id: str, skip_port: str = "") -> set[str]:
        return {f["ip_address"] for p in self._db["ports"].values() if p["id"] != skip_port
                for f in p["fixed_ips"] if f["subnet_id"] == subnet_id}

    def _next_free(self, subnet: Mapping[str, Any], taken: set[str]) -> str | None:
        """The lowest free address of the subnet's allocation pools."""
        address = type(ipaddress.ip_network(subnet["cidr"]).network_address)
        for pool in sorted(subnet["allocation_pools"], key=lambda p: int(ipaddress.ip_address(p["start"]))):
            for number in range(int(ipaddress.ip_address(pool["start"])), int(ipaddress.ip_address(pool["end"])) + 1):
                if str(address(number)) not in taken:
                    return str(address(number))
        return None

    def _exhausted(self, network_id: str) -> Refused:
        return Refused(409, f"No more IP addresses available on network {network_id}.")

    def _default_ips(self, port: Mapping[str, Any]) -> list[dict[str, str]]:
        """No fixed_ips asked: one address of the IPv4 subnets, one of the stateful IPv6 ones
        (the first subnet with room), an EUI-64 one in each SLAAC / dhcpv6-stateless subnet."""
        net = self._db["networks"][port["network_id"]]
        subnets = [self._db["subnets"][s] for s in net["subnets"]]
        auto = [s for s in subnets if s["ip_version"] == 6
                and s["ipv6_address_mode"] in ("slaac", "dhcpv6-stateless")]
        chosen: list[dict[str, str]] = []
        for group in ([s for s in subnets if s["ip_version"] == 4],
                      [s for s in subnets if s["ip_version"] == 6 and s not in auto]):
            if not group:
                continue
            for subnet in group:
                ip = self._next_free(subnet, self._used(subnet["id"]))
                if ip is not None:
                    chosen.append({"subnet_id": subnet["id"], "ip_address": ip})
                    break
            else:
                raise self._exhausted(net["id"])
        for subnet in auto:
            chosen.append({"subnet_id": subnet["id"], "ip_address": _eui64(subnet["cidr"], port["mac_address"])})
        return chosen

    def _assign_ips(self, port: Mapping[str, Any], requested: Iterable[Mapping[str, Any]],
                    current: Iterable[Mapping[str, str]] = ()) -> list[dict[str, str]]:
        """fixed_ips as asked ({"subnet_id"}, {"ip_address"} or both); what the port holds and
        is named again is kept (Neutron's _get_changed_ips_for_port), the rest allocated."""
        asked = [dict(r) for r in requested]
        if len(asked) > MAX_FIXED_IPS:
            raise Refused(400, "Exceeded maximum amount of fixed ips per port.")
        net_id = port["network_id"]
        subnets = {s: self._db["subnets"][s] for s in self._db["networks"][net_id]["subnets"]}
        held = [dict(f) for f in current]
        result: list[dict[str, str]] = []
        for entry in asked:
            if not entry.get("subnet_id") and not entry.get("ip_address"):
                raise Refused(400, "Invalid input for operation: fixed_ips entry needs subnet_id or ip_address.")
            if entry.get("subnet_id") and entry["subnet_id"] not in subnets:
                if entry["subnet_id"] in self._db["subnets"]:
                    raise Refused(400, f"Invalid input for operation: Failed to create port on network {net_id}, "
                                       f"because fixed_ips included invalid subnet {entry['subnet_id']}.")
                raise Refused(404, f"Subnet {entry['subnet_id']} could not be found.")
        # named addresses first, then subnets, as Neutron matches them up with what is held
        for entry in [e for e in asked if e.get("ip_address")]:
            ip = str(_ip(entry["ip_address"]))
            if entry.get("subnet_id"):
                subnet = subnets[entry["subnet_id"]]
                if not _host_in(subnet["cidr"], ip):
                    raise Refused(400, f"IP address {ip} is not a valid IP for the specified subnet.")
            else:
                found = next((s for s in subnets.values() if _host_in(s["cidr"], ip)), None)
                if found is None:
                    raise Refused(400, f"IP address {ip} is not a valid IP for any of the subnets on the specified "
                                       "network.")
                subnet = found
            mine = next((f for f in held if f["ip_address"] == ip and f["subnet_id"] == subnet["id"]), None)
            if mine is not None:
                held.remove(mine)
            elif ip in self._used(subnet["id"], skip_port=port["id"]) or \
                    any(r["ip_address"] == ip and r["subnet_id"] == subnet["id"] for r in result):
                raise Refused(409, f"IP address {ip} already allocated in subnet {subnet['id']}")
            result.append({"subnet_id": subnet["id"], "ip_address": ip})
        for entry in [e for e in asked if not e.get("ip_address")]:
            subnet = subnets[entry["subnet_id"]]
            mine = next((f for f in held if f["subnet_id"] == subnet["id"]), None)
            if mine is not None:
                held.remove(mine)
                result.append(mine)
                continue
            taken = self._used(subnet["id"], skip_port=port["id"]) | {r["ip_address"] for r in result} | \
                {f["ip_address"] for f in current if f["subnet_id"] == subnet["id"]}
            free = self._next_free(subnet, taken)
            if free is None:
                raise self._exhausted(net_id)
            result.append({"subnet_id": subnet["id"], "ip_address": free})
        return result

    # -- trunks and security groups: the store -----------------------------------------

    def _trunk_of_subport(self, port_id: str) -> dict[str, Any] | None:
        return next((t for t in self._db["trunks"].values()
                     if any(s["port_id"] == port_id for s in t["sub_ports"])), None)

    def _check_not_on_trunk(self, port_id: str, deleting: bool = False) -> None:
        trunk = self._trunk_of_subport(port_id)
        if trunk is not None:
            raise Refused(409, f"Port {port_id} is currently a subport for trunk {trunk['id']}.")
        parent_of = next((t for t in self._db["trunks"].values() if t["port_id"] == port_id), None)
        if parent_of is not None:
            raise Refused(409, f"Port {port_id} is currently a parent port for trunk {parent_of['id']}."
                          if deleting else f"Port {port_id} is in use by another trunk.")

    def _make_security_group(self, name: str, description: str) -> str:
        group: dict[str, Any] = {"id": str(uuid.uuid4()), "name": name, "description": description,
                                 "stateful": True, "shared": False}
        self._stamp(group, revision=1)
        group["security_group_rules"] = [self._rule(group["id"], "egress", ethertype=e) for e in ("IPv4", "IPv6")]
        self._db["security-groups"][group["id"]] = group
        return group["id"]

    def _rule(self, group_id: str, direction: str, **attrs: Any) -> dict[str, Any]:
        now = _now()
        rule = {"id": str(uuid.uuid4()), "security_group_id": group_id, "direction": direction,
                "ethertype": attrs.get("ethertype") or "IPv4", "protocol": attrs.get("protocol"),
                "port_range_min": attrs.get("port_range_min"), "port_range_max": attrs.get("port_range_max"),
                "remote_ip_prefix": attrs.get("remote_ip_prefix"), "remote_group_id": attrs.get("remote_group_id"),
                "remote_address_group_id": None, "normalized_cidr": attrs.get("remote_ip_prefix"),
                "description": attrs.get("description") or "", "project_id": self.project_id,
                "tenant_id": self.project_id, "created_at": now, "updated_at": now, "revision_number": 0}
        unknown = sorted(set(attrs) - set(rule))
        if unknown:
            raise Refused(400, f"Unrecognized attribute(s) '{', '.join(unknown)}'")
        return rule


# The NeutronClient methods a test may name (fail_next, before, calls_to).
API_METHODS = frozenset(name for name, fn in vars(FakeNeutron).items() if getattr(fn, "__api__", False))


def _check_method(method: str) -> None:
    if method not in API_METHODS:
        raise ValueError(f"{method!r} is no NeutronClient method the fake serves: one of {sorted(API_METHODS)}")


def _check_attrs(attrs: Mapping[str, Any], allowed: frozenset[str], current: Mapping[str, Any] | None = None) -> None:
    """A POST (`current` None) or a PUT of `current` carries only what Neutron takes there."""
    unknown = sorted(k for k in attrs if k not in allowed)
    if not unknown:
        return
    if current is None and "tags" in unknown:
        raise Refused(400, "Attribute 'tags' not allowed in POST")
    if current is not None and unknown[0] in current:
        raise Refused(400, f"Cannot update read-only attribute {unknown[0]}")
    raise Refused(400, f"Unrecognized attribute(s) '{', '.join(unknown)}'")


def _check_gateway_out_of_pools(gateway: str | None, pools: Iterable[Mapping[str, str]]) -> None:
    if gateway is None:
        return
    gw = int(ipaddress.ip_address(gateway))
    for pool in pools:
        if int(ipaddress.ip_address(pool["start"])) <= gw <= int(ipaddress.ip_address(pool["end"])):
            raise Refused(409, f"Gateway ip {gateway} conflicts with allocation pool {pool['start']}-{pool['end']}.")


def _check_vrrp_macs(port: Mapping[str, Any]) -> None:
    """ML2/OVN on a bound port: a pair's MAC other than the port's own must be a VRRP MAC."""
    for pair in port["allowed_address_pairs"]:
        mac = pair["mac_address"].lower()
        if mac == port["mac_address"]:
            continue
        version = ipaddress.ip_network(pair["ip_address"], strict=False).version
        if not mac.startswith(VRRP_MAC_PREFIXES[version]):
            raise Refused(400, f"Invalid input for operation: Virtual MAC address {mac} in allowed address pair "
                               "does not belong to the RFC 5798 VRRP virtual MAC ranges (00:00:5e:00:01:XX for "
                               "IPv4 or 00:00:5e:00:02:XX for IPv6).")


def _copied(args: dict[str, Any]) -> dict[str, Any]:
    try:
        return copy.deepcopy(args)
    except (TypeError, copy.Error):  # an argument that cannot be copied (a lock, say): keep it as given
        return dict(args)
