"""FakeNeutron keeps Neutron's semantics that the drivers depend on (tests/unit/fake_neutron.py)."""
from __future__ import annotations

import inspect
import ipaddress
import threading
from datetime import datetime

import pytest

from kuryr_cnm import errors, neutron
from kuryr_cnm.neutron import Network, NeutronClient, Port, Subnet, SubnetPool
from tests.unit.fake_neutron import API_METHODS, EXTENSIONS, FakeNeutron, neutron_error

WAIT = 5  # seconds an Event may take: a bound for a hung test, never a pause


@pytest.fixture
def fake() -> FakeNeutron:
    return FakeNeutron()


def network_with_subnet(fake: FakeNeutron, cidr: str = "10.0.0.0/24", **subnet_attrs) -> tuple[Network, Subnet]:
    net = fake.make_network("n")
    return net, fake.make_subnet(net.id, cidr, **subnet_attrs)


def bound(host: str = "vm") -> dict[str, str]:
    return {"binding:host_id": host}


# --- the interface ------------------------------------------------------------------------

def public_methods(cls: type) -> dict[str, object]:
    return {n: f for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_every_public_method_of_the_client_is_served_with_the_same_signature():
    real = {n: f for n, f in public_methods(NeutronClient).items() if n in vars(NeutronClient)}
    assert set(real) == API_METHODS
    for name, fn in real.items():
        assert name in vars(FakeNeutron), name  # its own, not NeutronClient's through inheritance
        assert str(inspect.signature(getattr(FakeNeutron, name))) == str(inspect.signature(fn)), name


def test_a_method_without_a_fake_fails_loudly(fake):
    with pytest.raises(AssertionError, match="does not model GET /routers"):
        fake._request("GET", "/routers")


def test_records_are_typed_and_raw_is_shaped_like_neutrons_json(fake):
    net, subnet = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id, name="p", description="d", **bound())
    assert isinstance(port, Port) and isinstance(fake.get_network(net.id), Network)
    assert isinstance(fake.get_subnet(subnet.id), Subnet)
    for key in ("description", "revision_number", "created_at", "updated_at", "allowed_address_pairs",
                "security_groups", "binding:profile", "binding:vnic_type", "port_security_enabled", "tenant_id"):
        assert key in port.raw, key
    assert port.raw["description"] == "d" and port.raw["revision_number"] == 1
    stamp = port.raw["created_at"]
    assert stamp.endswith("Z") and datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    assert port.status == "DOWN" and port.project_id == fake.project_id
    assert port.security_groups == (fake.default_security_group_id,)


def test_raw_is_a_copy_the_caller_cannot_change_the_store_through(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id)
    port.raw["fixed_ips"].clear()
    assert fake.get_port(port.id).fixed_ips == port.fixed_ips


def test_network_defaults_are_ml2_ovn_geneve(fake):
    net = fake.create_network(name="n")
    raw = fake.raw("networks", net.id)
    assert (net.mtu, net.shared, net.tags, net.subnet_ids) == (1442, False, (), ())
    assert raw["status"] == "ACTIVE" and raw["provider:network_type"] == "geneve"
    assert fake.create_network(name="m", mtu=1400, shared=True).mtu == 1400


def test_subnetpool_prefix_lengths_come_back_as_strings_as_neutron_sends_them(fake):
    pool = fake.create_subnetpool(name="p", prefixes=["10.9.0.0/16"], default_prefixlen=26)
    assert isinstance(pool, SubnetPool) and pool.default_prefixlen == 26 and pool.ip_version == 4
    assert fake.raw("subnetpools", pool.id)["default_prefixlen"] == "26"


def test_unknown_attributes_and_tags_in_a_network_post_are_refused(fake):
    with pytest.raises(errors.NeutronBadRequest, match="Unrecognized attribute"):
        fake.create_network(nmae="typo")
    with pytest.raises(errors.NeutronBadRequest, match="'tags' not allowed in POST"):
        fake.create_network(name="n", tags=["a"])
    net = fake.create_network(name="n")
    with pytest.raises(errors.NeutronBadRequest, match="read-only attribute"):
        fake.update_network(net.id, subnets=[])


def test_tags_in_a_port_post_are_accepted_and_dropped_like_neutron_29_here(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id, tags=["kuryr.mark"])
    assert port.tags == () and fake.get_port(port.id).tags == ()


# --- list filters ---------------------------------------------------------------------------

def test_filters_compare_to_the_attribute_and_a_list_means_any_of(fake):
    net, _ = network_with_subnet(fake)
    other, _ = network_with_subnet(fake, "10.1.0.0/24")
    a = fake.create_port(network_id=net.id, name="a", device_owner="kuryr:container", device_id="c1", **bound())
    b = fake.create_port(network_id=net.id, name="b", device_owner="compute:nova")
    c = fake.create_port(network_id=other.id, name="a")
    assert [p.id for p in fake.list_ports(name="a")] == [a.id, c.id]
    assert [p.id for p in fake.list_ports(name="a", network_id=net.id)] == [a.id]
    assert [p.id for p in fake.list_ports(device_owner="kuryr:container")] == [a.id]
    assert [p.id for p in fake.list_ports(device_id="c1")] == [a.id]
    assert [p.id for p in fake.list_ports(**bound())] == [a.id]
    assert [p.id for p in fake.list_ports(**bound(""))] == [b.id, c.id]
    assert [p.id for p in fake.list_ports(id=[a.id, c.id])] == [a.id, c.id]
    assert [p.id for p in fake.list_ports(name=["b", "zzz"])] == [b.id]
    assert [p.id for p in fake.list_ports(mac_address=b.mac_address.upper())] == [b.id]
    assert fake.list_ports(name="a,b") == []  # only tag filters split on commas


def test_filters_convert_booleans_and_integers_as_neutron_does(fake):
    fake.create_network(name="private")
    shared = fake.create_network(name="public", shared=True)
    assert [n.id for n in fake.list_networks(shared=True)] == [shared.id]
    assert [n.id for n in fake.list_networks(shared="True")] == [shared.id]
    assert [n.name for n in fake.list_networks(shared=False)] == ["private"]
    net = fake.make_network("n")
    v4 = fake.make_subnet(net.id, "10.0.0.0/24")
    v6 = fake.make_subnet(net.id, "fd00::/64")
    assert [s.id for s in fake.list_subnets(ip_version=6)] == [v6.id]
    assert [s.id for s in fake.list_subnets(ip_version="4")] == [v4.id]
    assert [s.id for s in fake.list_subnets(cidr="10.0.0.0/24")] == [v4.id]


def test_subnets_filter_on_their_subnetpool(fake):
    pool = fake.make_subnetpool("p", ["10.5.0.0/16"], 24)
    net = fake.make_network("n")
    carved = fake.make_subnet(net.id, subnetpool_id=pool.id)
    fake.make_subnet(fake.make_network("m").id, "10.6.0.0/24")
    assert [s.id for s in fake.list_subnets(subnetpool_id=pool.id)] == [carved.id]


def test_the_tags_filter_wants_all_the_tags_and_tags_any_one_of_them(fake):
    a = fake.make_network("a")
    b = fake.make_network("b")
    fake.set_tags("networks", a.id, ["lh:1", "uh:2"])
    fake.set_tags("networks", b.id, ["lh:1", "uh:3"])
    assert [n.id for n in fake.list_networks(tags="lh:1,uh:2")] == [a.id]
    assert [n.id for n in fake.list_networks(tags=["lh:1", "uh:2"])] == [a.id]
    assert [n.id for n in fake.list_networks(tags="lh:1")] == [a.id, b.id]
    assert fake.list_networks(tags="lh:1,uh:9") == []
    assert [n.id for n in fake.list_networks(**{"tags-any": "uh:3,uh:9"})] == [b.id]
    assert [n.id for n in fake.list_networks(**{"not-tags": "lh:1,uh:2"})] == [b.id]
    assert fake.list_networks(**{"not-tags-any": "lh:1"}) == []


def test_the_fixed_ips_filter_matches_ports_holding_such_an_address(fake):
    net, v4 = network_with_subnet(fake)
    v6 = fake.make_subnet(net.id, "fd00::/64")
    a = fake.create_port(network_id=net.id)
    b = fake.create_port(network_id=net.id, fixed_ips=[{"subnet_id": v4.id}])
    ip_a, ip_b = a.ip_in(v4.id), b.ip_in(v4.id)
    assert [p.id for p in fake.list_ports(fixed_ips=f"ip_address={ip_a}")] == [a.id]
    assert [p.id for p in fake.list_ports(fixed_ips=f"subnet_id={v6.id}")] == [a.id]
    assert [p.id for p in fake.list_ports(fixed_ips=f"subnet_id={v4.id}")] == [a.id, b.id]
    assert [p.id for p in fake.list_ports(fixed_ips=[f"ip_address={ip_a}", f"ip_address={ip_b}"])] == [a.id, b.id]
    # both kinds: the port must have an address of the list AND one in a subnet of the list
    assert fake.list_ports(fixed_ips=[f"ip_address={ip_b}", f"subnet_id={v6.id}"]) == []
    assert fake.list_ports(fixed_ips="ip_address=10.0.0.99") == []
    assert [p.id for p in fake.list_ports(fixed_ips="ip_address_substr=fd00")] == [a.id]


def test_an_unknown_filter_is_refused_so_a_typo_fails_the_test(fake):
    with pytest.raises(errors.NeutronBadRequest, match="invalid attribute for filtering"):
        fake.list_ports(network="x")
    with pytest.raises(errors.NeutronBadRequest, match="invalid attribute for filtering"):
        fake.list_networks(fixed_ips="ip_address=10.0.0.1")  # networks have none
    with pytest.raises(errors.NeutronBadRequest, match="fixed_ips filter"):
        fake.list_ports(fixed_ips="10.0.0.1")


# --- subnets ----------------------------------------------------------------------------

def test_a_subnet_without_a_pool_needs_a_cidr(fake):
    net = fake.make_network("n")
    with pytest.raises(errors.NeutronBadRequest, match="subnetpool must be specified"):
        fake.create_subnet(network_id=net.id, ip_version=4)
    with pytest.raises(errors.NeutronNotFound):
        fake.create_subnet(network_id="4f0c0e4e-0000-0000-0000-000000000000", ip_version=4, cidr="10.0.0.0/24")


def test_gateway_and_allocation_pools_default_like_neutron(fake):
    net = fake.make_network("n")
    s = fake.create_subnet(network_id=net.id, ip_version=4, cidr="10.0.0.0/24", enable_dhcp=False)
    raw = fake.raw("subnets", s.id)
    assert s.gateway_ip == "10.0.0.1"
    assert raw["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert raw["enable_dhcp"] is False
    internal = fake.create_subnet(network_id=fake.make_network("m").id, ip_version=4, cidr="10.1.0.0/24",
                                  gateway_ip=None)
    assert internal.gateway_ip is None
    assert fake.raw("subnets", internal.id)["allocation_pools"] == [{"start": "10.1.0.1", "end": "10.1.0.254"}]
    v6 = fake.create_subnet(network_id=net.id, ip_version=6, cidr="fd00::/64")
    assert v6.gateway_ip == "fd00::1"
    assert fake.raw("subnets", v6.id)["allocation_pools"] == [{"start": "fd00::2",
                                                               "end": "fd00::ffff:ffff:ffff:ffff"}]
    assert fake.get_network(net.id).subnet_ids == (s.id, v6.id)


def test_a_gateway_inside_the_allocation_pools_is_a_conflict(fake):
    net = fake.make_network("n")
    with pytest.raises(errors.NeutronConflict, match="conflicts with allocation pool"):
        fake.create_subnet(network_id=net.id, ip_version=4, cidr="10.0.0.0/24",
                           allocation_pools=[{"start": "10.0.0.1", "end": "10.0.0.9"}])
    s = fake.create_subnet(network_id=net.id, ip_version=4, cidr="10.0.0.0/24",
                           allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.19"}])
    moved = fake.update_subnet(s.id, gateway_ip=None,
                               allocation_pools=[{"start": "10.0.0.1", "end": "10.0.0.19"}])
    assert moved.gateway_ip is None


def test_a_pool_gives_the_first_free_prefix_of_its_default_length(fake):
    pool = fake.make_subnetpool("p", ["10.5.0.0/22"], 24)
    first = fake.create_subnet(network_id=fake.make_network("a").id, ip_version=4, subnetpool_id=pool.id)
    second = fake.create_subnet(network_id=fake.make_network("b").id, ip_version=4, subnetpool_id=pool.id)
    small = fake.create_subnet(network_id=fake.make_network("c").id, ip_version=4, subnetpool_id=pool.id,
                               prefixlen=26)
    assert (first.cidr, second.cidr, small.cidr) == ("10.5.0.0/24", "10.5.1.0/24", "10.5.2.0/26")
    assert first.subnetpool_id == pool.id and first.gateway_ip == "10.5.0.1"
    fake.delete_subnet(first.id)
    again = fake.create_subnet(network_id=fake.make_network("d").id, ip_version=4, subnetpool_id=pool.id)
    assert again.cidr == "10.5.0.0/24"


def test_a_prefix_already_allocated_in_the_pool_is_a_subnet_allocation_error(fake):
    pool = fake.make_subnetpool("p", ["10.5.0.0/23"], 24)
    fake.create_subnet(network_id=fake.make_network("a").id, ip_version=4, subnetpool_id=pool.id,
                       cidr="10.5.0.0/24")
    with pytest.raises(errors.NeutronServerError, match="Cannot allocate requested subnet") as caught:
        fake.create_subnet(network_id=fake.make_network("b").id, ip_version=4, subnetpool_id=pool.id,
                           cidr="10.5.0.128/25")
    assert caught.value.kind == "SubnetAllocationError"
    with pytest.raises(errors.NeutronServerError, match="Cannot allocate requested subnet"):
        fake.create_subnet(network_id=fake.make_network("c").id, ip_version=4, subnetpool_id=pool.id,
                           cidr="10.9.0.0/24")  # outside the pool
    fake.create_subnet(network_id=fake.make_network("d").id, ip_version=4, subnetpool_id=pool.id)
    with pytest.raises(errors.NeutronServerError, match="Insufficient prefix space"):
        fake.create_subnet(network_id=fake.make_network("e").id, ip_version=4, subnetpool_id=pool.id)


def test_neutron_29s_own_answer_to_a_taken_prefix_is_one_attribute_away(fake):
    fake.POOL_ALLOCATION_STATUS = 500  # what Neutron 29 answers: the client's BackendError
    pool = fake.make_subnetpool("p", ["10.5.0.0/24"], 24)
    fake.make_subnet(fake.make_network("a").id, subnetpool_id=pool.id)
    with pytest.raises(errors.NeutronServerError, match="Insufficient prefix space"):
        fake.create_subnet(network_id=fake.make_network("b").id, ip_version=4, subnetpool_id=pool.id)


def test_an_overlapping_cidr_on_the_same_network_is_a_bad_request(fake):
    net, _ = network_with_subnet(fake, "10.0.0.0/24")
    with pytest.raises(errors.NeutronBadRequest, match="overlaps with another subnet"):
        fake.create_subnet(network_id=net.id, ip_version=4, cidr="10.0.0.128/25")
    # the same cidr on another network is fine (overlapping IPs across networks)
    assert fake.create_subnet(network_id=fake.make_network("m").id, ip_version=4, cidr="10.0.0.0/24").cidr


def test_subnets_of_one_network_come_from_one_pool(fake):
    pool = fake.make_subnetpool("p", ["10.5.0.0/16"], 24)
    net, _ = network_with_subnet(fake, "10.0.0.0/24")
    with pytest.raises(errors.NeutronBadRequest, match="same subnet pool"):
        fake.create_subnet(network_id=net.id, ip_version=4, subnetpool_id=pool.id)


def test_update_subnet_refuses_read_only_attributes(fake):
    _, subnet = network_with_subnet(fake)
    with pytest.raises(errors.NeutronBadRequest, match="read-only attribute cidr"):
        fake.update_subnet(subnet.id, cidr="10.9.0.0/24")
    assert fake.update_subnet(subnet.id, name="x").name == "x"


# --- ports: addresses -----------------------------------------------------------------------

def test_a_port_without_fixed_ips_gets_an_address_in_each_ipv4_and_ipv6_subnet(fake):
    net, v4 = network_with_subnet(fake)
    v6 = fake.make_subnet(net.id, "fd00::/64")
    port = fake.create_port(network_id=net.id)
    assert port.ip_in(v4.id) == "10.0.0.2" and port.ip_in(v6.id) == "fd00::2"


def test_a_slaac_subnet_gives_an_eui64_address(fake):
    net = fake.make_network("n")
    v6 = fake.make_subnet(net.id, "fd00::/64", ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    port = fake.create_port(network_id=net.id, mac_address="fa:16:3e:00:11:22")
    assert port.ip_in(v6.id) == "fd00::f816:3eff:fe00:1122"


def test_addresses_come_from_the_allocation_pools_and_never_twice(fake):
    net = fake.make_network("n")
    subnet = fake.make_subnet(net.id, "10.0.0.0/24", allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.12"}])
    ports = [fake.create_port(network_id=net.id) for _ in range(3)]
    assert [p.ip_in(subnet.id) for p in ports] == ["10.0.0.10", "10.0.0.11", "10.0.0.12"]
    with pytest.raises(errors.NeutronConflict, match="No more IP addresses available"):
        fake.create_port(network_id=net.id, fixed_ips=[{"subnet_id": subnet.id}])
    fake.delete_port(ports[1].id)
    assert fake.create_port(network_id=net.id).ip_in(subnet.id) == "10.0.0.11"


def test_a_requested_address_is_given_even_outside_the_pools_but_only_once(fake):
    net, subnet = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id, fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.0.0.1"}])
    assert port.ip_in(subnet.id) == "10.0.0.1"  # the gateway address: no router holds it
    only_ip = fake.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert only_ip.fixed_ips[0].subnet_id == subnet.id
    for fixed in ({"ip_address": "10.0.0.50"}, {"subnet_id": subnet.id, "ip_address": "10.0.0.50"}):
        with pytest.raises(errors.NeutronConflict, match=f"IP address 10.0.0.50 already allocated in subnet {subnet.id}"):
            fake.create_port(network_id=net.id, fixed_ips=[fixed])


def test_an_address_in_no_subnet_of_the_network_is_a_bad_request(fake):
    net, subnet = network_with_subnet(fake)
    _, elsewhere = network_with_subnet(fake, "10.1.0.0/24")
    with pytest.raises(errors.NeutronBadRequest, match="not a valid IP for any of the subnets"):
        fake.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.9.0.5"}])
    with pytest.raises(errors.NeutronBadRequest, match="not a valid IP for the specified subnet"):
        fake.create_port(network_id=net.id, fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.0.0.255"}])
    with pytest.raises(errors.NeutronBadRequest, match="invalid subnet"):
        fake.create_port(network_id=net.id, fixed_ips=[{"subnet_id": elsewhere.id}])


def test_a_tiny_subnet_is_exhausted_after_its_one_address(fake):
    net = fake.make_network("n")
    tiny = fake.make_subnet(net.id, "10.252.0.0/30")  # 10.0.0.1 gateway, 10.0.0.2 the only one
    assert fake.create_port(network_id=net.id).ip_in(tiny.id) == "10.252.0.2"
    with pytest.raises(errors.NeutronConflict, match=f"No more IP addresses available on network {net.id}"):
        fake.create_port(network_id=net.id)


def test_bulk_create_is_all_or_nothing(fake):
    net, subnet = network_with_subnet(fake)
    taken = fake.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.0.0.9"}])
    with pytest.raises(errors.NeutronConflict, match="already allocated"):
        fake.create_ports([{"network_id": net.id, "name": "pool"},
                           {"network_id": net.id, "name": "pool"},
                           {"network_id": net.id, "fixed_ips": [{"ip_address": "10.0.0.9"}]}])
    assert [p.id for p in fake.ports()] == [taken.id]
    made = fake.create_ports([{"network_id": net.id, "name": "pool"} for _ in range(3)])
    assert [p.ip_in(subnet.id) for p in made] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert fake.requests.count("POST /ports 201") == 2  # one request for the three


def test_concurrent_creates_never_share_an_address(fake):
    net = fake.make_network("n")
    subnet = fake.make_subnet(net.id, "10.0.0.0/28")  # 13 addresses
    results: list[object] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            got: object = fake.create_port(network_id=net.id).ip_in(subnet.id)
        except errors.NeutronConflict as exc:
            got = exc
        with lock:
            results.append(got)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    addresses = [r for r in results if isinstance(r, str)]
    assert len(results) == 20 and len(addresses) == 13 and len(set(addresses)) == 13


# --- ports: binding and updates ---------------------------------------------------------

def test_binding_follows_the_host(fake):
    net, _ = network_with_subnet(fake)
    on_vm = fake.create_port(network_id=net.id, **bound("vm"))
    assert on_vm.vif_type == "ovs" and on_vm.vif_details["datapath_type"] == "netdev"
    assert fake.create_port(network_id=net.id).vif_type == "unbound"
    assert fake.create_port(network_id=net.id, **bound("nowhere")).vif_type == "binding_failed"
    assert FakeNeutron(hosts=["nowhere"]).hosts >= {"vm", "host2", "host3", "nowhere"}
    unbound = fake.update_port(on_vm.id, **bound(""))
    assert (unbound.vif_type, unbound.vif_details, unbound.host_id) == ("unbound", {}, "")


def test_the_mac_of_a_bound_port_cannot_change(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id, **bound())
    with pytest.raises(errors.NeutronConflict, match="port is already bound"):
        fake.update_port(port.id, mac_address="fa:16:3e:00:00:01")
    fake.update_port(port.id, **bound(""))
    moved = fake.update_port(port.id, mac_address="FA:16:3E:00:00:01", **bound())
    assert moved.mac_address == "fa:16:3e:00:00:01" and moved.vif_type == "ovs"
    failed = fake.create_port(network_id=net.id, **bound("nowhere"))  # binding_failed is not bound
    assert fake.update_port(failed.id, mac_address="fa:16:3e:00:00:02").mac_address == "fa:16:3e:00:00:02"


def test_a_mac_is_unique_on_its_network(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id)
    assert port.mac_address.startswith("fa:16:3e:")
    with pytest.raises(errors.NeutronConflict, match=r"mac address fa:16:3e:\S+ is in use"):
        fake.create_port(network_id=net.id, mac_address=port.mac_address)
    macs = {fake.create_port(network_id=net.id).mac_address for _ in range(30)} | {port.mac_address}
    assert len(macs) == 31


def test_update_port_replaces_attributes_and_reallocates_fixed_ips(fake):
    net, v4 = network_with_subnet(fake)
    v6 = fake.make_subnet(net.id, "fd00::/64")
    port = fake.create_port(network_id=net.id)
    v4_ip = port.ip_in(v4.id)
    # named again by subnet: kept; the v6 address is not named: released
    kept = fake.update_port(port.id, fixed_ips=[{"subnet_id": v4.id}], name="renamed", device_id="c1")
    assert kept.fixed_ips == (neutron.FixedIP(v4.id, v4_ip),) and (kept.name, kept.device_id) == ("renamed", "c1")
    assert fake.list_ports(fixed_ips=f"subnet_id={v6.id}") == []
    other = fake.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.0.0.77"}])
    with pytest.raises(errors.NeutronConflict, match=r"10\.0\.0\.77 already allocated"):
        fake.update_port(port.id, fixed_ips=[{"ip_address": "10.0.0.77"}])
    assert fake.get_port(port.id).ip_in(v4.id) == v4_ip  # a refused update changes nothing
    fake.delete_port(other.id)
    assert fake.update_port(port.id, fixed_ips=[{"ip_address": "10.0.0.77"}]).ip_in(v4.id) == "10.0.0.77"


def test_update_port_refuses_unknown_and_read_only_attributes(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id)
    with pytest.raises(errors.NeutronBadRequest, match="read-only attribute network_id"):
        fake.update_port(port.id, network_id=net.id)
    with pytest.raises(errors.NeutronBadRequest, match="Unrecognized attribute"):
        fake.update_port(port.id, devide_id="typo")
    with pytest.raises(errors.NeutronNotFound):
        fake.update_port("4f0c0e4e-0000-0000-0000-000000000000", name="x")


def test_revision_number_moves_on_every_change_and_only_then(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id)
    assert port.raw["revision_number"] == 1
    assert fake.update_port(port.id, name="a").raw["revision_number"] == 2
    assert fake.update_port(port.id, name="a").raw["revision_number"] == 2  # nothing changed
    fake.add_tag("ports", port.id, "t")
    fake.add_tag("ports", port.id, "t")  # already there
    assert fake.get_port(port.id).raw["revision_number"] == 3
    fake.set_tags("ports", port.id, ["u", "v"])
    fake.remove_tag("ports", port.id, "u")
    changed = fake.get_port(port.id)
    assert changed.raw["revision_number"] == 5 and changed.tags == ("v",)


def test_update_if_revision_refuses_a_stale_revision(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id)
    revision = port.raw["revision_number"]
    pairs = [{"ip_address": "10.0.0.200", "mac_address": port.mac_address}]
    updated = fake.update_port_if_revision(port.id, revision, allowed_address_pairs=pairs)
    assert updated.raw["allowed_address_pairs"] == pairs and updated.raw["revision_number"] == revision + 1
    with pytest.raises(errors.NeutronPreconditionFailed, match=f"Constrained to {revision}"):
        fake.update_port_if_revision(port.id, revision, allowed_address_pairs=[])
    assert fake.get_port(port.id).raw["allowed_address_pairs"] == pairs


def test_allowed_address_pairs_follow_ml2_ovn(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id, **bound())
    filled = fake.update_port(port.id, allowed_address_pairs=[{"ip_address": "10.0.0.200"}])
    assert filled.raw["allowed_address_pairs"] == [{"ip_address": "10.0.0.200", "mac_address": port.mac_address}]
    with pytest.raises(errors.NeutronBadRequest, match="Virtual MAC address"):
        fake.update_port(port.id, allowed_address_pairs=[{"ip_address": "10.0.0.201",
                                                          "mac_address": "fa:16:3e:99:99:99"}])
    vrrp = [{"ip_address": "10.0.0.201", "mac_address": "00:00:5e:00:01:07"}]
    assert fake.update_port(port.id, allowed_address_pairs=vrrp).raw["allowed_address_pairs"] == vrrp
    insecure = fake.create_port(network_id=net.id, port_security_enabled=False)
    assert insecure.security_groups == ()
    with pytest.raises(errors.NeutronConflict, match="Port Security must be enabled"):
        fake.update_port(insecure.id, allowed_address_pairs=[{"ip_address": "10.0.0.202"}])


# --- deletes ----------------------------------------------------------------------------

def test_deleting_what_is_gone_is_fine(fake):
    gone = "4f0c0e4e-0000-0000-0000-000000000000"
    for delete in (fake.delete_port, fake.delete_network, fake.delete_subnet, fake.delete_subnetpool,
                   fake.delete_security_group):
        assert delete(gone) is None
    assert fake.requests[-1] == f"DELETE /security-groups/{gone} 404"


def test_a_subnet_with_ports_cannot_be_deleted_but_dhcp_ports_lose_their_address(fake):
    net, subnet = network_with_subnet(fake)
    dhcp = fake.create_port(network_id=net.id, device_owner="network:dhcp")
    port = fake.create_port(network_id=net.id)
    with pytest.raises(errors.NeutronConflict, match="One or more ports have an IP allocation from this subnet"):
        fake.delete_subnet(subnet.id)
    fake.delete_port(port.id)
    fake.delete_subnet(subnet.id)
    assert fake.get_subnet(subnet.id) is None and fake.get_port(dhcp.id).fixed_ips == ()
    assert fake.get_network(net.id).subnet_ids == ()


def test_a_network_with_ports_cannot_be_deleted_but_one_with_only_dhcp_ports_goes_with_its_subnets(fake):
    net, _ = network_with_subnet(fake)
    fake.create_port(network_id=net.id, device_owner="network:dhcp")
    port = fake.create_port(network_id=net.id)
    with pytest.raises(errors.NeutronConflict, match=f"ports still in use on the network, id for these ports is: {port.id}"):
        fake.delete_network(net.id)
    fake.delete_port(port.id)
    fake.delete_network(net.id)
    assert fake.networks() == [] and fake.subnets() == [] and fake.ports() == []
    with pytest.raises(errors.NeutronNotFound, match="could not be found"):
        fake.get_network(net.id)


def test_a_subnetpool_with_subnets_cannot_be_deleted(fake):
    pool = fake.make_subnetpool("p", ["10.5.0.0/16"], 24)
    subnet = fake.make_subnet(fake.make_network("n").id, subnetpool_id=pool.id)
    with pytest.raises(errors.NeutronBadRequest, match="Subnet pool has existing allocations"):
        fake.delete_subnetpool(pool.id)
    fake.SUBNETPOOL_IN_USE_STATUS = 409  # older Neutrons
    with pytest.raises(errors.NeutronConflict, match="Subnet pool has existing allocations"):
        fake.delete_subnetpool(pool.id)
    fake.delete_subnet(subnet.id)
    fake.delete_subnetpool(pool.id)
    assert fake.get_subnetpool(pool.id) is None


# --- gets -------------------------------------------------------------------------------

def test_get_network_raises_for_a_missing_one_and_the_other_gets_answer_none(fake):
    gone = "4f0c0e4e-0000-0000-0000-000000000000"
    with pytest.raises(errors.NeutronNotFound):
        fake.get_network(gone)
    assert fake.get_subnet(gone) is None and fake.get_subnetpool(gone) is None and fake.get_port(gone) is None


def test_an_id_that_is_no_neutron_id_is_refused_without_a_request_as_the_client_does(fake):
    with pytest.raises(errors.NeutronNotFound, match="is not a Neutron id"):
        fake.get_network("../ports")
    assert fake.get_port("..") is None and fake.delete_port("x?y") is None
    assert fake.requests == [] and len(fake.calls) == 3


# --- tags -------------------------------------------------------------------------------

@pytest.mark.parametrize("collection", ["networks", "subnets", "subnetpools", "ports"])
def test_tags_on_every_kind(fake, collection):
    net, subnet = network_with_subnet(fake)
    resource_id = {"networks": net.id, "subnets": subnet.id,
                   "subnetpools": fake.make_subnetpool("p", ["10.7.0.0/16"], 24).id,
                   "ports": fake.create_port(network_id=net.id).id}[collection]
    fake.set_tags(collection, resource_id, ["b", "a", "a"])
    fake.add_tag(collection, resource_id, "c")
    fake.remove_tag(collection, resource_id, "a")
    fake.remove_tag(collection, resource_id, "never-there")  # a 404 the client takes
    assert fake.raw(collection, resource_id)["tags"] == ["b", "c"]
    gone = "4f0c0e4e-0000-0000-0000-000000000000"
    with pytest.raises(errors.NeutronNotFound):
        fake.add_tag(collection, gone, "x")
    with pytest.raises(errors.NeutronNotFound):
        fake.set_tags(collection, gone, ["x"])


def test_tag_limits(fake):
    net = fake.make_network("n")
    fake.add_tag("networks", net.id, "x" * 60)
    with pytest.raises(errors.NeutronBadRequest, match="exceeds maximum length of 60"):
        fake.add_tag("networks", net.id, "x" * 61)
    with pytest.raises(errors.NeutronBadRequest, match="per-resource limit of 50"):
        fake.set_tags("networks", net.id, [f"t{i}" for i in range(51)])
    assert FakeNeutron(max_tag_len=255).make_network("n").tags == ()


# --- trunks -----------------------------------------------------------------------------

def test_trunk_subports(fake):
    net, _ = network_with_subnet(fake)
    parent = fake.create_port(network_id=net.id, **bound())
    sub = fake.create_port(network_id=net.id, device_owner="kuryr:container")
    sub2 = fake.create_port(network_id=net.id)
    trunk_id = fake.make_trunk(parent.id)
    assert fake.get_port(parent.id).raw["trunk_details"] == {"trunk_id": trunk_id, "sub_ports": []}
    fake.add_subport(trunk_id, sub.id, 5)
    details = fake.get_port(parent.id).raw["trunk_details"]
    assert details["sub_ports"] == [{"port_id": sub.id, "segmentation_type": "vlan", "segmentation_id": 5,
                                     "mac_address": sub.mac_address}]
    assert fake.get_trunk(trunk_id)["sub_ports"] == [{"port_id": sub.id, "segmentation_type": "vlan",
                                                      "segmentation_id": 5}]
    as_sub = fake.get_port(sub.id)
    assert (as_sub.device_owner, as_sub.vif_type) == ("trunk:subport", "ovs")
    assert as_sub.raw["binding:profile"] == {"parent_name": parent.id, "tag": 5}
    with pytest.raises(errors.NeutronConflict, match="segmentation_id 5 already in use"):
        fake.add_subport(trunk_id, sub2.id, 5)
    with pytest.raises(errors.NeutronConflict, match="in use by another trunk"):
        fake.add_subport(trunk_id, sub.id, 6)
    with pytest.raises(errors.NeutronBadRequest, match="not in range"):
        fake.add_subport(trunk_id, sub2.id, 4095)
    with pytest.raises(errors.NeutronNotFound):
        fake.add_subport(trunk_id, "4f0c0e4e-0000-0000-0000-000000000000", 7)
    with pytest.raises(errors.NeutronConflict, match="currently a subport"):
        fake.delete_port(sub.id)
    with pytest.raises(errors.NeutronConflict, match="currently a parent port"):
        fake.delete_port(parent.id)
    fake.remove_subport(trunk_id, sub.id)
    assert fake.get_port(parent.id).raw["trunk_details"]["sub_ports"] == []
    freed = fake.get_port(sub.id)
    assert (freed.device_owner, freed.vif_type, freed.raw["binding:profile"]) == ("", "unbound", {})
    with pytest.raises(errors.NeutronNotFound, match="could not be found"):
        fake.remove_subport(trunk_id, sub.id)
    with pytest.raises(errors.NeutronNotFound):
        fake.get_trunk("4f0c0e4e-0000-0000-0000-000000000000")


# --- security groups and extensions ------------------------------------------------------

def test_security_groups(fake):
    net, _ = network_with_subnet(fake)
    port = fake.create_port(network_id=net.id)
    sg = fake.create_security_group("exposed", "for a test")
    fake.create_security_group_rule(security_group_id=sg, direction="ingress", protocol="tcp", ethertype="IPv4",
                                    port_range_min=80, port_range_max=80)
    with pytest.raises(errors.NeutronConflict, match="already exists"):
        fake.create_security_group_rule(security_group_id=sg, direction="ingress", protocol="tcp",
                                        ethertype="IPv4", port_range_min=80, port_range_max=80)
    [group] = fake.list_security_groups(name="exposed")
    assert group["id"] == sg and [r["port_range_min"] for r in group["security_group_rules"]][-1] == 80
    fake.update_port(port.id, security_groups=[*port.security_groups, sg])
    with pytest.raises(errors.NeutronConflict, match="in use"):
        fake.delete_security_group(sg)
    with pytest.raises(errors.NeutronNotFound):
        fake.update_port(port.id, security_groups=["4f0c0e4e-0000-0000-0000-000000000000"])
    fake.update_port(port.id, security_groups=list(port.security_groups))
    fake.delete_security_group(sg)
    assert fake.list_security_groups(name="exposed") == []
    with pytest.raises(errors.NeutronConflict):
        fake.delete_security_group(fake.default_security_group_id)


def test_extensions_are_the_stacks(fake):
    assert fake.extensions() == set(EXTENSIONS)
    assert {"trunk", "trunk-details", "revision-if-match", "standard-attr-tag", "binding"} <= fake.extensions()
    assert FakeNeutron(extensions=["binding"]).extensions() == {"binding"}


# --- test controls ----------------------------------------------------------------------

def test_calls_requests_and_writes_are_counted(fake):
    net = fake.make_network("n")  # helpers are not counted
    assert fake.calls == [] and fake.writes() == 0
    fake.list_networks(name="n")
    fake.update_network(net.id, name="m")
    fake.set_tags("networks", net.id, ["a"])
    fake.remove_tag("networks", net.id, "zz")
    assert fake.calls == [("list_networks", {"name": "n"}), ("update_network", {"network_id": net.id, "name": "m"}),
                          ("set_tags", {"collection": "networks", "resource_id": net.id, "tags": ["a"]}),
                          ("remove_tag", {"collection": "networks", "resource_id": net.id, "tag": "zz"})]
    assert fake.requests == ["GET /networks 200", f"PUT /networks/{net.id} 200", f"PUT /networks/{net.id}/tags 200",
                             f"DELETE /networks/{net.id}/tags/zz 404"]
    assert (fake.writes(), fake.reads()) == (3, 1)
    assert fake.calls_to("update_network") == [{"network_id": net.id, "name": "m"}]
    fake.reset_calls()
    assert fake.calls == [] and fake.writes() == 0


def test_the_handlers_call_log_is_filled_as_the_real_client_fills_it(fake):
    log = neutron.start_call_log()
    fake.list_ports()
    assert log == ["GET /ports 200 0ms"]


def test_fail_next_raises_once(fake):
    net, _ = network_with_subnet(fake)
    fake.fail_next("create_port", errors.NeutronUnavailable("POST /ports", "Neutron is unreachable"))
    with pytest.raises(errors.NeutronUnavailable):
        fake.create_port(network_id=net.id)
    assert fake.ports() == []
    assert fake.create_port(network_id=net.id).network_id == net.id
    assert fake.writes() == 2 and fake.requests[0] == "POST /ports injected NeutronUnavailable"


def test_fail_next_applied_makes_the_change_and_loses_the_answer(fake):
    net, _ = network_with_subnet(fake)
    fake.fail_next("create_port", errors.NeutronUnavailable("POST /ports", "timed out"), applied=True)
    with pytest.raises(errors.NeutronUnavailable):
        fake.create_port(network_id=net.id, name="lost")
    assert [p.name for p in fake.ports()] == ["lost"]


def test_controls_refuse_a_method_the_client_does_not_have(fake):
    with pytest.raises(ValueError, match="no NeutronClient method"):
        fake.fail_next("create_prot", errors.NeutronConflict("POST /ports", "x"))
    with pytest.raises(ValueError):
        fake.before("list_port", lambda args: None)


def test_a_before_hook_can_hold_a_call_while_others_go_on(fake):
    net, _ = network_with_subnet(fake)
    entered, release = threading.Event(), threading.Event()
    seen: list[dict] = []

    def hold(args: dict) -> None:
        seen.append(args)
        entered.set()
        release.wait(WAIT)

    fake.before("create_port", hold)
    made: list[Port] = []
    worker = threading.Thread(target=lambda: made.append(fake.create_port(network_id=net.id, name="held")))
    worker.start()
    assert entered.wait(WAIT)
    assert fake.list_ports() == [] and made == []  # the held call has not happened; the fake is not locked
    release.set()
    worker.join(WAIT)
    assert [p.name for p in made] == ["held"] and seen == [{"network_id": net.id, "name": "held"}]
    fake.before("create_port", None)
    assert fake.create_port(network_id=net.id).network_id == net.id and len(seen) == 1


def test_helpers_list_everything_without_counting(fake):
    pool = fake.make_subnetpool("p", ["10.5.0.0/16"], 24)
    net = fake.make_network("n")
    subnet = fake.make_subnet(net.id, subnetpool_id=pool.id)
    port = fake.make_port(net.id, name="p")
    trunk_id = fake.make_trunk(port.id)
    assert [p.id for p in fake.subnetpools()] == [pool.id] and [s.id for s in fake.subnets()] == [subnet.id]
    assert [p.id for p in fake.ports()] == [port.id] and [t["id"] for t in fake.trunks()] == [trunk_id]
    assert [g["name"] for g in fake.security_groups()] == ["default"]
    assert ipaddress.ip_address(port.ip_in(subnet.id)) in ipaddress.ip_network(subnet.cidr)
    assert fake.calls == [] and fake.requests == []
    with pytest.raises(errors.NeutronNotFound):
        fake.make_port("4f0c0e4e-0000-0000-0000-000000000000")


def test_the_error_mapping_is_the_clients():
    for status in (400, 401, 403, 404, 409, 412, 422, 500, 502, 503, 504):
        ours, theirs = neutron_error(status, "GET /x", "m"), neutron._error_for(status, "GET /x", "m")
        assert (type(ours), ours.message, ours.status) == (type(theirs), theirs.message, theirs.status)
