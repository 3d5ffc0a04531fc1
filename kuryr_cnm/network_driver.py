"""Docker's NetworkDriver: networks, endpoints and sandboxes mapped onto Neutron.

The container's port already exists when CreateEndpoint arrives (RequestAddress made
it, bound to this host); CreateEndpoint plugs it in (veth + binder) and hands the
rest of Neutron's bookkeeping (device_id, endpoint tags) to the background writer.
Join and EndpointOperInfo answer from memory. Teardown mirrors it: DeleteEndpoint
unplugs, ReleaseAddress deletes (or resets) the port.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from oslo_config import cfg

from kuryr_cnm import config, errors, naming, ownership, subnets
from kuryr_cnm.binding import BindingError, HostInterface, Plugger, VifPort, interface_names
from kuryr_cnm.binding.ovs import OvsPort
from kuryr_cnm.deferred import DeferredWrites
from kuryr_cnm.directory import MTU_TAG, PENDING_TAG, Directory, DockerNetwork
from kuryr_cnm.endpoints import Allocations, Endpoint, EndpointStore
from kuryr_cnm.exposure import Exposure
from kuryr_cnm.nested import NestedDriver
from kuryr_cnm.neutron import Network, NeutronClient, Port, Subnet, SubnetPool
from kuryr_cnm.pool import PortPool
from kuryr_cnm.protocol import (AllocateNetworkRequest, CreateEndpointRequest,
                                CreateNetworkRequest, EndpointRequest, GwAllocCheckRequest, IPAMData, JoinResponse,
                                NetworkCapabilities, NetworkRequest, NeutronOptions, StaticRoute)

LOG = logging.getLogger(__name__)


def _ip(cidr: str) -> str:
    return cidr.split("/")[0]


class NetworkDriver:
    def __init__(self, conf: cfg.ConfigOpts, client: NeutronClient, directory: Directory,
                 allocations: Allocations, endpoints: EndpointStore, plugger: Plugger,
                 deferred: DeferredWrites, exposure: Exposure, pool: PortPool, owned: ownership.Ownership,
                 nested: NestedDriver | None = None) -> None:
        self._conf = conf
        self._ownership = owned
        self._nested = nested  # None: bare metal (veth); else the VM's port driver
        self._pool = pool
        self._client = client
        self._dir = directory
        self._allocations = allocations
        self._endpoints = endpoints
        self._plugger = plugger
        self._deferred = deferred
        self._exposure = exposure

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
        pending = self._client.list_networks(tags=PENDING_TAG)
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
        if self._nested is not None:  # nested: the VM's network (adopted, never deleted)
            return self._client.get_network(self._nested.default_network_id())
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
        tags = [t for t in network.tags if t != PENDING_TAG] + naming.id_tags(req.network_id)
        if not made:
            tags.append(naming.network_existing_tag(req.network_id))
        if req.neutron.mtu and req.neutron.mtu < network.mtu:
            tags.append(MTU_TAG + str(req.neutron.mtu))
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
            self._client.set_tags("networks", network.id, [t for t in leaving.tags if not t.startswith(MTU_TAG)])
        self._dir.forget_network(docker_id)
        return {}

    # -- endpoints --
    def create_endpoint(self, body: Any) -> dict[str, Any]:
        req = CreateEndpointRequest.parse(body)
        existing = self._endpoints.get(req.endpoint_id)
        if existing is not None:
            return self._interface_answer(req, existing.port)  # Docker retried
        network = self._dir.require_docker_network(req.network_id)
        port = self._port_for(network, req)
        holder = self._endpoints.by_port(port.id)
        if holder is not None:  # plugging it again would pull the veth out of holder's container
            raise errors.Conflict(f"{req.interface.address or req.interface.address_ipv6} (port {port.id}) is "
                                  f"already the address of endpoint {holder.endpoint_id[:12]}; every endpoint "
                                  "needs its own RequestAddress")
        adopted = naming.PORT_EXISTING_TAG in port.tags
        mac = req.interface.mac_address if req.interface.mac_address != port.mac_address else ""
        # the port as plugged: a --mac-address or a binding changed it
        port, iface = self._plug_nested(port, network, mac) if self._nested else self._plug(port, network, req, mac)
        self._allocations.discard(port)
        endpoint = Endpoint(req.endpoint_id, network, port, iface.host_name, iface.container_name, adopted)
        self._endpoints.put(endpoint)
        self._record_endpoint(port, req.endpoint_id, adopted)
        if self._conf.neutron.vif_plugging_timeout:
            self._wait_active(endpoint)
        return self._interface_answer(req, port)

    def _plug(self, port: Port, network: DockerNetwork, req: CreateEndpointRequest,
              mac: str) -> tuple[Port, HostInterface]:
        if naming.PORT_EXISTING_TAG in port.tags or port.host_id != self._conf.host:
            port = self._bind(port, req.endpoint_id, mac)
        elif mac:
            port = self._change_mac(port, mac)
        try:
            return port, self._plugger.plug(self._vif(port, network, req.endpoint_id))
        except BindingError as exc:
            raise errors.BackendError(f"could not plug port {port.id}: {exc}") from None

    def _plug_nested(self, port: Port, network: DockerNetwork, mac: str) -> tuple[Port, HostInterface]:
        """Nested ports stay unbound (Neutron binds a subport through its trunk), so their MAC can change."""
        assert self._nested is not None
        if mac:
            port = self._client.update_port(port.id, mac_address=mac)
        return port, self._nested.plug(port, network.mtu)

    def _interface_answer(self, req: CreateEndpointRequest, port: Port) -> dict[str, Any]:
        # Docker rejects an answer that changes a value it supplied: send only the MAC, only when it gave none.
        return {"Interface": {} if req.interface.mac_address else {"MacAddress": port.mac_address}}

    def _port_for(self, network: DockerNetwork, req: CreateEndpointRequest) -> Port:
        addresses = [_ip(a) for a in (req.interface.address, req.interface.address_ipv6) if a]
        port = self._allocations.get(network.network.id, addresses[0])
        if port is None:  # RequestAddress was served by another process, or before a restart
            ports = self._client.list_ports(network_id=network.network.id,
                                            fixed_ips=f"ip_address={addresses[0]}")
            port = ports[0] if ports else None
        if port is None:
            raise errors.NotFound(f"no Neutron port holds {addresses[0]} on network {network.network.id}; "
                                  "use kuryr as the IPAM driver (--ipam-driver kuryr)")
        missing = [a for a in addresses if not port.has_ip(a)]
        if missing:
            raise errors.Conflict(f"port {port.id} does not hold {', '.join(missing)}; Docker's addresses for "
                                  "this endpoint belong to different ports: retry the container start")
        return port

    def _bind(self, port: Port, endpoint_id: str, mac: str = "") -> Port:
        """Bind an adopted (pre-created) port to this host: one update, host and owner together
        (DVR needs both), and the MAC Docker asked for while the port is still unbound."""
        attrs: dict[str, Any] = {"binding:host_id": self._conf.host, "device_owner": naming.DEVICE_OWNER,
                                 "device_id": port.device_id or endpoint_id, "admin_state_up": True}
        if mac:
            attrs["mac_address"] = mac
        return self._client.update_port(port.id, **attrs)

    def _change_mac(self, port: Port, mac: str) -> Port:
        """`--mac-address` on a port made already bound: Neutron changes the MAC of unbound
        ports only, so unbind, then set the MAC and bind again in one update."""
        self._client.update_port(port.id, **{"binding:host_id": ""})
        try:
            return self._client.update_port(port.id, **{"mac_address": mac, "binding:host_id": self._conf.host})
        except errors.NeutronError as exc:
            self._client.update_port(port.id, **{"binding:host_id": self._conf.host})
            if isinstance(exc, errors.NeutronConflict):
                raise errors.Conflict(
                    f"MAC {mac} is already used by another port on this network ({exc.message}). To use a "
                    "pre-created port, start the container with its address (--ip, and --mac-address if you "
                    "like): kuryr-cnm chooses the address before Docker tells it the MAC") from None
            raise

    def _vif(self, port: Port, network: DockerNetwork, endpoint_id: str) -> VifPort:
        return VifPort(port_id=port.id, mac=port.mac_address, network_id=port.network_id,
                       project_id=port.project_id, endpoint_id=endpoint_id, vif_type=port.vif_type,
                       vif_details=dict(port.vif_details), mtu=network.mtu)

    def _record_endpoint(self, port: Port, endpoint_id: str, adopted: bool) -> None:
        """device_id and the endpoint tags, off Docker's hot path."""
        # Neutron's POST answer may not list the tags it was given: name them all here.
        owner_tag = naming.cnm_owner_tag(self._ownership.owner.mark)
        base = [naming.PORT_EXISTING_TAG] if adopted else [naming.DEVICE_OWNER, owner_tag]
        tags = list(port.tags) + base + naming.id_tags(endpoint_id)

        def write() -> None:
            attrs = {} if port.device_id else {"device_id": endpoint_id}
            if port.name == naming.POOL_PORT_NAME:
                attrs["name"] = naming.UNBOUND_PORT_NAME  # out of the pool: named as upstream names it
            if attrs:
                self._client.update_port(port.id, **attrs)
            self._client.set_tags("ports", port.id, tags)
        self._deferred.submit(port.id, f"record endpoint {endpoint_id[:12]} on port {port.id}", write)

    def _wait_active(self, endpoint: Endpoint) -> None:
        timeout = self._conf.neutron.vif_plugging_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self._client.get_port(endpoint.port.id)
            if port is not None and port.status == "ACTIVE":
                return
            time.sleep(0.2)
        message = f"port {endpoint.port.id} did not become ACTIVE within {timeout} s"
        if self._conf.neutron.vif_plugging_is_fatal:
            self._teardown(endpoint)
            raise errors.BackendError(message + "; check ovn-controller on this host (vif_plugging_is_fatal)")
        LOG.warning("%s; going on (vif_plugging_is_fatal is off)", message)

    def endpoint_oper_info(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.EndpointOperInfo")
        endpoint = self._endpoints.get(req.endpoint_id) or self._recover(req)
        port = endpoint.port
        return {"Value": {"port_id": port.id, "mac_address": port.mac_address,
                          "host_interface": endpoint.host_ifname}}

    def delete_endpoint(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.DeleteEndpoint")
        endpoint = self._endpoints.get(req.endpoint_id)
        if endpoint is None:
            try:
                endpoint = self._recover(req)
            except errors.NotFound:
                self._unplug_orphan(req.endpoint_id)
                return {}  # already deleted: Docker repeats teardown calls
        self._teardown(endpoint)
        return {}

    def _teardown(self, endpoint: Endpoint) -> None:
        network = endpoint.network
        try:
            if self._nested is not None:
                self._nested.unplug(endpoint.port)
            else:
                self._plugger.unplug(self._vif(endpoint.port, network, endpoint.endpoint_id))
        except BindingError as exc:
            raise errors.BackendError(f"could not unplug port {endpoint.port.id}: {exc}") from None
        self._endpoints.pop(endpoint.endpoint_id)
        # ReleaseAddress comes next: it needs no lookup. Not over a newer allocation of the same
        # address: after an early ReleaseAddress, or a recovered endpoint, this port may be gone.
        self._allocations.put(endpoint.port, replace=False)

    def _recover(self, req: EndpointRequest) -> Endpoint:
        """Rebuild an endpoint this process does not hold (it restarted) from Neutron's tags,
        or, while those are still being written, from the OVS interface that names it."""
        network = self._dir.require_docker_network(req.network_id)
        port = self._port_of_endpoint(network, req.endpoint_id)
        if port is None:
            raise errors.NotFound(f"endpoint {req.endpoint_id[:12]} has no Neutron port; it was removed already")
        names = interface_names(port.id)
        endpoint = Endpoint(req.endpoint_id, network, port, names.host_name, names.container_name,
                            naming.PORT_EXISTING_TAG in port.tags,
                            recovered=True)
        self._endpoints.put(endpoint)
        return endpoint

    def _port_of_endpoint(self, network: DockerNetwork, endpoint_id: str) -> Port | None:
        ports = self._client.list_ports(network_id=network.network.id, tags=",".join(naming.id_tags(endpoint_id)))
        if ports:
            return ports[0]
        plugged = self._ovs_port_of(endpoint_id)
        return self._client.get_port(plugged.iface_id) if plugged else None

    def _ovs_port_of(self, endpoint_id: str) -> OvsPort | None:
        try:
            return next((p for p in self._plugger.list_kuryr_ports() if p.vm_uuid == endpoint_id), None)
        except BindingError as exc:
            LOG.warning("cannot read OVS to find endpoint %s: %s", endpoint_id[:12], exc)
            return None

    def _unplug_orphan(self, endpoint_id: str) -> None:
        """DeleteEndpoint after the Neutron port vanished: OVS still names what to remove."""
        if self._nested is not None:
            return  # nothing of nested mode's is in OVS
        plugged = self._ovs_port_of(endpoint_id)
        if plugged is None:
            return
        vif = VifPort(port_id=plugged.iface_id, mac=plugged.attached_mac, network_id="", project_id="",
                      endpoint_id=endpoint_id, vif_type="ovs", vif_details={}, mtu=0)
        try:
            self._plugger.unplug(vif)
        except BindingError as exc:
            raise errors.BackendError(f"could not unplug {plugged.name}: {exc}") from None

    # -- sandboxes --
    def join(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.Join")
        endpoint = self._endpoints.get(req.endpoint_id) or self._recover(req)
        gateways: dict[int, str] = {}
        routes: list[StaticRoute] = []
        for subnet in self._current_subnets(endpoint):
            if subnet.gateway_ip:
                gateways[subnet.ip_version] = subnet.gateway_ip
            routes += [StaticRoute(dest, hop) for dest, hop in subnet.host_routes]
        return JoinResponse(src_name=endpoint.container_ifname, dst_prefix=self._conf.binding.veth_dst_prefix,
                            gateway=gateways.get(4, ""), gateway_ipv6=gateways.get(6, ""),
                            static_routes=tuple(routes)).to_json()

    def _current_subnets(self, endpoint: Endpoint) -> list[Subnet]:
        """The endpoint's subnets as Neutron has them now (gateway and host routes may have
        changed since the network was created): at most one read per network and second.
        If Neutron cannot answer, what the plugin holds still lets the container start."""
        ids = [f.subnet_id for f in endpoint.port.fixed_ips]
        try:
            return [s for s in self._dir.current_subnets(endpoint.port.network_id) if s.id in ids]
        except (errors.NeutronUnavailable, errors.NeutronServerError) as exc:
            LOG.warning("Join of %s: Neutron did not answer (%s); using the subnets held in memory",
                        endpoint.endpoint_id[:12], exc.message)
            return [s for s in endpoint.network.subnets if s.id in ids]

    def leave(self, body: Any) -> dict[str, Any]:
        EndpointRequest.parse(body, "NetworkDriver.Leave")
        return {}  # the veth goes in DeleteEndpoint, the mirror of CreateEndpoint

    def program_external_connectivity(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.ProgramExternalConnectivity")
        if not self._conf.process_external_connectivity:
            return {}
        endpoint = self._endpoints.get(req.endpoint_id) or self._recover(req)
        self._exposure.expose(endpoint.port, req.options)
        return {}

    def revoke_external_connectivity(self, body: Any) -> dict[str, Any]:
        req = EndpointRequest.parse(body, "NetworkDriver.RevokeExternalConnectivity")
        if not self._conf.process_external_connectivity:
            return {}
        endpoint = self._endpoints.get(req.endpoint_id)
        if endpoint is not None and (endpoint.recovered or self._exposure.exposed(endpoint.port.id)):
            self._exposure.revoke(endpoint.port)
        return {}
