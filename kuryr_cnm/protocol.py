"""Typed requests and responses of Docker's libnetwork remote and IPAM plugin API.

The wire format is described in moby/libnetwork docs/remote.md and docs/ipam.md;
shared/reference/docker-20.10-plugin-calls.md shows what Docker 20.10 really sends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NETWORK_DRIVER = "NetworkDriver"
IPAM_DRIVER = "IpamDriver"


@dataclass(frozen=True)
class ActivateResponse:
    implements: tuple[str, ...] = (NETWORK_DRIVER, IPAM_DRIVER)

    def to_json(self) -> dict[str, Any]:
        return {"Implements": list(self.implements)}


@dataclass(frozen=True)
class NetworkCapabilities:
    scope: str
    connectivity_scope: str

    def to_json(self) -> dict[str, Any]:
        return {"Scope": self.scope, "ConnectivityScope": self.connectivity_scope}


@dataclass(frozen=True)
class IpamCapabilities:
    requires_mac_address: bool
    requires_request_replay: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "RequiresMACAddress": self.requires_mac_address,
            "RequiresRequestReplay": self.requires_request_replay,
        }


@dataclass(frozen=True)
class AddressSpaces:
    local: str
    global_: str

    def to_json(self) -> dict[str, Any]:
        return {"LocalDefaultAddressSpace": self.local, "GlobalDefaultAddressSpace": self.global_}
