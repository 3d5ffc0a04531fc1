from kuryr_cnm import naming

DOCKER_ID = "a" * 32 + "b" * 32


def test_id_tags_split_a_docker_id_like_kuryr_libnetwork():
    assert naming.id_tags(DOCKER_ID) == ["kuryr.net.uuid.lh:" + "a" * 32, "kuryr.net.uuid.uh:" + "b" * 32]
    assert naming.id_from_tags(["x", *naming.id_tags(DOCKER_ID)]) == DOCKER_ID
    assert naming.id_from_tags(["kuryr.net.uuid.lh:abc"]) is None


def test_upstream_names():
    assert naming.network_name(DOCKER_ID) == "kuryr-net-aaaaaaaa"
    assert naming.network_existing_tag(DOCKER_ID) == "kuryr.net.existing:aaaaaaaaaaaa"
    assert naming.subnet_name("10.0.0.0/24") == "kuryr-subnet-10.0.0.0/24"
    assert naming.subnetpool_name("10.0.0.0/24") == "kuryrPool-10.0.0.0/24"
    assert naming.exposed_sg_name("p1") == "p1-exposed_ports"
    port_id = "0123456789abcdef"
    assert naming.host_veth_name(port_id) == "tap0123456789a"
    assert naming.container_veth_name(port_id) == "t_c0123456789a"
    assert len(naming.host_veth_name("f" * 36)) <= 15


def test_cnm_owner_tag_fits_neutron_tag_limit():
    assert naming.cnm_owner_tag(naming.owner("vm", "kuryr")) == "kuryr-cnm.owner:kuryr@vm"
    assert len(naming.cnm_owner_tag("h" * 100)) == 60
