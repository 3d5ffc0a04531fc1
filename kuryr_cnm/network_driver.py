"""Docker's NetworkDriver, its networks half: CreateNetwork and DeleteNetwork on Neutron
networks and subnets, and the capability and no-op calls. Endpoints and sandboxes are
endpoint_driver.py's."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

from oslo_config import cfg

from kuryr_cnm import config, errors, naming, ownership, subnets
from kuryr_cnm.deferred import DeferredWrites
from kuryr_cnm.directory import Directory
from kuryr_cnm.endpoints import Allocations
from kuryr_cnm.neutron import Network, NeutronClient, Subnet, SubnetPool
from kuryr_cnm.plugging import Plugging
from kuryr_cnm.pool import PortPool
from kuryr_cnm.protocol import (AllocateNetworkRequest, CreateNetworkRequest, GwAllocCheckRequest, IPAMData,
                                NetworkCapabilities, NetworkRequest, NeutronOptions)

LOG = logging.getLogger(__name__)


def _ip(cidr: str) -> str:
    return cidr.split("/")[0]


class NetworkDriver:
    def __init__(self, conf: cfg.ConfigOpts, client: NeutronClient, directory: Directory,
                 allocations: Allocations, deferred: DeferredWrites, pool: PortPool, owned: ownership.Ownership,
                 plugging: Plugging) -> None:
        self._conf = conf
        self._ownership = owned
        self._plugging = plugging  # the VM's network is nested mode's default one
        self._pool = pool
        self._client = client
        self._dir = directory
        self._allocations = allocations  # addresses handed out, or being released, per network
        self._deferred = deferred

    # -- capabilities and no-ops --
    def get_capabilities(self, _body: Any) -> dict[str, Any]:
        scope = self._conf.capability_scope
        return NetworkCapabilities(scope=scope, connectivity_scope=self._conf.connectivity_scope or scope).to_json()

    def gw_alloc_check(self, body: Any) -> dict[str, Any]:
        """Docker >= 28: skip reserving a gateway on --internal networks (they get none)."""
        internal = GwAllocCheckRequest.parse(body).internal
        return {"SkipIPv4": internal, "SkipIPv6": internal}

    def allocate_network(self, body: Any) -> dict[str, Any]:
        req = AllocateNetworkRequest.parse(body)
        return {"Options": {str(k): str(v) for k, v in req.options.items()}}

    def free_network(self, body: Any) -> dict[str, Any]:
        NetworkRequest.parse(body, "NetworkDriver.FreeNetwork")
        return {}

    def discover(self, _body: Any) -> dict[str, Any]:
        return {}

    # -- networks --
    def create_network(self, body: Any) -> dict[str, Any]:
        req = CreateNetworkRequest.parse(body)
        if self._dir.docker_network(req.network_id) is not None:
            return {}  # Docker retried: it exists already
        opts = req.neutron
        carved = self._carved_subnets(req.ipv4_data + req.ipv6_data)
        network = self._target_network(req, carved)
        made = network.name == naming.network_name(req.network_id) and not opts.net
        try:
            found = [self._subnet_for(network, data, v6, req.internal, carved, opts)
                     for v6, datas in ((False, req.ipv4_data), (True, req.ipv6_data)) for data in datas]
            network = self._tag_network(network, req, made)
        except Exception:
            if made:
                self._client.delete_network(network.id)
            raise
        self._dir.remember_network(req.network_id, network, tuple(found))
        self._pool.prepare(network.id, [s.id for s in found])
        return {}

    def _carved_subnets(self, datas: list[IPAMData]) -> dict[str, Subnet]:
        """Subnets that RequestPool carved for this network, by CIDR (on pending networks)."""
        pending = self._client.list_networks(tags=naming.PENDING_TAG)
        if not pending:
            return {}
        wanted = {d.pool for d in datas}
        out = {}
        for net in pending:
            for subnet in self._client.list_subnets(network_id=net.id):
                if subnet.cidr in wanted:
                    out[subnet.cidr] = subnet
        return out

    def _target_network(self, req: CreateNetworkRequest, carved: dict[str, Subnet]) -> Network:
        shared = req.neutron.net_shared
        if req.neutron.net:
            return self._existing_network(req.neutron.net.uuid, req.neutron.net.name, shared)
        default = self._plugging.default_network_id()
        if default:  # nested: the VM's network (adopted, never deleted)
            return self._client.get_network(default)
        if carved:
            host = next(iter(sorted(carved.values(), key=lambda s: s.ip_version)))
            return self._client.update_network(host.network_id, name=naming.network_name(req.network_id))
        return self._client.create_network(name=naming.network_name(req.network_id), shared=shared,
                                           admin_state_up=True)

    def _existing_network(self, net_id: str, net_name: str, shared: bool) -> Network:
        if net_id:
            network = self._client.get_network(net_id)
        else:
            found = self._client.list_networks(name=net_name)
            if len(found) != 1:
                raise errors.NotFound(f"neutron.net.name={net_name} matches {len(found)} Neutron networks; "
                                      "use neutron.net.uuid") if not found else \
                    errors.Conflict(f"neutron.net.name={net_name} matches {len(found)} Neutron networks; "
                                    "use neutron.net.uuid")
            network = found[0]
        if network.shared != shared:
            raise errors.Conflict(f"Neutron network {network.id} has shared={network.shared} but "
                                  f"neutron.net.shared={shared}; make them agree")
        return network

    def _subnet_for(self, network: Network, data: IPAMData, v6: bool, internal: bool,
                    carved: dict[str, Subnet], opts: NeutronOptions) -> Subnet:
        """The Neutron subnet behind one of Docker's pools, on `network`."""
        aux = [_ip(a) for a in data.aux_addresses.values()]
        gateway = None if internal else (_ip(data.gateway) if data.gateway else None)
        subnet = carved.get(data.pool)
        if subnet is not None and subnet.network_id != network.id:
            subnet = self._move_carved(subnet, network)
        if subnet is None:
            existing = [s for s in self._client.list_subnets(network_id=network.id, cidr=data.pool)]
            subnet = existing[0] if existing else None
            if subnet is not None:
                pool = self._pool_id_for(data.pool, subnet.id)
                if pool:
                    self._client.add_tag("subnets", subnet.id, pool)
                    self._dir.remember_pool(pool, (subnet,))
                return subnet
            subnet = self._create_subnet(network, data.pool, v6, gateway, aux, opts)
        elif internal or aux:
            attrs: dict[str, Any] = {"allocation_pools": subnets.allocation_pools(subnet.cidr, gateway, aux)}
            if internal:
                attrs["gateway_ip"] = None
            subnet = self._client.update_subnet(subnet.id, **attrs)  # one write for both
            self._dir.remember_pool(subnet.id, (subnet,))
        return subnet

    def _pool_id_for(self, cidr: str, subnet_id: str) -> str | None:
        """The kuryrPool RequestPool made for an existing subnet: the one tagged with it
        (neutron.subnet.* options), else one with no subnet allocated from it."""
        name = naming.subnetpool_name(cidr, self._conf.subnetpool_name_prefix)
        pools = self._client.list_subnetpools(name=name)
        tagged = [p for p in pools if subnet_id in p.tags]
        if tagged:
            return tagged[0].id
        free = [p for p in pools if not self._client.list_subnets(subnetpool_id=p.id)]
        return free[0].id if free else None

    def _pool_to_allocate_from(self, cidr: str, opts: NeutronOptions, v6: bool) -> SubnetPool:
        """The subnetpool RequestPool chose for `cidr`: the one named by -o neutron.pool[.v6].*
        (upstream's recipe passes it to both -o and --ipam-opt), else a free kuryrPool-CIDR,
        else a pool RequestPool adopted (tagged kuryr.subnetpool.existing) with that prefix."""
        pool_id, pool_name = opts.pool(v6).uuid, opts.pool(v6).name
        if pool_id or pool_name:
            named = [self._client.get_subnetpool(pool_id)] if pool_id else self._client.list_subnetpools(name=pool_name)
            if named and named[0] is not None:
                return named[0]
        name = naming.subnetpool_name(cidr, self._conf.subnetpool_name_prefix)
        candidates = self._client.list_subnetpools(name=name) + [
            p for p in self._client.list_subnetpools(tags=naming.SUBNETPOOL_EXISTING_TAG) if list(p.prefixes) == [cidr]]
        for pool in candidates:
            if not self._client.list_subnets(subnetpool_id=pool.id):
                return pool
        raise errors.NotFound(f"no free subnetpool for {cidr} ({name} or an adopted pool): the network's "
                              "RequestPool did not come from kuryr; create it with --ipam-driver kuryr")

    def _create_subnet(self, network: Network, cidr: str, v6: bool, gateway: str | None,
                       aux: list[str], opts: NeutronOptions) -> Subnet:
        """kuryr-libnetwork's --subnet flow: a subnet from the kuryrPool-CIDR pool, tagged with its id."""
        pool = self._pool_to_allocate_from(cidr, opts, v6)
        attrs: dict[str, Any] = dict(network_id=network.id, ip_version=6 if v6 else 4, cidr=cidr,
                                     subnetpool_id=pool.id, name=naming.subnet_name(cidr),
                                     enable_dhcp=config.enable_dhcp(self._conf),
                                     gateway_ip=gateway)
        if aux:
            attrs["allocation_pools"] = subnets.allocation_pools(cidr, gateway, aux)
        subnet = self._client.create_subnet(**attrs)
        self._client.add_tag("subnets", subnet.id, pool.id)
        self._dir.remember_pool(pool.id, (subnet,))
        return subnet

    def _move_carved(self, subnet: Subnet, network: Network) -> Subnet:
        """A carved subnet on another (pending) network: re-carve the same CIDR on `network`,
        tagged with the old subnet id, which is the PoolID Docker keeps."""
        old_net = subnet.network_id
        self._client.delete_subnet(subnet.id)
        self._client.delete_network(old_net)
        pool_id = subnet.subnetpool_id or ""
        pool = self._client.get_subnetpool(pool_id)
        if pool is None:
            raise errors.NotFound(f"the subnetpool {pool_id} of carved subnet {subnet.cidr} is gone")
        moved = subnets.carve_subnet(self._client, pool, network.id, cidr=subnet.cidr,
                                     enable_dhcp=config.enable_dhcp(self._conf))
        self._client.add_tag("subnets", moved.id, subnet.id)
        self._dir.remember_pool(subnet.id, (moved,))
        return moved

    def _tag_network(self, network: Network, req: CreateNetworkRequest, made: bool) -> Network:
        tags = [t for t in network.tags if t != naming.PENDING_TAG] + naming.id_tags(req.network_id)
        if not made:
            tags.append(naming.network_existing_tag(req.network_id))
        if req.neutron.mtu and req.neutron.mtu < network.mtu:
            tags.append(naming.MTU_TAG + str(req.neutron.mtu))
        self._client.set_tags("networks", network.id, tags)
        return Network(network.id, network.name, network.mtu, network.shared, tuple(sorted(set(tags))),
                       network.subnet_ids, network.project_id)

    def delete_network(self, body: Any) -> dict[str, Any]:
        """This Docker network stops using its Neutron network. Other Docker networks (other
        hosts, or kuryr-libnetwork) may use it too, each with its own tags on it: only the last
        one to leave deletes what kuryr made (subnets, pools, the network) and untags the rest."""
        docker_id = NetworkRequest.parse(body).network_id
        found = self._dir.docker_network(docker_id)
        if found is None:
            LOG.info("DeleteNetwork %s: no Neutron network; nothing to do", docker_id[:12])
            return {}
        network = self._client.get_network(found.network.id)  # the users as they are now
        leaving = dataclasses.replace(network, tags=tuple(ownership.tags_without_user(network.tags, docker_id)))
        self._pool.drain(network.id)  # this host no longer serves it
        if ownership.docker_users(leaving):
            self._client.set_tags("networks", network.id, leaving.tags)
            self._dir.forget_network(docker_id)
            return {}
        # ports still being released would keep the subnets busy
        self._deferred.settle(self._allocations.on_network(network.id), "DeleteNetwork")
        self._ownership.release_subnets(leaving, "DeleteNetwork")
        if not self._ownership.delete_network_if_unused(leaving, "DeleteNetwork"):
            # an operator's network: only kuryr's tags go
            self._client.set_tags("networks", network.id, [t for t in leaving.tags if not t.startswith(naming.MTU_TAG)])
        self._dir.forget_network(docker_id)
        return {}
