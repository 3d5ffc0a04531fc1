"""Which binder serves which vif_type, and the errors raised before anything is created."""
from __future__ import annotations

import os
import stat

import pytest

from kuryr_cnm.binding import Binder, BindingError, HostInterface, Plugger, VifPort
from kuryr_cnm.binding.bridge import BridgeBinder
from kuryr_cnm.binding.ovs import OvsBinder
from kuryr_cnm.binding.script import ScriptBinder, _tail
from kuryr_cnm.binding.tap import TapBinder


class Recorder(Binder):
    vif_types = ("ovs", "vhostuser")

    def __init__(self) -> None:
        self.calls: list[str] = []

    def plug(self, port: VifPort, iface: HostInterface) -> None:
        self.calls.append("plug")

    def unplug(self, port: VifPort, iface: HostInterface) -> None:
        self.calls.append("unplug")


def _port(vif_type: str) -> VifPort:
    return VifPort(port_id="5f2c8a3e-0000-4000-8000-000000000001", mac="fa:16:3e:00:00:01",
                   network_id="n" * 36, project_id="p", endpoint_id="e" * 64, vif_type=vif_type,
                   vif_details={}, mtu=1500)


@pytest.fixture
def plugger(tmp_path):
    # nothing connects to OVSDB until a port is plugged into OVS
    p = Plugger(bindir=str(tmp_path), ovsdb_connection="unix:/nonexistent/db.sock")
    yield p
    p.close()


@pytest.mark.parametrize("vif_type,cls", [("ovs", OvsBinder), ("bridge", BridgeBinder), ("tap", TapBinder),
                                          ("vhostuser", ScriptBinder), ("midonet", ScriptBinder)])
def test_native_binders_and_the_script_fallback(plugger, vif_type, cls):
    assert type(plugger.binder_for(vif_type)) is cls


@pytest.mark.parametrize("vif_type,words", [("unbound", "not bound to any host"),
                                             ("binding_failed", "could not be bound by Neutron")])
def test_unbound_vif_types_are_refused_with_advice(plugger, vif_type, words):
    with pytest.raises(BindingError) as err:
        plugger.binder_for(vif_type)
    assert vif_type in str(err.value) and words in str(err.value) and "host" in str(err.value)


@pytest.mark.parametrize("vif_type", ["unbound", "binding_failed"])
def test_plugging_an_unbound_port_fails_before_any_binder_runs(tmp_path, vif_type):
    recorder = Recorder()
    recorder.vif_types = (vif_type,)  # even a binder registered for it is not asked
    with Plugger(bindir=str(tmp_path), binders=[recorder]) as plugger, pytest.raises(BindingError):
        plugger.plug(_port(vif_type))
    assert recorder.calls == []


def test_extra_binders_come_first(tmp_path):
    recorder = Recorder()
    with Plugger(bindir=str(tmp_path), binders=[recorder]) as plugger:
        assert plugger.binder_for("ovs") is recorder
        assert plugger.binder_for("vhostuser") is recorder
        assert type(plugger.binder_for("bridge")) is BridgeBinder


def test_missing_script_is_named_in_the_error(plugger, tmp_path):
    with pytest.raises(BindingError) as err:
        plugger.plug(_port("midonet"))  # fails in the check, before the veth is made
    assert str(tmp_path / "midonet") in str(err.value) and "does not exist" in str(err.value)


def test_script_that_is_not_executable(tmp_path):
    script = tmp_path / "vhostuser"
    script.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(script, stat.S_IRUSR | stat.S_IWUSR)
    with pytest.raises(BindingError) as err:
        ScriptBinder(str(tmp_path)).check(_port("vhostuser"))
    assert "not executable" in str(err.value)


@pytest.mark.parametrize("vif_type", ["../../bin/sh", "a/b", ".hidden", ""])
def test_vif_type_cannot_name_a_file_outside_bindir(tmp_path, vif_type):
    with pytest.raises(BindingError, match="cannot name a binding script"):
        ScriptBinder(str(tmp_path)).check(_port(vif_type))


def test_missing_script_at_unplug_is_fine(tmp_path):
    ScriptBinder(str(tmp_path)).unplug(_port("midonet"), HostInterface("tapx", "t_cx"))


def test_script_output_in_errors_is_trimmed():
    assert _tail("a\n  b\n") == "a b"
    assert _tail("") == "(no output)"
    long = _tail("x" * 2000)
    assert long.startswith("...") and len(long) == 503
