# shellcheck shell=bash
# shellcheck disable=SC2034  # missing is read by the sourcing script
# lib.sh: helpers shared by the benchmark scripts, sourced by them.
# The sourcing script sets BENCH_NAME (the prefix of its log lines) and
# keeps its own list of processes; nothing here starts one.

log() { printf '[%s %s] %s\n' "${BENCH_NAME:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

missing=0
need() { # need BINARY DEBIAN_PACKAGE: note a missing tool in $missing
    if ! command -v "$1" >/dev/null 2>&1; then
        log "missing '$1' (Debian package: $2; apt-get install -y $2)"
        missing=1
    fi
}

alive() { # alive PID: running and not a zombie
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ] && [ "${st%% *}" != X ]
}

children_of() { # children_of PID: direct children pids
    # one pass of awk over every /proc/PID/stat: a shell loop with a cat
    # per process takes seconds on a busy machine
    # (a process may go between the glob and cat: not an error, whatever
    # pipefail says)
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v p="$1" '{
        pid = $1; s = $0; sub(/.*\) /, "", s); split(s, f, " ")
        if (f[2] == p) print pid }'
}

wait_up() { # wait_up NAME PID WHAT CMD...: CMD succeeds within 10 s, PID alive
    local name=$1 pid=$2 what=$3 _
    shift 3
    for _ in $(seq 100); do
        if ! alive "$pid"; then
            log "$name (pid $pid) exited during start-up"
            return 1
        fi
        if "$@"; then return 0; fi
        sleep 0.1
    done
    log "$name (pid $pid) $what after 10 s"
    return 1
}

free_ports() { # free_ports N: N loopback ports free right now
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

stop_all() { # stop_all PID...: TERM all, wait up to 5 s in total, then KILL; reap
    local pid _ left
    for pid in "$@"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 50); do
        left=0
        for pid in "$@"; do alive "$pid" && left=1; done
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    for pid in "$@"; do
        if alive "$pid"; then
            log "pid $pid did not stop on SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    for pid in "$@"; do wait "$pid" 2>/dev/null; done
    return 0
}

cpu_ticks() { # cpu_ticks PID...: utime+stime summed (all threads)
    local sum=0 pid st
    for pid in "$@"; do
        st=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        st=${st##*) }
        # shellcheck disable=SC2086
        set -- $st
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}

hwm_kb() { # hwm_kb PID...: VmHWM summed, kB
    local sum=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || v=0
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# CPU ticks used by processes outside this script's process group (the
# daemons, wrk and the samplers are all in it), kernel threads left out:
# a rough measure of other tenants' load during a run. "foreign_ticks FILE"
# saves a snapshot; "foreign_ticks FILE delta" prints the ticks used since,
# by processes alive at the second call (an exited one is not counted).
# One awk pass over /proc: quick enough to run around every short run.
foreign_ticks() {
    local mine
    mine=$(ps -o pgid= $$ | tr -d ' ')
    # fields after "pid (comm) ": 1 state, 2 ppid, 3 pgrp, 12 utime,
    # 13 stime, 20 starttime; a process is pid:starttime
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v mine="$mine" '{
        pid = $1; s = $0; sub(/.*\) /, "", s); split(s, f, " ")
        if (f[3] == mine || pid == 2 || f[2] == 2) next
        print pid ":" f[20], f[12] + f[13] }' > "$1.now"
    if [ "${2:-}" = delta ]; then
        awk 'NR == FNR { before[$1] = $2; next }
             { d = $2 - before[$1]; if (d > 0) sum += d }
             END { print sum + 0 }' "$1" "$1.now"
        rm -f "$1.now"
    else
        mv "$1.now" "$1"
    fi
}

# write_backend_conf WORK PORT: WORK/backend.conf, the fast backend of the
# pass-through and TLS benchmarks: nginx, 1 worker, answering 200 "ok\n"
# with keep-alive on 127.0.0.1:PORT. Its files go in WORK/backend.
write_backend_conf() {
    local WORK=$1 BACKEND_PORT=$2 NGINX_USER=""
    [ "$(id -u)" = 0 ] && NGINX_USER="user root root;"
    mkdir -p "$WORK/backend"
    cat > "$WORK/backend.conf" <<EOF
    $NGINX_USER
    worker_processes 1;
    pid $WORK/backend/nginx.pid;
    error_log $WORK/backend.stderr warn;
    events { worker_connections 16384; }
    http {
        access_log off;
        client_body_temp_path $WORK/backend/cbt;
        proxy_temp_path $WORK/backend/pt;
        fastcgi_temp_path $WORK/backend/ft;
        uwsgi_temp_path $WORK/backend/ut;
        scgi_temp_path $WORK/backend/st;
        keepalive_timeout 300s;
        keepalive_requests 100000000;
        default_type text/plain;
        server {
            listen 127.0.0.1:$BACKEND_PORT backlog=4096;
            location / { return 200 "ok\n"; }
        }
    }
EOF
}

# forget PID: drop it from the caller's PIDS array (stopped by other means)
forget() { # forget PID: drop from PIDS
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# spillway_tls_ini TLSPORT PLAINPORT|- PROTOCOLS RESUME(0|1) CERTDIR BACKENDPORT:
# a spillway configuration for the TLS benchmarks on stdout (no limit, no
# queue, no log; CERTDIR holds server.pem and server.key)
spillway_tls_ini() {
    printf '[proxy]\n'
    [ "$2" != - ] && printf 'listen = 127.0.0.1:%s\n' "$2"
    cat <<EOF
access_log = off
max_connections = 10000
[backend]
server = 127.0.0.1:$6
keepalive = 64
[limiter]
algorithm = fixed
limit = 10000
max_limit = 10000
queue_size = 0
[tls]
listen = 127.0.0.1:$1
certificate = $5/server.pem
private_key = $5/server.key
protocols = $3
EOF
    if [ "$4" = 1 ]; then
        printf 'session_tickets = yes\nsession_cache = 20000\n'
    else
        printf 'session_tickets = no\nsession_cache = 0\n'
    fi
}

# haproxy_http_conf THREADS MAXCONN BINDS SERVER [QUEUE [GLOBAL...]]: on
# stdout, HAProxy as every benchmark runs it: HTTP keep-alive on both
# sides, backend connections reused, one server. BINDS: one or more
# "ADDR:PORT [options]" separated by ';'; SERVER: "ADDR:PORT [options]"
# (say, maxconn N); QUEUE: its timeout queue (empty: none); GLOBAL: more
# lines for the global section (say, tune.ssl.cachesize 0).
haproxy_http_conf() {
    local threads=$1 maxconn=$2 binds=$3 server=$4 queue=${5:-} b
    shift 4
    [ $# -gt 0 ] && shift
    printf 'global\n    nbthread %s\n    maxconn %s\n' "$threads" "$maxconn"
    for b in "$@"; do printf '    %s\n' "$b"; done
    cat <<EOT
defaults
    mode http
    maxconn $maxconn
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 300s
EOT
    [ -n "$queue" ] && printf '    timeout queue %s\n' "$queue"
    printf 'frontend fe\n'
    local IFS=';'
    for b in $binds; do printf '    bind %s\n' "${b# }"; done
    printf '    default_backend be\nbackend be\n    server s1 %s\n' "$server"
}
