"""Wiring: configuration -> Neutron client, host binding, drivers -> the router.

Every Docker call is logged at INFO on one line: the method, the ids it names, the
outcome, its duration and the Neutron requests it made.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oslo_config import cfg

from kuryr_cnm import deadline, errors, nested, neutron, protocol
from kuryr_cnm.binding import Plugger
from kuryr_cnm.deferred import DeferredWrites
from kuryr_cnm.directory import Directory
from kuryr_cnm.exposure import Exposure
from kuryr_cnm.ipam_driver import IpamDriver
from kuryr_cnm.endpoint_driver import EndpointDriver
from kuryr_cnm.network_driver import NetworkDriver
from kuryr_cnm.ownership import Owner, Ownership
from kuryr_cnm.plugging import HostPlugging, NestedPlugging, Plugging
from kuryr_cnm.pool import PortPool
from kuryr_cnm.pools import PoolMap
from kuryr_cnm.ports import PortLedger
from kuryr_cnm.reconcile import Reconciler
from kuryr_cnm.server import Router

LOG = logging.getLogger("kuryr_cnm.calls")

_ID_FIELDS = (("NetworkID", 12), ("EndpointID", 12), ("PoolID", 36), ("Pool", 43), ("SubPool", 43),
              ("Address", 45), ("V6", 5))


def activate(_body: Any) -> dict[str, Any]:
    # Always answered, even while Neutron is down: a plugin that does not activate
    # costs dockerd about 15 s per network at its start.
    return protocol.ActivateResponse().to_json()


def describe(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = []
    for key, width in _ID_FIELDS:
        value = body.get(key)
        if value not in (None, ""):
            parts.append(f"{key}={str(value)[:width]}")
    iface = body.get("Interface")
    if isinstance(iface, dict):
        parts += [f"{k}={v}" for k, v in iface.items() if v]
    return " ".join(parts)


def logged(method: str, handler: Callable[[Any], Mapping[str, Any]]) -> Callable[[Any], Mapping[str, Any]]:
    def run(body: Any) -> Mapping[str, Any]:
        calls = neutron.start_call_log()
        started = time.monotonic()
        deadline.start()
        outcome = "ok"
        try:
            return handler(body)
        except errors.PluginError as exc:
            outcome = f"error {exc.status}: {exc.message}"
            raise
        except errors.NeutronError as exc:  # what no handler made its own answer: translated once, here
            answer = errors.for_docker(exc)
            outcome = f"error {answer.status}: {answer.message}"
            raise answer from None
        except Exception as exc:
            outcome = f"internal error {exc.__class__.__name__}"
            raise
        finally:
            ms = (time.monotonic() - started) * 1000
            LOG.info("%s %s -> %s (%.0f ms) [neutron: %s]", method, describe(body), outcome, ms,
                     "; ".join(calls) or "none")
    return run


@dataclass
class Plugin:
    """Everything one kuryr-cnm process holds; built once from the loaded configuration."""
    router: Router
    network: NetworkDriver
    endpoints: EndpointDriver
    ipam: IpamDriver
    deferred: DeferredWrites
    plugging: Plugging
    pool: PortPool
    reconciler: Reconciler
    reconcile_interval: int
    ownership: Ownership
    port_driver: nested.NestedDriver | None = None  # None: veth (bare metal)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start_background(self) -> None:
        """Work that needs Neutron but must not delay serving Docker (Neutron may be down):
        find the pool again, then reconcile now and every reconcile_interval seconds."""
        threading.Thread(target=self._background, name="reconciler", daemon=True).start()

    def _background(self) -> None:
        try:
            self.pool.recover()
        except errors.FAILURES as exc:
            LOG.warning("port pool: could not look for pool ports left in Neutron: %s", exc.message)
        except Exception:  # noqa: BLE001 - a bug must not stop the reconciler below
            LOG.exception("port pool: recovery failed")
        if not self.reconcile_interval:
            return
        while not self._stop.is_set():
            self.reconciler.run()  # never raises
            self._stop.wait(self.reconcile_interval)

    def close(self) -> None:
        self._stop.set()
        self.pool.close()
        self.deferred.drain()
        self.deferred.shutdown()
        self.plugging.close()


def build(conf: cfg.ConfigOpts, client: neutron.NeutronClient | None = None) -> Plugin:
    if client is None:
        client = neutron.NeutronClient(neutron.connect(conf), timeout=conf.neutron.timeout or 30)
    directory = Directory(client)
    ledger = PortLedger()
    deferred = DeferredWrites()
    port_driver = nested.build(conf, client)  # from the loaded configuration (upstream's import-time bug §4.10a)
    owner = Owner(conf.host, conf.plugin_name)
    plugging: Plugging = NestedPlugging(client, port_driver, owner.mark) if port_driver is not None else \
        HostPlugging(client, Plugger(bindir=conf.bindir, ovsdb_connection=conf.binding.ovsdb_connection), conf.host)
    pool: PortPool

    def held() -> set[str]:
        """The ports this process holds for Docker: handed out, plugged, or pooled."""
        return ledger.held() | pool.port_ids()
    owned = Ownership(client, owner, conf.subnetpool_name_prefix, held)
    pool = PortPool(conf, client, owned)
    pools = PoolMap(conf, client, directory, owned)
    network = NetworkDriver(conf, client, directory, ledger, deferred, pool, owned, plugging, pools)
    endpoint = EndpointDriver(conf, client, directory, ledger, plugging, deferred,
                              Exposure(client, owned), owned.owner)
    reconciler = Reconciler(client, plugging, owned, grace=conf.reconcile_grace, in_use=held,
                            busy=deferred.pending_keys)
    ipam = IpamDriver(conf, client, directory, ledger, deferred, pool, owned, plugging.port_binding, pools)
    router = Router()
    routes: dict[str, Callable[[Any], Mapping[str, Any]]] = {
        "Plugin.Activate": activate,
        "NetworkDriver.GetCapabilities": network.get_capabilities,
        "NetworkDriver.GwAllocCheck": network.gw_alloc_check,
        "NetworkDriver.AllocateNetwork": network.allocate_network,
        "NetworkDriver.FreeNetwork": network.free_network,
        "NetworkDriver.DiscoverNew": network.discover,
        "NetworkDriver.DiscoverDelete": network.discover,
        "NetworkDriver.CreateNetwork": network.create_network,
        "NetworkDriver.DeleteNetwork": network.delete_network,
        "NetworkDriver.CreateEndpoint": endpoint.create_endpoint,
        "NetworkDriver.EndpointOperInfo": endpoint.endpoint_oper_info,
        "NetworkDriver.DeleteEndpoint": endpoint.delete_endpoint,
        "NetworkDriver.Join": endpoint.join,
        "NetworkDriver.Leave": endpoint.leave,
        "NetworkDriver.ProgramExternalConnectivity": endpoint.program_external_connectivity,
        "NetworkDriver.RevokeExternalConnectivity": endpoint.revoke_external_connectivity,
        "IpamDriver.GetCapabilities": ipam.get_capabilities,
        "IpamDriver.GetDefaultAddressSpaces": ipam.get_default_address_spaces,
        "IpamDriver.RequestPool": ipam.request_pool,
        "IpamDriver.ReleasePool": ipam.release_pool,
        "IpamDriver.RequestAddress": ipam.request_address,
        "IpamDriver.ReleaseAddress": ipam.release_address,
    }
    for method, handler in routes.items():
        router.add(method, logged(method, handler))
    return Plugin(router, network, endpoint, ipam, deferred, plugging, pool, reconciler, conf.reconcile_interval,
                  owned, port_driver)
