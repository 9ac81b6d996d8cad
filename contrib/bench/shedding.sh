#!/usr/bin/env bash
# shedding.sh: load shedding under overload. A backend that collapses when
# requests pile up (contrib/bench/collapse_backend.py: 4 workers, 20 ms per
# request, slower as the backlog grows) is driven open-loop (a fixed arrival
# rate whatever the answers, contrib/loadgen) at 5x its capacity: directly,
# behind spillway (only "algorithm = gradient"), behind HAProxy tuned by hand
# (server maxconn = workers, timeout queue) and behind nginx (plain, and with
# max_conns); then behind spillway while the backend's capacity doubles and
# halves mid-run.
#
# Usage:  contrib/bench/shedding.sh
# Environment (all optional):
#   SPILLWAY=path        spillway binary (default: <repo>/src/spillway)
#   LOADGEN=path         loadgen binary (default: <repo>/contrib/loadgen/loadgen;
#                        built from loadgen.c into the work directory if missing)
#   SETUPS="..."         subset of "direct spillway haproxy nginx nginx-maxconns
#                        old" (old: SPILLWAY_OLD, another spillway binary with
#                        the same configuration, for a before/after in one run)
#   SHIFT=1              0 skips the capacity shift run behind spillway
#   BACKEND=collapse     or legacy-app: the demo's SQLite app
#                        (contrib/legacy-app; no shift run, SERVICE_MS and
#                        DEGRADE do not apply; LEGACY_APP=path to the binary)
#   WORKERS=4 SERVICE_MS=20 DEGRADE=0.1   the backend
#   PROXY_THREADS=1      spillway workers, HAProxy nbthread, nginx
#                        worker_processes
#   OVERLOAD=5           offered rate = OVERLOAD x measured capacity
#   DURATION=20          seconds of load per overload run
#   TIMEOUT=5            loadgen per-request timeout, seconds
#   CONNECTIONS=auto     loadgen connection cap; auto: offered rate x TIMEOUT
#                        + 64 (every request can have its own connection, as
#                        with real users), within the descriptor limit
#   CAPACITY=            req/s; skips the capacity measurement if set
#   CAPACITY_SECONDS=5   closed-loop capacity measurement (wrk -c WORKERS)
#   UNLOADED_SECONDS=10  unloaded run, at UNLOADED_FRACTION=0.3 of capacity
#   SHIFT_DURATION=30 SHIFT_UP_AT=10 SHIFT_UP_WORKERS=8
#   SHIFT_DOWN_AT=20 SHIFT_DOWN_WORKERS=2
#   HAPROXY_TIMEOUT_QUEUE=1s  HAProxy "timeout queue"
#   OUT=/tmp/spillway-bench/shedding.md     markdown results
#   LOGDIR=$(dirname OUT)/shedding-logs     CSVs, JSON, configs, daemon stderr
#   KEEP_WORKDIR=0       1 keeps the temporary directory
# See contrib/bench/README.md.
set -eu
BENCH_NAME=shedding
. "$(dirname "$0")/lib.sh"
set -o pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)

SPILLWAY=${SPILLWAY:-$REPO_DIR/src/spillway}
LOADGEN=${LOADGEN:-$REPO_DIR/contrib/loadgen/loadgen}
SETUPS=${SETUPS:-direct spillway haproxy nginx nginx-maxconns}
SHIFT=${SHIFT:-1}
BACKEND=${BACKEND:-collapse}
LEGACY_APP=${LEGACY_APP:-$REPO_DIR/contrib/legacy-app/legacy-app}
WORKERS=${WORKERS:-4}
SERVICE_MS=${SERVICE_MS:-20}
DEGRADE=${DEGRADE:-0.1}
OVERLOAD=${OVERLOAD:-5}
DURATION=${DURATION:-20}
TIMEOUT=${TIMEOUT:-5}
CONNECTIONS=${CONNECTIONS:-auto}
CAPACITY=${CAPACITY:-}
CAPACITY_SECONDS=${CAPACITY_SECONDS:-5}
UNLOADED_SECONDS=${UNLOADED_SECONDS:-10}
UNLOADED_FRACTION=${UNLOADED_FRACTION:-0.3}
SHIFT_DURATION=${SHIFT_DURATION:-30}
SHIFT_UP_AT=${SHIFT_UP_AT:-10}
SHIFT_UP_WORKERS=${SHIFT_UP_WORKERS:-8}
SHIFT_DOWN_AT=${SHIFT_DOWN_AT:-20}
SHIFT_DOWN_WORKERS=${SHIFT_DOWN_WORKERS:-2}
HAPROXY_TIMEOUT_QUEUE=${HAPROXY_TIMEOUT_QUEUE:-1s}
OUT=${OUT:-/tmp/spillway-bench/shedding.md}
LOGDIR=${LOGDIR:-$(dirname "$OUT")/shedding-logs}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}


[ "$CONNECTIONS" = auto ] || case $CONNECTIONS in ''|*[!0-9]*) die "CONNECTIONS must be a whole number or auto" ;; esac
for v in WORKERS DURATION CAPACITY_SECONDS UNLOADED_SECONDS \
    SHIFT_DURATION SHIFT_UP_AT SHIFT_UP_WORKERS SHIFT_DOWN_AT \
    SHIFT_DOWN_WORKERS; do
    case ${!v} in ''|*[!0-9]*) die "$v must be a whole number (got '${!v}')" ;; esac
done
for v in SERVICE_MS DEGRADE OVERLOAD TIMEOUT UNLOADED_FRACTION; do
    case ${!v} in ''|*[!0-9.]*) die "$v must be a number (got '${!v}')" ;; esac
done
[ -z "$CAPACITY" ] || case $CAPACITY in *[!0-9.]*) die "CAPACITY must be a number" ;; esac
case $BACKEND in
    collapse) ;;
    legacy-app) [ -x "$LEGACY_APP" ] || die "no legacy-app at $LEGACY_APP (build it with make, or set LEGACY_APP=)" ;;
    *) die "BACKEND must be collapse or legacy-app (got '$BACKEND')" ;;
esac
for s in $SETUPS; do
    case $s in direct|spillway|haproxy|nginx|nginx-maxconns) ;;
        old) [ -x "${SPILLWAY_OLD:-}" ] ||
            die "SETUPS names old: set SPILLWAY_OLD to an executable spillway" ;;
        *) die "unknown setup '$s' in SETUPS" ;; esac
done

# ---------------------------------------------------------------- prerequisites
need python3 python3
[ -n "$CAPACITY" ] || need wrk wrk
case " $SETUPS " in *" haproxy "*) need haproxy haproxy ;; esac
case " $SETUPS " in *" nginx"*) need nginx nginx-light ;; esac
[ "$missing" = 0 ] || die "prerequisites missing, see above"

WORK=$(mktemp -d /tmp/spillway-shedding.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$(dirname "$OUT")" "$LOGDIR"
NOTES=$WORK/notes.txt
: > "$NOTES"
note() { log "note: $*"; printf '%s\n' "$*" >> "$NOTES"; }

if [ ! -x "$LOADGEN" ]; then
    log "no loadgen at $LOADGEN; building it from contrib/loadgen/loadgen.c"
    # shellcheck disable=SC2046
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -o "$WORK/loadgen" \
        "$REPO_DIR/contrib/loadgen/loadgen.c" \
        $(pkg-config --cflags --libs libevent_core 2>/dev/null || echo -levent_core) -lm \
        || die "cannot build loadgen (needs libevent-dev); build it with make"
    LOADGEN=$WORK/loadgen
fi

RUN_SPILLWAY=1
if [ "$BACKEND" = legacy-app ] && [ "$SHIFT" = 1 ]; then
    note "BACKEND=legacy-app: no shift run (its workers are fixed; data growth is the demo's shift, see make demo)"
    SHIFT=0
fi
if [ ! -x "$SPILLWAY" ]; then
    RUN_SPILLWAY=0
    note "spillway binary '$SPILLWAY' missing: spillway runs skipped (build with make, or set SPILLWAY=)"
fi

# ---------------------------------------------------------------- cleanup
PIDS=()          # every process started in the background, still to stop
stop_pid() { # stop_pid PID: TERM (and its children), up to 5 s, then KILL; reap
    local pid=$1 kids _ k
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kids=$(children_of "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "pid $pid did not stop on SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for k in $kids; do alive "$k" && kill -KILL "$k" 2>/dev/null; done
    wait "$pid" 2>/dev/null || true
    return 0
}
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    set +e
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    cp "$WORK"/*.csv "$WORK"/*.json "$WORK"/*.log "$WORK"/*.conf \
        "$WORK"/*.ini "$WORK"/*.txt "$LOGDIR"/ 2>/dev/null
    if [ "$KEEP_WORKDIR" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
PIDS=()
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- helpers
probe() { # probe tcp|http PORT: a TCP connect, or GET / answering 200
    python3 - "$@" <<'EOF' 2>/dev/null
import http.client, socket, sys
mode, port = sys.argv[1], int(sys.argv[2])
if mode == "tcp":
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    sys.exit(0)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
c.request("GET", "/")
r = c.getresponse()
r.read()
sys.exit(0 if r.status == 200 else 1)
EOF
}
wait_ready() { # wait_ready NAME PID PORT tcp|http: up to 10 s
    wait_up "$1" "$2" "not ready on 127.0.0.1:$3" probe "$4" "$3" && return 0
    tail -n 20 "$WORK/$1.log" >&2
    return 1
}

read -r BACKEND_PORT PROXY_PORT <<EOF
$(free_ports 2)
EOF
PROXY_PID=""
BACKEND_PID=""
LG_PID=""

start_backend() { # start_backend LOGNAME WORKERS [collapse_backend options...]
    local name=$1 w=$2
    shift 2
    if [ "$BACKEND" = legacy-app ]; then
        "$LEGACY_APP" --port "$BACKEND_PORT" --workers "$w" \
            >>"$WORK/$name.log" 2>&1 &
    else
        python3 "$SCRIPT_DIR/collapse_backend.py" --port "$BACKEND_PORT" \
            --workers "$w" --service-ms "$SERVICE_MS" --degrade "$DEGRADE" "$@" \
            >>"$WORK/$name.log" 2>&1 &
    fi
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    wait_ready "$name" "$BACKEND_PID" "$BACKEND_PORT" tcp
}
stop_backend() {
    [ -n "$BACKEND_PID" ] || return 0
    stop_pid "$BACKEND_PID"
    forget "$BACKEND_PID"
    BACKEND_PID=""
}

NGINX_USER=""
[ "$(id -u)" = 0 ] && NGINX_USER="user root root;"
# HAProxy needs 2 fds per connection and refuses to start without them.
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
HAPROXY_MAXCONN=$(( (NOFILE - 200) / 2 ))
[ "$HAPROXY_MAXCONN" -gt 10000 ] && HAPROXY_MAXCONN=10000

write_configs() {
    cat > "$WORK/spillway.ini" <<EOF
[proxy]
listen = 127.0.0.1:$PROXY_PORT
access_log = off
workers = ${PROXY_THREADS:-1}
[backend]
server = 127.0.0.1:$BACKEND_PORT
[limiter]
algorithm = gradient
EOF
    # the older binary: one from before worker threads knows no "workers"
    sed -e "/^workers = 1\$/d" "$WORK/spillway.ini" > "$WORK/old.ini"
    haproxy_http_conf "${PROXY_THREADS:-1}" "$HAPROXY_MAXCONN" \
        "127.0.0.1:$PROXY_PORT" "127.0.0.1:$BACKEND_PORT maxconn $WORKERS" \
        "$HAPROXY_TIMEOUT_QUEUE" > "$WORK/haproxy.conf"
    local maxconns
    for maxconns in "" " max_conns=$WORKERS"; do
        local f=$WORK/nginx.conf zone=""
        if [ -n "$maxconns" ]; then f=$WORK/nginx-maxconns.conf; zone="zone be 64k;"; fi
        mkdir -p "$WORK/nginx"
        cat > "$f" <<EOF
$NGINX_USER
worker_processes ${PROXY_THREADS:-1};
pid $WORK/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/cbt;
    proxy_temp_path $WORK/nginx/pt;
    fastcgi_temp_path $WORK/nginx/ft;
    uwsgi_temp_path $WORK/nginx/ut;
    scgi_temp_path $WORK/nginx/st;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    upstream be {
        $zone
        server 127.0.0.1:$BACKEND_PORT$maxconns;
        keepalive 32;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT backlog=4096;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    done
}

start_proxy() { # start_proxy SETUP MODE(tcp|http)
    local name=$1
    case $name in
        direct) return 0 ;;
        spillway) "$SPILLWAY" -c "$WORK/spillway.ini" >>"$WORK/$name.log" 2>&1 & ;;
        old) "$SPILLWAY_OLD" -c "$WORK/old.ini" >>"$WORK/$name.log" 2>&1 & ;;
        haproxy) haproxy -f "$WORK/haproxy.conf" -db >>"$WORK/$name.log" 2>&1 & ;;
        nginx|nginx-maxconns)
            nginx -p "$WORK/nginx" -c "$WORK/$name.conf" -g 'daemon off;' \
                >>"$WORK/$name.log" 2>&1 & ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_ready "$name" "$PROXY_PID" "$PROXY_PORT" "$2"
}
stop_proxy() {
    [ -n "$PROXY_PID" ] || return 0
    stop_pid "$PROXY_PID"
    forget "$PROXY_PID"
    PROXY_PID=""
}

run_loadgen() { # run_loadgen NAME RATE SECONDS PORT: NAME.csv, NAME.json
    local rc=0
    "$LOADGEN" --rate "$2" --duration "$3" --timeout "$TIMEOUT" \
        --connections "$CONNECTIONS" --quiet --csv "$WORK/$1.csv" \
        --tally-header Spillway-Reason \
        --json "$WORK/$1.json" "http://127.0.0.1:$4/" \
        2>"$WORK/$1.loadgen.log" &
    LG_PID=$!
    PIDS+=("$LG_PID")
    wait "$LG_PID" || rc=$?
    forget "$LG_PID"
    LG_PID=""
    [ "$rc" = 0 ] || { log "loadgen failed ($rc):"; cat "$WORK/$1.loadgen.log" >&2; return 1; }
    sed -n '2,$p' "$WORK/$1.loadgen.log" | sed 's/^/    /' >&2
}

json_field() { # json_field FILE KEY
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print("" if v is None else v)' "$1" "$2"
}

wrk_capacity() { # wrk_capacity WORKERS LOGFILE: closed loop, one connection per worker
    timeout -k 5 $((CAPACITY_SECONDS + 30)) wrk -t1 -c"$1" -d"${CAPACITY_SECONDS}s" \
        --latency "http://127.0.0.1:$BACKEND_PORT/" > "$2" 2>&1
    awk '/^Requests\/sec:/ {print $2}' "$2"
}

write_configs
RUNS=$WORK/runs.txt
: > "$RUNS"
T_BEGIN=$(date +%s)

# ---------------------------------------------------------------- 1. capacity
CAP_UP="" CAP_DOWN=""
if [ -z "$CAPACITY" ]; then
    log "capacity: closed loop, wrk -c$WORKERS for ${CAPACITY_SECONDS}s against $BACKEND, $WORKERS workers"
    start_backend backend-capacity "$WORKERS"
    CAPACITY=$(wrk_capacity "$WORKERS" "$WORK/capacity-wrk.log")
    stop_backend
    [ -n "$CAPACITY" ] || die "capacity measurement failed, see $WORK/capacity-wrk.log"
    if [ "$SHIFT" = 1 ] && [ "$RUN_SPILLWAY" = 1 ]; then
        start_backend backend-capacity "$SHIFT_UP_WORKERS"
        CAP_UP=$(wrk_capacity "$SHIFT_UP_WORKERS" "$WORK/capacity-up-wrk.log")
        stop_backend
        start_backend backend-capacity "$SHIFT_DOWN_WORKERS"
        CAP_DOWN=$(wrk_capacity "$SHIFT_DOWN_WORKERS" "$WORK/capacity-down-wrk.log")
        stop_backend
    fi
fi
log "capacity: $CAPACITY req/s (shift: $SHIFT_UP_WORKERS workers ${CAP_UP:-?}, $SHIFT_DOWN_WORKERS workers ${CAP_DOWN:-?})"
RATE=$(python3 -c "print(round($CAPACITY * $OVERLOAD))")
if [ "$CONNECTIONS" = auto ]; then
    CONNECTIONS=$(python3 -c "import math; print(min(math.ceil($RATE * $TIMEOUT) + 64, $NOFILE - 256, $HAPROXY_MAXCONN - 64))")
    log "loadgen connections: up to $CONNECTIONS"
fi
UNLOADED_RATE=$(python3 -c "print(max(1, round($CAPACITY * $UNLOADED_FRACTION)))")

log "unloaded: direct, $UNLOADED_RATE req/s for ${UNLOADED_SECONDS}s"
start_backend backend-unloaded "$WORKERS"
run_loadgen unloaded "$UNLOADED_RATE" "$UNLOADED_SECONDS" "$BACKEND_PORT"
stop_backend
UNLOADED_P99=$(json_field "$WORK/unloaded.json" p99_ms)
log "unloaded p99: $UNLOADED_P99 ms"

# ---------------------------------------------------------------- 2-5. overload
spillway_check() { # spillway_check: does it take the configuration?
    local out
    if ! out=$("$SPILLWAY" -t -c "$WORK/spillway.ini" 2>&1); then
        note "spillway -t rejects the configuration: $out; spillway runs skipped"
        RUN_SPILLWAY=0
    fi
}
[ "$RUN_SPILLWAY" = 0 ] || spillway_check

for setup in $SETUPS; do
    if [ "$setup" = spillway ] && [ "$RUN_SPILLWAY" = 0 ]; then continue; fi
    log "$setup: $RATE req/s (${OVERLOAD}x capacity) for ${DURATION}s"
    start_backend "backend-$setup" "$WORKERS"
    port=$BACKEND_PORT
    if [ "$setup" != direct ]; then
        if ! start_proxy "$setup" http; then
            note "$setup did not start (see $LOGDIR/$setup.log): run skipped"
            stop_proxy
            stop_backend
            continue
        fi
        port=$PROXY_PORT
    fi
    run_loadgen "$setup" "$RATE" "$DURATION" "$port"
    if [ -n "$PROXY_PID" ] && ! alive "$PROXY_PID"; then
        note "$setup died during its run: see $LOGDIR/$setup.log"
    fi
    stop_proxy
    stop_backend
    printf '%s\n' "$setup" >> "$RUNS"
done

# ---------------------------------------------------------------- 6. shift
SHIFT_RAN=0
if [ "$SHIFT" = 1 ] && [ "$RUN_SPILLWAY" = 1 ]; then
    log "shift: spillway, $RATE req/s for ${SHIFT_DURATION}s; workers $WORKERS -> $SHIFT_UP_WORKERS at ${SHIFT_UP_AT}s -> $SHIFT_DOWN_WORKERS at ${SHIFT_DOWN_AT}s"
    # The schedule's clock starts at the backend's first request, which is
    # loadgen's first: the readiness probes only connect.
    start_backend backend-shift "$WORKERS" --schedule-from first \
        --schedule "$SHIFT_UP_AT:$SHIFT_UP_WORKERS,$SHIFT_DOWN_AT:$SHIFT_DOWN_WORKERS"
    start_proxy spillway tcp || die "spillway did not start"
    run_loadgen shift "$RATE" "$SHIFT_DURATION" "$PROXY_PORT"
    stop_proxy
    stop_backend
    SHIFT_RAN=1
fi
T_END=$(date +%s)

# ---------------------------------------------------------------- report
python3 - "$WORK" "$OUT" "$CAPACITY" "${CAP_UP:-}" "${CAP_DOWN:-}" \
    "$UNLOADED_P99" "$UNLOADED_RATE" "$RATE" "$DURATION" "$SHIFT_RAN" \
    "$SHIFT_UP_AT:$SHIFT_UP_WORKERS,$SHIFT_DOWN_AT:$SHIFT_DOWN_WORKERS" \
    "$WORKERS" "$SERVICE_MS" "$DEGRADE" "$OVERLOAD" "$TIMEOUT" "$CONNECTIONS" \
    "$HAPROXY_TIMEOUT_QUEUE" "$((T_END - T_BEGIN))" "$SPILLWAY" "$BACKEND" \
    "${PROXY_THREADS:-1}" <<'EOF'
import csv, json, os, sys

(work, out, cap, cap_up, cap_down, unl_p99, unl_rate, rate, dur, shift_ran,
 shifts, workers, svc, degrade, overload, timeout, conns, hq, took,
 spillway_bin, backend, threads) = sys.argv[1:]
cap, unl_p99, rate, dur = float(cap), float(unl_p99), float(rate), float(dur)
workers = int(workers)
lines = []
def emit(s=""):
    lines.append(s)

def load(name):
    with open(os.path.join(work, name + ".json")) as f:
        j = json.load(f)
    with open(os.path.join(work, name + ".csv")) as f:
        rows = list(csv.DictReader(f))
    return j, rows

def fmt(v, spec="%.1f", none="-"):
    return none if v is None else spec % v

emit("# spillway shedding benchmark")
emit()
if backend == "legacy-app":
    emit("Backend: `contrib/legacy-app`, %d workers, its defaults (a "
         "SQLite table scan per request), unbounded queue." % workers)
else:
    emit("Backend: `collapse_backend.py`, %d workers x %s ms, degrade %s "
         "(service time x (1 + %s x backlog/workers), at most 20x), "
         "unbounded queue." % (workers, svc, degrade, degrade))
emit("Load: `loadgen`, open loop, evenly spaced, timeout %s s, up to "
     "%s connections. Run took %s s." % (timeout, conns, took))
emit()
emit("- capacity (closed loop, wrk -c%d): **%.1f req/s**" % (workers, cap))
emit("- unloaded p99 (direct, %s req/s): **%.2f ms**" % (unl_rate, unl_p99))
emit("- offered in the overload runs: **%.0f req/s** (%sx capacity) for %.0f s"
     % (rate, overload, dur))
emit()
emit("| setup | offered/s | goodput/s (% of capacity) | goodput/s from 3 s on "
     "| p99 success ms (x unloaded) | per-second p99 from 3 s on, median ms "
     "| refused/s | median refusal ms "
     "| refusals w/o Retry-After | 502/504/other | errors+timeouts |")
emit("|---|---|---|---|---|---|---|---|---|---|---|")
runs = [l.strip() for l in open(os.path.join(work, "runs.txt")) if l.strip()]
results = {}
for name in runs:
    j, rows = load(name)
    results[name] = (j, rows)
    d = j["duration"]
    steady = [r for r in rows if 3 <= int(r["second"]) < d]
    steady_gp = (sum(int(r["ok_2xx"]) for r in steady) / len(steady)
                 if steady else None)
    sp99 = sorted(float(r["p99_ms"]) for r in steady if r["p99_ms"])
    sp99 = sp99[len(sp99) // 2] if sp99 else None
    gp = j["ok_2xx_in_window"] / d
    refused = j["s429"] + j["s503"]
    p99 = j["p99_ms"]
    emit("| %s | %.0f | %.1f (%.0f%%) | %s (%s%%) | %s (%s) | %s (%s) | %.1f "
         "| %s | %d | %d | %d |" % (
             name, j["offered"] / d, gp, 100 * gp / cap, fmt(steady_gp),
             fmt(None if steady_gp is None else 100 * steady_gp / cap, "%.0f"),
             fmt(p99, "%.1f"),
             fmt(None if p99 is None else p99 / unl_p99, "%.1fx"),
             fmt(sp99, "%.1f"),
             fmt(None if sp99 is None else sp99 / unl_p99, "%.1fx"),
             refused / d, fmt(j["refused_p50_ms"], "%.3f"),
             j["retry_after_missing"],
             j["s502"] + j["s504"] + j["other_status"],
             j["errors"] + j["timeouts"]))
emit()
emit("Goodput: 2xx answers that came within the %.0f s of load, per second. "
     "p99 success: of all 2xx answers; latency from the scheduled send "
     "time. Refusals: 429 and 503 answers. \"From 3 s on\": the mean "
     "2xx count and the median of the per-second p99 over seconds 3 to "
     "%.0f (what is left once a limiter has converged)." % (dur, dur - 1))
emit()
emit("Responses by status and `Spillway-Reason` header:")
emit()
for name in runs:
    t = results[name][0].get("tally") or {}
    emit("- %s: %s" % (name, ", ".join("%s: %d" % kv for kv in
                                       sorted(t.items())) or "-"))

verdicts = []
if "spillway" in results:
    j, rows = results["spillway"]
    d = j["duration"]
    gp = j["ok_2xx_in_window"] / d
    refused = j["s429"] + j["s503"]
    verdicts.append(("goodput >= 95% of capacity", gp >= 0.95 * cap,
                     "%.1f/s = %.0f%%" % (gp, 100 * gp / cap)))
    p99 = j["p99_ms"]
    verdicts.append(("p99 success <= 2x unloaded p99",
                     p99 is not None and p99 <= 2 * unl_p99,
                     "%s ms vs %.2f ms" % (fmt(p99, "%.1f"), unl_p99)))
    rp = j["refused_p50_ms"]
    verdicts.append(("median refusal < 1 ms", rp is not None and rp < 1,
                     "%s ms over %d refusals" % (fmt(rp, "%.3f"), refused)))
    verdicts.append(("every refusal with Retry-After",
                     refused > 0 and j["retry_after_missing"] == 0,
                     "%d of %d without" % (j["retry_after_missing"], refused)))
    if refused == 0:
        emit()
        emit("**spillway refused nothing at %.0fx capacity: is the limiter "
             "active in this build (%s)?**" % (rate / cap, spillway_bin))

if shift_ran == "1":
    j, rows = load("shift")
    per = {int(r["second"]): r for r in rows}
    emit()
    emit("## Capacity shift behind spillway")
    emit()
    emit("Offered %.0f req/s for %.0f s; backend workers %d, then %s "
         "(seconds after the first request)." % (j["offered"] / j["duration"],
                                                 j["duration"], workers,
                                                 shifts))
    emit()
    emit("| shift | new capacity/s | 90% of it | first second >= 90% "
         "| time to 90% | goodput/s in the 5 s after |")
    emit("|---|---|---|---|---|---|")
    prev_w = workers
    shift_list = [(float(a), int(w)) for a, w in
                  (p.split(":") for p in shifts.split(","))]
    measured = {}
    if cap_up:
        measured[shift_list[0][1]] = float(cap_up)
    if cap_down and len(shift_list) > 1:
        measured[shift_list[1][1]] = float(cap_down)
    for at, w in shift_list:
        newcap = measured.get(w, cap * w / workers)
        how = "measured" if w in measured else "scaled"
        t = int(at)
        reached = None
        for s in range(t, int(j["duration"]) + 10):
            r = per.get(s)
            if r and int(r["ok_2xx"]) >= 0.9 * newcap:
                reached = s
                break
        after = [int(per[s]["ok_2xx"]) for s in range(t, t + 5) if s in per]
        took_s = None if reached is None else reached + 1 - at
        emit("| %d -> %d workers at %gs | %.0f (%s) | %.0f | %s | %s | %s |" % (
            prev_w, w, at, newcap, how, 0.9 * newcap,
            "-" if reached is None else "%d" % reached,
            "never" if took_s is None else "<= %.0f s" % took_s,
            " ".join(str(x) for x in after)))
        verdicts.append(("%d -> %d workers: 90%% of new capacity within 2 s"
                         % (prev_w, w), took_s is not None and took_s <= 2,
                         "never" if took_s is None else "<= %.0f s" % took_s))
        prev_w = w
    emit()
    emit("Per second (second, offered, 2xx, 503, 429, timeouts+errors, "
         "p99 ms):")
    emit()
    emit("```")
    for s in sorted(per):
        r = per[s]
        emit("%3d %5s %5s %5s %5s %5d %9s" % (
            s, r["offered"], r["ok_2xx"], r["s503"], r["s429"],
            int(r["timeouts"]) + int(r["errors"]), r["p99_ms"] or "-"))
    emit("```")
    emit()
    emit("shift run totals: %d offered, %d 2xx, %d refused (%d without "
         "Retry-After), refusal p50 %s ms, p99 success %s ms, %d errors+"
         "timeouts, %d 502/504/other" % (
             j["offered"], j["ok_2xx"], j["s429"] + j["s503"],
             j["retry_after_missing"], fmt(j["refused_p50_ms"], "%.3f"),
             fmt(j["p99_ms"], "%.1f"), j["errors"] + j["timeouts"],
             j["s502"] + j["s504"] + j["other_status"]))
    emit()
    emit("shift run responses by status and `Spillway-Reason`: " +
         (", ".join("%s: %d" % kv for kv in sorted(j["tally"].items()))
          or "-"))

if verdicts:
    emit()
    emit("## spillway against the targets")
    emit()
    for what, ok, detail in verdicts:
        emit("- %s %s: %s" % ("PASS" if ok else "**FAIL**", what, detail))

emit()
emit("## Setups")
emit()
emit("- direct: loadgen straight at the backend.")
nth = int(threads)
emit("- spillway: `[proxy] listen, access_log = off`, `[backend] server`, "
     "`[limiter] algorithm = gradient`%s, nothing else."
     % (", `workers = %d`" % nth if nth > 1 else ""))
emit("- haproxy: `server s1 ... maxconn %d`, `timeout queue %s`, "
     "`http-reuse always`, %d thread%s." % (workers, hq, nth,
                                            "s" if nth > 1 else ""))
emit("- nginx: `upstream { server ...; keepalive 32; }`, proxy_http_version "
     "1.1, %d worker%s: no limiting (nginx OSS has no upstream queue)."
     % (nth, "s" if nth > 1 else ""))
emit("- nginx-maxconns: the same with `zone` and `server ... max_conns=%d`: "
     "nginx OSS cannot queue, so it answers 502 at once beyond the cap."
     % workers)
notes = open(os.path.join(work, "notes.txt")).read().strip()
if notes:
    emit()
    emit("## Notes")
    emit()
    for n in notes.splitlines():
        emit("- " + n)
emit()
emit("loadgen: up to %s connections; send lag p99 (scheduled to written, "
     "includes waiting for a free connection): " % conns +
     ", ".join("%s %s ms" % (n, fmt(results[n][0].get("send_lag_p99_ms"),
                                    "%.2f")) for n in results))
text = "\n".join(lines) + "\n"
with open(out, "w") as f:
    f.write(text)
sys.stdout.write(text)
EOF
log "results: $OUT (logs in $LOGDIR)"
