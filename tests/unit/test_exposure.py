from kuryr_cnm.exposure import port_ranges


def test_consecutive_ports_merge_per_protocol():
    exposed = [{"Proto": 6, "Port": 80}, {"Proto": 6, "Port": 81}, {"Proto": 6, "Port": 443},
               {"Proto": 17, "Port": 53}, {"Proto": 1, "Port": 0}, {"Proto": 99, "Port": 1}]
    assert port_ranges(exposed) == [("icmp", 0, 0), ("tcp", 80, 81), ("tcp", 443, 443), ("udp", 53, 53)]


def test_nothing_exposed():
    assert port_ranges([]) == []
