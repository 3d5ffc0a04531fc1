# What nested mode's VM tests need (tests/nested/vm.py, shared/reference/nested-vm.md): QEMU
# (software emulation: this machine's KVM guests hang), a Debian kernel with 8021q, ipvlan and
# macvlan (linux-image-amd64; the tests boot /boot/vmlinuz-*-amd64 with this host's own root
# filesystem read-only), and virtme-ng, which does that boot, in a venv of its own.
# The apt packages are in aio.sh's APT_PACKAGES; sourced by stack/aio.sh.
# shellcheck shell=bash

VNG_VENV=$TOP/vng-venv

install_vng_venv() {
    install_pinned_venv "$VNG_VENV" "$STACK/vng-venv-constraints.txt" vng vng \
        "virtme-ng (for the nested-mode VM tests)" virtme-ng
}
