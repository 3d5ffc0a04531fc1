"""The plugging contract, as os-vif has it: a Neutron port becomes a VIF once (`vif_from_port`),
and one `Plugging` per process readies the port's Neutron side for this host and plugs it,
and unplugs it as the mirror image. The endpoint driver holds a Plugging and no nested branch.

* `HostPlugging` (bare metal): ports are bound to this host; a port that is not (adopted, or a
  `--mac-address`) is bound first; then a veth pair and the binder for its `binding:vif_type`
  (binding.Plugger, over Open vSwitch's database).
* `NestedPlugging` (a Nova VM): ports stay unbound; the nested driver makes the port a trunk
  subport or an address pair of the VM's port, then a child device of the VM's NIC (and, for
  ipvlan, announces the container's address once it has joined). It never touches Open
  vSwitch, which the VM does not have: what it plugged is recorded on the child devices
  themselves (their alias), in the VM's namespace or the containers'.

Errors: a binder's or the nested driver's failure reaches Docker as a BackendError that names
the port; Neutron's own errors pass through (the handler's edge translates them).
"""
from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import Any

from kuryr_cnm import errors, naming
from kuryr_cnm.binding import BindingError, HostInterface, Plugger, VifPort, veth
from kuryr_cnm.binding import nested as links
from kuryr_cnm.nested import NestedDriver
from kuryr_cnm.neutron import NeutronClient, Port

LOG = logging.getLogger(__name__)


def vif_from_port(port: Port, endpoint_id: str, mtu: int) -> VifPort:
    """What binding needs of a Neutron port, taken once, by the caller."""
    return VifPort(port_id=port.id, mac=port.mac_address, network_id=port.network_id, project_id=port.project_id,
                   endpoint_id=endpoint_id, vif_type=port.vif_type, vif_details=dict(port.vif_details), mtu=mtu)


@dataclass(frozen=True)
class Plugged:
    """A port plugged on this host, as the host itself records it (found again after a restart)."""
    port_id: str
    endpoint_id: str
    device: str  # the host-side device
    mac: str
    # the device exists: Open vSwitch keeps its ports across a reboot, their devices do not
    present: bool = True
    netns: str = ""  # nested mode: the container's namespace the device is in ("" for the host's)
    # in no container: nested mode's child still (or again) in the VM's namespace, which
    # after the reconciler's grace means Docker never joined it, or never deleted it
    idle: bool = False

    @property
    def where(self) -> str:
        return self.device if not self.netns else f"{self.device} in {self.netns}"


class Plugging(abc.ABC):
    # attributes a container port is created with (RequestAddress, the pool)
    port_binding: dict[str, Any] = {}

    def default_network_id(self) -> str | None:
        """The Neutron network a Docker network lands on when no neutron.net.* option names one;
        None: a network of its own."""
        return None

    @abc.abstractmethod
    def plug(self, port: Port, endpoint_id: str, mtu: int, mac: str = "") -> tuple[Port, HostInterface]:
        """Ready `port` for this host (and give it `mac` if set), plug it; returns the port as it
        is now and the interface Docker moves into the sandbox. On failure nothing is left."""

    @abc.abstractmethod
    def unplug(self, port: Port, endpoint_id: str, mtu: int) -> None:
        """Mirror of plug; repeating it, or unplugging what is half there, is fine."""

    def container_mac(self, port: Port) -> str:
        """The MAC to tell Docker from CreateEndpoint (Docker sets it on the interface); "" for none."""
        return port.mac_address

    def joined(self, port: Port, sandbox_key: str) -> None:  # noqa: B027 - nothing to do by default
        """Join answered: Docker is moving the interface into the sandbox at `sandbox_key`."""

    @abc.abstractmethod
    def unplug_orphan(self, plugged: Plugged) -> None:
        """Unplug what is plugged here for a port Neutron no longer has."""

    @abc.abstractmethod
    def own_ports_filter(self) -> dict[str, str]:
        """The Neutron port filter that lists the ports this plugin may have plugged here."""

    def detach(self, port: Port) -> None:  # noqa: B027 - bare metal's ports have nothing to detach
        """Before deleting a port nothing here holds: undo what plugging did in Neutron."""

    @abc.abstractmethod
    def plugged(self) -> list[Plugged]:
        """What kuryr plugged on this host."""

    def close(self) -> None:  # noqa: B027 - nothing to close by default
        """Release what the process holds (a database connection)."""


class HostPlugging(Plugging):
    def __init__(self, client: NeutronClient, plugger: Plugger, host: str) -> None:
        self._client = client
        self._plugger = plugger
        self._host = host
        self.port_binding = {"binding:host_id": host}

    def plug(self, port: Port, endpoint_id: str, mtu: int, mac: str = "") -> tuple[Port, HostInterface]:
        if naming.PORT_EXISTING_TAG in port.tags or port.host_id != self._host:
            port = self._bind(port, endpoint_id, mac)
        elif mac:
            port = self._change_mac(port, mac)
        try:
            return port, self._plugger.plug(vif_from_port(port, endpoint_id, mtu))
        except BindingError as exc:
            raise errors.BackendError(f"could not plug port {port.id}: {exc}") from None

    def unplug(self, port: Port, endpoint_id: str, mtu: int) -> None:
        try:
            self._plugger.unplug(vif_from_port(port, endpoint_id, mtu))
        except BindingError as exc:
            raise errors.BackendError(f"could not unplug port {port.id}: {exc}") from None

    def unplug_orphan(self, plugged: Plugged) -> None:
        vif = VifPort(port_id=plugged.port_id, mac=plugged.mac, network_id="", project_id="",
                      endpoint_id=plugged.endpoint_id, vif_type="ovs", vif_details={}, mtu=0)
        try:
            self._plugger.unplug(vif)
        except BindingError as exc:
            raise errors.BackendError(f"could not unplug {plugged.device}: {exc}") from None

    def own_ports_filter(self) -> dict[str, str]:
        return {"binding:host_id": self._host}

    def plugged(self) -> list[Plugged]:
        found = self._plugger.list_kuryr_ports()
        devices = veth.link_names() if found else set()
        return [Plugged(p.iface_id, p.vm_uuid, p.name, p.attached_mac, present=p.name in devices) for p in found]

    def close(self) -> None:
        self._plugger.close()

    def _bind(self, port: Port, endpoint_id: str, mac: str = "") -> Port:
        """Bind an adopted (pre-created) port to this host: one update, host and owner together
        (DVR needs both), and the MAC Docker asked for while the port is still unbound."""
        attrs: dict[str, Any] = {"binding:host_id": self._host, "device_owner": naming.DEVICE_OWNER,
                                 "device_id": port.device_id or endpoint_id, "admin_state_up": True}
        if mac:
            attrs["mac_address"] = mac
        return self._client.update_port(port.id, **attrs)

    def _change_mac(self, port: Port, mac: str) -> Port:
        """`--mac-address` on a port made already bound: Neutron changes the MAC of unbound
        ports only, so unbind, then set the MAC and bind again in one update."""
        self._client.update_port(port.id, **{"binding:host_id": ""})
        try:
            return self._client.update_port(port.id, **{"mac_address": mac, "binding:host_id": self._host})
        except errors.NeutronError as exc:
            self._client.update_port(port.id, **{"binding:host_id": self._host})
            if isinstance(exc, errors.NeutronConflict):
                raise errors.Conflict(
                    f"MAC {mac} is already used by another port on this network ({exc.message}). To use a "
                    "pre-created port, start the container with its address (--ip, and --mac-address if you "
                    "like): kuryr-cnm chooses the address before Docker tells it the MAC") from None
            raise


class NestedPlugging(Plugging):
    """Ports stay unbound: Neutron binds a subport through its trunk, and a port whose address is
    in the VM port's pairs must stay unbound (ML2/OVN makes it a virtual port)."""

    def __init__(self, client: NeutronClient, driver: NestedDriver, mark: str) -> None:
        """`mark`: this plugin on this host (Owner.mark), recorded on each child device."""
        self._client = client
        self.driver = driver
        self._mark = mark

    def default_network_id(self) -> str | None:
        return self.driver.default_network_id()  # the VM's network: adopted, never deleted

    def plug(self, port: Port, endpoint_id: str, mtu: int, mac: str = "") -> tuple[Port, HostInterface]:
        if mac and not self.driver.own_mac:
            raise errors.BadRequest(f"--mac-address {mac}: the {self.driver.name} port driver's containers have "
                                    "the MAC of the VM's NIC, which they cannot change; start the container "
                                    "without --mac-address")
        if mac:  # unbound, so its MAC can change
            port = self._client.update_port(port.id, mac_address=mac)
        return port, self.driver.plug(port, mtu, alias=links.child_alias(self._mark, port.id, endpoint_id))

    def unplug(self, port: Port, endpoint_id: str, mtu: int) -> None:
        self.driver.unplug(port)

    def container_mac(self, port: Port) -> str:
        return self.driver.container_mac(port)

    def joined(self, port: Port, sandbox_key: str) -> None:
        self.driver.joined(port, sandbox_key)

    def unplug_orphan(self, plugged: Plugged) -> None:
        """The child device of a port Neutron no longer has (its subport went with it; an
        address pair of it stays in the VM port's pairs: Neutron no longer says which)."""
        try:
            links.delete_child(plugged.device, self.driver.kind, plugged.netns)
        except BindingError as exc:
            raise errors.BackendError(str(exc)) from None

    def own_ports_filter(self) -> dict[str, str]:
        # unbound (subports and virtual ports carry no host of ours): found by the mark
        # RequestAddress writes at creation
        return {"description": naming.cnm_description(self._mark)}

    def detach(self, port: Port) -> None:
        self.driver.detach(port)

    def plugged(self) -> list[Plugged]:
        try:
            found = links.children(self._mark)
        except BindingError as exc:
            raise errors.BackendError(str(exc)) from None
        return [Plugged(c.port_id, c.endpoint_id, c.name, c.mac, netns=c.netns, idle=not c.netns) for c in found]
