# OVS (userspace datapath), OVN, MariaDB and the Neutron API (ML2/OVN, noauth).
# Adapted from the recipe in shared/reference/local-stack.md; sourced by stack/aio.sh.
# shellcheck shell=bash

write_openstack_configs() {
    mkdir -p "$ETC" "$LOG" "$RUN" "$STATE/lock" "$TOP/mariadb/data" "$RUN/mysqld" "$LOG/mariadb"
    cat > "$ETC/neutron.conf" <<EOF
[DEFAULT]
core_plugin = ml2
# ML2/OVN's maintenance/sync code assumes an L3 plugin is loaded; trunk serves nested mode.
service_plugins = ovn-router,trunk
auth_strategy = noauth
api_paste_config = $ETC/api-paste.ini
bind_host = 127.0.0.1
bind_port = $NEUTRON_PORT
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
# in-process fake oslo.messaging driver: no RabbitMQ (ML2/OVN has no agents)
transport_url = fake:/
host = $HOSTID
state_path = $STATE
allow_overlapping_ips = true
dhcp_agent_notification = false
debug = false
use_stderr = false
# A chassis that stopped answering is reported dead (agents' alive) this long after its last
# heartbeat (default 75 s): the multi-host tests kill a simulated host and wait for it
# (kuryr-cnm gc --dead-host refuses while it is alive). An ovn-controller that keeps up is
# alive whatever the time (Neutron compares nb_cfg first).
agent_down_time = 30

[database]
connection = mysql+pymysql://neutron:neutron@127.0.0.1:3306/neutron?charset=utf8mb4

[oslo_concurrency]
lock_path = $STATE/lock

[oslo_messaging_notifications]
driver = noop
EOF
    cat > "$ETC/ml2_conf.ini" <<'EOF'
[ml2]
type_drivers = geneve,vlan,flat,local
project_network_types = geneve
mechanism_drivers = ovn
extension_drivers = port_security
overlay_ip_version = 4

[ml2_type_geneve]
vni_ranges = 1:65536
max_header_size = 38

[ml2_type_flat]
flat_networks = *

[ml2_type_vlan]
network_vlan_ranges = physnet1:100:200

[securitygroup]
enable_security_group = true

[ovn]
ovn_nb_connection = tcp:127.0.0.1:6641
ovn_sb_connection = tcp:127.0.0.1:6642
ovn_metadata_enabled = false
enable_distributed_floating_ip = false
ovsdb_connection_timeout = 60
ovn_l3_scheduler = leastloaded
EOF
    printf '[DEFAULT]\nlog_file = %s\n' "$LOG/neutron-api.log" > "$ETC/api-log.conf"
    printf '[DEFAULT]\nlog_file = %s\n' "$LOG/neutron-ovn-maintenance.log" > "$ETC/maint-log.conf"
    cp "$NEUTRON_VENV/etc/neutron/api-paste.ini" "$ETC/api-paste.ini"
    # neutron.policy.init() publishes its enforcer before it has registered the rules: requests
    # racing in on a fresh API met an empty policy, and admin got 404 (a DELETE "succeeded" on a
    # port that stayed). Initialise it once, before gunicorn serves anything.
    write_wsgi_entry "$ETC/neutron_api_wsgi.py" "from neutron.wsgi.api import application  # noqa: F401" \
        "from neutron import policy as _policy" "_policy.init()"
    cat > "$MYCNF" <<EOF
[mariadbd]
datadir = $TOP/mariadb/data
socket = $RUN/mysqld/mysqld.sock
pid-file = $RUN/mysqld/mysqld.pid
log-error = $LOG/mariadb/mariadb.log
bind-address = 127.0.0.1
port = 3306
user = mysql
skip-log-bin
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_connections = 500
innodb_buffer_pool_size = 128M
# throwaway test DB: trade durability for speed
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
[client]
socket = $RUN/mysqld/mysqld.sock
EOF
    chown -R mysql:mysql "$TOP/mariadb" "$RUN/mysqld" "$LOG/mariadb"
}

start_ovs() {
    mkdir -p $OVS_RUN /var/log/openvswitch /var/lib/openvswitch
    [ -s $OVS_DB ] || ovsdb-tool create $OVS_DB /usr/share/openvswitch/vswitch.ovsschema
    if ! pid_alive $OVS_RUN/ovsdb-server.pid; then
        log "starting ovsdb-server (Open_vSwitch)"
        ovsdb-server $OVS_DB -vconsole:off --remote=punix:$OVS_RUN/db.sock \
            --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
            --pidfile=$OVS_RUN/ovsdb-server.pid --detach \
            --log-file=/var/log/openvswitch/ovsdb-server.log || die "ovsdb-server did not start"
    fi
    ovs-vsctl --no-wait init
    if ! pid_alive $OVS_RUN/ovs-vswitchd.pid; then
        # ovs-ctl is not used: it insists on loading the kernel module this kernel lacks.
        log "starting ovs-vswitchd (userspace datapath)"
        ovs-vswitchd unix:$OVS_RUN/db.sock -vconsole:off \
            --pidfile=$OVS_RUN/ovs-vswitchd.pid --detach \
            --log-file=/var/log/openvswitch/ovs-vswitchd.log || die "ovs-vswitchd did not start"
    fi
}

# restart_ovs: both OVS daemons, as a package upgrade does (for the fault tests).
restart_ovs() {
    stop_ovs
    start_ovs
    underlay_repair
}

# stop_ovs_daemon <appctl> <ctl socket> <pidfile> <name>: ask it to exit and wait until it has
# (`appctl exit` returns before the process is gone: starting again too soon finds it alive
# and starts nothing, and then it is gone); SIGKILL after 15 s.
stop_ovs_daemon() {
    local appctl=$1 ctl=$2 pidfile=$3 name=$4 pid
    pid_alive "$pidfile" || return 0
    pid=$(cat "$pidfile"); log "stopping $name (pid $pid)"
    "$appctl" -t "$ctl" exit
    for _ in $(seq 1 150); do proc_alive "$pid" || return 0; sleep 0.1; done
    log "$name still alive after 15 s: SIGKILL"; kill -KILL "$pid"
}

stop_ovs() {
    local name
    for name in ovs-vswitchd ovsdb-server; do
        pid_alive $OVS_RUN/$name.pid || continue
        stop_ovs_daemon ovs-appctl "$OVS_RUN/$name.$(cat $OVS_RUN/$name.pid).ctl" $OVS_RUN/$name.pid $name
    done
}

start_ovn_central() {
    mkdir -p $OVN_RUN $OVN_LIB $OVN_LOG
    local db
    for db in nb sb; do
        local file=$OVN_LIB/ovn${db}_db.db schema=/usr/share/ovn/ovn-$db.ovsschema
        [ -s "$file" ] || ovsdb-tool create "$file" "$schema"
        # upgrade the schema in place if the packaged OVN got newer
        if ovsdb-tool needs-conversion "$file" "$schema" | grep -q yes; then
            ovsdb-tool convert "$file" "$schema"
        fi
    done
    if ! pid_alive $OVN_RUN/ovnnb_db.pid; then
        log "starting OVN NB ovsdb-server on tcp:127.0.0.1:6641"
        ovsdb-server $OVN_LIB/ovnnb_db.db -vconsole:off --remote=punix:$NB_SOCK \
            --remote=ptcp:6641:127.0.0.1 --remote=db:OVN_Northbound,NB_Global,connections \
            --pidfile=$OVN_RUN/ovnnb_db.pid --unixctl=$OVN_RUN/ovnnb_db.ctl \
            --log-file=$OVN_LOG/ovsdb-server-nb.log --detach || die "OVN NB ovsdb-server did not start"
    fi
    if ! pid_alive $OVN_RUN/ovnsb_db.pid; then
        log "starting OVN SB ovsdb-server on tcp:127.0.0.1:6642"
        ovsdb-server $OVN_LIB/ovnsb_db.db -vconsole:off --remote=punix:$SB_SOCK \
            --remote=ptcp:6642:127.0.0.1 --remote=db:OVN_Southbound,SB_Global,connections \
            --pidfile=$OVN_RUN/ovnsb_db.pid --unixctl=$OVN_RUN/ovnsb_db.ctl \
            --log-file=$OVN_LOG/ovsdb-server-sb.log --detach || die "OVN SB ovsdb-server did not start"
    fi
    ovn-nbctl --db=unix:$NB_SOCK --no-wait init
    ovn-sbctl --db=unix:$SB_SOCK init
    if ! pid_alive $OVN_RUN/ovn-northd.pid; then
        log "starting ovn-northd"
        ovn-northd -vconsole:off --ovnnb-db=unix:$NB_SOCK --ovnsb-db=unix:$SB_SOCK \
            --pidfile=$OVN_RUN/ovn-northd.pid --log-file=$OVN_LOG/ovn-northd.log \
            --detach || die "ovn-northd did not start"
    fi
}

chassis_registered() {
    ovn-sbctl --db=unix:$SB_SOCK --bare --columns=name find Chassis "name=$HOSTID" | grep -q .
}

start_ovn_controller() {
    ovs-vsctl set open_vswitch . external_ids:system-id="$HOSTID" \
        external_ids:hostname="$HOSTID" \
        external_ids:ovn-remote=tcp:127.0.0.1:6642 \
        external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip="$(main_encap_ip)" \
        external_ids:ovn-bridge=br-int external_ids:ovn-bridge-datapath-type=netdev
    ovs-vsctl --may-exist add-br br-int -- set bridge br-int datapath_type=netdev \
        fail-mode=secure other-config:disable-in-band=true
    if ! pid_alive $OVN_RUN/ovn-controller.pid; then
        log "starting ovn-controller (chassis $HOSTID)"
        ovn-controller unix:$OVS_RUN/db.sock -vconsole:off \
            --pidfile=$OVN_RUN/ovn-controller.pid \
            --log-file=$OVN_LOG/ovn-controller.log --detach || die "ovn-controller did not start"
    fi
    wait_until 10 chassis_registered || die "chassis $HOSTID did not register in the OVN SB DB (see $OVN_LOG/ovn-controller.log)"
}

mariadb_answers() { mariadb --defaults-file="$MYCNF" -uroot -e 'select 1'; }

start_mariadb() {
    if [ ! -d "$TOP/mariadb/data/mysql" ]; then
        log "initialising the MariaDB datadir"
        mariadb-install-db --no-defaults --datadir="$TOP/mariadb/data" --user=mysql \
            --skip-test-db --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed (see $LOG/mariadb-install.log)"
    fi
    if ! pid_alive "$RUN/mysqld/mysqld.pid"; then
        log "starting MariaDB on 127.0.0.1:3306"
        ( exec setsid mariadbd --defaults-file="$MYCNF" >/dev/null 2>&1 </dev/null ) &
    fi
    wait_until 30 mariadb_answers || die "MariaDB does not answer (see $LOG/mariadb/mariadb.log)"
    mariadb --defaults-file="$MYCNF" -uroot -e "
        CREATE DATABASE IF NOT EXISTS neutron CHARACTER SET utf8mb4;
        CREATE USER IF NOT EXISTS 'neutron'@'127.0.0.1' IDENTIFIED BY 'neutron';
        GRANT ALL ON neutron.* TO 'neutron'@'127.0.0.1';" || die "cannot create the neutron database"
}

# The migrations take 7 s on a new DB and 4 s as a no-op: run them only when the
# installed Neutron or the DB is new to us (the stamp records the constraints file).
db_sync() {
    local stamp=$STATE/db-synced want
    want=$(sha256sum "$STACK/neutron-venv-constraints.txt" | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    log "neutron-db-manage upgrade heads"
    (cd "$STATE" && "$NEUTRON_VENV/bin/neutron-db-manage" --config-file "$ETC/neutron.conf" \
        --config-file "$ETC/ml2_conf.ini" upgrade heads >"$LOG/db-manage.log" 2>&1) \
        || die "neutron-db-manage failed (see $LOG/db-manage.log)"
    echo "$want" > "$stamp"
}

neutron_answers() { curl -sf -o /dev/null "$NEUTRON_URL/v2.0/networks"; }

# Ports bound to this host only get vif_type ovs once Neutron sees its chassis alive.
neutron_sees_chassis() {
    curl -sf "$NEUTRON_URL/v2.0/agents?agent_type=OVN%20Controller%20agent&host=$HOSTID" \
        | grep -q '"alive": *true'
}

# spawn_neutron_api <etc dir> <port> <name> <wsgi module> [gunicorn args...]: a Neutron API
# in the background, its pidfile $RUN/<name>.pid and logs $LOG/<name>-gunicorn.log, .out
spawn_neutron_api() {
    local etc=$1 port=$2 name=$3 module=$4; shift 4
    # ASGI_WORKERS tells neutron.common.wsgi_utils the API worker count; it only
    # knows uwsgi and mod_wsgi otherwise, and the OVN hash ring breaks.
    ( cd "$STATE"
      export OS_NEUTRON_CONFIG_DIR=$etc ASGI_WORKERS=1 \
             OS_NEUTRON_CONFIG_FILES='neutron.conf;ml2_conf.ini;api-log.conf'
      exec setsid "$NEUTRON_VENV/bin/gunicorn" --chdir "$etc" --bind "127.0.0.1:$port" \
        --workers 1 --threads 8 --worker-class gthread --timeout 120 \
        --graceful-timeout 10 --no-control-socket --keep-alive 30 \
        --pid "$RUN/$name.pid" --error-logfile "$LOG/$name-gunicorn.log" "$@" \
        "$module:application" >>"$LOG/$name.out" 2>&1 </dev/null ) &
}

start_neutron() {
    if ! pid_alive "$RUN/neutron-api.pid"; then
        # and on the underlay address while it is up, for the simulated hosts (hosts.sh)
        local also=()
        underlay_present && also=(--bind "$UNDERLAY_IP:$NEUTRON_PORT")
        log "starting the Neutron API (gunicorn) on 127.0.0.1:$NEUTRON_PORT ${also[*]}"
        spawn_neutron_api "$ETC" "$NEUTRON_PORT" neutron-api neutron_api_wsgi "${also[@]}"
    fi
    wait_until 90 neutron_answers || die "the Neutron API does not answer (see $LOG/neutron-api.log)"
    wait_until 60 neutron_sees_chassis \
        || die "Neutron does not list an alive OVN Controller agent for $HOSTID (see $OVN_LOG/ovn-controller.log)"
    if ! pid_alive "$RUN/neutron-ovn-maintenance.pid"; then
        log "starting neutron-ovn-maintenance-worker"
        ( cd "$STATE"
          exec setsid "$NEUTRON_VENV/bin/neutron-ovn-maintenance-worker" \
            --config-file "$ETC/neutron.conf" --config-file "$ETC/ml2_conf.ini" \
            --config-file "$ETC/maint-log.conf" >>"$LOG/neutron-ovn-maintenance.out" 2>&1 </dev/null ) &
        echo $! > "$RUN/neutron-ovn-maintenance.pid"
    fi
    # the keystone-auth API again, if it was in use (stopped by stop_neutron_api, or crashed)
    if pid_alive "$KS_PID" && [ -d "$NKS_ETC" ]; then start_neutron_ks; fi
}

# Every Neutron API: under make test-keystone the plugin talks to the keystone-auth one.
stop_neutron_api() { stop_pidfile "$RUN/neutron-api.pid" "Neutron API" INT; stop_neutron_ks; }

stop_openstack() {
    # gunicorn: SIGINT is the quick shutdown; SIGTERM waits the whole graceful
    # timeout because the OVN driver installs its own SIGTERM handler.
    stop_pidfile "$RUN/neutron-api.pid" "Neutron API" INT
    stop_pidfile "$RUN/neutron-ovn-maintenance.pid" "neutron-ovn-maintenance-worker"
    stop_pidfile "$RUN/mysqld/mysqld.pid" "MariaDB"
    local name ctl
    for name in ovn-controller ovn-northd; do
        pid_alive $OVN_RUN/$name.pid || continue
        stop_ovs_daemon ovn-appctl "$OVN_RUN/$name.$(cat $OVN_RUN/$name.pid).ctl" $OVN_RUN/$name.pid $name
    done
    for ctl in nb sb; do
        stop_ovs_daemon ovs-appctl $OVN_RUN/ovn${ctl}_db.ctl $OVN_RUN/ovn${ctl}_db.pid "OVN ${ctl^^} ovsdb-server"
    done
    stop_ovs
    rm -f /tmp/neutron_start_time* /tmp/neutron_first_worker*
}

status_openstack() {
    local rc=0
    report_pidfile ovsdb-server $OVS_RUN/ovsdb-server.pid "$OVS_RUN/db.sock, /var/log/openvswitch/" || rc=1
    report_pidfile ovs-vswitchd $OVS_RUN/ovs-vswitchd.pid "br-int (netdev)" || rc=1
    report_pidfile ovn-nb-db $OVN_RUN/ovnnb_db.pid "tcp:127.0.0.1:6641, $OVN_LOG/" || rc=1
    report_pidfile ovn-sb-db $OVN_RUN/ovnsb_db.pid "tcp:127.0.0.1:6642" || rc=1
    report_pidfile ovn-northd $OVN_RUN/ovn-northd.pid || rc=1
    report_pidfile ovn-controller $OVN_RUN/ovn-controller.pid "chassis $HOSTID" || rc=1
    report_pidfile mariadb "$RUN/mysqld/mysqld.pid" "127.0.0.1:3306, $LOG/mariadb/" || rc=1
    report_pidfile neutron-api "$RUN/neutron-api.pid" "$NEUTRON_URL, $LOG/neutron-api.log" || rc=1
    report_pidfile neutron-ovn-maintenance "$RUN/neutron-ovn-maintenance.pid" "$LOG/neutron-ovn-maintenance.log" || rc=1
    return $rc
}
