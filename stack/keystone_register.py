"""Register kuryr-cnm's users and Neutron's endpoints in the stack's Keystone (idempotent).

Project `service`; user `kuryr` with role admin in it (binding:host_id is admin-only);
user `neutron` with admin and service (keystonemiddleware validates tokens as it);
service `neutron` (type network) with public/internal/admin endpoints in RegionOne (the
internal one may differ: the simulated hosts reach Neutron over the stack's underlay).
Passwords come from a root-only file of `user=password` lines, never from argv, and
are set again on every run, so the file stays the truth.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import openstack

USERS = (("kuryr", ("admin",)), ("neutron", ("admin", "service")))
REGION = "RegionOne"


def read_passwords(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


def admin_connection(auth_url: str, password: str) -> Any:
    # no clouds.yaml, no OS_* variables: only what `keystone-manage bootstrap` made
    return openstack.connect(
        load_yaml_config=False, load_envvars=False, region_name=REGION, identity_api_version="3",
        auth={"auth_url": auth_url, "username": "admin", "password": password, "project_name": "admin",
              "user_domain_name": "Default", "project_domain_name": "Default"})


def ensure_user(idn: Any, project: Any, domain_id: str, name: str, password: str, roles: dict[str, Any],
                role_names: tuple[str, ...]) -> None:
    user = idn.find_user(name, domain_id=domain_id)
    if user is None:
        user = idn.create_user(name=name, password=password, domain_id=domain_id, default_project_id=project.id)
    else:
        idn.update_user(user, password=password)
    for role in role_names:
        idn.assign_project_role_to_user(project, user, roles[role])


def ensure_endpoints(idn: Any, urls: dict[str, str]) -> None:
    svc = idn.find_service("neutron") or idn.create_service(name="neutron", type="network",
                                                           description="OpenStack Networking")
    have = {e.interface: e for e in idn.endpoints(service_id=svc.id)}
    for interface, url in urls.items():
        endpoint = have.get(interface)
        if endpoint is None:
            idn.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id=REGION)
        elif endpoint.url != url:
            idn.update_endpoint(endpoint, url=url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--auth-url", required=True)
    parser.add_argument("--passwords", required=True, help="file of user=password lines (admin, kuryr, neutron)")
    parser.add_argument("--network-url", required=True, help="Neutron endpoint for the catalog")
    parser.add_argument("--internal-network-url", help="the internal Neutron endpoint (default: --network-url)")
    args = parser.parse_args()
    started = time.monotonic()
    passwords = read_passwords(args.passwords)
    idn = admin_connection(args.auth_url, passwords["admin"]).identity
    domain = idn.find_domain("default")
    project = idn.find_project("service", domain_id=domain.id) or idn.create_project(
        name="service", domain_id=domain.id, description="service project")
    roles = {r.name: r for r in idn.roles()}
    for name, role_names in USERS:
        ensure_user(idn, project, domain.id, name, passwords[name], roles, role_names)
    internal = args.internal_network_url or args.network_url
    ensure_endpoints(idn, {"public": args.network_url, "internal": internal, "admin": args.network_url})
    print(f"Keystone: users kuryr, neutron in project service; network endpoints {args.network_url} "
          f"(internal {internal}) "
          f"({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
