# Shared settings and helpers for the all-in-one stack (sourced by stack/aio.sh).
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=$REPO/stack

# Everything the stack keeps between runs lives under $TOP (configs, data, logs, pidfiles).
TOP=${KURYR_AIO_TOP:-/opt/kuryr-cnm}
ETC=$TOP/etc
LOG=$TOP/log
RUN=$TOP/run
STATE=$TOP/state
NEUTRON_VENV=${NEUTRON_VENV:-$TOP/neutron-venv}
PROJECT_VENV=${PROJECT_VENV:-$REPO/.venv}
DOCKER26_ROOT=${DOCKER26_ROOT:-$TOP/docker26}
DOCKER28_ROOT=${DOCKER28_ROOT:-$TOP/docker28}

# The name OVN and Neutron know this host by; ports are bound to it.
HOSTID=${HOSTID:-$(hostname)}
NEUTRON_URL=http://127.0.0.1:9696
NEUTRON_PORT=9696

OVS_RUN=/var/run/openvswitch
OVS_DB=/var/lib/openvswitch/conf.db
OVN_RUN=/var/run/ovn
OVN_LIB=/var/lib/ovn
OVN_LOG=/var/log/ovn
NB_SOCK=$OVN_RUN/ovnnb_db.sock
SB_SOCK=$OVN_RUN/ovnsb_db.sock
MYCNF=$ETC/my.cnf

DOCKER20_SOCK=/var/run/docker.sock
DOCKER20_PID=/var/run/docker.pid
DOCKER26_SOCK=/var/run/docker26.sock
DOCKER26_PID=/var/run/docker26.pid
DOCKER28_SOCK=/var/run/docker28.sock
DOCKER28_PID=/var/run/docker28.pid
TEST_IMAGE=kuryr-test/busybox:latest

PLUGIN_NAME=kuryr
PLUGIN_SOCK=/run/docker/plugins/$PLUGIN_NAME.sock
PLUGIN_PID=$RUN/kuryr-cnm.pid
# What `make up` writes, and what the plugin serves from (make test-keystone points it
# at kuryr-keystone.conf for one run).
KURYR_CONF=$ETC/kuryr.conf
PLUGIN_CONF=${PLUGIN_CONF:-$KURYR_CONF}

log() { echo "[aio $(date +%T)] $*"; }
die() { echo "[aio] ERROR: $*" >&2; exit 1; }

# PID 1 on this machine kind does not reap orphans, so a dead daemon lingers as a
# zombie and `kill -0` still succeeds on it: read its state instead.
proc_alive() {
    [ -n "${1:-}" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}
pid_alive() { [ -f "$1" ] && proc_alive "$(cat "$1" 2>/dev/null)"; }

# wait_until <seconds> <command...>: poll every 0.1 s until the command succeeds.
wait_until() {
    local limit=$1; shift
    local deadline=$(( $(date +%s) + limit ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# stop_pidfile <pidfile> <name> [signal]: signal, wait up to 15 s, then SIGKILL.
stop_pidfile() {
    local f=$1 name=$2 sig=${3:-TERM} pid
    if pid_alive "$f"; then
        pid=$(cat "$f"); log "stopping $name (pid $pid)"
        kill "-$sig" "$pid" 2>/dev/null
        for _ in $(seq 1 150); do proc_alive "$pid" || break; sleep 0.1; done
        if proc_alive "$pid"; then log "$name still alive after 15 s: SIGKILL"; kill -KILL "$pid"; fi
    fi
    rm -f "$f"
}

# write_wsgi_entry <file> <python line>...: a gunicorn entry point that imports the app
# with gunicorn's own argv hidden: Neutron and Keystone hand sys.argv[1:] to oslo.config,
# and take their config files from OS_*_CONFIG_DIR / OS_*_CONFIG_FILES instead.
write_wsgi_entry() {
    local file=$1; shift
    { echo "# gunicorn entry point, written by stack/lib: gunicorn's argv hidden while importing"
      printf '%s\n' "import sys" "_saved = sys.argv" "sys.argv = [_saved[0]]" "try:"
      printf '    %s\n' "$@"
      printf '%s\n' "finally:" "    sys.argv = _saved"; } > "$file"
}

# Print "name  up (pid N)" or "name  DOWN"; returns 1 when down.
report_pidfile() {
    local name=$1 f=$2 extra=${3:-}
    if pid_alive "$f"; then printf '  %-26s up    pid %-8s %s\n' "$name" "$(cat "$f")" "$extra"
    else printf '  %-26s DOWN  %s\n' "$name" "$extra"; return 1; fi
}

# install_pinned_venv <venv> <constraints file> <exe that shows it is there> <log name> <what> <package>...:
# a venv of its own with pip's packages under the constraints; done again only when the
# constraints file changes (its hash is the venv's .installed stamp).
install_pinned_venv() {
    local venv=$1 constraints=$2 ready=$3 logname=$4 what=$5; shift 5
    local stamp=$venv/.installed want
    want=$(sha256sum "$constraints" | cut -c1-16)
    if [ -x "$venv/bin/$ready" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    log "installing $what into $venv"
    [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    "$venv/bin/pip" install -q -c "$constraints" "$@" >"$LOG/$logname-pip.log" 2>&1 \
        || die "pip install $* failed (see $LOG/$logname-pip.log)"
    echo "$want" > "$stamp"
}
