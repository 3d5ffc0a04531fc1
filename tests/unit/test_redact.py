"""Credentials are masked in the log and in Docker's errors; a '$' in a password is refused
without quoting it; a Keystone that is down does not keep the plugin from starting."""
from __future__ import annotations

import logging
import sys
import uuid

import pytest

from kuryr_cnm import config, errors, neutron, redact
from kuryr_cnm.server import Router


def _conf(tmp_path, password: str, auth_url: str = "http://127.0.0.1:9/v3/"):
    path = tmp_path / "kuryr.conf"
    path.write_text(f"[neutron]\nauth_type = password\nauth_url = {auth_url}\nusername = kuryr\n"
                    f"password = {password}\nproject_name = service\nuser_domain_name = Default\n"
                    "project_domain_name = Default\n")
    return config.load([str(path)])


def test_connect_registers_the_password_and_scrub_masks_it(tmp_path):
    secret = f"pw-{uuid.uuid4().hex}"
    neutron.connect(_conf(tmp_path, secret))
    assert redact.scrub(f"auth with {secret} failed") == "auth with *** failed"


def test_a_password_in_a_url_is_masked():
    assert redact.scrub("GET https://kuryr:hunter2@keystone:5000/v3 failed") == \
        "GET https://kuryr:***@keystone:5000/v3 failed"
    assert redact.scrub("http://keystone:5000/v3") == "http://keystone:5000/v3"


def test_the_log_formatter_masks_messages_and_tracebacks():
    secret = f"pw-{uuid.uuid4().hex}"
    redact.register([secret, "", None])
    try:
        raise RuntimeError(f"library said {secret}")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "call with %s", (secret,),
                                   exc_info=sys.exc_info())
    text = redact.Formatter("%(message)s").format(record)
    assert secret not in text and text.count(redact.MASK) == 2


def test_an_error_sent_to_docker_is_masked():
    secret = f"pw-{uuid.uuid4().hex}"
    redact.register([secret])

    def fail(_body: object) -> dict:
        raise errors.BackendError(f"Keystone refused {secret}")
    router = Router()
    router.add("IpamDriver.RequestPool", fail)
    status, body = router.dispatch("IpamDriver.RequestPool", b"{}")
    assert status == 500 and body == {"Err": "Keystone refused ***"}


def test_a_dollar_in_a_password_is_refused_without_quoting_it(tmp_path):
    with pytest.raises(ValueError, match=r"write '\$\$'") as exc:
        neutron.connect(_conf(tmp_path, "start$tailpart"))
    assert "tailpart" not in str(exc.value) and exc.value.__suppress_context__


def test_keystone_down_fails_the_call_not_the_construction(tmp_path):
    client = neutron.NeutronClient(neutron.connect(_conf(tmp_path, "pw")), timeout=2)
    with pytest.raises(errors.NeutronUnavailable, match="unreachable"):
        client.list_networks()
