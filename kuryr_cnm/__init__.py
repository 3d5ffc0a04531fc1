"""kuryr-cnm: a Docker libnetwork remote network and IPAM driver for OpenStack Neutron."""
