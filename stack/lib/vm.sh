# What nested mode's VM tests need (tests/nested/vm.py, shared/reference/nested-vm.md): QEMU
# (software emulation: this machine's KVM guests hang), a Debian kernel with 8021q, ipvlan and
# macvlan (linux-image-amd64; the tests boot /boot/vmlinuz-*-amd64 with this host's own root
# filesystem read-only), and virtme-ng, which does that boot, in a venv of its own.
# The apt packages are in aio.sh's APT_PACKAGES; sourced by stack/aio.sh.
# shellcheck shell=bash

VNG_VENV=$TOP/vng-venv

install_vng_venv() {
    local stamp=$VNG_VENV/.installed want
    want=$(sha256sum "$STACK/vng-venv-constraints.txt" | cut -c1-16)
    if [ -x "$VNG_VENV/bin/vng" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    log "installing virtme-ng into $VNG_VENV (for the nested-mode VM tests)"
    [ -x "$VNG_VENV/bin/python" ] || /usr/bin/python3 -m venv "$VNG_VENV" || die "python3 -m venv failed"
    "$VNG_VENV/bin/pip" install -q -c "$STACK/vng-venv-constraints.txt" virtme-ng >"$LOG/vng-pip.log" 2>&1 \
        || die "pip install virtme-ng failed (see $LOG/vng-pip.log)"
    echo "$want" > "$stamp"
}
