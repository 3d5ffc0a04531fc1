from __future__ import annotations

import textwrap

import pytest
from oslo_config import cfg

from kuryr_cnm import config


def test_defaults_match_kuryr_libnetwork():
    conf = config.load()
    assert conf.capability_scope == "local"
    assert conf.local_default_address_space == "no_address_space"
    assert conf.global_default_address_space == "no_address_space"
    assert conf.process_external_connectivity is True
    assert conf.neutron.default_subnetpool_v4 == "kuryr"
    assert conf.neutron.default_subnetpool_v6 == "kuryr6"
    assert conf.neutron.vif_plugging_is_fatal is False
    assert conf.neutron.vif_plugging_timeout == 0
    assert conf.binding.veth_dst_prefix == "eth"
    assert conf.kuryr_uri == "unix:///run/docker/plugins/kuryr.sock"


def test_upstream_kuryr_conf_is_read(tmp_path):
    path = tmp_path / "kuryr.conf"
    path.write_text(textwrap.dedent("""
        [DEFAULT]
        kuryr_uri = http://127.0.0.1:23750
        capability_scope = global
        bindir = /usr/local/libexec/kuryr
        some_option_we_do_not_know = 1

        [neutron]
        default_subnetpool_v4 = mypool
        vif_plugging_is_fatal = True
        vif_plugging_timeout = 20

        [binding]
        driver = kuryr.lib.binding.drivers.vlan
        link_iface = ens3
    """))
    conf = config.load([str(path)])
    assert conf.kuryr_uri == "http://127.0.0.1:23750"
    assert conf.capability_scope == "global"
    assert conf.bindir == "/usr/local/libexec/kuryr"
    assert conf.neutron.default_subnetpool_v4 == "mypool"
    assert conf.neutron.vif_plugging_is_fatal is True
    assert conf.neutron.vif_plugging_timeout == 20
    # deprecated upstream name still honoured
    assert conf.binding.default_driver == "kuryr.lib.binding.drivers.vlan"
    assert conf.binding.link_iface == "ens3"


def test_invalid_value_is_rejected(tmp_path):
    path = tmp_path / "kuryr.conf"
    path.write_text("[DEFAULT]\ncapability_scope = galactic\n")
    conf = config.load([str(path)])
    with pytest.raises(cfg.ConfigFileValueError):
        _ = conf.capability_scope


def test_loads_are_independent():
    a, b = config.load(), config.load()
    a.set_override("capability_scope", "global")
    assert b.capability_scope == "local"


def test_keystone_password_auth_is_loaded_from_neutron_group(tmp_path):
    from keystoneauth1 import loading as ks_loading
    path = tmp_path / "kuryr.conf"
    path.write_text(textwrap.dedent("""
        [neutron]
        auth_type = password
        auth_url = http://127.0.0.1:5000/v3
        username = kuryr
        password = s3cret
        project_name = service
        user_domain_name = Default
        project_domain_name = Default
        cafile = /etc/ssl/ca.pem
        timeout = 12
    """))
    conf = config.load([str(path)])
    auth = ks_loading.load_auth_from_conf_options(conf, "neutron")
    assert type(auth).__name__ == "Password" and auth.auth_url == "http://127.0.0.1:5000/v3"
    session = ks_loading.load_session_from_conf_options(conf, "neutron", auth=auth)
    assert session.verify == "/etc/ssl/ca.pem" and session.timeout == 12


def test_upstream_admin_token_auth(tmp_path):
    from keystoneauth1 import loading as ks_loading
    path = tmp_path / "kuryr.conf"
    path.write_text("[neutron]\nauth_type = admin_token\nendpoint = http://127.0.0.1:9696\ntoken = x\n")
    auth = ks_loading.load_auth_from_conf_options(config.load([str(path)]), "neutron")
    assert auth.get_endpoint(None) == "http://127.0.0.1:9696"
