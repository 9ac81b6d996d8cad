#!/usr/bin/env bash
# matrix.sh: the real-process benchmark matrix of issue 12. Four backends
# (legacy-app, nginx static, a CPU-bound app, a slot-limited app), three
# kinds of client (closed loops that retry at once or honour Retry-After,
# an open loop), each row run straight at the backend, through spillway
# with its default configuration and through HAProxy tuned by hand with the
# backend's capacity known, alternating, in one run; plus a row where the
# backend's service time doubles mid-run. Loopback only.
#
# Usage:  contrib/bench/matrix.sh             (about 15 minutes)
#         QUICK=1 contrib/bench/matrix.sh     (a smoke test, about 4 minutes)
#         SPILLWAY_BIN=path/to/spillway contrib/bench/matrix.sh
# Environment (all optional):
#   SPILLWAY_BIN=path   spillway binary (default: <repo>/src/spillway)
#   LOADGEN=path        loadgen with --closed (default: <repo>/contrib/
#                       loadgen/loadgen; built from loadgen.c into the work
#                       directory if missing or too old)
#   LEGACY_APP=path     default: <repo>/contrib/legacy-app/legacy-app
#   RESULTS_DIR=/tmp/spillway-bench/matrix   matrix-results.md, matrix.svg,
#                       logs/ (every cell's JSON, CSV, configs, daemon logs)
#   BACKENDS="legacy nginx cpu slot"   TARGETS="direct spillway haproxy"
#                       (and "old": SPILLWAY_OLD=path, another spillway with
#                       the same configuration, alternating with the rest,
#                       for a before/after in one run)
#   CLIENTS="retry honour open"        SHIFT=1 (0: no shift row)
#   DURATION=5          seconds per cell; SHIFT_DURATION=2 x DURATION
#   RETRY_MULTS="1 2 4 16"   closed loop retrying at once, x the knee
#   NGINX_CONNS="64 256"     nginx: these connection counts too
#   HONOUR_MULTS="16"        closed loop honouring Retry-After, x the knee
#   OPEN_MULTS="0.5 1 3 10"  open loop, x the capacity
#   NGINX_OPEN_MULTS="0.05 0.1"  nginx (its capacity is the client's)
#   RETRY_CLIENT=loadgen     or wrk: the retry-at-once rows with wrk -t1
#   SWEEP="1 2 3 4 6 8 12 16 32"  SWEEP_SECONDS=1  SWEEP_ROUNDS=2
#   KNEE_FRACTION=0.9
#   <B>_CAPACITY, <B>_KNEE   (B: LEGACY NGINX CPU SLOT) skip B's sweep
#   LEGACY_WORKERS=4  CPU_WORK_MS=5  SLOT_SLOTS=8  SLOT_SERVICE_MS=15
#   SLO_MS=500  TIMEOUT=2 (per request, s)  OPEN_CONN_CAP=4000
#   HAPROXY_TIMEOUT_QUEUE=250ms  KEEP_WORKDIR=0
#   REPEATS=1           each row's cells this many times over, alternating;
#                       the tables give each target's median
# See contrib/bench/README.md.
set -eu
BENCH_NAME=matrix
. "$(dirname "$0")/lib.sh"
set -o pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    q() { printf '%s' "$1"; }
else
    q() { printf '%s' "$2"; }
fi
SPILLWAY_BIN=${SPILLWAY_BIN:-${SPILLWAY:-$REPO_DIR/src/spillway}}
LOADGEN=${LOADGEN:-$REPO_DIR/contrib/loadgen/loadgen}
LEGACY_APP=${LEGACY_APP:-$REPO_DIR/contrib/legacy-app/legacy-app}
RESULTS_DIR=${RESULTS_DIR:-/tmp/spillway-bench/matrix}
BACKENDS=${BACKENDS:-legacy nginx cpu slot}
TARGETS=${TARGETS:-direct spillway haproxy}
CLIENTS=${CLIENTS:-retry honour open}
SHIFT=${SHIFT:-1}
DURATION=${DURATION:-$(q 2 5)}
SHIFT_DURATION=${SHIFT_DURATION:-$((2 * DURATION))}
RETRY_MULTS=${RETRY_MULTS:-$(q "1 16" "1 2 4 16")}
NGINX_CONNS=${NGINX_CONNS:-$(q "256" "64 256")}
HONOUR_MULTS=${HONOUR_MULTS:-16}
OPEN_MULTS=${OPEN_MULTS:-$(q "3" "0.5 1 3 10")}
NGINX_OPEN_MULTS=${NGINX_OPEN_MULTS:-$(q "0.1" "0.05 0.1")}
RETRY_CLIENT=${RETRY_CLIENT:-loadgen}
SWEEP=${SWEEP:-$(q "1 2 4 8 16" "1 2 3 4 6 8 12 16 32")}
SWEEP_SECONDS=${SWEEP_SECONDS:-1}
SWEEP_ROUNDS=${SWEEP_ROUNDS:-$(q 1 2)}
KNEE_FRACTION=${KNEE_FRACTION:-0.9}
LEGACY_WORKERS=${LEGACY_WORKERS:-4}
CPU_WORK_MS=${CPU_WORK_MS:-5}
SLOT_SLOTS=${SLOT_SLOTS:-8}
SLOT_SERVICE_MS=${SLOT_SERVICE_MS:-15}
SLO_MS=${SLO_MS:-500}
TIMEOUT=${TIMEOUT:-2}
OPEN_CONN_CAP=${OPEN_CONN_CAP:-4000}
HAPROXY_TIMEOUT_QUEUE=${HAPROXY_TIMEOUT_QUEUE:-250ms}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}
REPEATS=${REPEATS:-1}

for v in DURATION SHIFT_DURATION SWEEP_ROUNDS LEGACY_WORKERS SLOT_SLOTS \
    OPEN_CONN_CAP REPEATS; do
    case ${!v} in ''|*[!0-9]*) die "$v must be a whole number (got '${!v}')" ;; esac
    [ "${!v}" -ge 1 ] || die "$v must be at least 1"
done
for v in CPU_WORK_MS SLOT_SERVICE_MS SLO_MS TIMEOUT KNEE_FRACTION SWEEP_SECONDS; do
    case ${!v} in ''|*[!0-9.]*) die "$v must be a number (got '${!v}')" ;; esac
done
for v in $RETRY_MULTS $HONOUR_MULTS $OPEN_MULTS $NGINX_OPEN_MULTS $NGINX_CONNS $SWEEP; do
    case $v in ''|*[!0-9.]*) die "not a number in a list: '$v'" ;; esac
done
for b in $BACKENDS; do
    case $b in legacy|nginx|cpu|slot) ;; *) die "unknown backend '$b' in BACKENDS" ;; esac
done
for t in $TARGETS; do
    case $t in
        direct|spillway|haproxy) ;;
        old) [ -x "${SPILLWAY_OLD:-}" ] ||
                 die "TARGETS names old: set SPILLWAY_OLD to an executable spillway" ;;
        *) die "unknown target '$t' in TARGETS" ;;
    esac
done
for c in $CLIENTS; do
    case $c in retry|honour|open) ;; *) die "unknown client '$c' in CLIENTS" ;; esac
done
case $RETRY_CLIENT in loadgen|wrk) ;; *) die "RETRY_CLIENT must be loadgen or wrk" ;; esac

# ---------------------------------------------------------------- prerequisites
need python3 python3
need "${CC:-cc}" build-essential
case " $TARGETS " in *" haproxy "*) need haproxy haproxy ;; esac
case " $BACKENDS " in *" nginx "*) need nginx nginx-light ;; esac
[ "$RETRY_CLIENT" = wrk ] && need wrk wrk
[ "$missing" = 0 ] || die "prerequisites missing, see above"
case " $BACKENDS " in *" legacy "*)
    [ -x "$LEGACY_APP" ] || die "no legacy-app at $LEGACY_APP (build it with make, or set LEGACY_APP=)" ;;
esac
case " $TARGETS " in *" spillway "*)
    [ -x "$SPILLWAY_BIN" ] || die "no spillway at $SPILLWAY_BIN (build it with make, or set SPILLWAY_BIN=)" ;;
esac

WORK=$(mktemp -d /tmp/spillway-matrix.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/cells" "$RESULTS_DIR"
NOTES=$WORK/notes.txt
: > "$NOTES"
: > "$WORK/cells.tsv"
: > "$WORK/backends.tsv"
note() { log "note: $*"; printf '%s\n' "$*" >> "$NOTES"; }

# ---------------------------------------------------------------- cleanup
PIDS=()          # every process started in the background, still to stop
BACKEND_PIDS=
stop_pid() { # stop_pid PID [CHILD...]: TERM, up to 5 s, then KILL; reap;
    # then KILL the children named if their parent left them behind
    local pid=$1 _ k
    shift
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "pid $pid did not stop on SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    for k in "$@"; do alive "$k" && kill -KILL "$k" 2>/dev/null; done
    return 0
}
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    set +e
    # the client first, the backend (started first) last
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    for i in $BACKEND_PIDS; do alive "$i" && kill -KILL "$i" 2>/dev/null; done
    rm -rf "$RESULTS_DIR/logs"
    mkdir -p "$RESULTS_DIR/logs"
    cp -r "$WORK"/cells "$WORK"/*.tsv "$WORK"/*.txt "$WORK"/*.log \
        "$WORK"/*.ini "$WORK"/*.cfg "$WORK"/*.conf "$RESULTS_DIR/logs/" 2>/dev/null
    if [ "$KEEP_WORKDIR" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- tools
lg_help=$("$LOADGEN" --help 2>&1 || true)
if ! printf '%s\n' "$lg_help" | grep -q -- --closed; then
    log "no loadgen with --closed at $LOADGEN; building it from contrib/loadgen/loadgen.c"
    # shellcheck disable=SC2046
    "${CC:-cc}" -std=c11 -D_GNU_SOURCE -O2 -o "$WORK/loadgen" \
        "$REPO_DIR/contrib/loadgen/loadgen.c" \
        $(pkg-config --cflags --libs libevent_core 2>/dev/null || echo -levent_core) -lm \
        || die "cannot build loadgen (needs libevent-dev); build it with make"
    LOADGEN=$WORK/loadgen
fi
MB=$WORK/matrix_backend
"${CC:-cc}" -std=c11 -D_GNU_SOURCE -O2 -pthread -o "$MB" \
    "$SCRIPT_DIR/matrix_backend.c" || die "cannot build matrix_backend.c"
MPY=$SCRIPT_DIR/matrix.py

NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
[ "$OPEN_CONN_CAP" -le $((NOFILE - 256)) ] || OPEN_CONN_CAP=$((NOFILE - 256))
HAPROXY_MAXCONN=$(( (NOFILE - 200) / 2 ))
[ "$HAPROXY_MAXCONN" -gt 10000 ] && HAPROXY_MAXCONN=10000
read -r BACKEND_PORT SPILLWAY_PORT ADMIN_PORT HAPROXY_PORT <<EOF
$(free_ports 4)
EOF
CLK_TCK=$(getconf CLK_TCK)

tcp_up() { # tcp_up PORT: something accepts on 127.0.0.1:PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
admin_get() { # admin_get PATH: the body of spillway's admin answer
    (
        exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3
        timeout 2 cat <&3 | tr -d '\r' | sed '1,/^$/d'
    )
}
calc() { awk "BEGIN { print $1 }"; } # calc EXPR: floating-point arithmetic

# ---------------------------------------------------------------- backends
write_backend_conf "$WORK" "$BACKEND_PORT"
BACKEND_PID=""   # BACKEND_PIDS: the backend's pids, its own first (nginx: + workers)
start_backend() { # start_backend KIND
    local kind=$1 log=$WORK/backend-$1.log
    case $kind in
        legacy) "$LEGACY_APP" --port "$BACKEND_PORT" --workers "$LEGACY_WORKERS" \
                    --quiet >>"$log" 2>&1 & ;;
        nginx) nginx -p "$WORK/backend" -c "$WORK/backend.conf" -g 'daemon off;' \
                    >>"$log" 2>&1 & ;;
        cpu) "$MB" --mode cpu --work-ms "$CPU_WORK_MS" --port "$BACKEND_PORT" \
                    >>"$log" 2>&1 & ;;
        slot) "$MB" --mode slot --slots "$SLOT_SLOTS" \
                    --service-ms "$SLOT_SERVICE_MS" --port "$BACKEND_PORT" \
                    >>"$log" 2>&1 & ;;
    esac
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    if ! wait_up "$kind" "$BACKEND_PID" "not listening on 127.0.0.1:$BACKEND_PORT" \
        tcp_up "$BACKEND_PORT"; then
        tail -n 20 "$log" >&2
        return 1
    fi
    BACKEND_PIDS=$BACKEND_PID
    if [ "$kind" = nginx ]; then
        BACKEND_PIDS="$BACKEND_PID $(children_of "$BACKEND_PID" | tr '\n' ' ')"
    fi
}
stop_backend() {
    [ -n "$BACKEND_PID" ] || return 0
    # shellcheck disable=SC2086
    stop_pid $BACKEND_PIDS
    forget "$BACKEND_PID"
    BACKEND_PID=""
    BACKEND_PIDS=""
}
backend_desc() { # backend_desc KIND
    case $1 in
        legacy) echo "contrib/legacy-app, $LEGACY_WORKERS workers (SQLite scan per request)" ;;
        nginx) echo "nginx, 1 worker, return 200 (lib.sh)" ;;
        cpu) echo "${CPU_WORK_MS} ms of CPU per request, a thread per connection (matrix_backend.c)" ;;
        slot) echo "$SLOT_SLOTS slots of ${SLOT_SERVICE_MS} ms, 500 at once beyond (matrix_backend.c)" ;;
    esac
}

# ---------------------------------------------------------------- proxies
write_proxy_configs() { # write_proxy_configs KNEE
    # spillway: its defaults; only the addresses, no access log, an admin
    # listener to read the limit from.
    cat > "$WORK/spillway.ini" <<EOF
[proxy]
listen = 127.0.0.1:$SPILLWAY_PORT
access_log = off
[backend]
server = 127.0.0.1:$BACKEND_PORT
[admin]
listen = 127.0.0.1:$ADMIN_PORT
EOF
    # HAProxy tuned by hand: at most KNEE requests at the server, the rest
    # wait in its queue up to HAPROXY_TIMEOUT_QUEUE, then 503.
    haproxy_http_conf 1 "$HAPROXY_MAXCONN" "127.0.0.1:$HAPROXY_PORT" \
        "127.0.0.1:$BACKEND_PORT maxconn $1" "$HAPROXY_TIMEOUT_QUEUE" \
        > "$WORK/haproxy.cfg"
}
PROXY_PID=""
start_proxy() { # start_proxy spillway|haproxy
    local port
    case $1 in
        spillway) "$SPILLWAY_BIN" -c "$WORK/spillway.ini" >>"$WORK/spillway.log" 2>&1 &
                  port=$SPILLWAY_PORT ;;
        old) "$SPILLWAY_OLD" -c "$WORK/spillway.ini" >>"$WORK/old.log" 2>&1 &
             port=$SPILLWAY_PORT ;;
        haproxy) haproxy -f "$WORK/haproxy.cfg" -db >>"$WORK/haproxy.log" 2>&1 &
                 port=$HAPROXY_PORT ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    if ! wait_up "$1" "$PROXY_PID" "not listening on 127.0.0.1:$port" tcp_up "$port"; then
        tail -n 20 "$WORK/$1.log" >&2
        return 1
    fi
}
stop_proxy() {
    [ -n "$PROXY_PID" ] || return 0
    stop_pid "$PROXY_PID"
    forget "$PROXY_PID"
    PROXY_PID=""
}

# ---------------------------------------------------------------- clients
cat > "$WORK/matrix.lua" <<EOF
-- wrk: count the statuses of the responses (per thread, summed in done())
-- and the share of responses answered within the SLO (wrk's histogram holds
-- them all, whatever the status): the highest percentile within it, found
-- by bisection
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok, s429, s503, s502, s504, other = 0, 0, 0, 0, 0, 0 end
function response(status, headers, body)
    if status >= 200 and status < 300 then ok = ok + 1
    elseif status == 429 then s429 = s429 + 1
    elseif status == 503 then s503 = s503 + 1
    elseif status == 502 then s502 = s502 + 1
    elseif status == 504 then s504 = s504 + 1
    else other = other + 1 end
end
function done(summary, latency, requests)
    local t = { ok = 0, s429 = 0, s503 = 0, s502 = 0, s504 = 0, other = 0 }
    for _, th in ipairs(threads) do
        for k, _ in pairs(t) do t[k] = t[k] + th:get(k) end
    end
    local lo, hi = 0, 100
    if latency:percentile(100) <= $(calc "int($SLO_MS * 1000)") then lo = 100 end
    for _ = 1, 40 do
        local mid = (lo + hi) / 2
        if latency:percentile(mid) <= $(calc "int($SLO_MS * 1000)") then lo = mid else hi = mid end
    end
    local n = t.ok + t.s429 + t.s503 + t.s502 + t.s504 + t.other
    local within = math.floor(n * lo / 100)
    local e = summary.errors
    io.write(string.format("MATRIX ok=%d s429=%d s503=%d s502=%d s504=%d other=%d within_slo=%d p50_us=%d p99_us=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
        t.ok, t.s429, t.s503, t.s502, t.s504, t.other, within,
        latency:percentile(50), latency:percentile(99),
        e.connect, e.read, e.write, e.timeout))
end
EOF

CLIENT_PID=""
start_client() { # start_client CELL CLIENT PARAM PORT SECONDS: in the background
    local cell=$1 client=$2 param=$3 port=$4 secs=$5 args conns
    case $client in
        retry|shift)
            # the shift's halves need loadgen's per-second counts
            if [ "$RETRY_CLIENT" = wrk ] && [ "$client" = retry ]; then
                timeout -k 5 $((secs + 30)) wrk -t1 -c"$param" -d"${secs}s" \
                    --timeout "${TIMEOUT}s" -s "$WORK/matrix.lua" \
                    "http://127.0.0.1:$port/" >"$WORK/cells/$cell.wrk" 2>&1 &
                CLIENT_PID=$!
                PIDS+=("$CLIENT_PID")
                return 0
            fi
            args=(--closed "$param") ;;
        honour) args=(--closed "$param" --honour-retry-after) ;;
        open)
            conns=$(calc "int($param * $TIMEOUT + 0.999) + 64")
            [ "$conns" -le "$OPEN_CONN_CAP" ] || conns=$OPEN_CONN_CAP
            args=(--rate "$param" --connections "$conns") ;;
    esac
    "$LOADGEN" "${args[@]}" --duration "$secs" --timeout "$TIMEOUT" \
        --slo "$SLO_MS" --quiet --tally-header Spillway-Reason \
        --csv "$WORK/cells/$cell.csv" --json "$WORK/cells/$cell.json" \
        "http://127.0.0.1:$port/" 2>"$WORK/cells/$cell.loadgen.log" &
    CLIENT_PID=$!
    PIDS+=("$CLIENT_PID")
}
wait_client() { # wait_client CELL: 0 if the client left its results
    local rc=0
    wait "$CLIENT_PID" || rc=$?
    forget "$CLIENT_PID"
    CLIENT_PID=""
    if [ -f "$WORK/cells/$1.wrk" ]; then
        grep -q '^MATRIX ' "$WORK/cells/$1.wrk" || rc=1
        [ "$rc" = 0 ] && return 0
    elif [ "$rc" = 0 ] && [ -s "$WORK/cells/$1.json" ]; then
        return 0
    fi
    log "client failed ($rc) in $1:"
    tail -n 5 "$WORK/cells/$1".*log "$WORK/cells/$1.wrk" 2>/dev/null >&2
    return 1
}

# ---------------------------------------------------------------- one cell
# cell_line FIELD...: one line of cells.tsv, the 16 columns matrix.py reads
# (backend row client param label target status seconds proxy_cpu
# backend_cpu other_load limit_med limit_end prefix slo rep)
cell_line() {
    [ $# -eq 16 ] || die "cell_line: $# fields, not 16"
    local IFS=$'\t'
    printf '%s\n' "$*" >> "$WORK/cells.tsv"
}

# run_cell B ROW CLIENT PARAM LABEL TARGET [SECONDS [REP]]: one run of one
# client against one target (REP: the how-manyth of REPEATS; cells after the
# first are named ...-kREP); a line in cells.tsv. Open-loop and shift cells start
# with a fresh backend (an overloaded one keeps working for clients gone).
run_cell() {
    local b=$1 row=$2 client=$3 param=$4 label=$5 target=$6 secs=${7:-$DURATION}
    local rep=${8:-1} cell="$b-r$row-$target" port status=ok t0 t1 p0 p1 b0 b1 f tf0 tf1 fpid
    local lim_med="" lim_end="" pcpu="" bcpu="" other=""
    [ "$rep" -gt 1 ] && cell="$cell-k$rep"
    if [ "$client" = open ] || [ "$client" = shift ] || ! alive "${BACKEND_PID:-0}"; then
        stop_backend
        start_backend "$b" || { note "$b did not restart for $cell"; return 0; }
    fi
    # other tenants' CPU time from here to the proxy's stop (the snapshots
    # run beside the proxy's start and stop: they take a while)
    tf0=$(date +%s%N)
    foreign_ticks "$WORK/foreign.json" &
    fpid=$!
    case $target in
        direct) port=$BACKEND_PORT ;;
        spillway|old) port=$SPILLWAY_PORT ;;
        haproxy) port=$HAPROXY_PORT ;;
    esac
    if [ "$target" != direct ] && ! start_proxy "$target"; then
        stop_proxy
        wait "$fpid" || true
        cell_line "$b" "$row" "$client" "$param" "$label" "$target" \
            "proxy-did-not-start" "" "" "" "" "" "" "" "" "$rep"
        return 0
    fi
    log "$b row $row, $client $label -> $target"
    wait "$fpid" || true
    # shellcheck disable=SC2086
    b0=$(cpu_ticks $BACKEND_PIDS)
    p0=$( [ -n "$PROXY_PID" ] && cpu_ticks "$PROXY_PID" || echo 0)
    t0=$(date +%s%N)
    start_client "$cell" "$client" "$param" "$port" "$secs"
    if [ "$client" = shift ]; then
        # half-way, the backend's service time doubles (legacy-app: its
        # data doubles; matrix_backend: SIGUSR1)
        sleep "$(calc "$secs / 2")"
        kill -USR1 "$BACKEND_PID" 2>/dev/null || note "$cell: could not signal the backend"
    fi
    wait_client "$cell" || status="client-failed"
    t1=$(date +%s%N)
    # shellcheck disable=SC2086
    b1=$(cpu_ticks $BACKEND_PIDS)
    p1=$( [ -n "$PROXY_PID" ] && cpu_ticks "$PROXY_PID" || echo 0)
    foreign_ticks "$WORK/foreign.json" delta > "$WORK/foreign.delta" &
    fpid=$!
    local ms=$(( (t1 - t0) / 1000000 ))
    [ "$ms" -gt 0 ] || ms=1
    bcpu=$(( (b1 - b0) * 100000 / CLK_TCK / ms ))
    [ "$target" != direct ] && pcpu=$(( (p1 - p0) * 100000 / CLK_TCK / ms ))
    if [ "$target" = spillway ]; then
        # the limit's once-a-second history, read after the cell: nothing
        # polls spillway during it (see matrix.py limits)
        python3 "$MPY" limits "$ADMIN_PORT" > "$WORK/cells/$cell.limit" 2>/dev/null || true
        admin_get /metrics > "$WORK/cells/$cell.metrics" 2>/dev/null || true
        lim_med=$(sort -n "$WORK/cells/$cell.limit" |
            awk '{v[NR] = $1} END { if (NR) print v[int((NR + 1) / 2)] }')
        lim_end=$(awk '$1 == "spillway_concurrency_limit" { print $2 }' \
            "$WORK/cells/$cell.metrics")
    fi
    if [ -n "$PROXY_PID" ] && ! alive "$PROXY_PID"; then
        status="died"
        note "$target died during $cell: see logs/$target.log"
    fi
    stop_proxy
    wait "$fpid" || true
    tf1=$(date +%s%N)
    f=$(cat "$WORK/foreign.delta" 2>/dev/null || echo 0)
    other=$(( ${f:-0} * 100000 / CLK_TCK / ((tf1 - tf0) / 1000000 + 1) ))
    cell_line "$b" "$row" "$client" "$param" "$label" "$target" "$status" \
        "$secs" "$pcpu" "$bcpu" "$other" "$lim_med" "$lim_end" "cells/$cell" \
        "$SLO_MS" "$rep"
}

# ---------------------------------------------------------------- capacity
# sweep B: closed loop straight at the backend for each user count in SWEEP,
# SWEEP_ROUNDS times over (other tenants only ever slow a run down: the best
# round counts); sets CAP (best 2xx/s) and KNEE (fewest users reaching
# KNEE_FRACTION of it).
sweep() {
    local b=$1 u j r
    for r in $(seq "$SWEEP_ROUNDS"); do
        for u in $SWEEP; do
            j=$WORK/cells/sweep-$b-$u-$r.json
            "$LOADGEN" --closed "$u" --duration "$SWEEP_SECONDS" --timeout "$TIMEOUT" \
                --slo "$SLO_MS" --quiet --csv /dev/null --json "$j" \
                "http://127.0.0.1:$BACKEND_PORT/" 2>/dev/null ||
                note "sweep of $b at $u users failed"
        done
    done
    read -r CAP KNEE <<EOF
$(python3 "$MPY" knee "$WORK" "$b" "$KNEE_FRACTION" "$SWEEP" "$SWEEP_ROUNDS")
EOF
    [ -n "$KNEE" ] || die "no capacity measured for $b"
}

mult() { calc "int($1 * $2 + 0.5) < 1 ? 1 : int($1 * $2 + 0.5)"; }  # users

# ---------------------------------------------------------------- run
T_BEGIN=$(date +%s)
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "spillway=$SPILLWAY_BIN"
    echo "old=${SPILLWAY_OLD:-}"
    # the last commit that touched the sources, if the binary sits in a checkout
    echo "spillway_rev=$(cd "$(dirname "$SPILLWAY_BIN")" 2>/dev/null &&
        git log -1 --format='%h %s' -- . 2>/dev/null | cut -c1-60)"
    echo "haproxy=$(haproxy -v 2>/dev/null | sed -n '1s/HAProxy version \([^ ]*\).*/\1/p')"
    echo "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')"
    echo "machine=$(getconf _NPROCESSORS_ONLN) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), kernel $(uname -r)"
    echo "duration=$DURATION"
    echo "shift_duration=$SHIFT_DURATION"
    echo "slo_ms=$SLO_MS"
    echo "timeout=$TIMEOUT"
    echo "retry_client=$RETRY_CLIENT"
    echo "repeats=$REPEATS"
} > "$WORK/meta.txt"
log "spillway: $SPILLWAY_BIN; backend port $BACKEND_PORT, spillway $SPILLWAY_PORT (admin $ADMIN_PORT), haproxy $HAPROXY_PORT"

write_proxy_configs 1
case " $TARGETS " in *" spillway "*)
    out=$("$SPILLWAY_BIN" -t -c "$WORK/spillway.ini" 2>&1) ||
        die "spillway -t rejects its configuration: $out" ;;
esac

ROW=0
for b in $BACKENDS; do
    B=$(echo "$b" | tr '[:lower:]' '[:upper:]')
    cv=${B}_CAPACITY kv=${B}_KNEE
    start_backend "$b" || die "$b did not start"
    if [ -n "${!cv:-}" ] && [ -n "${!kv:-}" ]; then
        CAP=${!cv} KNEE=${!kv} SRC="given ($cv, $kv)"
    else
        log "$b: closed-loop sweep, users $SWEEP, ${SWEEP_SECONDS}s each"
        sweep "$b"
        SRC=measured
    fi
    CAP_AFTER=""
    if [ "$SHIFT" = 1 ] && [ "$b" = legacy ]; then
        # capacity once the service time has doubled
        kill -USR1 "$BACKEND_PID"
        sleep 1
        "$LOADGEN" --closed "$KNEE" --duration "$SWEEP_SECONDS" --quiet --csv /dev/null \
            --json "$WORK/cells/sweep-$b-after.json" "http://127.0.0.1:$BACKEND_PORT/" 2>/dev/null
        CAP_AFTER=$(sed -n 's/.*"goodput": \([0-9.]*\).*/\1/p' "$WORK/cells/sweep-$b-after.json")
        stop_backend
        start_backend "$b" || die "$b did not restart"
    fi
    log "$b: capacity $CAP 2xx/s, knee $KNEE users ($SRC)${CAP_AFTER:+; $CAP_AFTER 2xx/s at twice the service time}"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$b" "$CAP" "$KNEE" "$SRC" "$(backend_desc "$b")" \
        "$CAP_AFTER" >> "$WORK/backends.tsv"
    write_proxy_configs "$KNEE"

    # the rows: CLIENT PARAM LABEL
    : > "$WORK/rows.txt"
    for c in $CLIENTS; do
        case $c in
            retry)
                users=""
                for m in $RETRY_MULTS; do users="$users $(mult "$m" "$KNEE"):${m}x"; done
                [ "$b" = nginx ] && for n in $NGINX_CONNS; do users="$users $n:"; done
                # shellcheck disable=SC2086
                printf '%s\n' $users | sort -t: -k1,1n -u | while IFS=: read -r u m; do
                    [ -n "$u" ] || continue
                    if [ -n "$m" ]; then l="$m ($u users)"; else l="$u users"; fi
                    echo "retry $u $l"
                done >> "$WORK/rows.txt" ;;
            honour)
                for m in $HONOUR_MULTS; do
                    u=$(mult "$m" "$KNEE")
                    echo "honour $u ${m}x ($u users)"
                done >> "$WORK/rows.txt" ;;
            open)
                ms=$OPEN_MULTS
                [ "$b" = nginx ] && ms=$NGINX_OPEN_MULTS
                for m in $ms; do
                    r=$(mult "$m" "$CAP")
                    echo "open $r ${m}x ($r/s)"
                done >> "$WORK/rows.txt" ;;
        esac
    done
    if [ "$SHIFT" = 1 ] && [ "$b" = legacy ]; then
        u=$(mult 4 "$KNEE")
        echo "shift $u 4x ($u users), x2 slower at $((SHIFT_DURATION / 2))s" >> "$WORK/rows.txt"
    fi

    # each row against every target, REPEATS times over, the order turning
    # from round to round and from row to row
    while read -r client param label <&3; do
        ROW=$((ROW + 1))
        secs=$DURATION
        [ "$client" = shift ] && secs=$SHIFT_DURATION
        # shellcheck disable=SC2086
        set -- $TARGETS
        n=$#
        for rep in $(seq "$REPEATS"); do
            for i in $(seq 0 $((n - 1))); do
                k=$(( (i + ROW + rep - 1) % n + 1 ))
                run_cell "$b" "$ROW" "$client" "$param" "$label" "${!k}" \
                    "$secs" "$rep"
            done
        done
    done 3< "$WORK/rows.txt"
    stop_backend
done
T_END=$(date +%s)
echo "took=$((T_END - T_BEGIN))" >> "$WORK/meta.txt"

# ---------------------------------------------------------------- report
python3 "$MPY" report "$WORK" "$RESULTS_DIR/matrix-results.md" "$RESULTS_DIR/matrix.svg"
log "results: $RESULTS_DIR/matrix-results.md, $RESULTS_DIR/matrix.svg (logs in $RESULTS_DIR/logs)"
