from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from kuryr_cnm import cli


def test_serve_help_describes_the_socket(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "/run/docker/plugins/kuryr.sock" in out and "--config-file" in out


def test_sample_config_lists_upstream_options(capsys):
    assert cli.main(["sample-config"]) == 0
    out = capsys.readouterr().out
    for needle in ("[DEFAULT]", "#kuryr_uri = ", "[neutron]", "#vif_plugging_timeout = 0",
                   "[binding]", "#veth_dst_prefix = eth"):
        assert needle in out


def test_bad_config_exits_2_with_message(tmp_path):
    path = tmp_path / "kuryr.conf"
    path.write_text("this is not ini\n[")
    proc = subprocess.run([sys.executable, "-m", "kuryr_cnm.cli", "serve", "--config-file", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bad configuration" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_answers_and_stops_on_sigterm(tmp_path):
    sock = tmp_path / "k.sock"
    conf = tmp_path / "kuryr.conf"
    # Neutron is not contacted until a call needs it: a dead endpoint is fine here
    conf.write_text(f"[DEFAULT]\nkuryr_uri = unix://{sock}\n[neutron]\nauth_type = none\n"
                    "endpoint = http://127.0.0.1:9\n")
    proc = subprocess.Popen([sys.executable, "-m", "kuryr_cnm.cli", "serve", "--config-file", str(conf)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        from tests.host import wait_for
        from tests.plugin_client import PluginClient
        wait_for(sock.exists, timeout=30, what="socket")
        client = PluginClient(str(sock), timeout=5)
        assert client.call("Plugin.Activate") == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
        client.close()
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=cli.SHUTDOWN_WAIT + 15)
        except subprocess.TimeoutExpired:
            proc.kill()  # a failed test leaves no plugin running (one once served on for an hour)
            proc.communicate()
            raise
    assert proc.returncode == 0, out
    assert not sock.exists(), "the socket is removed on shutdown"
    assert "serving plugin 'kuryr'" in out


def test_a_stop_that_hangs_is_given_up_and_says_where(caplog):
    """A close stuck in a background step (a Neutron write, an OVSDB connect) must not keep the
    process from exiting; it happened once in `make test` with no clue where."""
    release = threading.Event()

    class StuckPlugin:
        def close(self) -> None:
            self._wait_for_ovsdb()

        def _wait_for_ovsdb(self) -> None:
            release.wait(10)

    try:
        with caplog.at_level("WARNING", logger="kuryr_cnm"):
            assert cli.close_within(StuckPlugin().close, 0.2) is False
        assert "still closing after 0 s, in wait (" in caplog.text
        assert "<- _wait_for_ovsdb (test_cli.py:" in caplog.text
        assert 'File "/' not in caplog.text
    finally:
        release.set()


def test_a_stop_that_finishes_in_time_is_waited_for():
    closed = []

    class Plugin:
        def close(self) -> None:
            closed.append(True)

    assert cli.close_within(Plugin().close, 5) is True and closed == [True]
