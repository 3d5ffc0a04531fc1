"""IpamDriver's RequestAddress and ReleaseAddress."""
from __future__ import annotations

from unittest.mock import MagicMock

import pytest

from kuryr_cnm import config, errors
from kuryr_cnm.ipam_driver import IpamDriver
from kuryr_cnm.neutron import SubnetPool
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.pools import PoolMap
from kuryr_cnm.ports import PortLedger


def _ownership(conf, client) -> Ownership:
    return Ownership(client, Owner(conf.host, conf.plugin_name), conf.subnetpool_name_prefix)


def test_address_from_a_pool_that_does_not_exist_is_not_found():
    """RequestAddress with an address (an --aux-address) on a released or unknown pool answered
    200 with a made-up /32; it is a 404 like the gateway request on such a pool."""
    client, directory = MagicMock(), MagicMock()
    directory.cached_pool.return_value = ()
    client.get_subnetpool.return_value = None
    ipam = IpamDriver(config.load(), client, directory, PortLedger(), MagicMock(), MagicMock(),
                      _ownership(config.load(), client), {"binding:host_id": config.load().host},
                      PoolMap(config.load(), client, directory,
                              _ownership(config.load(), client)))
    with pytest.raises(errors.NotFound, match="does not exist"):
        ipam.request_address({"PoolID": "0f372d2b-7a2a-43e2-869c-7419a195dfb1", "Address": "10.0.0.9"})
    client.get_subnetpool.return_value = SubnetPool("p", "kuryrPool-10.0.0.0/28", ("10.0.0.0/28",), 4, 28, False, ())
    assert ipam.request_address({"PoolID": "p", "Address": "10.0.0.9"}) == {"Address": "10.0.0.9/28", "Data": {}}
