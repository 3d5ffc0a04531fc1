"""Defects the plugin API fuzzer (tests/fuzz) found, each pinned by a focused test."""
from __future__ import annotations

import http.client
import json
import socket
from unittest.mock import MagicMock

import pytest

from kuryr_cnm import config, errors, exposure, server
from kuryr_cnm.directory import DockerNetwork
from kuryr_cnm.endpoints import Allocations, Endpoint, EndpointStore
from kuryr_cnm.ipam_driver import IpamDriver
from kuryr_cnm.endpoint_driver import EndpointDriver
from kuryr_cnm.neutron import FixedIP, Network, NeutronClient, Port, Subnet, SubnetPool
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.plugging import HostPlugging
from kuryr_cnm.pools import PoolMap
from kuryr_cnm.protocol import (GwAllocCheckRequest, PoolRequest, ReleaseAddressRequest,
                                RequestAddressRequest)
from tests.unit.fake_neutron import FakeNeutron
from tests.unit.wiring import Host


def _ownership(conf, client) -> Ownership:
    return Ownership(client, Owner(conf.host, conf.plugin_name), conf.subnetpool_name_prefix)


@pytest.fixture
def unix_socket(tmp_path):
    router = server.Router()
    router.add("Plugin.Activate", lambda body: {"Implements": ["NetworkDriver"]})
    path = str(tmp_path / "p.sock")
    srv = server.make_server(f"unix://{path}", router)
    server.serve_in_thread(srv)
    yield path
    srv.shutdown()
    srv.server_close()


def _exchange(sock: socket.socket, request: bytes) -> http.client.HTTPResponse:
    sock.sendall(request)
    resp = http.client.HTTPResponse(sock, method=request.split(b" ")[0].decode())
    resp.begin()
    return resp


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    return sock


@pytest.mark.parametrize("length", ["abc", "-1", str(server.MAX_BODY + 1)])
def test_refused_content_length_announces_the_close(unix_socket, length):
    """A keep-alive client (Docker's) must learn that the connection ends, or its next
    call fails on a dropped connection."""
    sock = _connect(unix_socket)
    resp = _exchange(sock, f"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: {length}\r\n\r\n".encode())
    assert resp.status == 400 and "Content-Length" in json.loads(resp.read())["Err"]
    assert resp.getheader("Connection") == "close"
    sock.close()


def test_kept_alive_connection_is_not_announced_closed(unix_socket):
    sock = _connect(unix_socket)
    for _ in range(2):
        resp = _exchange(sock, b"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n")
        assert resp.status == 200 and resp.getheader("Connection") is None
        resp.read()
    sock.close()


@pytest.mark.parametrize("request_bytes", [b"OPTIONS /Plugin.Activate HTTP/1.1\r\nHost: p\r\n\r\n",
                                           b"BREW /Plugin.Activate HTTP/1.1\r\nHost: p\r\n\r\n"])
def test_http_level_refusals_are_json_with_err(unix_socket, request_bytes):
    sock = _connect(unix_socket)
    resp = _exchange(sock, request_bytes)
    body = json.loads(resp.read())
    assert resp.status >= 400 and body["Err"], body
    assert resp.getheader("Content-Type") == server.CONTENT_TYPE
    sock.close()


@pytest.mark.parametrize("exposed", [["80/tcp"], [None], [{"Proto": "tcp", "Port": 80}], [{"Proto": 6, "Port": "80"}],
                                     [{"Proto": 6, "Port": 70000}], [{"Proto": True, "Port": 80}]])
def test_malformed_exposed_ports_are_a_bad_request(exposed):
    """They raised AttributeError/ValueError: a 500 'internal error' and a traceback in the log."""
    with pytest.raises(errors.BadRequest, match="exposed port"):
        exposure.port_ranges(exposed)


def _driver_with_endpoint(allocations: Allocations | None = None) -> tuple[EndpointDriver, MagicMock, dict]:
    """An EndpointDriver whose endpoint `ep1` holds the port of 10.0.0.5 on network `net`."""
    conf = config.load()
    network = Network("net", "kuryr-net-x", 1500, False, (), ("sub",), "proj")
    docker_net = DockerNetwork("d" * 64, network, ())
    port = Port("port1", "kuryr-unbound-port", "net", "fa:16:3e:00:00:01", (FixedIP("sub", "10.0.0.5"),), (),
                "compute:kuryr", "e" * 64, conf.host, "ovs", {}, "ACTIVE", "proj")
    directory = MagicMock()
    directory.require_docker_network.return_value = docker_net
    client = MagicMock()
    client.list_ports.return_value = [port]  # found by address, as for a RequestAddress of another process
    plugger = MagicMock()
    endpoints = EndpointStore()
    endpoints.put(Endpoint("e" * 64, docker_net, port, "tapport1", "t_cport1", False))
    driver = EndpointDriver(conf, client, directory, Allocations() if allocations is None else allocations, endpoints,
                            HostPlugging(client, plugger, conf.host), MagicMock(), MagicMock(),
                            Owner(conf.host, conf.plugin_name))
    body = {"NetworkID": "d" * 64, "EndpointID": "f" * 64, "Interface": {"Address": "10.0.0.5/24"}}
    return driver, plugger, body


def test_second_endpoint_on_a_plugged_address_is_refused():
    """It re-plugged the port (deleting the first endpoint's veth as 'stale') and answered 200."""
    driver, plugger, body = _driver_with_endpoint()
    with pytest.raises(errors.Conflict, match="already the address of endpoint eeeeeeeeeeee"):
        driver.create_endpoint(body)
    plugger.plug.assert_not_called()
    # Docker retrying the first endpoint's own CreateEndpoint still gets its answer
    assert driver.create_endpoint(dict(body, EndpointID="e" * 64)) == {"Interface": {"MacAddress": "fa:16:3e:00:00:01"}}


def test_address_from_a_pool_that_does_not_exist_is_not_found():
    """RequestAddress with an address (an --aux-address) on a released or unknown pool answered
    200 with a made-up /32; it is a 404 like the gateway request on such a pool."""
    client, directory = MagicMock(), MagicMock()
    directory.cached_pool.return_value = ()
    client.get_subnetpool.return_value = None
    ipam = IpamDriver(config.load(), client, directory, Allocations(), MagicMock(), MagicMock(),
                      _ownership(config.load(), client), {"binding:host_id": config.load().host},
                      PoolMap(config.load(), client, directory))
    with pytest.raises(errors.NotFound, match="does not exist"):
        ipam.request_address({"PoolID": "0f372d2b-7a2a-43e2-869c-7419a195dfb1", "Address": "10.0.0.9"})
    client.get_subnetpool.return_value = SubnetPool("p", "kuryrPool-10.0.0.0/28", ("10.0.0.0/28",), 4, 28, False, ())
    assert ipam.request_address({"PoolID": "p", "Address": "10.0.0.9"}) == {"Address": "10.0.0.9/28", "Data": {}}


def test_delete_network_keeps_an_address_waiting_for_its_create_endpoint():
    """DeleteNetwork's orphan sweep deleted the port of a RequestAddress whose CreateEndpoint had
    not come yet (ReleasePool's sweep already kept those): that CreateEndpoint then failed 404."""
    neutron = FakeNeutron()
    host = Host(neutron, "vm")
    try:
        net = host.create_network("10.40.0.0/24")
        host.call("IpamDriver.RequestAddress", {"PoolID": net.pools[0], "Address": "", "Options": {}})
        status, answer = host.plugin.router.dispatch(
            "NetworkDriver.DeleteNetwork", json.dumps({"NetworkID": net.docker_id}).encode())
        assert status == 409 and "still has ports" in answer["Err"]
        assert len(neutron.ports()) == 1
    finally:
        host.close()


@pytest.mark.parametrize("body", [[], "x", {"Options": True}, {"Options": ["internal"]}])
def test_gw_alloc_check_with_a_malformed_body_is_a_bad_request(body):
    """`(body or {}).get("Options")` raised AttributeError: a 500 and a traceback."""
    with pytest.raises(errors.BadRequest):
        GwAllocCheckRequest.parse(body)


def test_gw_alloc_check_reads_internal():
    assert GwAllocCheckRequest.parse({"Options": {"com.docker.network.internal": True}}).internal
    assert not GwAllocCheckRequest.parse(None).internal and not GwAllocCheckRequest.parse({}).internal


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000])
def test_deeply_nested_body_is_a_bad_request(raw):
    """json.loads raised RecursionError, which the decoder did not catch: a 500 and a traceback."""
    router = server.Router()
    router.add("Plugin.Activate", lambda body: {})
    status, body = router.dispatch("Plugin.Activate", raw)
    assert status == 400 and "too deeply" in body["Err"]


@pytest.mark.parametrize("pool_id", ["..", "../ports", "../../v2.0/ports", "a" * 9000, "%2e%2e"])
def test_an_id_that_is_not_a_uuid_never_reaches_neutron(pool_id):
    """A PoolID (from Docker) or neutron.*.uuid option (from a user) of '../ports' made GET
    /subnetpools/../ports, i.e. GET /ports: KeyError 'subnetpool', a 500 and a traceback."""
    conn = MagicMock()
    client = NeutronClient(conn)
    assert client.get_subnetpool(pool_id) is None and client.get_subnet(pool_id) is None
    with pytest.raises(errors.NeutronNotFound, match="not a Neutron id"):
        client.get_network(pool_id)
    client.delete_subnetpool(pool_id)  # nothing to delete
    conn.network.request.assert_not_called()


def test_delete_endpoint_does_not_shadow_a_newer_allocation_of_its_address():
    """DeleteEndpoint put its port back among the allocations even when its address had been
    released and handed out again (a new port): the next CreateEndpoint for that address got
    the deleted port and failed 404 (or would plug a dead port)."""
    allocations = Allocations()
    newer = Port("port2", "kuryr-unbound-port", "net", "fa:16:3e:00:00:02", (FixedIP("sub", "10.0.0.5"),), (),
                 "compute:kuryr", "", "host", "ovs", {}, "DOWN", "proj")
    allocations.put(newer)
    driver, plugger, body = _driver_with_endpoint(allocations)
    driver.delete_endpoint({"NetworkID": body["NetworkID"], "EndpointID": "e" * 64})
    plugger.unplug.assert_called_once()
    assert allocations.get("net", "10.0.0.5").id == "port2"


@pytest.mark.parametrize("pool_id", ["a" * 9000, "..", "x,y", "a/b", "10.0.0.0/24"])
def test_a_pool_id_that_no_neutron_id_looks_like_is_a_bad_request(pool_id):
    """A 9000-character PoolID went into a Neutron query, which answered with an HTML 414: a 500."""
    for parse, body in ((PoolRequest.parse, {}), (RequestAddressRequest.parse, {"Address": ""}),
                        (ReleaseAddressRequest.parse, {"Address": "10.0.0.1"})):
        with pytest.raises(errors.BadRequest, match="not a kuryr pool id") as exc:
            parse(dict(body, PoolID=pool_id))
        assert len(exc.value.message) < 300  # a huge value is not echoed whole into Err and the log


def test_an_unknown_method_is_not_echoed_whole():
    """A 4000-character path came back whole in the 404's Err (and the log)."""
    router = server.Router()
    status, body = router.dispatch("A" * 4000, b"")
    assert status == 404 and len(body["Err"]) < 300


def test_an_address_released_before_its_delete_endpoint_does_not_come_back():
    """ReleaseAddress before DeleteEndpoint (out of Docker's order) deleted the endpoint's port;
    a new port then took the address and a second endpoint. The first endpoint's DeleteEndpoint
    put its dead port back among the allocations, so the last ReleaseAddress deleted the dead
    port again (404) and the live one leaked, with its network, subnet and pool."""
    allocations = Allocations()
    driver, _, body = _driver_with_endpoint(allocations)
    subnet = Subnet("sub", "kuryr-subnet-10.0.0.0/24", "net", "10.0.0.0/24", 4, None, None, (), ())
    directory, client, deferred = MagicMock(), MagicMock(), MagicMock()
    directory.cached_pool.return_value = (subnet,)
    # as Neutron lists it before the endpoint's background write: no device_id yet
    first = Port("port1", "kuryr-unbound-port", "net", "fa:16:3e:00:00:01", (FixedIP("sub", "10.0.0.5"),), (),
                 "compute:kuryr", "", "host", "ovs", {}, "ACTIVE", "proj")
    client.list_ports.return_value = [first]
    ipam = IpamDriver(config.load(), client, directory, allocations, deferred, MagicMock(),
                      _ownership(config.load(), client), {"binding:host_id": config.load().host},
                      PoolMap(config.load(), client, directory))
    release = {"PoolID": "0f372d2b-7a2a-43e2-869c-7419a195dfb1", "Address": "10.0.0.5"}

    ipam.release_address(release)  # the first endpoint still stands
    assert "port1" in deferred.submit.call_args.args[1]
    deferred.submit.call_args.args[2]()  # the background delete lands
    deferred.submit.call_args.kwargs["done"]()
    second = Port("port2", "kuryr-unbound-port", "net", "fa:16:3e:00:00:02", (FixedIP("sub", "10.0.0.5"),), (),
                  "compute:kuryr", "f" * 64, "host", "ovs", {}, "ACTIVE", "proj")
    allocations.put(second)  # RequestAddress made it ...
    allocations.discard(second)  # ... and its CreateEndpoint took it
    driver.delete_endpoint({"NetworkID": body["NetworkID"], "EndpointID": "e" * 64})
    assert allocations.get("net", "10.0.0.5") is None
    allocations.put(second, replace=False)  # the second endpoint's DeleteEndpoint

    ipam.release_address(release)
    assert "port2" in deferred.submit.call_args.args[1]
