import pytest

from kuryr_cnm import subnets
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
