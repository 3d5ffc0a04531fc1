"""Both engines discover and activate the plugin through /run/docker/plugins/kuryr.sock."""
from __future__ import annotations

import pytest

from tests import host


@pytest.mark.parametrize("engine", sorted(host.ENGINES))
def test_engine_runs_the_test_image(engine):
    out = host.docker(engine, "run", "--rm", "--network", "none", host.TEST_IMAGE, "busybox", "echo", "ok").stdout
    assert out.strip() == "ok"


@pytest.mark.parametrize("engine", sorted(host.ENGINES))
def test_engine_activates_kuryr(engine, unique):
    name = f"kcnmt-disc-{unique}"
    proc = host.docker(engine, "network", "create", "-d", "kuryr", "--ipam-driver", "kuryr", name, check=False)
    if proc.returncode == 0:
        try:
            out = host.docker(engine, "info", "--format", "{{json .Plugins.Network}}").stdout
            assert "kuryr" in out
        finally:
            host.docker(engine, "network", "rm", name)
    else:
        # Docker found the socket, activated the plugin and got its answer:
        # the error names a plugin method, not "plugin not found".
        assert "not found" not in proc.stderr, proc.stderr
        assert "IpamDriver." in proc.stderr or "NetworkDriver." in proc.stderr, proc.stderr
