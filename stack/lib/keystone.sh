# A real Keystone (keystone 30 from PyPI, gunicorn, the stack's MariaDB) on 127.0.0.1:5000
# and a SECOND Neutron API with auth_strategy = keystone on 127.0.0.1:9697 (same DB and
# OVN as the noauth one on 9696, which stays as it is). `aio.sh keystone-up` starts them
# and writes kuryr-keystone.conf; `make test-keystone` runs the tests through them.
# Adapted from shared/reference/keystone.md; sourced by stack/aio.sh.
# shellcheck shell=bash

KEYSTONE_VENV=${KEYSTONE_VENV:-$TOP/keystone-venv}
KEYSTONE_PORT=5000
KEYSTONE_URL=http://127.0.0.1:$KEYSTONE_PORT/v3/
# Short enough that a test run outlives a token; above keystoneauth's 120 s renewal
# margin, or every request would fetch a new token.
KEYSTONE_TOKEN_EXPIRATION=${KEYSTONE_TOKEN_EXPIRATION:-200}
KS_ETC=$ETC/keystone
# DB stamps and key repositories: under $STATE, so that `aio.sh wipe` clears them with the DB
KS_STATE=$STATE/keystone
KS_PID=$RUN/keystone.pid
# Random passwords of admin, kuryr and neutron, made once; root-only.
KS_PASSWORDS=$ETC/keystone-passwords
NEUTRON_KS_PORT=9697
NEUTRON_KS_URL=http://127.0.0.1:$NEUTRON_KS_PORT
NKS_ETC=$ETC/neutron-ks
NKS_PID=$RUN/neutron-ks-api.pid
# The 9697 API must not share the 9696 API's [DEFAULT] host (OVN hash ring, see its wrapper).
NKS_HOST=$HOSTID-ks
KURYR_KEYSTONE_CONF=$ETC/kuryr-keystone.conf
# The simulated hosts (hosts.sh) reach both over the underlay, as real hypervisors reach a
# cloud's internal endpoints: Keystone and the 9697 API also listen on 198.18.0.1 while it is
# up, and the catalog's internal network endpoint is that address.
ks_underlay_url() { echo "http://$UNDERLAY_IP:$1"; }

# ks_binds <port>: gunicorn --bind arguments, loopback and (while it is up) the underlay
ks_binds() {
    echo "--bind 127.0.0.1:$1"
    if underlay_present; then echo "--bind $UNDERLAY_IP:$1"; fi
}

install_keystone_venv() {
    install_pinned_venv "$KEYSTONE_VENV" "$STACK/keystone-venv-constraints.txt" keystone-manage keystone \
        "Keystone 30.0.0 (about 40 s)" keystone PyMySQL gunicorn
}

ks_password() { sed -n "s/^$1=//p" "$KS_PASSWORDS"; }

ensure_keystone_passwords() {
    [ -s "$KS_PASSWORDS" ] && return 0
    # A distinctive prefix, so a scan of logs and error messages finds any leak unambiguously.
    local user
    ( umask 077
      for user in admin kuryr neutron; do
          echo "$user=kcnm-$user-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
      done > "$KS_PASSWORDS" )
}

write_keystone_configs() {
    mkdir -p "$KS_ETC" "$KS_STATE/fernet-keys" "$KS_STATE/credential-keys"
    # keystone WARNs "key_repository is world readable" on every token otherwise
    chmod 700 "$KS_STATE/fernet-keys" "$KS_STATE/credential-keys"
    cat > "$KS_ETC/keystone.conf" <<EOF
[DEFAULT]
debug = false
use_stderr = false
log_file = $LOG/keystone.log

[database]
connection = mysql+pymysql://keystone:keystone@127.0.0.1:3306/keystone?charset=utf8mb4

[token]
provider = fernet
expiration = $KEYSTONE_TOKEN_EXPIRATION

[fernet_tokens]
key_repository = $KS_STATE/fernet-keys
max_active_keys = 3

[fernet_receipts]
key_repository = $KS_STATE/fernet-keys

[credential]
key_repository = $KS_STATE/credential-keys

[identity]
# bcrypt only reads 72 bytes; the default (4096) logs a WARNING on every password check
max_password_length = 72
# a throwaway test Keystone: bcrypt cost 4 checks a password in 1 ms, the default 12 in 0.3 s
password_hash_rounds = 4

[cache]
# token validation 1.2-1.9 s -> 8 ms (about 200 SQL queries per request without it);
# the cache lives in the worker process: keep one worker
enabled = true
backend = dogpile.cache.memory

[oslo_messaging_notifications]
driver = noop
EOF
    # keystone.server.configure() calls oslo.config's CONF() without args: it would parse gunicorn's argv
    write_wsgi_entry "$KS_ETC/keystone_wsgi.py" "from keystone.wsgi.api import application  # noqa: F401"
}

ks_manage() { "$KEYSTONE_VENV/bin/keystone-manage" --config-file "$KS_ETC/keystone.conf" "$@"; }

# The DB, keys and bootstrap: each only when new to us (a stamp under $KS_STATE).
keystone_db() {
    mariadb --defaults-file="$MYCNF" -uroot -e "
        CREATE DATABASE IF NOT EXISTS keystone CHARACTER SET utf8mb4;
        CREATE USER IF NOT EXISTS 'keystone'@'127.0.0.1' IDENTIFIED BY 'keystone';
        GRANT ALL ON keystone.* TO 'keystone'@'127.0.0.1';" || die "cannot create the keystone database"
    local want; want=$(sha256sum "$STACK/keystone-venv-constraints.txt" | cut -c1-16)
    if [ "$(cat "$KS_STATE/db-synced" 2>/dev/null)" != "$want" ]; then
        log "keystone-manage db_sync"
        ks_manage db_sync >"$LOG/keystone-db-sync.log" 2>&1 || die "db_sync failed (see $LOG/keystone-db-sync.log)"
        echo "$want" > "$KS_STATE/db-synced"
    fi
    # keystone would want a 'keystone' Unix user to own the keys: root runs it here
    [ -f "$KS_STATE/fernet-keys/0" ] || ks_manage fernet_setup --keystone-user root --keystone-group root >>"$LOG/keystone-manage.log" 2>&1
    [ -f "$KS_STATE/credential-keys/0" ] || ks_manage credential_setup --keystone-user root --keystone-group root >>"$LOG/keystone-manage.log" 2>&1
    want=$(sha256sum "$KS_PASSWORDS" | cut -c1-16)
    if [ "$(cat "$KS_STATE/bootstrapped" 2>/dev/null)" != "$want" ]; then
        log "keystone-manage bootstrap (admin, RegionOne, the identity endpoints)"
        # the password through the environment: argv is world-readable in /proc
        OS_BOOTSTRAP_PASSWORD=$(ks_password admin) ks_manage bootstrap --bootstrap-admin-url "$KEYSTONE_URL" \
            --bootstrap-internal-url "$KEYSTONE_URL" --bootstrap-public-url "$KEYSTONE_URL" \
            --bootstrap-region-id RegionOne >"$LOG/keystone-bootstrap.log" 2>&1 \
            || die "keystone-manage bootstrap failed (see $LOG/keystone-bootstrap.log)"
        echo "$want" > "$KS_STATE/bootstrapped"
    fi
}

keystone_answers() { curl -sf -o /dev/null "http://127.0.0.1:$KEYSTONE_PORT/v3"; }

# config_fingerprint <files...>: a daemon is restarted when the config it runs with changed.
config_fingerprint() { cat "$@" | sha256sum | cut -c1-16; }

start_keystone_api() {
    local want binds; binds=$(ks_binds "$KEYSTONE_PORT")
    want=$(config_fingerprint "$KS_ETC/keystone.conf" "$KS_ETC/keystone_wsgi.py" <(echo "$binds"))
    if pid_alive "$KS_PID" && [ "$(cat "$RUN/keystone.fingerprint" 2>/dev/null)" != "$want" ]; then
        log "keystone.conf or its addresses changed: restarting Keystone"
        stop_pidfile "$KS_PID" "Keystone"
    fi
    if ! pid_alive "$KS_PID"; then
        log "starting Keystone (gunicorn) $(echo $binds), tokens for $KEYSTONE_TOKEN_EXPIRATION s"
        # shellcheck disable=SC2086  # $binds: one word per argument
        ( export OS_KEYSTONE_CONFIG_DIR=$KS_ETC
          exec setsid "$KEYSTONE_VENV/bin/gunicorn" --chdir "$KS_ETC" $binds \
            --workers 1 --threads 4 --worker-class gthread --timeout 60 --graceful-timeout 5 \
            --no-control-socket --pid "$KS_PID" --error-logfile "$LOG/keystone-gunicorn.log" \
            --access-logfile "$LOG/keystone-access.log" \
            keystone_wsgi:application >>"$LOG/keystone.out" 2>&1 </dev/null ) &
        echo "$want" > "$RUN/keystone.fingerprint"
        KS_FRESH=1
    fi
    wait_until 60 keystone_answers || die "Keystone does not answer (see $LOG/keystone.log)"
}

# Project service, users kuryr (admin) and neutron (admin + service), the network
# endpoints: one Python process (the openstack CLI takes a minute for the same).
# Also run on every start of Keystone, as its first requests: a fresh Keystone that meets
# concurrent requests while it loads its policy refuses some of them (403 on validate_token,
# seen as 503s from the keystone-auth Neutron).
register_keystone() {
    local want
    local internal; internal=$(ks_underlay_url "$NEUTRON_KS_PORT")
    want=$(cat "$KS_PASSWORDS" "$STACK/keystone_register.py" <(echo "$NEUTRON_KS_URL $internal") | sha256sum | cut -c1-16)
    [ -z "${KS_FRESH:-}" ] && [ "$(cat "$KS_STATE/registered" 2>/dev/null)" = "$want" ] && return 0
    "$PROJECT_VENV/bin/python" "$STACK/keystone_register.py" --auth-url "$KEYSTONE_URL" \
        --passwords "$KS_PASSWORDS" --network-url "$NEUTRON_KS_URL" --internal-network-url "$internal" \
        || die "Keystone registration failed"
    echo "$want" > "$KS_STATE/registered"
}

write_neutron_ks_configs() {
    # root-only: neutron.conf gets the neutron user's password
    rm -rf "$NKS_ETC"; mkdir -m 700 "$NKS_ETC"
    cp "$ETC/neutron.conf" "$ETC/ml2_conf.ini" "$ETC/api-paste.ini" "$NKS_ETC/"
    printf '[DEFAULT]\nlog_file = %s\n' "$LOG/neutron-ks-api.log" > "$NKS_ETC/api-log.conf"
    sed -i -e "s/^auth_strategy = .*/auth_strategy = keystone/" \
           -e "s/^bind_port = .*/bind_port = $NEUTRON_KS_PORT/" \
           -e "s/^host = .*/host = $NKS_HOST/" \
           -e "s#^api_paste_config = .*#api_paste_config = $NKS_ETC/api-paste.ini#" "$NKS_ETC/neutron.conf"
    cat >> "$NKS_ETC/neutron.conf" <<EOF

[keystone_authtoken]
www_authenticate_uri = $KEYSTONE_URL
auth_url = $KEYSTONE_URL
auth_type = password
username = neutron
password = $(ks_password neutron)
user_domain_name = Default
project_name = service
project_domain_name = Default
region_name = RegionOne
interface = public
EOF
    # Stay out of the OVN hash ring: once in it, the 9696 API would hand this one part of the
    # OVN events (port up -> ACTIVE), and drop them for up to 60 s after it stops.
    write_wsgi_entry "$NKS_ETC/neutron_api_ks_wsgi.py" \
        "from neutron.plugins.ml2.drivers.ovn.mech_driver import mech_driver as _md" \
        "_md.OVNMechanismDriver._setup_hash_ring = lambda self: None  # the 9696 API keeps all OVN events" \
        "from neutron.wsgi.api import application  # noqa: F401" \
        "from neutron import policy as _policy" "_policy.init()  # see the 9696 API's entry point"
}

# Up means: it asks for a token (401 without one).
neutron_ks_answers() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$NEUTRON_KS_URL/v2.0/networks")" = 401 ]
}

# One token-checked, policy-checked request before any other. neutron.policy.init() publishes
# its enforcer before registering the rules: concurrent first requests to a fresh API can meet
# it empty, and admin gets "disallowed by policy" (seen right after a restart of this API).
warm_up_neutron_ks() {
    local token
    # printf is a builtin: the password shows in no process's argv
    token=$(printf '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "kuryr",
        "domain": {"name": "Default"}, "password": "%s"}}}, "scope": {"project": {"name": "service",
        "domain": {"name": "Default"}}}}}' "$(ks_password kuryr)" \
        | curl -sf -D - -o /dev/null -H 'Content-Type: application/json' -d @- "${KEYSTONE_URL}auth/tokens" \
        | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: *//p' | tr -d '\r')
    [ -n "$token" ] && printf 'X-Auth-Token: %s\n' "$token" \
        | curl -sf -o /dev/null -H @- "$NEUTRON_KS_URL/v2.0/networks?limit=1"
}

start_neutron_ks() {
    local want fresh= also=()
    underlay_present && also=(--bind "$UNDERLAY_IP:$NEUTRON_KS_PORT")
    want=$(config_fingerprint "$NKS_ETC"/* <(echo "${also[*]}"))
    if pid_alive "$NKS_PID" && [ "$(cat "$RUN/neutron-ks-api.fingerprint" 2>/dev/null)" != "$want" ]; then
        log "Neutron's config or addresses changed: restarting the keystone-auth Neutron API"
        stop_neutron_ks
    fi
    if ! pid_alive "$NKS_PID"; then
        log "starting a second Neutron API (keystone auth, host $NKS_HOST) on $NEUTRON_KS_URL ${also[*]}"
        # its access log shows any 401 (an expired token) kuryr-cnm met
        spawn_neutron_api "$NKS_ETC" "$NEUTRON_KS_PORT" neutron-ks-api neutron_api_ks_wsgi \
            --access-logfile "$LOG/neutron-ks-api-access.log" "${also[@]}"
        echo "$want" > "$RUN/neutron-ks-api.fingerprint"
        fresh=1
    fi
    wait_until 90 neutron_ks_answers || die "the keystone-auth Neutron API does not answer (see $LOG/neutron-ks-api.log)"
    if [ -n "$fresh" ]; then
        warm_up_neutron_ks || die "the keystone-auth Neutron API refuses kuryr's token (see $LOG/neutron-ks-api.log)"
    fi
}

stop_neutron_ks() {
    local pid=
    pid_alive "$NKS_PID" && pid=$(cat "$NKS_PID")
    # SIGINT: gunicorn's quick shutdown (see stop_openstack)
    stop_pidfile "$NKS_PID" "keystone-auth Neutron API" INT
    # only this master's files: the 9696 API keeps its own
    [ -n "$pid" ] && rm -f "/tmp/neutron_start_time$pid" "/tmp/neutron_first_worker$pid"
    return 0
}

# kuryr_keystone_auth <auth url>: the [neutron] lines of a plugin that goes through Keystone
kuryr_keystone_auth() {
    echo "auth_type = password
auth_url = $1
username = kuryr
password = $(ks_password kuryr)
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = RegionOne"
}

# kuryr.conf with keystoneauth password options in [neutron] instead of `cloud = aio`.
write_kuryr_keystone_conf() {
    local block
    block="# Written by 'aio.sh keystone-up' (stack/lib/keystone.sh): kuryr.conf, but through Keystone
$(kuryr_keystone_auth "$KEYSTONE_URL")"
    ( umask 077
      awk -v block="$block" '/^\[/ { section = $0 }
          section == "[neutron]" && /^cloud *=/ { print block; done = 1; next }
          { print } END { exit !done }' "$KURYR_CONF" > "$KURYR_KEYSTONE_CONF" ) \
        || die "$KURYR_CONF has no 'cloud =' line in [neutron] to replace"
}

keystone_up() {
    local t0=$SECONDS
    [ "$(id -u)" -eq 0 ] || die "run as root"
    [ -f "$KURYR_CONF" ] && mariadb_answers >/dev/null 2>&1 || die "the stack is not up: make up first"
    install_keystone_venv
    ensure_keystone_passwords
    write_keystone_configs
    keystone_db
    start_keystone_api
    register_keystone
    write_neutron_ks_configs
    start_neutron_ks
    write_kuryr_keystone_conf
    log "Keystone and the keystone-auth Neutron up in $((SECONDS - t0)) s"
    cat <<EOF
  Keystone         $KEYSTONE_URL  (tokens for $KEYSTONE_TOKEN_EXPIRATION s; logs $LOG/keystone*.log)
  Neutron (auth)   $NEUTRON_KS_URL  (keystone auth; $LOG/neutron-ks-api.log)
  kuryr-cnm conf   $KURYR_KEYSTONE_CONF  (user kuryr; passwords in $KS_PASSWORDS, root only)
EOF
}

# While the underlay is up, Keystone and the 9697 API (if running) listen on it too (hosts.sh).
keystone_serve_underlay() {
    underlay_present || return 0
    if pid_alive "$KS_PID" && ! curl -sf -o /dev/null --max-time 5 "$(ks_underlay_url "$KEYSTONE_PORT")/v3"; then
        start_keystone_api   # its addresses changed: it restarts
        register_keystone    # its first requests (see register_keystone)
    fi
    if pid_alive "$NKS_PID" && [ "$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' \
            "$(ks_underlay_url "$NEUTRON_KS_PORT")/v2.0/networks")" != 401 ]; then
        start_neutron_ks
    fi
}

stop_keystone() {
    stop_neutron_ks
    stop_pidfile "$KS_PID" "Keystone"
}

# Shown only while they run or are meant to: they are not part of `make up`.
status_keystone() {
    local rc=0
    if [ -f "$KS_PID" ] || [ -f "$NKS_PID" ]; then
        report_pidfile keystone "$KS_PID" "$KEYSTONE_URL, $LOG/keystone.log" || rc=1
        report_pidfile neutron-ks-api "$NKS_PID" "$NEUTRON_KS_URL, $LOG/neutron-ks-api.log" || rc=1
    fi
    return $rc
}
