"""The script binder with real executables in a temporary bindir."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from kuryr_cnm.binding import BindingError, Plugger, interface_names
from tests import host
from tests.integration.binding.conftest import assert_nothing_left, link

DETAILS = {"vhostuser_socket": "/run/vhu/sock", "port_filter": False, "nested": {"a": 1}}


def _script(bindir: Path, name: str, body: str) -> Path:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def script_plugger(bindir: Path):
    with Plugger(bindir=str(bindir), script_timeout=2) as plugger:
        yield plugger


def _argv_log(path: Path) -> list[list[str]]:
    # one JSON list per call, written by the recording script
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_script_gets_kuryr_libs_arguments(script_plugger, bindir, make_port):
    log = bindir / "calls.log"
    # python records the argv exactly, whatever quoting the JSON needs
    _script(bindir, "vhostuser", f"""\
        exec python3 -c 'import json, sys; open("{log}", "a").write(json.dumps(sys.argv[1:]) + "\\n")' "$@"
        """)
    port = make_port("vhostuser", vif_details=DETAILS)
    iface = script_plugger.plug(port)
    assert host.link_exists(iface.host_name) and "UP" in link(iface.host_name)["flags"]
    script_plugger.unplug(port)

    details = '"' + str(DETAILS) + '"'  # kuryr-lib's format, which upstream scripts match on
    assert _argv_log(log) == [
        ["bind", port.port_id, iface.host_name, port.endpoint_id, port.mac, port.network_id,
         port.project_id, details],
        ["unbind", port.port_id, iface.host_name, port.endpoint_id, port.mac, details, port.network_id],
    ]
    assert "'port_filter': False" in _argv_log(log)[0][-1]
    assert_nothing_left(port)


def test_failing_script_is_a_binding_error_and_the_veth_is_rolled_back(script_plugger, bindir, make_port):
    _script(bindir, "midonet", """\
        echo "mm-ctl: cannot bind port $2" >&2
        exit 1
        """)
    port = make_port("midonet")
    with pytest.raises(BindingError) as err:
        script_plugger.plug(port)
    message = str(err.value)
    assert "exited 1" in message and f"mm-ctl: cannot bind port {port.port_id}" in message
    assert str(bindir / "midonet") in message
    assert_nothing_left(port)


def test_failing_unbind_still_deletes_the_veth_and_reports(script_plugger, bindir, make_port):
    _script(bindir, "iovisor", """\
        [ "$1" = unbind ] && { echo "ifc_ctl: gone" >&2; exit 3; }
        exit 0
        """)
    port = make_port("iovisor")
    script_plugger.plug(port)
    with pytest.raises(BindingError, match="exited 3: ifc_ctl: gone"):
        script_plugger.unplug(port)
    assert_nothing_left(port)


def test_hanging_script_is_killed_after_the_timeout(script_plugger, bindir, make_port):
    # the background subshell keeps the pipes open: the whole process group must go
    script = _script(bindir, "slow", """\
        (sleep 30; exit 0) &
        sleep 30
        """)
    port = make_port("slow")
    with pytest.raises(BindingError, match="did not finish in 2 s"):
        script_plugger.plug(port)
    assert_nothing_left(port)
    assert host.run(["pgrep", "-f", str(script)], check=False).returncode == 1  # none left


def test_missing_script_creates_nothing(script_plugger, bindir, make_port):
    port = make_port("vhostuser")
    with pytest.raises(BindingError) as err:
        script_plugger.plug(port)
    assert str(bindir / "vhostuser") in str(err.value)
    assert not host.link_exists(interface_names(port.port_id).host_name)
