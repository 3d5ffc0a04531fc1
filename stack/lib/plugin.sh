# kuryr-cnm itself: its venv, its kuryr.conf, clouds.yaml, the default subnetpools,
# and the plugin process serving /run/docker/plugins/kuryr.sock.
# shellcheck shell=bash

install_project_venv() {
    local stamp=$PROJECT_VENV/.installed want
    want=$(cat "$REPO/pyproject.toml" "$STACK/neutron-venv-constraints.txt" | sha256sum | cut -c1-16)
    if [ -x "$PROJECT_VENV/bin/kuryr-cnm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
    log "installing kuryr-cnm into $PROJECT_VENV"
    [ -x "$PROJECT_VENV/bin/python" ] || /usr/bin/python3 -m venv "$PROJECT_VENV" || die "python3 -m venv failed"
    # The same pins as Neutron's venv: openstacksdk, ovsdbapp, pyroute2, oslo.config
    # are the versions the stack was proven with.
    "$PROJECT_VENV/bin/pip" install -q -c "$STACK/neutron-venv-constraints.txt" -e "$REPO[test]" \
        >"$LOG/kuryr-cnm-pip.log" 2>&1 || die "pip install of kuryr-cnm failed (see $LOG/kuryr-cnm-pip.log)"
    echo "$want" > "$stamp"
}

write_plugin_configs() {
    mkdir -p /etc/openstack "$ETC"
    # A cloud for Neutron's noauth API: every request is admin.
    cat > /etc/openstack/clouds.yaml <<EOF
clouds:
  aio:
    auth_type: none
    auth:
      endpoint: $NEUTRON_URL
    network_endpoint_override: $NEUTRON_URL/
    region_name: RegionOne
  # the same Neutron as the simulated hosts (stack/lib/hosts.sh) reach it from their netns
  aio-underlay:
    auth_type: none
    auth:
      endpoint: $UNDERLAY_NEUTRON_URL
    network_endpoint_override: $UNDERLAY_NEUTRON_URL/
    region_name: RegionOne
EOF
    cat > "$KURYR_CONF" <<EOF
# Written by 'make up' (stack/lib/plugin.sh) for the all-in-one stack.
[DEFAULT]
# Docker finds the plugin by this socket: /run/docker/plugins/<name>.sock
kuryr_uri = unix://$PLUGIN_SOCK
debug = false
# binding:host_id of the ports: the chassis name OVN knows this host by
host = $HOSTID
# The all-in-one stack reconciles sooner than the defaults (300 s each), so that the
# fault tests see what a crash left behind removed within a minute or two.
reconcile_interval = 20
reconcile_grace = 60

[neutron]
cloud = aio
default_subnetpool_v4 = kuryr
default_subnetpool_v6 = kuryr6
EOF
}

# Create the default subnetpools kuryr-libnetwork's devstack makes (idempotent).
ensure_default_pools() {
    "$PROJECT_VENV/bin/python" "$STACK/default_pools.py" --cloud aio \
        || die "could not create the default subnetpools kuryr and kuryr6"
}

plugin_answers() {
    curl -sf --unix-socket "$PLUGIN_SOCK" -X POST http://plugin/Plugin.Activate | grep -q NetworkDriver
}

# What the running plugin was started from: its code, its config and its venv.
# `make up` restarts the plugin when this changes, so tests always run the checkout's code.
plugin_fingerprint() {
    { find "$REPO/kuryr_cnm" -name '*.py' -print0 | sort -z | xargs -0 cat; cat "$PLUGIN_CONF"; echo "$PROJECT_VENV"; } \
        | sha256sum | cut -c1-16
}

start_plugin() {
    local want; want=$(plugin_fingerprint)
    if pid_alive "$PLUGIN_PID" && [ "$(cat "$RUN/kuryr-cnm.fingerprint" 2>/dev/null)" != "$want" ]; then
        log "kuryr-cnm code or config changed: restarting it"
        stop_plugin
    fi
    if ! pid_alive "$PLUGIN_PID"; then
        log "starting kuryr-cnm as plugin '$PLUGIN_NAME' on $PLUGIN_SOCK"
        mkdir -p "$(dirname "$PLUGIN_SOCK")"
        ( exec setsid "$PROJECT_VENV/bin/kuryr-cnm" serve --config-file "$PLUGIN_CONF" \
            >>"$LOG/kuryr-cnm.log" 2>&1 </dev/null ) &
        echo $! > "$PLUGIN_PID"
        echo "$want" > "$RUN/kuryr-cnm.fingerprint"
    fi
    wait_until 30 plugin_answers || die "kuryr-cnm does not answer on $PLUGIN_SOCK (see $LOG/kuryr-cnm.log)"
}

stop_plugin() { stop_pidfile "$PLUGIN_PID" "kuryr-cnm"; }

status_plugin() {
    report_pidfile kuryr-cnm "$PLUGIN_PID" "$PLUGIN_SOCK, $LOG/kuryr-cnm.log"
}
