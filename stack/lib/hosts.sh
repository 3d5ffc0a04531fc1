# Simulated hypervisors (shared/reference/multihost.md): each host<N> is a network namespace
# with its own Open vSwitch (userspace datapath), ovn-controller (chassis host<N>), dockerd 20.10
# (in its own mount namespace, so that it finds only its own plugin directory) and kuryr-cnm
# (host = host<N>), joined to the one Neutron/OVN by a Geneve underlay on 198.18.0.0/24:
#
#   root netns: main br-phy 198.18.0.1/24 (main ovs-vswitchd) --port ul-host<N>--+
#                                                                                |  veth
#   netns host<N>: br-phy 198.18.0.<N>/24 (host<N>'s ovs-vswitchd) --port ul0 ----+
#
# Userspace tunnelling needs the tunnel endpoint on an OVS bridge's internal port, hence br-phy
# on both sides; the main br-phy is a learning switch, so the hosts reach each other through it.
# Neutron (9696) and the OVN SB DB (6642) also listen on 198.18.0.1 while the underlay is up.
#
# Fixed names (tests and tools find a host by them): dockerd /var/run/docker-<name>.sock,
# plugin config $ETC/kuryr-<name>.conf, plugin log $LOG/kuryr-cnm-<name>.log, OVS db
# /var/run/<name>/openvswitch/db.sock, network namespace <name>.
#
# What a host keeps across host-down/host-kill (its "disk"): $TOP/hosts/<name>/conf.db (OVS),
# /var/lib/docker-<name> (Docker's data), its kuryr config. What it loses (its "RAM"): the
# netns with every interface in it, /var/run/<name>, Docker's exec root.
# shellcheck shell=bash

UNDERLAY_NET=198.18.0
UNDERLAY_IP=$UNDERLAY_NET.1
UNDERLAY_PLEN=24
SB_UNDERLAY_REMOTE=ptcp:6642:$UNDERLAY_IP
HOSTS_TOP=$TOP/hosts
UNDERLAY_NEUTRON_URL=http://$UNDERLAY_IP:$NEUTRON_PORT

host_index() {
    [[ $1 =~ ^host([2-9]|[1-9][0-9])$ ]] || die "a simulated host is named host2 .. host99, not '$1'"
    echo "${BASH_REMATCH[1]}"
}
host_run() { echo "/var/run/$1"; }
host_ovs_run() { echo "/var/run/$1/openvswitch"; }
host_ovn_run() { echo "/var/run/$1/ovn"; }
host_docker_sock() { echo "/var/run/docker-$1.sock"; }
host_docker_pid() { echo "/var/run/docker-$1.pid"; }
host_plugin_conf() { echo "$ETC/kuryr-$1.conf"; }
host_plugin_pid() { echo "$RUN/kuryr-cnm-$1.pid"; }
host_plugin_sock() { echo "/var/run/$1/docker-plugins/$PLUGIN_NAME.sock"; }
host_log() { echo "$LOG/$1"; }
host_vsctl() { ovs-vsctl --db="unix:$(host_ovs_run "$1")/db.sock" "${@:2}"; }
# in_host <name> <command...>: run a command in the host's netns, its OVS/OVN run dirs set
# (ovn-controller opens unix:$OVS_RUNDIR/br-int.mgmt: without it, it would open the main one).
in_host() {
    local name=$1; shift
    nsenter --net="/var/run/netns/$name" -- env OVS_RUNDIR="$(host_ovs_run "$name")" \
        OVN_RUNDIR="$(host_ovn_run "$name")" "$@"
}
docker_host() { /usr/bin/docker -H "unix://$(host_docker_sock "$1")" "${@:2}"; }

# The hosts that were brought up and not taken down (host-kill keeps a host in this list).
known_hosts() {
    local d
    for d in "$HOSTS_TOP"/*/; do [ -f "$d/up" ] && basename "$d"; done 2>/dev/null
}

underlay_present() { ip -4 addr show dev br-phy 2>/dev/null | grep -q "inet $UNDERLAY_IP/"; }

# The main chassis' tunnel endpoint: the underlay address while it is up (a single chassis does
# not care; Geneve to the hosts needs it).
main_encap_ip() { if underlay_present; then echo "$UNDERLAY_IP"; else echo 127.0.0.1; fi; }

# underlay_up: the main br-phy with 198.18.0.1 (before Neutron starts, so that it binds there too).
underlay_up() {
    underlay_present && return 0
    log "underlay: br-phy $UNDERLAY_IP/$UNDERLAY_PLEN on the main Open vSwitch"
    ovs-vsctl --may-exist add-br br-phy -- set bridge br-phy datapath_type=netdev
    ip addr replace "$UNDERLAY_IP/$UNDERLAY_PLEN" dev br-phy
    ip link set br-phy up
}

# underlay_serve: what must listen on the underlay once it is up (idempotent).
underlay_serve() {
    underlay_present || return 0
    ovs-appctl -t $OVN_RUN/ovnsb_db.ctl ovsdb-server/list-remotes | grep -qx "$SB_UNDERLAY_REMOTE" \
        || ovs-appctl -t $OVN_RUN/ovnsb_db.ctl ovsdb-server/add-remote "$SB_UNDERLAY_REMOTE"
    [ "$(ovs-vsctl get open . external_ids:ovn-encap-ip)" = "\"$UNDERLAY_IP\"" ] \
        || ovs-vsctl set open . external_ids:ovn-encap-ip="$UNDERLAY_IP"
    keystone_serve_underlay
    if ! curl -sf -o /dev/null --max-time 5 "$UNDERLAY_NEUTRON_URL/v2.0/networks"; then
        log "the Neutron API does not listen on the underlay yet: restarting it"
        stop_pidfile "$RUN/neutron-api.pid" "Neutron API" INT
        start_neutron
    fi
}

# after the main ovs-vswitchd restarted: br-phy's address and the neighbour caches are gone
underlay_repair() {
    local name
    [ -n "$(known_hosts)" ] || return 0
    underlay_up
    for name in $(known_hosts); do
        pid_alive "$(host_ovs_run "$name")/ovs-vswitchd.pid" && host_seed_neighbours "$name"
    done
}

underlay_down() {
    [ -n "$(known_hosts)" ] && return 0
    ovs-appctl -t $OVN_RUN/ovnsb_db.ctl ovsdb-server/list-remotes 2>/dev/null | grep -qx "$SB_UNDERLAY_REMOTE" \
        && ovs-appctl -t $OVN_RUN/ovnsb_db.ctl ovsdb-server/remove-remote "$SB_UNDERLAY_REMOTE"
    if underlay_present; then
        log "underlay: removing br-phy (no simulated host left)"
        ovs-vsctl --if-exists del-br br-phy
        [ -S $OVS_RUN/db.sock ] && ovs-vsctl set open . external_ids:ovn-encap-ip=127.0.0.1
    fi
}

# --- one host ---------------------------------------------------------------------------

host_netns_up() {
    local name=$1 n; n=$(host_index "$name")
    ip netns list | grep -qw "^$name" || ip netns add "$name"
    ip -n "$name" link set lo up
    if ! ip link show "ul-$name" >/dev/null 2>&1; then
        ip link add "ul-$name" type veth peer name "ul0-$name"
        ip link set "ul0-$name" netns "$name"
        ip -n "$name" link set "ul0-$name" name ul0
    fi
    ip link set "ul-$name" up; ip -n "$name" link set ul0 up
    ovs-vsctl --may-exist add-port br-phy "ul-$name"
}

host_ovs_up() {
    local name=$1 n ovs db logd; n=$(host_index "$name"); ovs=$(host_ovs_run "$name")
    db=$HOSTS_TOP/$name/conf.db; logd=$(host_log "$name")
    mkdir -p "$ovs" "$(host_ovn_run "$name")" "$logd"
    [ -s "$db" ] || ovsdb-tool create "$db" /usr/share/openvswitch/vswitch.ovsschema
    if ! pid_alive "$ovs/ovsdb-server.pid"; then
        in_host "$name" ovsdb-server "$db" -vconsole:off --remote="punix:$ovs/db.sock" \
            --pidfile="$ovs/ovsdb-server.pid" --unixctl="$ovs/ovsdb-server.ctl" \
            --log-file="$logd/ovsdb-server.log" --detach || die "$name: ovsdb-server did not start"
    fi
    host_vsctl "$name" --no-wait init
    if ! pid_alive "$ovs/ovs-vswitchd.pid"; then
        in_host "$name" ovs-vswitchd "unix:$ovs/db.sock" -vconsole:off --pidfile="$ovs/ovs-vswitchd.pid" \
            --unixctl="$ovs/ovs-vswitchd.ctl" --log-file="$logd/ovs-vswitchd.log" --detach \
            || die "$name: ovs-vswitchd did not start"
    fi
    host_vsctl "$name" set open . external_ids:system-id="$name" external_ids:hostname="$name" \
        external_ids:ovn-remote="tcp:$UNDERLAY_IP:6642" external_ids:ovn-encap-type=geneve \
        external_ids:ovn-encap-ip="$UNDERLAY_NET.$n" external_ids:ovn-bridge=br-int \
        external_ids:ovn-bridge-datapath-type=netdev
    host_vsctl "$name" --may-exist add-br br-int -- set bridge br-int datapath_type=netdev \
        fail-mode=secure other-config:disable-in-band=true
    host_vsctl "$name" --may-exist add-br br-phy -- set bridge br-phy datapath_type=netdev \
        -- --may-exist add-port br-phy ul0
    ip -n "$name" addr replace "$UNDERLAY_NET.$n/$UNDERLAY_PLEN" dev br-phy
    ip -n "$name" link set br-phy up
    wait_until 10 in_host "$name" busybox ping -c1 -W1 "$UNDERLAY_IP" \
        || die "$name: the underlay does not answer ($UNDERLAY_NET.$n -> $UNDERLAY_IP)"
}

br_phy_mac() { ip ${1:+-n "$1"} link show br-phy | awk '/link\/ether/ {print $2}'; }

# Pre-seed the userspace tunnel neighbour caches between this host, the main chassis and the
# other hosts: on a cache miss OVS drops the packet while it sends its own ARP (multihost.md §4).
host_seed_neighbours() {
    local name=$1 n other m mac mine; n=$(host_index "$name"); mine=$(br_phy_mac "$name")
    ovs-appctl tnl/neigh/set br-phy "$UNDERLAY_NET.$n" "$mine" >/dev/null
    in_host "$name" ovs-appctl -t "$(host_ovs_run "$name")/ovs-vswitchd.ctl" \
        tnl/neigh/set br-phy "$UNDERLAY_IP" "$(br_phy_mac)" >/dev/null
    for other in $(known_hosts); do
        [ "$other" = "$name" ] && continue
        pid_alive "$(host_ovs_run "$other")/ovs-vswitchd.pid" || continue
        m=$(host_index "$other"); mac=$(br_phy_mac "$other")
        ovs-appctl -t "$(host_ovs_run "$name")/ovs-vswitchd.ctl" tnl/neigh/set br-phy "$UNDERLAY_NET.$m" "$mac" >/dev/null
        ovs-appctl -t "$(host_ovs_run "$other")/ovs-vswitchd.ctl" tnl/neigh/set br-phy "$UNDERLAY_NET.$n" "$mine" >/dev/null
    done
}

host_chassis_registered() {
    ovn-sbctl --db=unix:$SB_SOCK --bare --columns=name find Chassis "name=$1" | grep -q .
}
host_neutron_sees_chassis() {
    curl -sf "$NEUTRON_URL/v2.0/agents?agent_type=OVN%20Controller%20agent&host=$1" | grep -q '"alive": *true'
}

host_ovn_up() {
    local name=$1 ovn; ovn=$(host_ovn_run "$name")
    if ! pid_alive "$ovn/ovn-controller.pid"; then
        # no --unixctl: ovn-controller 23.03 has no such option; its socket is ovn-controller.<pid>.ctl
        in_host "$name" ovn-controller "unix:$(host_ovs_run "$name")/db.sock" -vconsole:off \
            --pidfile="$ovn/ovn-controller.pid" --log-file="$(host_log "$name")/ovn-controller.log" --detach \
            || die "$name: ovn-controller did not start"
    fi
    wait_until 20 host_chassis_registered "$name" \
        || die "$name: chassis did not register in the OVN SB DB (see $(host_log "$name")/ovn-controller.log)"
    wait_until 60 host_neutron_sees_chassis "$name" \
        || die "Neutron does not list an alive OVN Controller agent for $name"
}

# dockerd 20.10 in the host's netns, in a mount namespace of its own where /run/docker/plugins and
# /etc/docker/plugins are the host's private directories (`ip netns exec` would remount /sys and
# hide the cgroup mounts dockerd needs: nsenter --net instead).
host_docker_up() {
    local name=$1 run sock pidf logd; run=$(host_run "$name"); sock=$(host_docker_sock "$name")
    pidf=$(host_docker_pid "$name"); logd=$(host_log "$name")
    if ! { pid_alive "$pidf" && [ -S "$sock" ]; }; then
        pid_alive "$pidf" || rm -f "$pidf"
        mkdir -p "$run/docker-plugins" "$run/docker-plugins-etc" "/var/lib/docker-$name" /run/docker/plugins \
            /etc/docker/plugins
        log "$name: starting dockerd 20.10 on $sock"
        ( exec nsenter --net="/var/run/netns/$name" -- unshare --mount --propagation slave -- sh -c "
            mount --bind $run/docker-plugins /run/docker/plugins &&
            mount --bind $run/docker-plugins-etc /etc/docker/plugins &&
            exec setsid /usr/sbin/dockerd --data-root /var/lib/docker-$name --exec-root /var/run/docker-$name \
              --host unix://$sock --pidfile $pidf --storage-driver overlay2 ${DOCKERD_NET_FLAGS[*]}" \
            >>"$logd/dockerd.log" 2>&1 </dev/null ) &
    fi
    wait_until 60 docker_answers docker_host "$name" || die "$name: dockerd does not answer (see $logd/dockerd.log)"
    ensure_image docker_host "$name"
}

# A host's plugin goes through Keystone when the main one does (PLUGIN_CONF is
# kuryr-keystone.conf: make test-keystone), with the same user, as a cloud's hypervisors do:
# ports of one project share its default security group, so that they reach each other.
host_neutron_auth() {
    if [ "$PLUGIN_CONF" = "$KURYR_KEYSTONE_CONF" ]; then
        echo "# Neutron as the hosts reach it: Keystone and the catalog's internal endpoint, over the underlay"
        kuryr_keystone_auth "$(ks_underlay_url "$KEYSTONE_PORT")/v3/"
        echo "endpoint_type = internal"
    else
        echo "# Neutron as the hosts reach it, over the underlay"
        echo "cloud = aio-underlay"
    fi
}

write_host_plugin_config() {
    local name=$1
    # umask: under Keystone it holds kuryr's password
    ( umask 077; cat > "$(host_plugin_conf "$name")"; chmod 600 "$(host_plugin_conf "$name")" ) <<EOF
# Written by stack/lib/hosts.sh for the simulated host $name: its kuryr-cnm runs in netns $name.
[DEFAULT]
# the host's dockerd reads /run/docker/plugins from this directory (its own mount namespace)
kuryr_uri = unix://$(host_plugin_sock "$name")
debug = false
host = $name
reconcile_interval = 20
reconcile_grace = 60

[binding]
ovsdb_connection = unix:$(host_ovs_run "$name")/db.sock

[vif_pool]
# the simulated hosts keep a port pool, the main host does not: both kinds share networks in the tests
enabled = true
ports_pool_min = 2
ports_pool_batch = 4

[neutron]
$(host_neutron_auth)
default_subnetpool_v4 = kuryr
default_subnetpool_v6 = kuryr6
EOF
}

host_plugin_answers() {
    curl -sf --unix-socket "$(host_plugin_sock "$1")" -X POST http://plugin/Plugin.Activate | grep -q NetworkDriver
}

host_plugin_up() {
    local name=$1 pidf want; pidf=$(host_plugin_pid "$name")
    mkdir -p "$(host_run "$name")/docker-plugins"
    write_host_plugin_config "$name"
    want=$(PLUGIN_CONF=$(host_plugin_conf "$name") plugin_fingerprint)
    if pid_alive "$pidf" && [ "$(cat "$RUN/kuryr-cnm-$name.fingerprint" 2>/dev/null)" != "$want" ]; then
        log "$name: kuryr-cnm code or config changed: restarting it"
        stop_pidfile "$pidf" "kuryr-cnm ($name)"
    fi
    if ! pid_alive "$pidf"; then
        log "$name: starting kuryr-cnm on $(host_plugin_sock "$name")"
        ( exec nsenter --net="/var/run/netns/$name" -- setsid "$PROJECT_VENV/bin/kuryr-cnm" serve \
            --config-file "$(host_plugin_conf "$name")" >>"$LOG/kuryr-cnm-$name.log" 2>&1 </dev/null ) &
        echo $! > "$pidf"
        echo "$want" > "$RUN/kuryr-cnm-$name.fingerprint"
    fi
    wait_until 30 host_plugin_answers "$name" \
        || die "$name: kuryr-cnm does not answer (see $LOG/kuryr-cnm-$name.log)"
}

# host_up <name>: the whole host, after the main stack is up (idempotent).
host_up() {
    local name=$1 t0=$SECONDS; host_index "$name" >/dev/null
    mkdir -p "$HOSTS_TOP/$name" "$(host_log "$name")"
    underlay_up
    underlay_serve
    host_netns_up "$name"
    host_ovs_up "$name"
    touch "$HOSTS_TOP/$name/up"
    host_seed_neighbours "$name"
    host_ovn_up "$name"
    # the plugin before dockerd, as a real host's units order them: dockerd restores containers
    # with a restart policy at its start, and waits for their network's plugin meanwhile
    host_plugin_up "$name"
    host_docker_up "$name"
    log "$name up in $((SECONDS - t0)) s"
}

# Every process of the host: those in its netns, and their descendants (containers, in their
# own netns, are children of shims that live in the host's).
host_pids() {
    local name=$1 ns pid f
    ns=$(stat -L -c %i "/var/run/netns/$name" 2>/dev/null) || return 0
    local -A ppid_of=() found=()
    for f in /proc/[0-9]*; do
        pid=${f#/proc/}
        [ "$(stat -L -c %i "$f/ns/net" 2>/dev/null)" = "$ns" ] && found[$pid]=1
        ppid_of[$pid]=$(awk '{print $4}' "$f/stat" 2>/dev/null)
    done
    local grew=1
    while [ $grew = 1 ]; do
        grew=0
        for pid in "${!ppid_of[@]}"; do
            [ -z "${found[$pid]:-}" ] && [ -n "${found[${ppid_of[$pid]}]:-}" ] && { found[$pid]=1; grew=1; }
        done
    done
    echo "${!found[@]}"
}

# The host's "RAM" goes: its netns (every interface in it), the netns Docker bind-mounted for its
# containers, its run directories. Its "disk" stays.
host_power_off() {
    local name=$1 m
    for m in $(awk -v d="/var/run/docker-$name/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    ip netns del "$name" 2>/dev/null
    ip link del "ul-$name" 2>/dev/null
    ovs-vsctl --if-exists del-port br-phy "ul-$name"
    rm -rf "$(host_run "$name")" "/var/run/docker-$name" "$(host_docker_sock "$name")" "$(host_docker_pid "$name")" \
        "$(host_plugin_pid "$name")"
}

# host_kill <name>: kill -9 of every process of the host, as a power loss: OVN keeps its chassis
# and Neutron its ports, as they would.
host_kill() {
    local name=$1 pids; host_index "$name" >/dev/null
    pids=$(host_pids "$name")
    log "$name: kill -9 of ${pids:-no process}"
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    for _ in $(seq 1 50); do
        local alive=0 p
        for p in $pids; do proc_alive "$p" && alive=1; done
        [ $alive = 0 ] && break; sleep 0.1
    done
    host_power_off "$name"
}

# host_stop <name>: a clean shutdown (containers stopped by dockerd, the chassis leaves OVN, its
# Neutron agent is deleted); the host stays known, so `make up` starts it again. Neutron ports
# kuryr-cnm left stay, as on a real host.
host_stop() {
    local name=$1 ovs ovn p; host_index "$name" >/dev/null; ovs=$(host_ovs_run "$name"); ovn=$(host_ovn_run "$name")
    stop_pidfile "$(host_plugin_pid "$name")" "kuryr-cnm ($name)"
    stop_pidfile "$(host_docker_pid "$name")" "dockerd ($name)"
    if pid_alive "$ovn/ovn-controller.pid"; then
        p=$(cat "$ovn/ovn-controller.pid")
        stop_ovs_daemon ovn-appctl "$ovn/ovn-controller.$p.ctl" "$ovn/ovn-controller.pid" "ovn-controller ($name)"
    fi
    host_chassis_registered "$name" && ovn-sbctl --db=unix:$SB_SOCK chassis-del "$name"
    # Neutron keeps an OVN agent whose chassis left (multihost.md §3): delete it
    curl -sf -o /dev/null -X DELETE "$NEUTRON_URL/v2.0/agents/$name" 2>/dev/null
    for p in ovs-vswitchd ovsdb-server; do
        stop_ovs_daemon ovs-appctl "$ovs/$p.ctl" "$ovs/$p.pid" "$p ($name)"
    done
    # what is left (containerd shims of containers dockerd could not stop, ...)
    local left; left=$(host_pids "$name")
    # shellcheck disable=SC2086
    [ -n "$left" ] && kill -KILL $left 2>/dev/null
    host_power_off "$name"
}

# host_down <name>: host_stop, and the host is no longer one `make up` starts.
host_down() {
    host_stop "$1"
    rm -f "$HOSTS_TOP/$1/up"
    underlay_down
}

host_status() {
    local name=$1 rc=0
    echo "  simulated host $name (netns $name, underlay $UNDERLAY_NET.$(host_index "$name")):"
    report_pidfile "  ovsdb-server" "$(host_ovs_run "$name")/ovsdb-server.pid" "$(host_ovs_run "$name")/db.sock" || rc=1
    report_pidfile "  ovs-vswitchd" "$(host_ovs_run "$name")/ovs-vswitchd.pid" || rc=1
    report_pidfile "  ovn-controller" "$(host_ovn_run "$name")/ovn-controller.pid" "chassis $name" || rc=1
    report_pidfile "  dockerd 20.10" "$(host_docker_pid "$name")" "unix://$(host_docker_sock "$name")" || rc=1
    report_pidfile "  kuryr-cnm" "$(host_plugin_pid "$name")" "$LOG/kuryr-cnm-$name.log" || rc=1
    if [ $rc = 0 ] && ! host_plugin_answers "$name"; then echo "    kuryr-cnm does not answer Plugin.Activate"; rc=1; fi
    return $rc
}

# hosts_wanted <count>: host2 .. host<count> (count 1: none) and the hosts already known
hosts_wanted() {
    local count=${1:-1} i
    [[ $count =~ ^[0-9]+$ ]] || die "HOSTS is a number of hosts (1 = the main host alone), not '$count'"
    { for ((i = 2; i <= count; i++)); do echo "host$i"; done; known_hosts; } | sort -u -V
}

hosts_up() { local name; for name in $(hosts_wanted "${1:-1}"); do host_up "$name"; done; }

# Every running host's kuryr-cnm again from its config as written now (Keystone or not, see
# host_neutron_auth): restarted where that changed.
hosts_plugins_up() {
    local name
    for name in $(known_hosts); do
        pid_alive "$(host_ovs_run "$name")/ovs-vswitchd.pid" && host_plugin_up "$name"
    done
    return 0
}

# make down: every host stopped, still known to the next make up
hosts_stop() { local name; for name in $(known_hosts); do host_stop "$name"; done; }

hosts_status() { local name rc=0; for name in $(known_hosts); do host_status "$name" || rc=1; done; return $rc; }

hosts_wipe() {
    local name
    for name in $(ls "$HOSTS_TOP" 2>/dev/null); do
        rm -rf "${HOSTS_TOP:?}/$name" "/var/lib/docker-$name" "$(host_log "$name")" "$(host_plugin_conf "$name")"
    done
}
