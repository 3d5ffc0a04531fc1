# Three Docker engines kept off the host network: Debian 12's dockerd 20.10,
# dockerd 26.1 from Debian 13's package (shared/reference/docker-26.md) and dockerd 28.5
# from sid's (shared/reference/docker-28.md); all read plugins from /run/docker/plugins,
# so one kuryr-cnm socket serves them all.
# shellcheck shell=bash

# Flags that keep dockerd from touching the host's networking.
DOCKERD_NET_FLAGS=(--bridge=none --iptables=false --ip6tables=false --ip-masq=false
                   --ip-forward=false --userland-proxy=false)

# fetch_docker_deb <suite> <root> <file> <package>...: the suite's packages, fetched from the same
# Debian mirror with a private apt state, so the machine's own sources stay untouched, and unpacked
# under <root>; nothing is done when <root>/<file> is there already.
fetch_docker_deb() {
    local suite=$1 root=$2 file=$3; shift 3
    [ -x "$root/$file" ] && return 0
    log "fetching $* (Debian $suite) into $root"
    local d mirror deb
    d=$(mktemp -d); mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    # the machine's own Debian mirror (deb822 'URIs:' or one-line 'deb' sources)
    mirror=$(grep -rhE '^(URIs:|deb) ' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
             /etc/apt/sources.list.d/*.list 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?$' | head -1)
    echo "deb ${mirror:-http://deb.debian.org/debian} $suite main" > "$d/$suite.list"
    local o=(-o "Dir::Etc::sourcelist=$d/$suite.list" -o Dir::Etc::sourceparts=- -o APT::Sandbox::User=root \
             -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache")
    apt-get "${o[@]}" update -qq || die "apt-get update for $suite failed"
    (cd "$d/cache/archives" && apt-get "${o[@]}" download "$@") || die "download of $* ($suite) failed"
    for deb in "$d"/cache/archives/*.deb; do dpkg -x "$deb" "$root" || die "dpkg -x $deb failed"; done
    rm -rf "$d"
}

# dockerd 26.1 from Debian 13 (trixie), driven with Debian 12's docker CLI 20.10 like the 20.10 engine;
# dockerd 28.5 from sid (testing has the same 28.5.2) with its own CLI 28.5 (docker-cli), which has
# what 20.10's lacks for 28's features (`docker network create --ipv4=false`).
install_docker_debs() {
    fetch_docker_deb trixie "$DOCKER26_ROOT" usr/sbin/dockerd docker.io
    fetch_docker_deb sid "$DOCKER28_ROOT" usr/bin/docker docker.io docker-cli
}

docker20() { /usr/bin/docker -H "unix://$DOCKER20_SOCK" "$@"; }
docker26() { /usr/bin/docker -H "unix://$DOCKER26_SOCK" "$@"; }
docker28() { "$DOCKER28_ROOT/usr/bin/docker" -H "unix://$DOCKER28_SOCK" "$@"; }

# start_dockerd <label> <dockerd binary> <socket> <pidfile> <data-root> <exec-root> <log>
start_dockerd() {
    local label=$1 bin=$2 sock=$3 pidfile=$4 data=$5 exec_root=$6 logf=$7
    if pid_alive "$pidfile" && [ -S "$sock" ]; then return 0; fi
    # a stale pidfile from a killed dockerd makes the next one refuse to start
    pid_alive "$pidfile" || rm -f "$pidfile"
    mkdir -p "$data" /etc/docker/plugins /run/docker/plugins
    log "starting $label on $sock"
    ( exec setsid "$bin" --data-root "$data" --exec-root "$exec_root" \
        --host "unix://$sock" --pidfile "$pidfile" --storage-driver overlay2 \
        "${DOCKERD_NET_FLAGS[@]}" ${DOCKERD_EXTRA_FLAGS:-} >>"$logf" 2>&1 </dev/null ) &
}

docker_answers() { "$@" version --format '{{.Server.Version}}'; }

# ensure_image <docker command...>: the test image, built from Debian's busybox-static
# (there is no registry here), imported once per engine.
ensure_image() {
    local cli=("$@")
    "${cli[@]}" image inspect "$TEST_IMAGE" >/dev/null 2>&1 && return 0
    log "importing $TEST_IMAGE into ${cli[*]}"
    local r; r=$(mktemp -d /tmp/bbroot.XXXXXX)
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/run}
    chmod 1777 "$r/tmp"
    cp /bin/busybox "$r/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$r/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
    tar -C "$r" --numeric-owner -cf - . |
        "${cli[@]}" import -c 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' -c 'CMD ["/bin/sh"]' - "$TEST_IMAGE" >/dev/null \
        || die "docker import of $TEST_IMAGE failed"
    rm -rf "$r"
}

# ready_dockerd <docker function> <label> <log>: wait until the engine answers, then give it the test image.
ready_dockerd() {
    wait_until 60 docker_answers "$1" || die "$2 does not answer (see $3)"
    ensure_image "$1"
}

start_docker() {
    start_dockerd "dockerd 20.10" /usr/sbin/dockerd "$DOCKER20_SOCK" "$DOCKER20_PID" \
        /var/lib/docker /var/run/docker "$LOG/dockerd.log"
    start_dockerd "dockerd 26" "$DOCKER26_ROOT/usr/sbin/dockerd" "$DOCKER26_SOCK" "$DOCKER26_PID" \
        /var/lib/docker26 /var/run/docker26 "$LOG/dockerd26.log"
    start_dockerd "dockerd 28" "$DOCKER28_ROOT/usr/sbin/dockerd" "$DOCKER28_SOCK" "$DOCKER28_PID" \
        /var/lib/docker28 /var/run/docker28 "$LOG/dockerd28.log"
    ready_dockerd docker20 "dockerd 20.10" "$LOG/dockerd.log"
    ready_dockerd docker26 "dockerd 26" "$LOG/dockerd26.log"
    ready_dockerd docker28 "dockerd 28" "$LOG/dockerd28.log"
}

# restart_docker20 [--live-restore]: for the fault tests; the flag lasts until the next restart.
restart_docker20() {
    stop_pidfile "$DOCKER20_PID" "dockerd 20.10"
    DOCKERD_EXTRA_FLAGS=${1:-} start_dockerd "dockerd 20.10" /usr/sbin/dockerd "$DOCKER20_SOCK" "$DOCKER20_PID" \
        /var/lib/docker /var/run/docker "$LOG/dockerd.log"
    wait_until 60 docker_answers docker20 || die "dockerd 20.10 does not answer (see $LOG/dockerd.log)"
}

stop_docker() {
    # dockerd stops its containers (10 s timeout each, in parallel) before it exits.
    stop_pidfile "$DOCKER28_PID" "dockerd 28"
    stop_pidfile "$DOCKER26_PID" "dockerd 26"
    stop_pidfile "$DOCKER20_PID" "dockerd 20.10"
}

status_docker() {
    local rc=0
    report_pidfile "dockerd 20.10" "$DOCKER20_PID" "unix://$DOCKER20_SOCK, $LOG/dockerd.log" || rc=1
    report_pidfile "dockerd 26" "$DOCKER26_PID" "unix://$DOCKER26_SOCK, $LOG/dockerd26.log" || rc=1
    report_pidfile "dockerd 28" "$DOCKER28_PID" "unix://$DOCKER28_SOCK, $LOG/dockerd28.log" || rc=1
    return $rc
}
