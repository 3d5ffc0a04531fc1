"""A pool of pre-created ports per Neutron network, already bound to this host.

A port create (with its binding) is the one Neutron write of a container start.
With the pool, RequestAddress hands out a ready port instead, and the pool is
refilled in the background with bulk creates (one request per batch).

Pool ports are found again after a restart by what they were created with
(Neutron 29 stores no tags given at creation, and a tag write per pooled port
would cost as much as the create it saves): name `kuryr-pool-port`, this host's
binding, device_owner `compute:kuryr`, no device_id, and kuryr-cnm's description.
Found ports wait `recovery_grace` seconds before they are handed out, because a
start the restart cut short still holds one until Docker releases its address.
A port is taken from the pool under a lock, so no address is handed out twice.
An address asked for by name (`--ip`) bypasses the pool; if an idle pool port
holds it, the pool deletes that port to give the address up.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from oslo_config import cfg

from kuryr_cnm import deadline, errors, naming, neutron
from kuryr_cnm.neutron import NeutronClient, Port
from kuryr_cnm.ownership import Ownership, Why

LOG = logging.getLogger(__name__)

UNBOUND = ("unbound", "binding_failed")


@dataclass
class _NetworkPool:
    subnet_ids: frozenset[str]  # every pool port holds one address in each
    ready: list[Port] = field(default_factory=list)
    not_before: float = 0.0  # recovered ports wait until then
    refill: Future[None] | None = None  # the refill in flight, if any

    def filling(self) -> bool:
        return self.refill is not None and not self.refill.done()


class PortPool:
    def __init__(self, conf: cfg.ConfigOpts, client: NeutronClient, owned: Ownership) -> None:
        self.enabled: bool = conf.vif_pool.enabled and conf.vif_pool.ports_pool_max > 0
        self._min = conf.vif_pool.ports_pool_min
        self._max = conf.vif_pool.ports_pool_max
        self._batch = conf.vif_pool.ports_pool_batch
        self._grace = conf.vif_pool.recovery_grace
        self._host = conf.host
        self._ownership = owned
        self._client = client
        self._lock = threading.Lock()
        self._pools: dict[str, _NetworkPool] = {}
        self._refills = ThreadPoolExecutor(max_workers=2, thread_name_prefix="port-pool")

    # -- hot path --
    def take(self, network_id: str, subnet_ids: Iterable[str]) -> Port | None:
        """A ready port of the network holding an address in exactly these subnets, or None."""
        if not self.enabled:
            return None
        wanted = frozenset(subnet_ids)
        with self._lock:
            pool = self._pools.get(network_id)
            if pool is None or pool.subnet_ids != wanted:
                self._pools[network_id] = pool = _NetworkPool(wanted, self._reusable(pool, wanted))
            port = pool.ready.pop() if pool.ready and time.monotonic() >= pool.not_before else None
        self._refill_soon(network_id)
        if port is not None and port.vif_type in UNBOUND:
            port = self._bound_or_drop(port)  # recovered while ML2 was still binding it
        return port

    def _bound_or_drop(self, port: Port) -> Port | None:
        fresh = self._client.get_port(port.id)
        if fresh is not None and fresh.vif_type not in UNBOUND:
            return fresh
        self._delete([port])
        return None

    def give_up(self, port: Port) -> bool:
        """Delete an idle pool port because its address was asked for by name (`--ip`). A
        port that a refill in flight is still making is waited for; a recovered one is kept
        within the grace period (a start that the restart cut short may hold it). False: not
        an idle pool port of this plugin, and nothing was done."""
        if not self.enabled or not self._ownership.owner.made_pool_port(port):
            return False
        with self._lock:
            pool = self._pools.get(port.network_id)
            refill = None
            if pool is not None and all(p.id != port.id for p in pool.ready):
                refill = pool.refill  # the port may be in the batch being made
        if refill is not None:
            wait([refill], timeout=deadline.remaining())
        with self._lock:
            pool = self._pools.get(port.network_id)
            if pool is None or time.monotonic() < pool.not_before:
                return False
            kept = [p for p in pool.ready if p.id != port.id]
            idle, pool.ready = len(kept) < len(pool.ready), kept
        if idle:  # a failure reaches the caller: its request fails
            self._ownership.delete_port(port, Why.POOL)
            self._refill_soon(port.network_id)
        return idle

    def forget(self, port_id: str) -> None:
        """The port was released or deleted elsewhere: never hand it out."""
        with self._lock:
            for pool in self._pools.values():
                pool.ready = [p for p in pool.ready if p.id != port_id]

    def port_ids(self) -> set[str]:
        with self._lock:
            return {p.id for pool in self._pools.values() for p in pool.ready}

    def size(self, network_id: str) -> int:
        with self._lock:
            pool = self._pools.get(network_id)
            return len(pool.ready) if pool else 0

    @staticmethod
    def _reusable(old: _NetworkPool | None, wanted: frozenset[str]) -> list[Port]:
        if old is None:
            return []
        return [p for p in old.ready if frozenset(f.subnet_id for f in p.fixed_ips) == wanted]

    # -- background --
    def _refill_soon(self, network_id: str) -> None:
        with self._lock:
            pool = self._pools.get(network_id)
            if pool is None or pool.filling() or len(pool.ready) >= self._min:
                return
            pool.refill = self._refills.submit(self._refill, network_id)

    def _refill(self, network_id: str) -> None:
        calls = neutron.start_call_log()
        made = 0
        try:
            while True:
                with self._lock:
                    pool = self._pools.get(network_id)
                    if pool is None or len(pool.ready) >= self._min:
                        break
                    count = min(self._batch, self._max - len(pool.ready))
                    subnet_ids = pool.subnet_ids
                if count <= 0:
                    break
                ports = self._create(network_id, subnet_ids, count)
                if not ports:
                    # none came out bound (ML2 fails to bind here?): stop rather than create
                    # and delete in a loop; the next start that finds the pool short retries
                    LOG.warning("port pool of network %s: no port of a batch of %d was bound to this "
                                "host; refill stopped until the next start", network_id, count)
                    break
                made += len(ports)
                with self._lock:
                    current = self._pools.get(network_id)
                    if current is None or current.subnet_ids != subnet_ids:
                        orphans = ports  # drained or changed meanwhile
                    else:
                        current.ready.extend(ports)
                        orphans = []
                self._delete(orphans)
        except errors.FAILURES as exc:
            LOG.warning("port pool of network %s: refill failed: %s", network_id, exc.message)
        finally:
            if made:
                LOG.info("port pool of network %s: %d ports created, %d ready [neutron: %s]",
                         network_id, made, self.size(network_id), "; ".join(calls))

    def _create(self, network_id: str, subnet_ids: frozenset[str], count: int) -> list[Port]:
        """One bulk request; ports ML2 had not bound yet when it answered are read again,
        and dropped if still unbound (a pool port must be ready to plug)."""
        ports = self._bulk_create(network_id, subnet_ids, count)
        ready = [p for p in ports if p.vif_type not in UNBOUND]
        late = [p for p in ports if p.vif_type in UNBOUND]
        if late:
            time.sleep(0.5)
            for port in late:
                fresh = self._client.get_port(port.id)
                if fresh is not None and fresh.vif_type not in UNBOUND:
                    ready.append(fresh)
                else:
                    LOG.warning("pool port %s is still %s: deleted", port.id, fresh.vif_type if fresh else "gone")
                    self._delete([port])
        return ready

    def _bulk_create(self, network_id: str, subnet_ids: frozenset[str], count: int) -> list[Port]:
        body = {"network_id": network_id, "name": naming.POOL_PORT_NAME, "admin_state_up": True,
                "device_owner": naming.DEVICE_OWNER, "binding:host_id": self._host,
                "description": naming.pool_description(self._ownership.owner.mark),
                "fixed_ips": [{"subnet_id": s} for s in sorted(subnet_ids)]}
        return self._client.create_ports([dict(body) for _ in range(count)])

    def _delete(self, ports: Iterable[Port]) -> None:
        for port in ports:
            try:
                self._ownership.delete_port(port, Why.POOL)
            except errors.FAILURES as exc:
                LOG.warning("could not delete pool port %s: %s", port.id, exc.message)

    # -- network lifecycle --
    def prepare(self, network_id: str, subnet_ids: Iterable[str]) -> None:
        """Start filling the pool of a network kuryr-cnm now serves."""
        if not self.enabled:
            return
        wanted = frozenset(subnet_ids)
        with self._lock:
            if network_id not in self._pools:
                self._pools[network_id] = _NetworkPool(wanted)
        self._refill_soon(network_id)

    def drain(self, network_id: str) -> None:
        """Delete the network's ready ports (before its subnets or itself are deleted)."""
        with self._lock:
            pool = self._pools.pop(network_id, None)
        if pool is not None and pool.refill is not None:
            # A bulk create in flight would land ports on the subnets about to be deleted (a
            # 409 for ReleasePool). With the pool gone, the refill deletes what it made itself.
            wait([pool.refill], timeout=deadline.remaining())
        if pool is not None and pool.ready:
            self._delete(pool.ready)
        # ports this process does not know (made before a restart, not yet recovered); on a
        # network several hosts use, the others' pool ports are theirs (the rule in _delete)
        if self.enabled:
            self._delete(self._client.list_ports(network_id=network_id, name=naming.POOL_PORT_NAME,
                                                 device_owner=naming.DEVICE_OWNER,
                                                 **{"binding:host_id": self._host}))

    def recover(self) -> int:
        """Find the pool ports a previous process left (at start; Neutron may be down)."""
        if not self.enabled:
            return 0
        ports = self._client.list_ports(name=naming.POOL_PORT_NAME, device_owner=naming.DEVICE_OWNER,
                                        **{"binding:host_id": self._host})
        mine = [p for p in ports if self._ownership.owner.made_pool_port(p)]
        not_before = time.monotonic() + self._grace
        with self._lock:
            for port in mine:
                key = frozenset(f.subnet_id for f in port.fixed_ips)
                pool = self._pools.setdefault(port.network_id, _NetworkPool(key, not_before=not_before))
                if pool.subnet_ids == key and all(p.id != port.id for p in pool.ready):
                    pool.ready.append(port)
        if mine:
            LOG.info("port pool: found %d pool ports in Neutron; handed out after %d s", len(mine), self._grace)
        return len(mine)

    def close(self) -> None:
        self._refills.shutdown(wait=True, cancel_futures=True)
