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


def test_the_host_tag_fits_and_finds_a_docker_network_of_any_host_name():
    """gc --dead-host finds a host's Docker networks by this tag: with a long FQDN, or a name a
    tag in a URL path cannot hold, it still fits Neutron's 60 characters and is found again."""
    docker_id = "a" * 12 + "b" * 20 + "c" * 12 + "d" * 20
    for host in ("host2", "compute-17.rack3.dc1.example.com", "node/7:x", "x" * 200):
        tag = naming.host_user_tag(host, docker_id)
        assert len(tag) <= 60 and "/" not in tag and "," not in tag
        assert naming.host_users([tag, naming.host_user_tag("other", docker_id)], host) == [("a" * 12, "c" * 12)]
        mine = naming.id_tags(docker_id) + [tag, naming.network_existing_tag(docker_id)]
        theirs = naming.id_tags("e" * 64) + [naming.host_user_tag("other", "e" * 64)]
        assert sorted(naming.user_tags(mine + theirs, "a" * 12, "c" * 12)) == sorted(mine)
    assert naming.host_key("compute-17.rack3.dc1.example.com") != naming.host_key("compute-18.rack3.dc1.example.com")
