#!/bin/bash
# kuryr-cnm all-in-one stack: a real Neutron 29 (ML2/OVN, noauth) + OVN + OVS
# (userspace datapath) + MariaDB, three dockerd engines (20.10, 26.1, 28.5), and
# kuryr-cnm serving as Docker plugin 'kuryr'. Every TCP listener is on 127.0.0.1.
#
#   aio.sh up       install what is missing, start what is not running (idempotent)
#   aio.sh down     stop everything 'up' started (data kept)
#   aio.sh status   each piece up or down; exit 1 if any is down
#   aio.sh wipe     down, then delete the Neutron DB, OVN DBs and OVS conf.db
#   aio.sh install  only the installation step of 'up'
#   aio.sh restart-plugin [--kill]   restart kuryr-cnm alone (--kill: SIGKILL, as a crash);
#                   PLUGIN_CONF=<file> serves it from another config (make test-keystone)
#   aio.sh host-plugins-up   the simulated hosts' kuryr-cnm, restarted where their config changed
#                   (through Keystone while PLUGIN_CONF is kuryr-keystone.conf, see hosts.sh)
#   aio.sh keystone-up    Keystone on :5000 and a keystone-auth Neutron API on :9697 (after up)
#   aio.sh keystone-down  stop those two
#   aio.sh stop-neutron | start-neutron    the Neutron API alone (fault tests)
#   aio.sh restart-docker [--live-restore]  dockerd 20.10 alone, the flag until its next restart
#   aio.sh restart-ovs                      ovsdb-server and ovs-vswitchd
#   HOSTS=3 aio.sh up    also the simulated hypervisors host2 and host3 (stack/lib/hosts.sh);
#                   hosts brought up before come up again with the stack
#   aio.sh host-up NAME | host-down NAME    one simulated host (host2 .. host99)
#   aio.sh host-kill NAME                   kill -9 of every process of it, as a power loss
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
. "$HERE/lib/openstack.sh"
. "$HERE/lib/docker.sh"
. "$HERE/lib/plugin.sh"
. "$HERE/lib/keystone.sh"
. "$HERE/lib/hosts.sh"
. "$HERE/lib/vm.sh"

APT_PACKAGES=(docker.io openvswitch-switch ovn-central ovn-host mariadb-server python3-venv
              iproute2 ethtool busybox-static curl ca-certificates procps
              qemu-system-x86 linux-image-amd64)  # the last two: the nested-mode VM (stack/lib/vm.sh)

apt_install() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Package scripts must not start their services: this stack starts each daemon
    # itself, with its own flags (dockerd's defaults would touch host networking).
    local guard=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1
    fi
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$LOG/apt.log" 2>&1
    local rc=$?
    [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || die "apt-get install failed (see $LOG/apt.log)"
}

install_neutron_venv() {
    if ! [ -x "$NEUTRON_VENV/bin/neutron-db-manage" ] || ! [ -x "$NEUTRON_VENV/bin/openstack" ]; then
        log "installing Neutron 29.0.0 and the openstack CLI into $NEUTRON_VENV (about a minute)"
        [ -x "$NEUTRON_VENV/bin/python" ] || /usr/bin/python3 -m venv "$NEUTRON_VENV" || die "python3 -m venv failed"
        "$NEUTRON_VENV/bin/pip" install -q -c "$STACK/neutron-venv-constraints.txt" \
            neutron==29.0.0 PyMySQL gunicorn openstacksdk python-openstackclient >"$LOG/neutron-pip.log" 2>&1 \
            || die "pip install neutron failed (see $LOG/neutron-pip.log)"
    fi
    # `openstack --os-cloud aio ...` from any shell, unless the machine has its own client
    if ! command -v openstack >/dev/null 2>&1; then ln -sf "$NEUTRON_VENV/bin/openstack" /usr/local/bin/openstack; fi
}

do_install() {
    [ "$(id -u)" -eq 0 ] || die "run as root: the stack starts OVS, dockerd and binds ports"
    mkdir -p "$TOP" "$LOG" "$RUN" "$ETC"
    apt_install
    install_neutron_venv
    install_docker_debs
    install_project_venv
    install_vng_venv
}

do_up() {
    local t0=$SECONDS
    do_install
    write_openstack_configs
    write_plugin_configs
    start_ovs
    # the underlay first, so that the main chassis and Neutron start on it
    [ -n "$(hosts_wanted "${HOSTS:-1}")" ] && underlay_up
    start_ovn_central
    start_ovn_controller
    start_mariadb
    db_sync
    start_neutron
    start_docker
    ensure_default_pools
    start_plugin
    hosts_up "${HOSTS:-1}"
    log "stack up in $((SECONDS - t0)) s"
    do_status
    cat <<EOF

  Neutron API      $NEUTRON_URL  (openstack --os-cloud aio; /etc/openstack/clouds.yaml)
  Docker 20.10     docker -H unix://$DOCKER20_SOCK   (the default socket)
  Docker 26        docker -H unix://$DOCKER26_SOCK
  Docker 28        $DOCKER28_ROOT/usr/bin/docker -H unix://$DOCKER28_SOCK   (its own CLI 28.5)
  kuryr-cnm        plugin '$PLUGIN_NAME' on $PLUGIN_SOCK, config $PLUGIN_CONF
  logs             $LOG/  (/var/log/openvswitch/, $OVN_LOG/ for OVS and OVN)
EOF
}

do_down() {
    hosts_stop
    stop_plugin
    stop_docker
    stop_keystone
    stop_openstack
    log "stack stopped (data kept under $TOP)"
}

do_status() {
    local rc=0
    echo "kuryr-cnm all-in-one stack ($TOP):"
    status_openstack || rc=1
    status_docker || rc=1
    status_plugin || rc=1
    status_keystone || rc=1
    if [ $rc -eq 0 ] && ! plugin_answers; then echo "  kuryr-cnm does not answer Plugin.Activate"; rc=1; fi
    hosts_status || rc=1
    return $rc
}

do_wipe() {
    do_down
    log "wiping the Neutron DB, OVN DBs and OVS conf.db"
    rm -rf "$TOP/mariadb" "$STATE"
    hosts_wipe
    rm -f $OVN_LIB/ovnnb_db.db $OVN_LIB/ovnsb_db.db $OVN_LIB/.ovn*_db.db.~lock~ $OVS_DB
}

case "${1:-}" in
    install) do_install ;;
    up) do_up ;;
    down) do_down ;;
    status) do_status ;;
    wipe) do_wipe ;;
    restart-plugin)
        if [ "${2:-}" = --kill ] && pid_alive "$PLUGIN_PID"; then kill -KILL "$(cat "$PLUGIN_PID")"; fi
        stop_plugin; start_plugin ;;
    host-plugins-up) hosts_plugins_up ;;
    # for the fault tests (tests/chaos): one piece down or restarted, the rest untouched
    stop-neutron) stop_neutron_api ;;
    start-neutron) start_neutron ;;
    restart-docker) restart_docker20 "${2:-}" ;;
    restart-ovs) restart_ovs ;;
    keystone-up) keystone_up ;;
    keystone-down) stop_keystone ;;
    host-up|host-down|host-kill)
        [ -n "${2:-}" ] || die "usage: $0 $1 NAME (host2 .. host99)"
        [ "$1" = host-up ] && { pid_alive "$PLUGIN_PID" || die "the stack is not up: make up first"; }
        "${1/-/_}" "$2" ;;
    *) echo "usage: $0 {up|down|status|wipe|install|restart-plugin [--kill]|host-plugins-up|stop-neutron|start-neutron|" \
            "restart-docker [--live-restore]|restart-ovs|keystone-up|keystone-down|host-up NAME|host-down NAME|host-kill NAME}" >&2; exit 2 ;;
esac
