"""The VM's port, and what a nested port driver does."""
from __future__ import annotations

import abc
import threading

from kuryr_cnm import errors
from kuryr_cnm.binding import BindingError, HostInterface, interface_names
from kuryr_cnm.binding import nested as links
from kuryr_cnm.neutron import NeutronClient, Port


class NestedError(Exception):
    """Nested mode is configured but cannot work: the message says what the VM or its port lacks."""


class VmPort:
    """The VM's Neutron port (the parent) and its NIC, resolved on first use and cached:
    Neutron may be down when the plugin starts, and both are fixed for the VM's life."""

    def __init__(self, client: NeutronClient, link_iface: str, port_id: str) -> None:
        self._client = client
        self._link_iface = link_iface
        self._port_id = port_id
        self._lock = threading.Lock()

    def port_id(self) -> str:
        with self._lock:
            if not self._port_id:
                self._port_id = self._find_by_mac()
            return self._port_id

    def link_iface(self) -> str:
        with self._lock:
            if not self._link_iface:
                self._link_iface = self._find_link()
            return self._link_iface

    def port(self) -> Port:
        """The parent as Neutron has it now (trunk_details, pairs and revision change)."""
        port = self._client.get_port(self.port_id())
        if port is None:
            raise errors.NotFound(f"the VM's port {self._port_id} does not exist in Neutron: check "
                                  "[binding] vm_port_id / link_iface")
        return port

    def _find_by_mac(self) -> str:
        mac = links.link_mac(self._link_iface)
        if mac is None:
            raise errors.BackendError(f"[binding] link_iface {self._link_iface} does not exist on this host")
        ports = self._client.list_ports(mac_address=mac)
        if len(ports) != 1:
            raise errors.NotFound(f"{len(ports)} Neutron ports have {self._link_iface}'s MAC {mac}; set "
                                  "[binding] vm_port_id to the VM's port")
        return ports[0].id

    def _find_link(self) -> str:
        port = self._client.get_port(self._port_id)
        if port is None:
            raise errors.NotFound(f"[binding] vm_port_id {self._port_id} does not exist in Neutron")
        name = links.link_with_mac(port.mac_address)
        if name is None:
            raise errors.BackendError(f"no interface here has the MAC {port.mac_address} of the VM's port "
                                      f"{port.id}: set [binding] link_iface")
        return name


class NestedDriver(abc.ABC):
    """Plugs a container port as a child device of the VM's NIC."""

    name: str
    kind: str  # the child device's link kind
    own_mac = True  # the child has the container port's MAC (ipvlan: link_iface's, which Docker must not set)

    def __init__(self, client: NeutronClient, vm: VmPort) -> None:
        self._client = client
        self._vm = vm

    def default_network_id(self) -> str:
        """Docker networks land on the VM's network unless neutron.net.* says otherwise."""
        return self._vm.port().network_id

    def plug(self, port: Port, mtu: int, alias: str = "") -> HostInterface:
        """Neutron's part, then the child device, recorded with `alias` (links.child_alias); on
        failure nothing is left."""
        setting = self._attach(port)
        iface = interface_names(port.id)
        try:
            links.create_child(iface.container_name, self._vm.link_iface(), self.kind, mac=port.mac_address,
                               mtu=mtu, vlan_id=setting, alias=alias)
        except BindingError as exc:
            self._detach(port)
            raise errors.BackendError(f"could not plug port {port.id}: {exc}") from None
        return HostInterface(host_name=iface.container_name, container_name=iface.container_name)

    def unplug(self, port: Port) -> None:
        """Mirror of plug; repeating it, or unplugging what is half there, is fine."""
        try:
            links.delete_child(interface_names(port.id).container_name, self.kind)
        except BindingError as exc:
            raise errors.BackendError(str(exc)) from None
        self._detach(port)

    def detach(self, port: Port) -> None:
        """Neutron's part of unplugging alone (the reconciler, for a port whose device is gone)."""
        self._detach(port)

    def container_mac(self, port: Port) -> str:
        """The MAC to tell Docker (it sets it in the sandbox); "" for none."""
        return port.mac_address if self.own_mac else ""

    def joined(self, port: Port, sandbox_key: str) -> None:  # noqa: B027 - optional hook
        """The container's sandbox has the child device now, or will have in a moment."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise NestedError (or a PluginError) if the VM's port or this host lacks what the driver needs."""

    @abc.abstractmethod
    def _attach(self, port: Port) -> int:
        """Neutron's part of plugging; returns the VLAN id (0 when there is none)."""

    @abc.abstractmethod
    def _detach(self, port: Port) -> None:
        """Undo _attach; what is already undone is fine."""

    def describe(self) -> str:
        return f"{self.name} on link_iface {self._vm._link_iface or '(from vm_port_id)'}"
