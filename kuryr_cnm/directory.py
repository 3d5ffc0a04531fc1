"""Where kuryr's objects live in Neutron: lookups by kuryr-libnetwork's names and
tags, cached in memory.

Every cached value can be rebuilt from Neutron (a restart loses nothing), and an
entry is dropped when the object it describes is deleted. Networks, subnets and
subnetpools change rarely and only through Docker calls this process serves or
through an operator; a stale entry shows up as a Neutron 404/409 on the next write,
after which the caller invalidates and looks again.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass

from kuryr_cnm import errors, naming
from kuryr_cnm.neutron import Network, NeutronClient, Subnet, SubnetPool

MTU_TAG = naming.MTU_TAG
PENDING_TAG = naming.PENDING_TAG


@dataclass(frozen=True)
class DockerNetwork:
    """A Docker network as Neutron holds it."""
    docker_id: str
    network: Network
    subnets: tuple[Subnet, ...]  # the subnets Docker's pools map to (v4 first)

    @property
    def adopted(self) -> bool:
        return any(t.startswith(naming.NET_EXISTING_TAG) for t in self.network.tags)

    @property
    def mtu(self) -> int:
        wanted = next((int(t[len(MTU_TAG):]) for t in self.network.tags if t.startswith(MTU_TAG)), 0)
        return min(wanted, self.network.mtu) if wanted else self.network.mtu

    def subnet_for(self, address: str) -> Subnet | None:
        ip = ipaddress.ip_address(address.split("/")[0])
        return next((s for s in self.subnets if ip in ipaddress.ip_network(s.cidr)), None)


class Directory:
    # Join reads a network's subnets again when what it holds is older than this: a change
    # of gateway or host routes in Neutron reaches new containers within 10 s, and a burst
    # of starts costs one read per network, not one per container.
    SUBNETS_MAX_AGE = 10.0

    def __init__(self, client: NeutronClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._fresh: dict[str, tuple[float, tuple[Subnet, ...]]] = {}  # network id -> (read at, subnets)
        self._readers: dict[str, threading.Lock] = {}
        self._networks: dict[str, DockerNetwork] = {}  # docker network id ->
        self._pool_subnets: dict[str, tuple[Subnet, ...]] = {}  # PoolID ->
        self._default_pools: dict[str, SubnetPool] = {}  # pool name ->

    # -- Docker networks --
    def docker_network(self, docker_id: str) -> DockerNetwork | None:
        with self._lock:
            cached = self._networks.get(docker_id)
        if cached:
            return cached
        nets = self._client.list_networks(tags=",".join(naming.id_tags(docker_id)))
        if not nets:
            return None
        if len(nets) > 1:
            raise errors.Conflict(f"Neutron has {len(nets)} networks tagged for Docker network "
                                  f"{docker_id[:12]} ({', '.join(n.id for n in nets)}); remove the extra tags")
        return self.remember_network(docker_id, nets[0], self._docker_subnets(nets[0]))

    def require_docker_network(self, docker_id: str) -> DockerNetwork:
        found = self.docker_network(docker_id)
        if found is None:
            raise errors.NotFound(
                f"Docker network {docker_id[:12]} has no Neutron network (none tagged "
                f"{naming.ID_LH_TAG}{docker_id[:32]}); it was deleted in Neutron: remove it from Docker "
                "with 'docker network rm'")
        return found

    def remember_network(self, docker_id: str, network: Network, subnets: tuple[Subnet, ...]) -> DockerNetwork:
        entry = DockerNetwork(docker_id, network, tuple(sorted(subnets, key=lambda s: s.ip_version)))
        with self._lock:
            self._networks[docker_id] = entry
        return entry

    def network_of_subnet(self, subnet: Subnet) -> DockerNetwork | None:
        """The Docker network a subnet serves (None while the network is being created)."""
        with self._lock:
            cached = next((n for n in self._networks.values() if n.network.id == subnet.network_id), None)
        if cached:
            return cached
        network = self._client.get_network(subnet.network_id)
        docker_id = naming.id_from_tags(list(network.tags))
        if docker_id is None:
            return None
        return self.remember_network(docker_id, network, self._docker_subnets(network))

    def forget_network(self, docker_id: str) -> None:
        with self._lock:
            entry = self._networks.pop(docker_id, None)
            if entry:
                stale = [pid for pid, subs in self._pool_subnets.items()
                         if any(s.network_id == entry.network.id for s in subs)]
                for pid in stale:
                    del self._pool_subnets[pid]

    def _docker_subnets(self, network: Network) -> tuple[Subnet, ...]:
        """The subnets of a network that Docker pools map to: kuryr's own, or tagged with a pool id."""
        subnets = self._client.list_subnets(network_id=network.id)
        mine = [s for s in subnets if s.name.startswith(naming.SUBNET_NAME_PREFIX) or s.tags]
        return tuple(mine or subnets)

    def current_subnets(self, network_id: str) -> tuple[Subnet, ...]:
        """The network's subnets as Neutron has them now; concurrent callers share one read."""
        with self._lock:
            reader = self._readers.setdefault(network_id, threading.Lock())
        with reader:
            with self._lock:
                read_at, subnets = self._fresh.get(network_id, (0.0, ()))
            if time.monotonic() - read_at < self.SUBNETS_MAX_AGE:
                return subnets
            subnets = tuple(self._client.list_subnets(network_id=network_id))
            with self._lock:
                self._fresh[network_id] = (time.monotonic(), subnets)
            return subnets

    # -- pools --
    def cached_pool(self, pool_id: str) -> tuple[Subnet, ...]:
        """The subnets behind a PoolID if held (pools.PoolMap looks them up otherwise)."""
        with self._lock:
            return self._pool_subnets.get(pool_id, ())

    def remember_pool(self, pool_id: str, subnets: tuple[Subnet, ...]) -> None:
        with self._lock:
            self._pool_subnets[pool_id] = subnets

    def forget_pool(self, pool_id: str) -> None:
        with self._lock:
            self._pool_subnets.pop(pool_id, None)

    def default_pool(self, name: str) -> SubnetPool:
        with self._lock:
            cached = self._default_pools.get(name)
        if cached:
            return cached
        pools = self._client.list_subnetpools(name=name)
        if not pools:
            raise errors.NotFound(
                f"the default subnetpool {name!r} does not exist in Neutron: create it (e.g. 'openstack "
                f"subnet pool create --pool-prefix 10.10.0.0/16 --default-prefix-length 24 {name}'), "
                "set [neutron] default_subnetpool_v4/_v6, or give the network a --subnet")
        with self._lock:
            self._default_pools[name] = pools[0]
        return pools[0]
