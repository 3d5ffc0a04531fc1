"""Hypothesis strategies for stateless requests to every plugin method: bodies close to
what Docker sends with one field or more broken, random JSON, non-JSON bytes, odd
verbs, paths, content types and Content-Lengths.

Every address or CIDR that could be valid is in STATELESS_V4/_V6, a range no other
test uses, so a request that happens to be valid never touches another test's pools.
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.wire import Request

STATELESS_V4 = ipaddress.ip_network("10.200.128.0/17")
STATELESS_V6 = ipaddress.ip_network("fd20:200:8000::/33")

NETWORK_METHODS = (
    "GetCapabilities", "GwAllocCheck", "AllocateNetwork", "FreeNetwork", "DiscoverNew", "DiscoverDelete",
    "CreateNetwork", "DeleteNetwork", "CreateEndpoint", "EndpointOperInfo", "DeleteEndpoint", "Join",
    "Leave", "ProgramExternalConnectivity", "RevokeExternalConnectivity")
IPAM_METHODS = ("GetCapabilities", "GetDefaultAddressSpaces", "RequestPool", "ReleasePool",
                "RequestAddress", "ReleaseAddress")
METHODS = (("Plugin.Activate",) + tuple(f"NetworkDriver.{m}" for m in NETWORK_METHODS)
           + tuple(f"IpamDriver.{m}" for m in IPAM_METHODS))

# --- leaf values ---------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)), max_leaves=20)

huge_text = st.sampled_from([1_000, 70_000, 300_000]).map(lambda n: "a" * n)
weird_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", " ", "\x00", "../ports", "../../networks", "..", ".", "/", "a/b", "x?y=1&z",
                     "#frag", "%2e%2e%2fports", "%00", "é\u202e\ud7ff", "\r\nX-Injected: 1", "null",
                     "0", "-1", "true", "{}", "[]", "' OR 1=1 --", "$(reboot)", "*", ",", "a,b"]),
    huge_text)
wrong_type = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                       st.lists(json_leaf, max_size=3), st.dictionaries(st.text(max_size=5), json_leaf, max_size=3))

hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
swarm_id = st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyz", min_size=25, max_size=25)
bad_id = st.one_of(
    hex64.map(str.upper), hex64.map(lambda h: h[:-1]), hex64.map(lambda h: h + "0"),
    hex64.map(lambda h: h[:63] + "g"), hex64.map(lambda h: " " + h), weird_text)
docker_id = st.one_of(hex64, hex64, swarm_id, bad_id, wrong_type)
pool_id = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), weird_text, wrong_type)


def _subnet_of(parent: ipaddress.IPv4Network | ipaddress.IPv6Network, new_prefix: int) -> st.SearchStrategy[str]:
    count = 2 ** (new_prefix - parent.prefixlen)
    size = 2 ** (parent.max_prefixlen - new_prefix)
    return st.integers(0, count - 1).map(
        lambda i: str(ipaddress.ip_network((int(parent.network_address) + i * size, new_prefix))))


def _address_in(parent: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[str]:
    return st.integers(0, min(parent.num_addresses - 1, 2**32)).map(lambda i: str(parent.network_address + i))


valid_cidr = st.one_of(_subnet_of(STATELESS_V4, 28), _subnet_of(STATELESS_V4, 24), _subnet_of(STATELESS_V6, 64))
bad_cidr = st.one_of(
    weird_text, st.sampled_from(["10.200.128.0/33", "10.200.300.0/24", "10.200.128.0/-1", "10.200.128.0/",
                                 "10.200.128.0/24/1", "fd20:200:8000::/129", "fd20:200:8000:::/64",
                                 "10.200.128.0 /24", "0x0a.0.0.0/8", "10.200.128.0/255.255.255.0x"]))
cidr = st.one_of(valid_cidr, bad_cidr, wrong_type)
valid_address = st.one_of(_address_in(STATELESS_V4), _address_in(STATELESS_V6))
address = st.one_of(valid_address, weird_text, st.sampled_from(["10.200.128.256", "::ffff:10.200.128.1",
                                                                "fd20:200:8000::1%eth0", "10.200.128.1/28"]),
                    wrong_type)
address_cidr = st.one_of(valid_address.map(lambda a: a + ("/64" if ":" in a else "/28")), address, cidr)
mac = st.one_of(st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b)),
                st.sampled_from(["", "zz:zz:zz:zz:zz:zz", "00:11:22:33:44", "00-11-22-33-44-55",
                                 "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00"]),
                weird_text, wrong_type)

# option values: the names of things that do not exist, so nothing real is adopted
missing_name = st.text(alphabet="abcdefghij-", min_size=1, max_size=20).map(lambda s: "kcnmfuzz-missing-" + s)
neutron_option = st.tuples(
    st.sampled_from(["neutron.net.uuid", "neutron.net.name", "neutron.net.shared", "neutron.pool.uuid",
                     "neutron.pool.name", "neutron.pool.v6.uuid", "neutron.subnet.uuid", "neutron.subnet.name",
                     "neutron.subnet.v6.name", "com.docker.network.driver.mtu"]),
    st.one_of(missing_name, st.uuids().map(str), st.sampled_from(["true", "false", "1500", "68", "-1", "9" * 30]),
              weird_text, wrong_type))
exposed_port = st.one_of(
    st.fixed_dictionaries({"Proto": st.sampled_from([1, 6, 17, 0, 99, -1]), "Port": st.integers(-5, 70_000)}),
    st.dictionaries(st.sampled_from(["Proto", "Port", "x"]), json_leaf, max_size=3), json_leaf)
options = st.one_of(
    st.dictionaries(st.sampled_from(["com.docker.network.endpoint.exposedports", "com.docker.network.portmap",
                                     "com.docker.network.internal", "com.docker.network.enable_ipv6",
                                     "RequestAddressType", "com.docker.network.endpoint.macaddress",
                                     "com.docker.network.generic", "x"]),
                    st.one_of(st.lists(exposed_port, max_size=4), st.booleans(), mac,
                              st.just("com.docker.network.gateway"),
                              st.dictionaries(st.text(max_size=10), json_leaf, max_size=3),
                              st.lists(neutron_option, max_size=3).map(dict), wrong_type), max_size=4),
    st.lists(neutron_option, max_size=3).map(dict),
    wrong_type)
ipam_data = st.one_of(st.fixed_dictionaries(
    {"AddressSpace": st.one_of(st.just("no_address_space"), weird_text, wrong_type), "Pool": cidr,
     "Gateway": address_cidr},
    optional={"AuxAddresses": st.one_of(st.dictionaries(st.text(max_size=8), address_cidr, max_size=3),
                                        wrong_type)}), wrong_type)
interface = st.one_of(st.fixed_dictionaries(
    {}, optional={"Address": address_cidr, "AddressIPv6": address_cidr, "MacAddress": mac}), wrong_type)

# per method: the fields Docker sends, each drawn from valid and broken values
SCHEMAS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "NetworkDriver.GwAllocCheck": {"Options": options},
    "NetworkDriver.AllocateNetwork": {"NetworkID": docker_id, "Options": options,
                                      "IPv4Data": st.lists(ipam_data, max_size=2)},
    "NetworkDriver.FreeNetwork": {"NetworkID": docker_id},
    "NetworkDriver.DiscoverNew": {"DiscoveryType": json_leaf, "DiscoveryData": json_value},
    "NetworkDriver.DiscoverDelete": {"DiscoveryType": json_leaf, "DiscoveryData": json_value},
    "NetworkDriver.CreateNetwork": {"NetworkID": docker_id, "Options": options,
                                    "IPv4Data": st.one_of(st.lists(ipam_data, max_size=2), wrong_type),
                                    "IPv6Data": st.one_of(st.lists(ipam_data, max_size=2), wrong_type)},
    "NetworkDriver.DeleteNetwork": {"NetworkID": docker_id},
    "NetworkDriver.CreateEndpoint": {"NetworkID": docker_id, "EndpointID": docker_id, "Interface": interface,
                                     "Options": options},
    "NetworkDriver.EndpointOperInfo": {"NetworkID": docker_id, "EndpointID": docker_id},
    "NetworkDriver.DeleteEndpoint": {"NetworkID": docker_id, "EndpointID": docker_id},
    "NetworkDriver.Join": {"NetworkID": docker_id, "EndpointID": docker_id,
                           "SandboxKey": st.one_of(st.just("/var/run/docker/netns/0123456789ab"), weird_text),
                           "Options": options},
    "NetworkDriver.Leave": {"NetworkID": docker_id, "EndpointID": docker_id},
    "NetworkDriver.ProgramExternalConnectivity": {"NetworkID": docker_id, "EndpointID": docker_id,
                                                  "Options": options},
    "NetworkDriver.RevokeExternalConnectivity": {"NetworkID": docker_id, "EndpointID": docker_id},
    "IpamDriver.RequestPool": {"AddressSpace": st.one_of(st.just("no_address_space"), weird_text, wrong_type),
                               "Pool": st.one_of(valid_cidr, cidr), "SubPool": st.one_of(st.just(""), cidr),
                               "Options": options, "V6": st.one_of(st.booleans(), wrong_type)},
    "IpamDriver.ReleasePool": {"PoolID": pool_id},
    "IpamDriver.RequestAddress": {"PoolID": pool_id, "Address": st.one_of(st.just(""), address),
                                  "Options": st.one_of(st.none(), options)},
    "IpamDriver.ReleaseAddress": {"PoolID": pool_id, "Address": address},
}


@st.composite
def schema_body(draw: st.DrawFn, method: str) -> Any:
    """Docker's fields for `method`, some left out, plus maybe an unknown one."""
    schema = SCHEMAS.get(method, {})
    body = {k: draw(v) for k, v in schema.items() if draw(st.integers(0, 9)) > 0}
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(max_size=20))] = draw(json_value)
    return body


def _post(method: str, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> Request:
    return Request(f"/{method}", body, "POST", headers)


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


method = st.sampled_from(METHODS)
unknown_path = st.one_of(
    st.sampled_from(["/", "/Plugin.Deactivate", "/NetworkDriver.", "/.Join", "/networkdriver.join",
                     "/NetworkDriver.Join/extra", "//NetworkDriver.Join", "/NetworkDriver.Join?x=1",
                     "/VolumeDriver.Create", "/IpamDriver.RequestPool%00", "/%2e%2e/etc/passwd",
                     "/" + "A" * 4000]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-%/~",
            max_size=60).map(lambda s: "/" + s))
content_type = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                "multipart/form-data; boundary=x", "application/vnd.docker.plugins.v1.2+json",
                                "garbage/\x7f", ""])
non_json = st.one_of(st.binary(min_size=1, max_size=300),
                     st.sampled_from([b"{", b"[1,", b"\xff\xfe{}", b'{"NetworkID": }', b"NaN", b"\x00",
                                      b'{"a": 1e999999}', b"[" * 5000, b'"' + b"\\u" * 10 + b'"']))


def requests() -> st.SearchStrategy[Request]:
    """One stateless request of any kind, weighted towards bodies for real methods."""
    schema = method.flatmap(lambda m: schema_body(m).map(lambda b: _post(m, _encode(b))))
    random_json = st.tuples(method, json_value).map(lambda t: _post(t[0], _encode(t[1])))
    raw_bytes = st.tuples(method, non_json).map(lambda t: _post(t[0], t[1]))
    empty = method.map(lambda m: _post(m, b""))
    unknown = st.tuples(unknown_path, st.one_of(st.just(b""), json_value.map(_encode))).map(
        lambda t: Request(t[0], t[1]))
    verbs = st.tuples(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]), method).map(
        lambda t: Request(f"/{t[1]}", b"", t[0]))
    typed = st.tuples(method, content_type, json_value).map(
        lambda t: _post(t[0], _encode(t[2]), (("Content-Type", t[1]),)))
    bad_length = st.tuples(method, st.sampled_from(["abc", "-1", "1e3", "0x10", str(2**20 + 1), "99999999999"])).map(
        lambda t: _post(t[0], b"", (("Content-Length", t[1]),)))
    huge = st.tuples(method, st.sampled_from([2**20 - 40, 2**20 + 1])).map(
        lambda t: _post(t[0], _encode({"NetworkID": "a" * t[1]})))
    return st.one_of(schema, schema, schema, schema, schema, random_json, random_json, raw_bytes, empty,
                     unknown, verbs, typed, bad_length, huge)
