"""Docker's IpamDriver: pools are Neutron subnetpools (or carved subnets), addresses are Neutron ports.

PoolID schemes, all resolvable from Neutron alone:
* `--subnet CIDR`: the subnetpool `kuryrPool-CIDR` (kuryr-libnetwork's scheme), its
  subnet made by CreateNetwork; reused while its prefix is free, so two networks
  may have the same CIDR.
* no `--subnet`: a subnet carved at once from the default pool (`kuryr`/`kuryr6`) on
  a network marked pending, which CreateNetwork names; the PoolID is that subnet's id.
* `neutron.pool[.v6].*` / `neutron.subnet[.v6].*` options: the pool or subnet named.

A container address is a Neutron port created already bound to this host, with
every attribute and tag in one request: the only Neutron write of a container start.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

from oslo_config import cfg

from kuryr_cnm import config, errors, naming, ownership, subnets
from kuryr_cnm.deferred import DeferredWrites
from kuryr_cnm.directory import Directory
from kuryr_cnm.neutron import NeutronClient, Port, Subnet
from kuryr_cnm.ownership import Ownership, Why
from kuryr_cnm.pairing import DualStackPairing
from kuryr_cnm.pool import PortPool
from kuryr_cnm.pools import PoolMap
from kuryr_cnm.ports import PortLedger
from kuryr_cnm.protocol import (AddressSpaces, IpamCapabilities, PoolRequest,
                                ReleaseAddressRequest, RequestAddressRequest, RequestPoolRequest)

LOG = logging.getLogger(__name__)

class IpamDriver:
    def __init__(self, conf: cfg.ConfigOpts, client: NeutronClient, directory: Directory,
                 ledger: PortLedger, deferred: DeferredWrites, pool: PortPool,
                 owned: Ownership, port_binding: dict[str, str], pools: PoolMap) -> None:
        self._conf = conf
        self._pools = pools
        self._ownership = owned
        self._pool = pool
        self._client = client
        self._dir = directory
        self._ledger = ledger
        self._deferred = deferred
        self._pairing = DualStackPairing()
        self._enable_dhcp = config.enable_dhcp(conf)
        self._binding = port_binding  # bound here (bare metal), or unbound (nested: Plugging says)

    # -- capabilities --
    def get_capabilities(self, _body: Any) -> dict[str, Any]:
        # No MAC up front: Neutron chooses it and CreateEndpoint tells Docker, so a
        # port can be created bound (its MAC then cannot change) in one request.
        return IpamCapabilities(requires_mac_address=False).to_json()

    def get_default_address_spaces(self, _body: Any) -> dict[str, Any]:
        return AddressSpaces(local=self._conf.local_default_address_space,
                             global_=self._conf.global_default_address_space).to_json()

    # -- pools --
    def request_pool(self, body: Any) -> dict[str, Any]:
        return self._pools.request(RequestPoolRequest.parse(body))

    def release_pool(self, body: Any) -> dict[str, Any]:
        """The Docker network that held this pool is going (DeleteNetwork comes next). A subnet
        of the pool goes now if that Docker network is the only one on the subnet's Neutron
        network; if other Docker networks (another host's, adopting it) use that network, the
        subnet stays, and goes with the last of them (DeleteNetwork). The pool goes once no
        subnet is allocated from it or tagged with it: another Docker network, here or on
        another host, may hold the same pool."""
        pool_id = PoolRequest.parse(body).pool_id
        self._dir.forget_pool(pool_id)
        pool = self._client.get_subnetpool(pool_id)
        if pool is None:  # a carved subnet's id
            subnet = self._client.get_subnet(pool_id)
            if subnet is not None:
                self._release_if_alone(subnet, delete_pending=True)
            return {}
        if naming.SUBNETPOOL_EXISTING_TAG not in pool.tags and not ownership.made_subnetpool(
                pool, self._conf.subnetpool_name_prefix):
            return {}  # an operator's pool kuryr never adopted: nothing of ours
        found = {s.id: s for s in self._client.list_subnets(subnetpool_id=pool.id)
                 + self._client.list_subnets(tags=pool.id)}
        for subnet in found.values():
            self._release_if_alone(subnet)
        self._ownership.release_subnetpool_if_unused(pool)
        return {}

    def _release_if_alone(self, subnet: Subnet, delete_pending: bool = False) -> None:
        net = self._client.get_network(subnet.network_id)
        # claimed first, so that another host's Docker network cannot join it meanwhile; the
        # claim stays on a network kuryr made, for the DeleteNetwork that follows to delete it
        claimed = self._ownership.claim_if_last(net, "ReleasePool")
        if claimed is None:
            return  # other Docker networks use it: the last one's DeleteNetwork releases it
        try:
            self._deferred.settle(self._ledger.on_network(net.id), "ReleasePool")
            self._pool.drain(net.id)
            self._ownership.release_subnet(subnet, "ReleasePool")
            if delete_pending and naming.PENDING_TAG in net.tags and not ownership.docker_users(net):
                self._ownership.delete_network_if_unused(net, "ReleasePool")  # CreateNetwork never came
                return
        except Exception:
            self._ownership.unclaim(claimed)
            raise
        if not ownership.made_network(net):
            self._ownership.unclaim(claimed)  # an operator's network keeps its description

    # -- addresses --
    def request_address(self, body: Any) -> dict[str, Any]:
        req = RequestAddressRequest.parse(body)
        found = self._pools.subnets_of(req.pool_id)
        if req.is_gateway:
            return {"Address": self._gateway_address(req, found), "Data": {}}
        if not found:
            if req.address:  # an --aux-address during network creation: only echoed
                return {"Address": self._echo_with_pool_prefix(req), "Data": {}}
            raise errors.NotFound(f"pool {req.pool_id} has no Neutron subnet; the network was removed "
                                  "from Neutron: recreate it with docker network rm/create")
        subnet = self._subnet_for_request(req, found)
        port = self._allocate(subnet, req.address)
        address = port.ip_in(subnet.id)
        return {"Address": subnets.with_prefix(address, subnet.cidr), "Data": {}}

    def _gateway_address(self, req: RequestAddressRequest, found: tuple[Subnet, ...]) -> str:
        if not found:  # network being created: the gateway becomes the subnet's
            if req.address:
                return self._echo_with_pool_prefix(req)
            pool = self._client.get_subnetpool(req.pool_id)
            if pool is None:
                raise errors.NotFound(f"pool {req.pool_id} does not exist in Neutron")
            return subnets.with_prefix(subnets.default_gateway(pool.prefixes[0]), pool.prefixes[0])
        subnet = found[0]
        if req.address and subnet.gateway_ip and req.address != subnet.gateway_ip:
            raise errors.Conflict(f"--gateway {req.address} differs from the gateway {subnet.gateway_ip} of "
                                  f"Neutron subnet {subnet.id}; leave --gateway out or use that address")
        gateway = req.address or subnet.gateway_ip or subnets.default_gateway(subnet.cidr)
        return subnets.with_prefix(gateway, subnet.cidr)

    def _echo_with_pool_prefix(self, req: RequestAddressRequest) -> str:
        pool = self._client.get_subnetpool(req.pool_id)
        if pool is None:  # no subnetpool and (the caller found) no subnet: there is no such pool
            raise errors.NotFound(f"pool {req.pool_id} does not exist in Neutron; it was released or never "
                                  "made by kuryr")
        return f"{req.address}/{pool.prefixes[0].split('/')[1]}"

    def _subnet_for_request(self, req: RequestAddressRequest, found: tuple[Subnet, ...]) -> Subnet:
        if not req.address:
            return found[0]
        ip = ipaddress.ip_address(req.address)
        for subnet in found:
            if ip in ipaddress.ip_network(subnet.cidr):
                return subnet
        raise errors.BadRequest(f"{req.address} is outside the pool's subnet {found[0].cidr}")

    def _allocate(self, subnet: Subnet, address: str) -> Port:
        if address:
            self._wait_released(subnet.network_id, address)
            existing = self._client.list_ports(network_id=subnet.network_id,
                                               fixed_ips=f"ip_address={address}")
            if existing and not self._pool.give_up(existing[0]):  # an idle pool port gives it up
                return self._adopt(existing[0], address)
        if subnet.ip_version == 6:
            port = self._pairing.take(subnet.network_id)
            if port is not None:
                return self._finish_pair(port, subnet, address)
        partner = self._v6_partner(subnet) if subnet.ip_version == 4 else None
        ticket = self._pairing.begin(subnet.network_id) if partner is not None else 0
        try:
            port = self._ready_port(subnet, partner) if not address else None
            if port is None:
                port = self._create_port(subnet, address, [{"subnet_id": partner.id}] if partner else [])
        except Exception:
            if partner is not None:
                self._pairing.abort(subnet.network_id, ticket)
            raise
        if partner is not None:
            self._pairing.park(subnet.network_id, ticket, port)
        return port

    def _ready_port(self, subnet: Subnet, partner: Subnet | None) -> Port | None:
        """A port from the pool: no Neutron request at all."""
        port = self._pool.take(subnet.network_id, [subnet.id] + ([partner.id] if partner else []))
        if port is not None:
            self._ledger.allocate(port)
        return port

    def _v6_partner(self, subnet: Subnet) -> Subnet | None:
        """The v6 subnet of the same Docker network, if it is dual-stack."""
        network = self._dir.network_of_subnet(subnet)
        if network is None:
            return None
        return next((s for s in network.subnets if s.ip_version == 6), None)

    def _finish_pair(self, port: Port, subnet: Subnet, address: str) -> Port:
        current = port.ip_in(subnet.id)
        if not address or address == current:
            return port
        # --ip6 on a dual-stack endpoint: swap the auto-assigned v6 for the requested one
        fixed = [{"subnet_id": f.subnet_id, "ip_address": f.ip_address} for f in port.fixed_ips
                 if f.subnet_id != subnet.id] + [{"subnet_id": subnet.id, "ip_address": address}]
        port = self._client.update_port(port.id, fixed_ips=fixed)
        self._ledger.allocate(port)
        return port

    def _create_port(self, subnet: Subnet, address: str, extra_fixed: list[dict[str, str]]) -> Port:
        fixed = [{"subnet_id": subnet.id, **({"ip_address": address} if address else {})}] + extra_fixed
        try:
            port = self._client.create_port(
                network_id=subnet.network_id, name=naming.UNBOUND_PORT_NAME, admin_state_up=True,
                fixed_ips=fixed, device_owner=naming.DEVICE_OWNER, **self._binding,
                # Neutron 29 accepts `tags` in a port POST but does not store them, so the
                # creator's mark goes in the description now and the tags come with the
                # endpoint's, in the background write after CreateEndpoint.
                description=naming.cnm_description(self._ownership.owner.mark))
        except errors.NeutronConflict as exc:
            if address:
                raise errors.Conflict(f"address {address} is already in use in subnet {subnet.cidr}: "
                                      f"{exc.message}; choose another --ip") from None
            raise errors.Conflict(f"no free address in subnet {subnet.cidr} ({exc.message}); remove unused "
                                  "containers or use a bigger subnet") from None
        self._ledger.allocate(port)
        return port

    def _adopt(self, port: Port, address: str) -> Port:
        """A pre-created port holding the requested address: kuryr-libnetwork's adoption."""
        if port.device_owner or port.device_id or port.host_id or naming.DEVICE_OWNER in port.tags:
            raise errors.Conflict(f"address {address} is in use by port {port.id} "
                                  f"(device_owner {port.device_owner or '-'}, device {port.device_id or '-'}); "
                                  "choose another --ip")
        self._client.add_tag("ports", port.id, naming.PORT_EXISTING_TAG)
        port = self._client.get_port(port.id) or port
        self._ledger.allocate(port)
        return port

    def release_address(self, body: Any) -> dict[str, Any]:
        req = ReleaseAddressRequest.parse(body)
        found = self._pools.subnets_of(req.pool_id)
        subnet = next((s for s in found if ipaddress.ip_address(req.address) in ipaddress.ip_network(s.cidr)), None)
        if subnet is None:
            return {}  # the subnet is gone, and with it the address
        if self._ledger.releasing(subnet.network_id, req.address):
            return {}  # the other address of a dual-stack port being released
        port = self._ledger.address(subnet.network_id, req.address)
        if port is not None:
            self._ledger.released(port, by_lookup=False)
        else:
            ports = self._client.list_ports(network_id=subnet.network_id, fixed_ips=f"ip_address={req.address}")
            port = next((p for p in ports if p.ip_in(subnet.id) == req.address), None)
            if port is None:
                return {}  # gateway, aux address, or already released (Docker repeats calls)
            # not in the ledger as handed out: an endpoint may still hold it (its device_id may
            # not be written yet), and its DeleteEndpoint must not offer it again
            self._ledger.released(port, by_lookup=True)
        self._pool.forget(port.id)
        self._release_later(port)
        return {}

    def _release_later(self, port: Port) -> None:
        """Delete (or reset) the port off Docker's hot path. Until that lands its addresses
        are marked as being released: a --ip for one of them, ReleasePool and DeleteNetwork
        wait for it; if the process dies first, the reconciler deletes the port."""
        self._ledger.start_release(port)

        def release() -> None:
            if naming.PORT_EXISTING_TAG in port.tags:
                self._reset_adopted(port)
            else:
                self._ownership.delete_port(port, Why.RELEASED)
        # the mark goes once the release has landed or been given up, not after a failed attempt:
        # DeleteNetwork waits for a release that retries through a Neutron outage
        self._deferred.submit(port.id, f"release port {port.id}", release,
                              done=lambda: self._ledger.end_release(port), supersedes=True)

    def _wait_released(self, network_id: str, address: str) -> None:
        port_id = self._ledger.releasing(network_id, address)
        if port_id:
            self._deferred.settle([port_id], f"RequestAddress of {address}")

    def _reset_adopted(self, port: Port) -> None:
        """Give a pre-created port back as it was: unbound, no owner, no kuryr tags."""
        tags = [t for t in port.tags if t != naming.PORT_EXISTING_TAG
                and not t.startswith((naming.ID_LH_TAG, naming.ID_UH_TAG))]
        attrs: dict[str, Any] = {"device_owner": "", "binding:host_id": ""}
        if port.device_id and (port.device_owner == naming.DEVICE_OWNER):
            attrs["device_id"] = ""
        self._client.update_port(port.id, **attrs)
        self._client.set_tags("ports", port.id, tags)
