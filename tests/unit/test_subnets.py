import pytest

from kuryr_cnm import errors, subnets
from kuryr_cnm.neutron import SubnetPool


def _pool(prefixes, length, version=4):
    return SubnetPool("p", "kuryr", tuple(prefixes), version, length, True, ())


def test_default_gateway_is_first_host():
    assert subnets.default_gateway("10.0.0.0/24") == "10.0.0.1"
    assert subnets.default_gateway("fd00::/64") == "fd00::1"
    assert subnets.with_prefix("10.0.0.1", "10.0.0.0/24") == "10.0.0.1/24"


def test_free_prefixes_skip_used_and_overlapping():
    pool = _pool(["10.10.0.0/16"], 24)
    assert subnets.free_prefixes(pool, [], 24)[:2] == ["10.10.0.0/24", "10.10.1.0/24"]
    used = ["10.10.0.0/24", "10.10.1.128/25", "10.10.4.0/23"]
    free = subnets.free_prefixes(pool, used, 24)
    assert free[:3] == ["10.10.2.0/24", "10.10.3.0/24", "10.10.6.0/24"]
    assert len(subnets.free_prefixes(pool, [], 24)) == 64  # bounded


def test_free_prefixes_exhausted():
    pool = _pool(["10.10.0.0/23"], 24)
    assert subnets.free_prefixes(pool, ["10.10.0.0/24", "10.10.1.0/24"], 24) == []


def test_free_prefixes_v6():
    pool = _pool(["fd00:10:10::/48"], 64, 6)
    assert subnets.free_prefixes(pool, ["fd00:10:10::/64"], 64)[0] == "fd00:10:10:1::/64"


@pytest.mark.parametrize("cidr,gateway,exclude,expected", [
    ("10.0.0.0/29", "10.0.0.1", [], [("10.0.0.2", "10.0.0.6")]),
    ("10.0.0.0/29", "10.0.0.1", ["10.0.0.4"], [("10.0.0.2", "10.0.0.3"), ("10.0.0.5", "10.0.0.6")]),
    ("10.0.0.0/29", None, ["10.0.0.6"], [("10.0.0.1", "10.0.0.5")]),
    ("10.0.0.0/29", "10.0.0.6", ["10.0.0.1", "10.0.0.2"], [("10.0.0.3", "10.0.0.5")]),
    ("10.0.0.0/29", "10.0.0.1", ["192.168.0.1"], [("10.0.0.2", "10.0.0.6")]),
])
def test_allocation_pools_leave_out_gateway_and_aux(cidr, gateway, exclude, expected):
    got = subnets.allocation_pools(cidr, gateway, exclude)
    assert [(p["start"], p["end"]) for p in got] == expected


def _race(fake, pool, network_id):
    """Another allocator takes the prefix carve_subnet is about to ask for, once."""
    taken = []

    def take_it_first(args):
        if not taken:
            taken.append(fake.make_subnet(fake.make_network("other").id, args["cidr"], subnetpool_id=pool.id))
    fake.before("create_subnet", take_it_first)
    return taken


def test_a_prefix_taken_meanwhile_is_retried_with_the_next():
    """Neutron 29 answers a taken prefix with 500 SubnetAllocationError, not 409: the retry never ran."""
    from tests.unit.fake_neutron import FakeNeutron
    fake = FakeNeutron()
    pool = fake.make_subnetpool("kuryr", ["10.5.0.0/22"], 24)
    net = fake.make_network("pending")
    taken = _race(fake, pool, net.id)
    subnet = subnets.carve_subnet(fake, pool, net.id)
    assert taken and subnet.cidr != taken[0].cidr and subnet.network_id == net.id
    assert len(fake.calls_to("create_subnet")) == 2


def test_a_refusal_that_is_no_race_is_not_retried_and_keeps_neutrons_message():
    """Any 400 was read as 'prefix taken' (up to 24 POSTs) and Neutron's message dropped."""
    from tests.unit.fake_neutron import FakeNeutron
    fake = FakeNeutron()
    pool = fake.make_subnetpool("kuryr", ["10.5.0.0/22"], 24)
    net = fake.make_network("pending")
    fake.fail_next("create_subnet", errors.neutron_error(400, "POST /subnets", "Invalid input: gateway_ip",
                                                         "InvalidInput"))
    with pytest.raises(errors.NeutronBadRequest, match="Invalid input: gateway_ip"):
        subnets.carve_subnet(fake, pool, net.id)
    assert len(fake.calls_to("create_subnet")) == 1


def test_an_exhausted_pool_says_so():
    from tests.unit.fake_neutron import FakeNeutron
    fake = FakeNeutron()
    pool = fake.make_subnetpool("kuryr", ["10.5.0.0/24"], 24)
    fake.make_subnet(fake.make_network("a").id, "10.5.0.0/24", subnetpool_id=pool.id)
    with pytest.raises(errors.Conflict, match="has no free /24 left"):
        subnets.carve_subnet(fake, pool, fake.make_network("b").id, cidr="")
