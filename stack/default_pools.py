"""Create the default subnetpools that kuryr-libnetwork's devstack plugin makes.

`kuryr` (10.10.0.0/16, default prefix /24) and `kuryr6` (a ULA /48, default
prefix /64), shared so every project's Docker networks can carve from them.
Idempotent: an existing pool of that name is left as it is.
"""
import argparse
import sys

import openstack

POOLS = (
    ("kuryr", "10.10.0.0/16", 24),
    ("kuryr6", "fd00:10:10::/48", 64),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cloud", default="aio", help="cloud name in clouds.yaml")
    args = parser.parse_args()
    network = openstack.connect(cloud=args.cloud).network
    for name, prefix, prefix_len in POOLS:
        existing = list(network.subnet_pools(name=name))
        if existing:
            continue
        network.create_subnet_pool(
            name=name, prefixes=[prefix], default_prefix_length=prefix_len, shared=True
        )
        print(f"created subnetpool {name} ({prefix}, default /{prefix_len})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
