"""Docker's NetworkDriver, its networks half: CreateNetwork and DeleteNetwork on Neutron
networks and subnets, and the capability and no-op calls. Endpoints and sandboxes are
endpoint_driver.py's."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

from oslo_config import cfg

from kuryr_cnm import errors, naming, ownership
from kuryr_cnm.deferred import DeferredWrites
from kuryr_cnm.directory import Directory
from kuryr_cnm.neutron import Network, NeutronClient, Subnet
from kuryr_cnm.plugging import Plugging
from kuryr_cnm.pool import PortPool
from kuryr_cnm.pools import PoolMap
from kuryr_cnm.ports import PortLedger
from kuryr_cnm.protocol import (AllocateNetworkRequest, CreateNetworkRequest, GwAllocCheckRequest,
                                NetworkCapabilities, NetworkRequest)

LOG = logging.getLogger(__name__)


class NetworkDriver:
    def __init__(self, conf: cfg.ConfigOpts, client: NeutronClient, directory: Directory,
                 ledger: PortLedger, deferred: DeferredWrites, pool: PortPool, owned: ownership.Ownership,
                 plugging: Plugging, pools: PoolMap) -> None:
        self._conf = conf
        self._pools = pools
        self._ownership = owned
        self._plugging = plugging  # the VM's network is nested mode's default one
        self._pool = pool
        self._client = client
        self._dir = directory
        self._ledger = ledger  # ports handed out or being released, per network
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
        carved = self._pools.carved_subnets(req.ipv4_data + req.ipv6_data)
        network = self._target_network(req, carved)
        made = network.name == naming.network_name(req.network_id) and not opts.net
        try:
            found = [self._pools.subnet_for(network, data, v6, req.internal, carved, opts)
                     for v6, datas in ((False, req.ipv4_data), (True, req.ipv6_data)) for data in datas]
            network = self._tag_network(network, req, made)
        except Exception:
            if made:  # the network this request made, and no Docker network uses yet
                self._ownership.delete_network_if_unused(network, "CreateNetwork rollback")
            raise
        self._dir.remember_network(req.network_id, network, tuple(found))
        self._pool.prepare(network.id, [s.id for s in found])
        return {}

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

    def _tag_network(self, network: Network, req: CreateNetworkRequest, made: bool) -> Network:
        # the host tag: which host this Docker network is on, for `gc --dead-host`
        tags = naming.id_tags(req.network_id) + [naming.host_user_tag(self._ownership.owner.host, req.network_id)]
        if not made:
            tags.append(naming.network_existing_tag(req.network_id))
        if req.neutron.mtu and req.neutron.mtu < network.mtu:
            tags.append(naming.MTU_TAG + str(req.neutron.mtu))
        if not made:  # other hosts' Docker networks may join or leave it at the same time
            return self._ownership.join_network(network, tags, "CreateNetwork")
        # made by this request for this Docker network alone: one request
        tags = [t for t in network.tags if t != naming.PENDING_TAG] + tags
        self._client.set_tags("networks", network.id, tags)
        return dataclasses.replace(network, tags=tuple(sorted(set(tags))))

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
        self._pool.drain(network.id)  # this host no longer serves it
        claimed = self._ownership.claim_if_last(network, "DeleteNetwork", leaving=docker_id)
        if claimed is None:  # another Docker network (any host) still uses it
            self._ownership.leave_network(network, docker_id)
            self._dir.forget_network(docker_id)
            return {}
        # ours stay on it until it is gone, so that Docker's retry of a failed rm finds it again
        leaving = dataclasses.replace(claimed, tags=tuple(ownership.tags_without_user(claimed.tags, docker_id)))
        try:
            # ports still being released would keep the subnets busy
            self._deferred.settle(self._ledger.on_network(network.id), "DeleteNetwork")
            self._ownership.release_subnets(leaving, "DeleteNetwork")
            deleted = self._ownership.delete_network_if_unused(leaving, "DeleteNetwork")
        except Exception:
            self._ownership.unclaim(claimed)
            raise
        if not deleted:  # an operator's network: only kuryr's tags go
            self._ownership.leave_network(claimed, docker_id)
            for tag in claimed.tags:
                if tag.startswith(naming.MTU_TAG):
                    self._client.remove_tag("networks", network.id, tag)
            self._ownership.unclaim(claimed)
        self._dir.forget_network(docker_id)
        return {}
