"""What this process knows about live endpoints and freshly allocated addresses.

Both are caches in front of Neutron (and of OVS for the host side): a restarted
plugin rebuilds an endpoint from its port's tags, or from the OVS interface whose
external_ids carry the endpoint id while the tags are still being written.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from kuryr_cnm.directory import DockerNetwork
from kuryr_cnm.neutron import Port


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    network: DockerNetwork
    port: Port
    host_ifname: str
    container_ifname: str
    adopted: bool  # a pre-created port: reset, not deleted, on release
    recovered: bool = False  # rebuilt after a restart: what this process did to it is unknown


class EndpointStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[str, Endpoint] = {}

    def get(self, endpoint_id: str) -> Endpoint | None:
        with self._lock:
            return self._endpoints.get(endpoint_id)

    def put(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._endpoints[endpoint.endpoint_id] = endpoint

    def pop(self, endpoint_id: str) -> Endpoint | None:
        with self._lock:
            return self._endpoints.pop(endpoint_id, None)

    def by_port(self, port_id: str) -> Endpoint | None:
        with self._lock:
            return next((e for e in self._endpoints.values() if e.port.id == port_id), None)

    def port_ids(self) -> set[str]:
        with self._lock:
            return {e.port.id for e in self._endpoints.values()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._endpoints)


RELEASED_MEMORY = 4096  # port ids; each costs ~100 bytes


class Allocations:
    """Ports made (or adopted) by RequestAddress, waiting for their CreateEndpoint.

    Keyed by (Neutron network id, IP address): CreateEndpoint knows the address
    Docker got and the network, not the PoolID."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ports: dict[tuple[str, str], Port] = {}
        # ports ReleaseAddress gave up while an endpoint still held them: that endpoint's
        # DeleteEndpoint must not offer them again (ordered, oldest dropped past the cap)
        self._released: dict[str, None] = {}
        # ports whose release (delete or reset) is queued and has not landed: (network id, ip) ->
        # port id. A --ip for one of their addresses, ReleasePool and DeleteNetwork wait for them.
        self._releasing: dict[tuple[str, str], str] = {}

    def put(self, port: Port, *, replace: bool = True) -> None:
        """replace=False keeps an address another port holds now (the port given may be stale),
        and never brings back a port released from under its endpoint."""
        with self._lock:
            if not replace and port.id in self._released:
                del self._released[port.id]
                return
            for fixed in port.fixed_ips:
                key = (port.network_id, fixed.ip_address)
                if replace or key not in self._ports:
                    self._ports[key] = port

    def get(self, network_id: str, ip: str) -> Port | None:
        with self._lock:
            return self._ports.get((network_id, ip))

    def discard(self, port: Port) -> None:
        with self._lock:
            for key in [k for k, p in self._ports.items() if p.id == port.id]:
                del self._ports[key]

    def released_from_endpoint(self, port: Port) -> None:
        """`port`, which was not waiting here, is being released: an endpoint may still hold it
        (Docker releases after DeleteEndpoint; a client out of order, or a retry, may not)."""
        self.discard(port)
        with self._lock:
            self._released[port.id] = None
            while len(self._released) > RELEASED_MEMORY:
                del self._released[next(iter(self._released))]

    def port_ids(self) -> set[str]:
        with self._lock:
            return {p.id for p in self._ports.values()}

    def start_release(self, port: Port) -> None:
        with self._lock:
            for fixed in port.fixed_ips:
                self._releasing[(port.network_id, fixed.ip_address)] = port.id

    def end_release(self, port: Port) -> None:
        with self._lock:
            for fixed in port.fixed_ips:
                if self._releasing.get((port.network_id, fixed.ip_address)) == port.id:
                    del self._releasing[(port.network_id, fixed.ip_address)]

    def releasing(self, network_id: str, ip: str) -> str | None:
        """The port whose release holds this address, if one is queued."""
        with self._lock:
            return self._releasing.get((network_id, ip))

    def releasing_on(self, network_id: str) -> set[str]:
        with self._lock:
            return {pid for (net, _ip), pid in self._releasing.items() if net == network_id}

    def on_network(self, network_id: str) -> set[str]:
        """Ports of `network_id` this process may still write in the background: handed out, or
        being released."""
        with self._lock:
            return ({p.id for p in self._ports.values() if p.network_id == network_id}
                    | {pid for (net, _ip), pid in self._releasing.items() if net == network_id})

    def __len__(self) -> int:
        with self._lock:
            return len({p.id for p in self._ports.values()})
