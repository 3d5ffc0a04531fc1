"""The port pool's lifecycle against a fake Neutron client."""
from __future__ import annotations

import threading
from unittest.mock import MagicMock

from kuryr_cnm import config
from kuryr_cnm.neutron import FixedIP, Port
from kuryr_cnm.pool import PortPool


def _pool_port(i: int) -> Port:
    return Port(f"pool{i}", "kuryr-pool-port", "net", f"fa:16:3e:00:00:0{i}", (FixedIP("sub", f"10.0.0.{i}"),), (),
                "compute:kuryr", "", "host", "ovs", {}, "DOWN", "proj")


def test_drain_waits_for_a_refill_in_flight_and_leaves_none_of_its_ports():
    """ReleasePool drained the pool while a bulk create was still in flight: its ports landed
    on the subnet ReleasePool was deleting, which failed with a 409 (seen in make test)."""
    conf = config.load()
    conf.set_override("enabled", True, group="vif_pool")
    client = MagicMock()
    in_create, finish_create = threading.Event(), threading.Event()
    made = [_pool_port(i) for i in range(1, 5)]

    def slow_bulk_create(bodies):
        in_create.set()
        assert finish_create.wait(10)
        return made[:len(bodies)]
    client.create_ports.side_effect = slow_bulk_create
    client.list_ports.return_value = []
    pool = PortPool(conf, client)
    try:
        pool.prepare("net", ["sub"])
        assert in_create.wait(10)
        drained = threading.Thread(target=pool.drain, args=("net",))
        drained.start()
        drained.join(0.3)
        assert drained.is_alive(), "drain returned while the bulk create was in flight"
        finish_create.set()
        drained.join(10)
        assert not drained.is_alive()
        created = made[:len(client.create_ports.call_args.args[0])]
        assert {c.args[0] for c in client.delete_port.call_args_list} == {p.id for p in created}
        assert pool.size("net") == 0
    finally:
        finish_create.set()
        pool.close()
