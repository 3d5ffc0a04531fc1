"""vif_type 'tap': the host end of the veth is all there is.

Routed back ends (Calico-style) find the device by its name ("tap" + port_id[:11])
and route to it themselves, so there is nothing to attach.
"""
from __future__ import annotations

from kuryr_cnm.binding import Binder, HostInterface, VifPort


class TapBinder(Binder):
    vif_types = ("tap",)

    def plug(self, port: VifPort, iface: HostInterface) -> None:
        """Nothing beyond the veth pair, which is already up."""

    def unplug(self, port: VifPort, iface: HostInterface) -> None:
        """Nothing: the Plugger deletes the veth pair."""
