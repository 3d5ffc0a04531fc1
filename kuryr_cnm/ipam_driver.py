"""Docker's IpamDriver: address pools and addresses mapped onto Neutron subnetpools and ports."""
from __future__ import annotations

from typing import Any

from oslo_config import cfg

from kuryr_cnm import protocol


class IpamDriver:
    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._conf = conf

    def get_capabilities(self, _body: Any) -> dict[str, Any]:
        return protocol.IpamCapabilities(requires_mac_address=False).to_json()

    def get_default_address_spaces(self, _body: Any) -> dict[str, Any]:
        return protocol.AddressSpaces(
            local=self._conf.local_default_address_space,
            global_=self._conf.global_default_address_space,
        ).to_json()
