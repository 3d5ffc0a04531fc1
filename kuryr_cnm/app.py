"""Wiring: configuration -> drivers -> the router the HTTP server dispatches to."""
from __future__ import annotations

from typing import Any

from oslo_config import cfg

from kuryr_cnm import protocol
from kuryr_cnm.ipam_driver import IpamDriver
from kuryr_cnm.network_driver import NetworkDriver
from kuryr_cnm.server import Router


def activate(_body: Any) -> dict[str, Any]:
    # Always answered, even while Neutron is down: a plugin that does not activate
    # costs dockerd about 15 s per network at its start.
    return protocol.ActivateResponse().to_json()


def build_router(conf: cfg.ConfigOpts) -> Router:
    network = NetworkDriver(conf)
    ipam = IpamDriver(conf)
    router = Router()
    router.add("Plugin.Activate", activate)
    router.add("NetworkDriver.GetCapabilities", network.get_capabilities)
    router.add("IpamDriver.GetCapabilities", ipam.get_capabilities)
    router.add("IpamDriver.GetDefaultAddressSpaces", ipam.get_default_address_spaces)
    return router
