import pytest

from kuryr_cnm import protocol
from kuryr_cnm.errors import BadRequest

NET = "1" * 64
EP = "2" * 64


def test_handshake_shapes():
    assert protocol.ActivateResponse().to_json() == {"Implements": ["NetworkDriver", "IpamDriver"]}
    caps = protocol.NetworkCapabilities("local", "global").to_json()
    assert caps["Scope"] == "local" and caps["ConnectivityScope"] == "global"
    assert protocol.AddressSpaces("a", "b").to_json() == {
        "LocalDefaultAddressSpace": "a", "GlobalDefaultAddressSpace": "b"}


def test_create_network_as_docker_20_10_sends_it():
    body = {"NetworkID": NET, "Options": {"com.docker.network.enable_ipv6": False,
                                          "com.docker.network.generic": {"neutron.net.name": "n1", "k": "v"}},
            "IPv4Data": [{"AddressSpace": "no_address_space", "Gateway": "10.0.0.1/24", "Pool": "10.0.0.0/24",
                          "AuxAddresses": {"host1": "10.0.0.10/24"}}],
            "IPv6Data": []}
    req = protocol.CreateNetworkRequest.parse(body)
    assert req.network_id == NET and req.neutron.net == protocol.NeutronRef(name="n1")
    assert req.ipv4_data[0].gateway == "10.0.0.1/24" and req.ipv4_data[0].aux_addresses == {"host1": "10.0.0.10/24"}
    assert not req.internal


@pytest.mark.parametrize("body,needle", [
    (None, "empty one"),
    ([], "JSON object"),
    ({}, "NetworkID is required"),
    ({"NetworkID": "short"}, "not a Docker id"),
    ({"NetworkID": NET, "IPv4Data": [{"Pool": "nonsense"}]}, "not an address/prefix"),
    ({"NetworkID": NET, "IPv4Data": "x"}, "must be a list"),
    ({"NetworkID": NET, "Options": []}, "must be a JSON object"),
])
def test_create_network_rejects(body, needle):
    with pytest.raises(BadRequest, match=needle):
        protocol.CreateNetworkRequest.parse(body)


def test_swarm_ids_are_accepted():
    assert protocol.NetworkRequest.parse({"NetworkID": "a" * 25}).network_id == "a" * 25


def test_create_endpoint():
    req = protocol.CreateEndpointRequest.parse({
        "NetworkID": NET, "EndpointID": EP, "Options": {},
        "Interface": {"Address": "10.0.0.2/24", "AddressIPv6": "", "MacAddress": "02:42:AC:11:00:02"}})
    assert req.interface.address == "10.0.0.2/24" and req.interface.mac_address == "02:42:ac:11:00:02"
    with pytest.raises(BadRequest, match="no Address"):
        protocol.CreateEndpointRequest.parse({"NetworkID": NET, "EndpointID": EP, "Interface": {}})
    with pytest.raises(BadRequest, match="not a MAC"):
        protocol.CreateEndpointRequest.parse({"NetworkID": NET, "EndpointID": EP,
                                              "Interface": {"Address": "10.0.0.2/24", "MacAddress": "zz"}})


def test_request_pool():
    req = protocol.RequestPoolRequest.parse({"AddressSpace": "x", "Pool": "10.0.0.0/16", "SubPool": "10.0.1.0/24",
                                             "Options": {"neutron.pool.name": "p"}, "V6": False})
    assert req.sub_pool == "10.0.1.0/24" and req.options == {"neutron.pool.name": "p"}
    assert protocol.RequestPoolRequest.parse({"Pool": "", "V6": True}).pool == ""
    with pytest.raises(BadRequest, match="does not match V6"):
        protocol.RequestPoolRequest.parse({"Pool": "fd00::/64", "V6": False})
    with pytest.raises(BadRequest, match="true or false"):
        protocol.RequestPoolRequest.parse({"Pool": "", "V6": "yes"})


def test_request_address():
    req = protocol.RequestAddressRequest.parse({"PoolID": "p", "Address": "",
                                                "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    assert req.is_gateway and req.address == ""
    req = protocol.RequestAddressRequest.parse({"PoolID": "p", "Address": "10.0.0.5", "Options": None})
    assert not req.is_gateway and req.address == "10.0.0.5"
    with pytest.raises(BadRequest, match="PoolID is required"):
        protocol.RequestAddressRequest.parse({"Address": "10.0.0.5"})
    with pytest.raises(BadRequest, match="not an IP address"):
        protocol.RequestAddressRequest.parse({"PoolID": "p", "Address": "10.0.0.0/24"})


def test_release_address_requires_address():
    with pytest.raises(BadRequest, match="Address is required"):
        protocol.ReleaseAddressRequest.parse({"PoolID": "p"})


def test_join_response_never_lets_docker_add_gwbridge():
    out = protocol.JoinResponse("t_c1", "eth").to_json()
    assert out["DisableGatewayService"] is True and "Gateway" not in out
    out = protocol.JoinResponse("t_c1", "eth", "10.0.0.1", "fd00::1",
                                (protocol.StaticRoute("192.168.0.0/24", "10.0.0.254"),)).to_json()
    assert out["Gateway"] == "10.0.0.1" and out["GatewayIPv6"] == "fd00::1"
    assert out["StaticRoutes"] == [{"Destination": "192.168.0.0/24", "RouteType": 0, "NextHop": "10.0.0.254"}]


@pytest.mark.parametrize("value,shared", [("1", True), ("true", True), ("True", True), ("yes", True), ("on", True),
                                          ("0", False), ("false", False), ("no", False), ("", False)])
def test_neutron_net_shared_means_the_same_in_create_network_and_request_pool(value, shared):
    """CreateNetwork read `== "true"` and RequestPool read true/1/yes: `-o neutron.net.shared=1`
    gave a shared subnetpool on an unshared network."""
    create = protocol.CreateNetworkRequest.parse(
        {"NetworkID": NET, "Options": {"com.docker.network.generic": {"neutron.net.shared": value}}})
    pool = protocol.RequestPoolRequest.parse({"Pool": "10.0.0.0/24", "Options": {"neutron.net.shared": value}})
    assert create.neutron.net_shared is shared and pool.neutron.net_shared is shared


@pytest.mark.parametrize("opts,needle", [({"neutron.net.shared": "maybe"}, "neutron.net.shared"),
                                         ({"com.docker.network.driver.mtu": "big"}, "MTU"),
                                         ({"com.docker.network.driver.mtu": "10"}, "MTU")])
def test_an_option_that_means_nothing_is_a_bad_request(opts, needle):
    with pytest.raises(BadRequest, match=needle):
        protocol.CreateNetworkRequest.parse({"NetworkID": NET, "Options": {"com.docker.network.generic": opts}})


def test_neutron_options_name_v4_and_v6_resources_apart():
    opts = protocol.NeutronOptions.parse("m", {"neutron.subnet.uuid": "s4", "neutron.subnet.v6.name": "s6",
                                               "neutron.pool.name": "p4", "com.docker.network.driver.mtu": "1400"})
    assert opts.subnet(False) == protocol.NeutronRef(uuid="s4") and opts.subnet(True) == protocol.NeutronRef(name="s6")
    assert opts.pool(False).name == "p4" and not opts.pool(True) and opts.mtu == 1400 and not opts.net
