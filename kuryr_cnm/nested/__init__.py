"""Nested mode: containers inside a Nova VM, on Neutron networks through the VM's own port.

The VM's port (the parent) is found once, lazily, by the MAC of [binding] link_iface or
by [binding] vm_port_id. Per container port, a driver does Neutron's part through the
gateway (a trunk subport for `vlan`, allowed address pairs for `ipvlan` and `macvlan`) and
then makes the child device of link_iface through binding.nested; every step is undone if
a later one fails, and teardown is the mirror image.

Which one: `vlan` wherever the VM's port can be a trunk parent (Neutron's trunk service
plugin); `ipvlan` on ML2/OVN, or ML2/OVS with port security (its pairs carry the VM port's
own MAC); `macvlan` on ML2/OVS, or Neutron older than 28.0.1 (from 28.0.1 on ML2/OVN refuses
its pairs; 28.0.0's ML2/OVN accepts them, but ovn-controller drops their traffic).

Ports in nested mode are created unbound: Neutron binds a subport through its trunk, and an
address in the parent's pairs travels through the parent.

`build()` chooses the driver from the loaded configuration: None for veth (bare metal).
"""
from __future__ import annotations

from oslo_config import cfg

from kuryr_cnm.nested.base import NestedDriver, NestedError, VmPort
from kuryr_cnm.neutron import NeutronClient

VETH = "veth"
VLAN = "vlan"
IPVLAN = "ipvlan"
MACVLAN = "macvlan"
NESTED = "nested"  # upstream's name of the pairs driver; [binding] default_driver says macvlan or ipvlan
_ALIASES = {"veth": VETH, "vlan": VLAN, NESTED: MACVLAN, "macvlan": MACVLAN, "ipvlan": IPVLAN}


def driver_name(conf: cfg.ConfigOpts) -> str:
    """veth, vlan, ipvlan or macvlan from [DEFAULT] default_port_driver (short or upstream module path)."""
    value = conf.default_port_driver.strip()
    short = value.rsplit(".", 1)[-1]
    if short not in _ALIASES:
        raise NestedError(f"default_port_driver = {value}: unknown port driver; use veth, vlan, ipvlan or nested "
                          "(macvlan), or kuryr_libnetwork.port_driver.drivers.<one of them>")
    if short == NESTED and conf.binding.default_driver.strip().rsplit(".", 1)[-1] == IPVLAN:
        return IPVLAN  # upstream's nested driver with kuryr-lib's ipvlan binding (which upstream refused)
    return _ALIASES[short]


def build(conf: cfg.ConfigOpts, client: NeutronClient) -> NestedDriver | None:
    name = driver_name(conf)
    if name == VETH:
        return None
    if conf.vif_pool.enabled:
        raise NestedError(f"[vif_pool] enabled: the port pool makes ports bound to this host, which nested "
                          f"mode ({name}) cannot use; turn the pool off")
    if not conf.binding.link_iface and not conf.binding.vm_port_id:
        raise NestedError(f"port driver {name} needs the VM's NIC: set [binding] link_iface (the interface "
                          "the VM's Neutron port is attached to), or [binding] vm_port_id")
    vm = VmPort(client, conf.binding.link_iface, conf.binding.vm_port_id)
    if name == VLAN:
        from kuryr_cnm.nested.vlan import VlanDriver
        return VlanDriver(client, vm)
    if name == IPVLAN:
        from kuryr_cnm.nested.ipvlan import IpvlanDriver
        return IpvlanDriver(client, vm)
    from kuryr_cnm.nested.macvlan import MacvlanDriver
    return MacvlanDriver(client, vm)


__all__ = ["NestedDriver", "NestedError", "VmPort", "build", "driver_name"]
