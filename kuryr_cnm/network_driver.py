"""Docker's NetworkDriver: networks, endpoints and sandboxes mapped onto Neutron."""
from __future__ import annotations

from typing import Any

from oslo_config import cfg

from kuryr_cnm import protocol


class NetworkDriver:
    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._conf = conf

    def get_capabilities(self, _body: Any) -> dict[str, Any]:
        scope = self._conf.capability_scope
        return protocol.NetworkCapabilities(
            scope=scope, connectivity_scope=self._conf.connectivity_scope or scope
        ).to_json()
