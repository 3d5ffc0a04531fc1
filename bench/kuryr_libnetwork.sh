#!/bin/bash
# The kuryr-libnetwork 18.0.0 contender of the benchmark: upstream's released code from
# PyPI, in its own venv, registered with Docker under its own plugin name (a spec file,
# since kuryr-server only listens on TCP), talking to the stack's Neutron (or to a
# counting proxy in front of it) with a noauth-friendly admin_token.
#
#   kuryr_libnetwork.sh install   create the venv (idempotent; pins in kuryr-libnetwork-constraints.txt)
#   kuryr_libnetwork.sh start     write kuryr.conf + spec file, start kuryr-server, wait for it
#   kuryr_libnetwork.sh stop      stop kuryr-server, remove the spec file
#   kuryr_libnetwork.sh status    exit 0 if it answers Plugin.Activate
#   kuryr_libnetwork.sh pid       print kuryr-server's pid
#
# Environment (defaults in brackets):
#   KL_NEUTRON_URL  Neutron or its counting proxy     [http://127.0.0.1:9696]
#   KL_PORT         kuryr-server's TCP port           [23790]
#   KL_NAME         Docker plugin name                [kuryrlib]
#   KL_TOP          venv, config and pidfile          [/opt/kuryr-cnm/bench]
#   KL_LOG          log file                          [/opt/kuryr-cnm/log/bench/kuryr-libnetwork.log]
#
# Not patched, on purpose (we measure upstream as released): kuryr-lib's `ovs` binding script
# leaves TX checksum offload on the container veth, and on this userspace OVS datapath
# (datapath_type=netdev) TCP between its containers then fails while ping works. The benchmark
# only pings.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KL_NEUTRON_URL=${KL_NEUTRON_URL:-http://127.0.0.1:9696}
KL_PORT=${KL_PORT:-23790}
KL_NAME=${KL_NAME:-kuryrlib}
KL_TOP=${KL_TOP:-/opt/kuryr-cnm/bench}
KL_LOG=${KL_LOG:-/opt/kuryr-cnm/log/bench/kuryr-libnetwork.log}
VENV=$KL_TOP/kuryr-libnetwork-venv
CONF_DIR=$KL_TOP/kuryr-libnetwork
CONF=$CONF_DIR/kuryr.conf
PIDFILE=$CONF_DIR/kuryr-server.pid
SPEC=/etc/docker/plugins/$KL_NAME.spec
CONSTRAINTS=$HERE/kuryr-libnetwork-constraints.txt
PYTHON=${KL_PYTHON:-/usr/bin/python3}

log() { echo "[kuryr-libnetwork $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# PID 1 here does not reap orphans: a dead process lingers as a zombie, so read its state.
alive() { [ -n "${1:-}" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

answers() {
    curl -sf -m 2 -X POST "http://127.0.0.1:$KL_PORT/Plugin.Activate" | grep -q NetworkDriver
}

do_install() {
    local stamp=$VENV/.installed want
    want=$(sha256sum "$CONSTRAINTS" | cut -c1-16)
    if [ -x "$VENV/bin/kuryr-server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    log "installing kuryr-libnetwork 18.0.0 from PyPI into $VENV (about 30 s)"
    mkdir -p "$KL_TOP" "$(dirname "$KL_LOG")"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q -c "$CONSTRAINTS" kuryr-libnetwork==18.0.0 \
        >"$(dirname "$KL_LOG")/kuryr-libnetwork-pip.log" 2>&1 \
        || die "pip install kuryr-libnetwork failed (see $(dirname "$KL_LOG")/kuryr-libnetwork-pip.log)"
    "$VENV/bin/python" -c 'import kuryr_libnetwork.controllers, kuryr.lib.binding.drivers.veth' \
        || die "kuryr-libnetwork does not import in $VENV"
    [ -x "$VENV/libexec/kuryr/ovs" ] || die "kuryr-lib's binding scripts are missing from $VENV/libexec/kuryr"
    echo "$want" > "$stamp"
}

write_config() {
    mkdir -p "$CONF_DIR" "$(dirname "$KL_LOG")" /etc/docker/plugins
    cat > "$CONF" <<EOF
# Written by bench/kuryr_libnetwork.sh for the benchmark's kuryr-libnetwork 18.0.0 contender.
[DEFAULT]
kuryr_uri = http://127.0.0.1:$KL_PORT
# the wheel installs kuryr-lib's binding scripts here, not in the default /usr/libexec/kuryr
bindir = $VENV/libexec/kuryr
capability_scope = local
debug = false
log_file = $KL_LOG

[neutron]
# Neutron runs noauth: any token is accepted and every request is admin.
auth_type = admin_token
endpoint = $KL_NEUTRON_URL
token = x
default_subnetpool_v4 = kuryr
default_subnetpool_v6 = kuryr6
EOF
    # Docker finds a TCP plugin by its spec file (legacy v1 plugin discovery).
    echo "http://127.0.0.1:$KL_PORT" > "$SPEC"
}

do_start() {
    [ -x "$VENV/bin/kuryr-server" ] || do_install || exit 1
    if alive "$(cat "$PIDFILE" 2>/dev/null)"; then
        log "already running (pid $(cat "$PIDFILE")); restarting with the current settings"
        do_stop
    fi
    if answers; then die "something else already answers on 127.0.0.1:$KL_PORT"; fi
    write_config
    log "starting kuryr-server as plugin '$KL_NAME' on 127.0.0.1:$KL_PORT (Neutron $KL_NEUTRON_URL)"
    ( exec setsid "$VENV/bin/kuryr-server" --config-file "$CONF" >>"$KL_LOG.out" 2>&1 </dev/null ) &
    echo $! > "$PIDFILE"
    # kuryr-server checks Neutron's extensions and the default pools before it listens.
    local i
    for i in $(seq 1 600); do
        answers && { log "up (pid $(cat "$PIDFILE"))"; return 0; }
        alive "$(cat "$PIDFILE")" || die "kuryr-server exited (see $KL_LOG and $KL_LOG.out)"
        sleep 0.1
    done
    die "kuryr-server does not answer after 60 s (see $KL_LOG)"
}

do_stop() {
    local pid; pid=$(cat "$PIDFILE" 2>/dev/null)
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$PIDFILE" "$SPEC"
}

case "${1:-}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    status) answers ;;
    pid) cat "$PIDFILE" ;;
    *) echo "usage: $0 {install|start|stop|status|pid}" >&2; exit 2 ;;
esac
