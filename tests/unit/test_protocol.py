from kuryr_cnm import protocol


def test_handshake_shapes():
    assert protocol.ActivateResponse().to_json() == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert protocol.NetworkCapabilities("local", "global").to_json() == {
        "Scope": "local", "ConnectivityScope": "global"}
    assert protocol.AddressSpaces("a", "b").to_json() == {
        "LocalDefaultAddressSpace": "a", "GlobalDefaultAddressSpace": "b"}
