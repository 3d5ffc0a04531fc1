"""Docker's IPAM pools and Neutron, both ways, in one place.

PoolID schemes, all resolvable from Neutron alone (a restart loses nothing):
* `--subnet CIDR`: the subnetpool `kuryrPool-CIDR` (kuryr-libnetwork's scheme), its subnet
  made by CreateNetwork from it and tagged with its id; a pool is reused while its prefix is
  free, so two networks may have the same CIDR.
* no `--subnet`: a subnet carved at once from the default pool (`kuryr`/`kuryr6`) on a network
  marked pending, which CreateNetwork names (or moves to the network it adopts); the PoolID is
  that subnet's id (a moved subnet is tagged with it).
* `neutron.pool[.v6].*`: the pool named, adopted (tagged kuryr.subnetpool.existing) when its
  prefix is the CIDR asked for, else a subnet carved from it.
* `neutron.subnet[.v6].*`: the subnet named, and a kuryrPool-CIDR tagged with its id.
Docker -> Neutron is `request` (RequestPool) and `subnet_for` (CreateNetwork); Neutron -> Docker
is `subnets_of` (RequestAddress, ReleaseAddress), cached by the Directory.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from oslo_config import cfg

from kuryr_cnm import config, errors, naming, subnets
from kuryr_cnm.directory import Directory
from kuryr_cnm.neutron import Network, NeutronClient, Subnet, SubnetPool
from kuryr_cnm.ownership import Ownership
from kuryr_cnm.protocol import POOL_DATA_GATEWAY, IPAMData, NeutronOptions, NeutronRef, RequestPoolRequest


def _ip(cidr: str) -> str:
    return cidr.split("/")[0]


class PoolMap:
    def __init__(self, conf: cfg.ConfigOpts, client: NeutronClient, directory: Directory,
                 owned: Ownership) -> None:
        self._conf = conf
        self._ownership = owned  # the pending networks it made go through the one rule too
        self._client = client
        self._dir = directory
        self._enable_dhcp = config.enable_dhcp(conf)

    # -- Neutron -> Docker --
    def subnets_of(self, pool_id: str) -> tuple[Subnet, ...]:
        """The Neutron subnet(s) behind a Docker PoolID; empty while the network is being created."""
        cached = self._dir.cached_pool(pool_id)
        if cached:
            return cached
        found = self._client.list_subnets(subnetpool_id=pool_id)
        found = [s for s in found if s.name.startswith(naming.SUBNET_NAME_PREFIX) or pool_id in s.tags] \
            or self._client.list_subnets(tags=pool_id)
        if not found:
            carved = self._client.get_subnet(pool_id)
            found = [carved] if carved else []
        if found:
            self._dir.remember_pool(pool_id, tuple(found))
        return tuple(found)

    # -- Docker -> Neutron: RequestPool --
    def request(self, req: RequestPoolRequest) -> dict[str, Any]:
        """RequestPool's answer: the PoolID, the pool's CIDR and the gateway Docker should ask for."""
        opts = req.neutron
        cidr = str(ipaddress.ip_network(req.sub_pool or req.pool, strict=False)) if (req.sub_pool or req.pool) else ""
        shared = opts.net_shared
        if opts.subnet(req.v6):
            pool_id, subnet = self._pool_for_existing_subnet(opts.subnet(req.v6), req.v6, cidr)
            cidr, gateway = subnet.cidr, subnet.gateway_ip
        elif opts.pool(req.v6):
            parent = self.named_pool(opts.pool(req.v6), req.v6)
            if cidr and list(parent.prefixes) == [cidr]:
                self._client.add_tag("subnetpools", parent.id, naming.SUBNETPOOL_EXISTING_TAG)
                pool_id, gateway = parent.id, subnets.default_gateway(cidr)
            else:
                subnet = self._carve(parent, cidr, shared)
                pool_id, cidr, gateway = subnet.id, subnet.cidr, subnet.gateway_ip
        elif cidr:
            pool = self._kuryr_pool(cidr, shared)
            pool_id, gateway = pool.id, subnets.default_gateway(cidr)
        else:
            name = self._conf.neutron.default_subnetpool_v6 if req.v6 else self._conf.neutron.default_subnetpool_v4
            subnet = self._carve(self._dir.default_pool(name), "", shared)
            pool_id, cidr, gateway = subnet.id, subnet.cidr, subnet.gateway_ip
        data = {POOL_DATA_GATEWAY: subnets.with_prefix(gateway, cidr)} if gateway else {}
        return {"PoolID": pool_id, "Pool": cidr, "Data": data}

    def _kuryr_pool(self, cidr: str, shared: bool) -> SubnetPool:
        """kuryrPool-CIDR: reuse one whose prefix is still free (kuryr-libnetwork hosts
        sharing a network each ask for it), else make a new one, so that two Docker
        networks can have the same CIDR."""
        name = naming.subnetpool_name(cidr, self._conf.subnetpool_name_prefix)
        for pool in self._client.list_subnetpools(name=name):
            if not self._client.list_subnets(subnetpool_id=pool.id):
                return pool
        prefixlen = ipaddress.ip_network(cidr).prefixlen
        return self._client.create_subnetpool(name=name, prefixes=[cidr], default_prefixlen=prefixlen,
                                              min_prefixlen=prefixlen, shared=shared)

    def named_pool(self, ref: NeutronRef, v6: bool) -> SubnetPool:
        """The subnetpool a neutron.pool[.v6].* option names; NotFound if none does."""
        pool = self.find_named_pool(ref, v6)
        if pool is None:
            suffix = ".v6" if v6 else ""
            which = (f"{ref.uuid} (neutron.pool{suffix}.uuid)" if ref.uuid
                     else f"named {ref.name} (neutron.pool{suffix}.name)")
            raise errors.NotFound(f"no subnetpool {which} exists")
        return pool

    def find_named_pool(self, ref: NeutronRef, v6: bool) -> SubnetPool | None:
        """The one rule for a neutron.pool[.v6].* option, RequestPool's and CreateNetwork's: by id,
        or the one pool with that name (Conflict if several have it, as names are not unique)."""
        if ref.uuid:
            return self._client.get_subnetpool(ref.uuid)
        pools = self._client.list_subnetpools(name=ref.name)
        if len(pools) > 1:
            suffix = ".v6" if v6 else ""
            raise errors.Conflict(f"neutron.pool{suffix}.name={ref.name} matches {len(pools)} subnetpools "
                                  f"({', '.join(p.id for p in pools[:5])}); use neutron.pool{suffix}.uuid")
        return pools[0] if pools else None

    def _pool_for_existing_subnet(self, ref: NeutronRef, v6: bool, cidr: str) -> tuple[str, Subnet]:
        """kuryr-libnetwork's scheme for `neutron.subnet.*`: a kuryrPool-CIDR tagged with the subnet id."""
        suffix = ".v6" if v6 else ""
        if ref.uuid:
            subnet = self._client.get_subnet(ref.uuid)
            found = [subnet] if subnet else []
        else:
            found = self._client.list_subnets(name=ref.name)
        if len(found) != 1:
            raise errors.NotFound(f"neutron.subnet{suffix} option matches {len(found)} Neutron subnets; "
                                  "name exactly one existing subnet")
        subnet = found[0]
        if cidr and ipaddress.ip_network(cidr) != ipaddress.ip_network(subnet.cidr):
            raise errors.Conflict(f"--subnet {cidr} differs from subnet {subnet.id}'s {subnet.cidr}; "
                                  "pass the existing subnet's CIDR or leave --subnet out")
        name = naming.subnetpool_name(subnet.cidr, self._conf.subnetpool_name_prefix)
        pools = self._client.list_subnetpools(name=name, tags=subnet.id)
        if pools:
            return pools[0].id, subnet
        prefixlen = ipaddress.ip_network(subnet.cidr).prefixlen
        pool = self._client.create_subnetpool(name=name, prefixes=[subnet.cidr], default_prefixlen=prefixlen,
                                              min_prefixlen=prefixlen)
        self._client.set_tags("subnetpools", pool.id, [subnet.id])
        return pool.id, subnet

    def _carve(self, parent: SubnetPool, cidr: str, shared: bool) -> Subnet:
        """A subnet from `parent` on a new network marked pending; CreateNetwork names it."""
        net = self._client.create_network(name=naming.NET_NAME_PREFIX + "pending", shared=shared,
                                          admin_state_up=True)
        try:
            self._client.set_tags("networks", net.id, [naming.PENDING_TAG])
            subnet = subnets.carve_subnet(self._client, parent, net.id, cidr=cidr, enable_dhcp=self._enable_dhcp)
        except Exception:
            self._ownership.delete_network_if_unused(net, "RequestPool rollback")
            raise
        self._dir.remember_pool(subnet.id, (subnet,))
        return subnet


    # -- Docker -> Neutron: CreateNetwork --
    def carved_subnets(self, datas: list[IPAMData]) -> dict[str, Subnet]:
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

    def subnet_for(self, network: Network, data: IPAMData, v6: bool, internal: bool,
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
        named = self.find_named_pool(opts.pool(v6), v6) if opts.pool(v6) else None
        if named is not None:
            return named
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
                                     enable_dhcp=self._enable_dhcp,
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
        pending = self._client.get_network(subnet.network_id)
        self._ownership.release_subnet(subnet, "CreateNetwork")
        self._ownership.delete_network_if_unused(pending, "CreateNetwork")
        pool_id = subnet.subnetpool_id or ""
        pool = self._client.get_subnetpool(pool_id)
        if pool is None:
            raise errors.NotFound(f"the subnetpool {pool_id} of carved subnet {subnet.cidr} is gone")
        moved = subnets.carve_subnet(self._client, pool, network.id, cidr=subnet.cidr,
                                     enable_dhcp=self._enable_dhcp)
        self._client.add_tag("subnets", moved.id, subnet.id)
        self._dir.remember_pool(subnet.id, (moved,))
        return moved

