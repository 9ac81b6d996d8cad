#!/usr/bin/env bash
# passthrough.sh: pass-through throughput and latency of spillway, HAProxy and
# nginx (as reverse proxies) in front of the same fast backend (nginx answering
# "200 ok"), measured with wrk, alternating between the proxies.
#
# Usage:  contrib/bench/passthrough.sh
# Environment (all optional):
#   SPILLWAY=path      spillway binary (default: <repo>/src/spillway)
#   PROXIES="..."      proxies to run, subset of "spillway refusing haproxy nginx
#                      old" (refusing: spillway refusing every request with
#                      429, to compare the cost of a refusal with a proxied
#                      request; old: another spillway binary, SPILLWAY_OLD)
#   SPILLWAY_OLD=path  an older spillway (say, built from the commit before a
#                      change) run with the same configuration as "old", for a
#                      before/after side by side in one run; PROXIES must name
#                      it
#   ROUNDS=3           measured rounds; each round runs every proxy once
#   DURATION=10        seconds per wrk run
#   CONNECTIONS=50     wrk connections (-c)
#   THREADS=1          wrk threads (-t)
#   WORKERS=1          proxy threads: spillway workers, HAProxy nbthread,
#                      nginx worker_processes (give PROXY_CPUS as many CPUs)
#   WARMUP=2           seconds of unrecorded warm-up per proxy (0 = none)
#   PROXY_CPUS=0       CPU list for the proxy under test (taskset -c)
#   LOAD_CPUS=1        CPU list for the backend nginx and wrk
#   PIN=1              0 disables CPU pinning
#   OUT=/tmp/spillway-bench/passthrough.md   markdown results file
#   LOGDIR=$(dirname OUT)/passthrough-logs   raw wrk output, daemon stderr
#   KEEP_WORKDIR=0     1 keeps the temporary directory with all configs
#   ACCESS_LOG=off     off, or spillway | combined | json: spillway and nginx
#                      both write an access log file in that format (nginx:
#                      combined for spillway and combined, escape=json for
#                      json; buffered 64k, flushed every second as spillway
#                      does); HAProxy logs only to syslog, so not at all
# See contrib/bench/README.md.
set -eu
BENCH_NAME=bench
. "$(dirname "$0")/lib.sh"
set -o pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)

SPILLWAY=${SPILLWAY:-$REPO_DIR/src/spillway}
ACCESS_LOG=${ACCESS_LOG:-off}
case $ACCESS_LOG in
    off|spillway|combined|json) ;;
    *) die "ACCESS_LOG=$ACCESS_LOG: use off, spillway, combined or json" ;;
esac
PROXIES=${PROXIES:-spillway refusing haproxy nginx}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-1}
WORKERS=${WORKERS:-1}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
PROXY_CPUS=${PROXY_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
PIN=${PIN:-1}
OUT=${OUT:-/tmp/spillway-bench/passthrough.md}
LOGDIR=${LOGDIR:-$(dirname "$OUT")/passthrough-logs}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}


for v in ROUNDS DURATION CONNECTIONS THREADS WARMUP WORKERS; do
    val=${!v}
    case $val in
        ''|*[!0-9]*) die "$v must be a whole number (got '$val')" ;;
    esac
done
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"
[ "$DURATION" -ge 1 ] || die "DURATION must be at least 1"
[ "$CONNECTIONS" -ge "$THREADS" ] || die "CONNECTIONS must be >= THREADS"

# ---------------------------------------------------------------- prerequisites
need wrk wrk
need python3 python3
need getconf libc-bin
for p in $PROXIES; do
    case $p in
        haproxy) need haproxy haproxy ;;
        nginx) ;;
        spillway|refusing) ;;
        old) [ -x "${SPILLWAY_OLD:-}" ] ||
            die "PROXIES names old: set SPILLWAY_OLD to an executable spillway" ;;
        *) die "unknown proxy '$p' in PROXIES (use spillway, refusing, haproxy, nginx, old)" ;;
    esac
done
need nginx nginx-light   # the backend is always nginx
[ "$missing" = 0 ] || die "prerequisites missing, see above"

TASKSET_PROXY=() TASKSET_LOAD=()
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if [ "$PIN" = 1 ] && command -v taskset >/dev/null 2>&1 && [ "$NCPU" -ge 2 ]; then
    TASKSET_PROXY=(taskset -c "$PROXY_CPUS")
    TASKSET_LOAD=(taskset -c "$LOAD_CPUS")
    LAYOUT="proxy on CPU $PROXY_CPUS; backend nginx + wrk on CPU $LOAD_CPUS"
else
    if [ "$PIN" = 1 ]; then
        log "note: not pinning CPUs (taskset from util-linux missing or fewer than 2 CPUs)"
    fi
    LAYOUT="not pinned ($NCPU CPUs)"
fi

RUN_SPILLWAY=0
case " $PROXIES " in *" spillway "*|*" refusing "*)
    if [ -x "$SPILLWAY" ]; then
        RUN_SPILLWAY=1
    else
        log "note: spillway binary '$SPILLWAY' not found or not executable; skipping the spillway leg (build it with make, or set SPILLWAY=)"
    fi ;;
esac
# An unoptimised build measures the compiler, not the design: say so loudly.
# The DWARF producer string (present with -g) holds the flags; the last -O wins.
SPILLWAY_BUILD=""
if [ "$RUN_SPILLWAY" = 1 ]; then
    producer=$(LC_ALL=C grep -a -o -m 1 -E '(GNU C|clang version)[ -~]*' "$SPILLWAY" | head -n 1 || true)
    opt=$(printf '%s\n' "$producer" | grep -o -E '(^| )-O[0-9sgz]*' | tail -n 1 | tr -d ' ' || true)
    if [ -n "$producer" ]; then
        SPILLWAY_BUILD="built with ${opt:-no -O flag (= -O0)}"
        case ${opt:--O0} in
            -O0|-O|-Og) SPILLWAY_BUILD="$SPILLWAY_BUILD: WARNING, not an optimised build; rebuild with e.g. CFLAGS='-O2 -g' for meaningful numbers" ;;
        esac
    else
        SPILLWAY_BUILD="optimisation level unknown (no debug info)"
    fi
    log "spillway: $SPILLWAY ($SPILLWAY_BUILD)"
fi

ACTIVE=()
for p in $PROXIES; do
    case $p in spillway|refusing) [ "$RUN_SPILLWAY" = 1 ] || continue ;; esac
    ACTIVE+=("$p")
done

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- workdir, cleanup
WORK=$(mktemp -d /tmp/spillway-passthrough.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$(dirname "$OUT")" "$LOGDIR"
RESULTS=$WORK/results.tsv
: > "$RESULTS"
PIDS=()          # every daemon we started (bash children)
EXTRA_PIDS=()    # nginx workers, killed too if their master did not take them along


cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    set +e
    [ -n "$WRK_PID" ] && alive "$WRK_PID" && kill -TERM "$WRK_PID" 2>/dev/null
    [ -n "$SAMPLER_PID" ] && alive "$SAMPLER_PID" && kill -TERM "$SAMPLER_PID" 2>/dev/null
    # proxies first, then the backend (PIDS[0])
    stop_all "${PIDS[@]:1}"
    [ "${#PIDS[@]}" -gt 0 ] && stop_all "${PIDS[0]}"
    for pid in "${EXTRA_PIDS[@]}"; do
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    # keep raw logs for post-mortem
    cp "$WORK"/*.log "$WORK"/*.stderr "$WORK"/*.conf "$WORK"/*.ini \
        "$WORK"/results.tsv "$LOGDIR"/ 2>/dev/null
    if [ "$KEEP_WORKDIR" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
WRK_PID=""
SAMPLER_PID=""
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM


http_ok() { # http_ok PORT: GET / answers 200
    python3 - "$1" <<'EOF' 2>/dev/null
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
c.request("GET", "/")
r = c.getresponse()
r.read()
sys.exit(0 if r.status == 200 else 1)
EOF
}

wait_ready() { # wait_ready NAME PID PORT: up to 10 s
    wait_up "$1" "$2" "does not answer 200 on 127.0.0.1:$3" http_ok "$3"
}

read -r BACKEND_PORT SPILLWAY_PORT HAPROXY_PORT NGINX_PORT REFUSING_PORT OLD_PORT <<EOF
$(free_ports 6)
EOF

# HAProxy needs 2 fds per connection and refuses to start if it cannot get them.
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
HAPROXY_MAXCONN=$(( (NOFILE - 200) / 2 ))
[ "$HAPROXY_MAXCONN" -gt 10000 ] && HAPROXY_MAXCONN=10000
[ "$HAPROXY_MAXCONN" -gt "$CONNECTIONS" ] || die "ulimit -n ($NOFILE) too low for $CONNECTIONS connections"

NGINX_USER=""
[ "$(id -u)" = 0 ] && NGINX_USER="user root root;"

# ---------------------------------------------------------------- configs
# Backend: nginx, 1 worker, answers 200 "ok\n" with keep-alive.
mkdir -p "$WORK/backend" "$WORK/nginx"
write_backend_conf "$WORK" "$BACKEND_PORT"

# the access logs, when ACCESS_LOG asks for them
SPILLWAY_LOG="access_log = off"
NGINX_LOG="access_log off;"
if [ "$ACCESS_LOG" != off ]; then
    SPILLWAY_LOG="access_log = $WORK/spillway-access.log
access_log_format = $ACCESS_LOG"
    NGINX_LOG="access_log $WORK/nginx-access.log combined buffer=64k flush=1s;"
    [ "$ACCESS_LOG" = json ] && NGINX_LOG='log_format j escape=json
        '"'"'{"time":"$time_iso8601","client":"$remote_addr","request":"$request",'"'"'
        '"'"'"status":$status,"bytes":$body_bytes_sent,"request_time":$request_time,'"'"'
        '"'"'"upstream":"$upstream_addr","upstream_time":"$upstream_response_time",'"'"'
        '"'"'"host":"$host","user_agent":"$http_user_agent","referer":"$http_referer"}'"'"';
    access_log '"$WORK"'/nginx-access.log j buffer=64k flush=1s;'
fi

# nginx as a proxy: WORKERS workers, upstream keep-alive pool of 32.
cat > "$WORK/nginx-proxy.conf" <<EOF
$NGINX_USER
worker_processes $WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx.stderr warn;
events { worker_connections 16384; }
http {
    $NGINX_LOG
    client_body_temp_path $WORK/nginx/cbt;
    proxy_temp_path $WORK/nginx/pt;
    fastcgi_temp_path $WORK/nginx/ft;
    uwsgi_temp_path $WORK/nginx/ut;
    scgi_temp_path $WORK/nginx/st;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    upstream be {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 32;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

# HAProxy: WORKERS threads, mode http, reuse kept-alive server connections,
# no log.
haproxy_http_conf "$WORKERS" "$HAPROXY_MAXCONN" "127.0.0.1:$HAPROXY_PORT" \
    "127.0.0.1:$BACKEND_PORT" > "$WORK/haproxy.conf"

cat > "$WORK/spillway.ini" <<EOF
[proxy]
listen = 127.0.0.1:$SPILLWAY_PORT
$SPILLWAY_LOG
max_connections = 10000
workers = $WORKERS
[backend]
server = 127.0.0.1:$BACKEND_PORT
keepalive = 64
; pass-through: the other proxies shed nothing here, so neither do we
[limiter]
algorithm = fixed
limit = 10000
max_limit = 10000
queue_size = 0
EOF

# the same spillway turning (nearly) every request away at the first door
sed -e "s/^listen = .*/listen = 127.0.0.1:$REFUSING_PORT/" "$WORK/spillway.ini" \
    > "$WORK/refusing.ini"
printf '[admission]\nrate = 1/m\nburst = 1\n' >> "$WORK/refusing.ini"

# the older binary, same configuration; one from before worker threads
# knows no "workers" key, so a single worker is left to its default
sed -e "s/^listen = .*/listen = 127.0.0.1:$OLD_PORT/" \
    -e "/^workers = 1\$/d" "$WORK/spillway.ini" > "$WORK/old.ini"

# ---------------------------------------------------------------- daemons
declare -A PID_OF PORT_OF
PORT_OF[backend]=$BACKEND_PORT
PORT_OF[spillway]=$SPILLWAY_PORT
PORT_OF[refusing]=$REFUSING_PORT
PORT_OF[old]=$OLD_PORT
PORT_OF[haproxy]=$HAPROXY_PORT
PORT_OF[nginx]=$NGINX_PORT

start_daemon() { # start_daemon NAME: start (pinned), wait until it answers
    local name=$1 pid
    case $name in
        backend)
            "${TASKSET_LOAD[@]}" nginx -p "$WORK/backend" -c "$WORK/backend.conf" \
                -g 'daemon off;' >"$WORK/backend.stdout.log" 2>>"$WORK/backend.stderr" &
            ;;
        nginx)
            "${TASKSET_PROXY[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx-proxy.conf" \
                -g 'daemon off;' >"$WORK/nginx.stdout.log" 2>>"$WORK/nginx.stderr" &
            ;;
        haproxy)
            "${TASKSET_PROXY[@]}" haproxy -f "$WORK/haproxy.conf" -db \
                >"$WORK/haproxy.stdout.log" 2>>"$WORK/haproxy.stderr" &
            ;;
        spillway|refusing)
            "${TASKSET_PROXY[@]}" "$SPILLWAY" -c "$WORK/$name.ini" \
                >"$WORK/$name.stdout.log" 2>>"$WORK/$name.stderr" &
            ;;
        old)
            "${TASKSET_PROXY[@]}" "$SPILLWAY_OLD" -c "$WORK/old.ini" \
                >"$WORK/old.stdout.log" 2>>"$WORK/old.stderr" &
            ;;
    esac
    pid=$!
    PIDS+=("$pid")
    PID_OF[$name]=$pid
    if ! wait_ready "$name" "$pid" "${PORT_OF[$name]}"; then
        tail -n 20 "$WORK/$name.stderr" 2>/dev/null | sed "s/^/  $name stderr: /" >&2 || true
        return 1
    fi
    if [ "$name" = nginx ] || [ "$name" = backend ]; then
        local w
        for w in $(children_of "$pid"); do EXTRA_PIDS+=("$w"); done
    fi
    log "$name started: pid $pid, 127.0.0.1:${PORT_OF[$name]}"
}

# measured pids: the process that does the work
work_pids() { # work_pids NAME
    case $1 in
        nginx) children_of "${PID_OF[nginx]}" ;;   # worker(s) only
        *) echo "${PID_OF[$1]}" ;;
    esac
}

# ---------------------------------------------------------------- wrk
cat > "$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p75_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
        summary.requests, summary.duration, summary.bytes,
        latency:percentile(50), latency:percentile(75), latency:percentile(90),
        latency:percentile(99), latency.max, latency.mean,
        e.connect, e.read, e.write, e.timeout, e.status))
end
EOF

run_wrk() { # run_wrk PORT SECONDS LOGFILE
    # in the background + wait, so that a signal to this script acts at once
    local rc=0
    "${TASKSET_LOAD[@]}" timeout -k 5 $(($2 + 30)) \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2"s --latency -s "$WORK/report.lua" \
        "http://127.0.0.1:$1/" >"$3" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

field() { # field NAME LOGFILE
    sed -n "s/.*BENCH.* $1=\([0-9.]*\).*/\1/p; s/^BENCH $1=\([0-9.]*\).*/\1/p" "$2" | head -n 1
}

measure() { # measure NAME ROUND: one recorded wrk run, append to results.tsv
    local name=$1 round=$2 port logf pids t0 t1 rc=0 status=ok rss
    port=${PORT_OF[$name]}
    logf=$WORK/wrk-$name-r$round.log
    if [ "$name" != backend ] && ! alive "${PID_OF[$name]}"; then
        local deadrc=0
        wait "${PID_OF[$name]}" 2>/dev/null || deadrc=$?
        log "!!! $name (pid ${PID_OF[$name]}) died between runs (exit status $deadrc); restarting it for round $round"
        printf '%s\t%s\tdied-between-runs(exit=%s),restarted\n' "$name" "$round" "$deadrc" >>"$RESULTS"
        start_daemon "$name" || { printf '%s\t%s\tdown\n' "$name" "$round" >>"$RESULTS"; return 0; }
    fi
    pids=$(work_pids "$name")
    local foreign
    foreign_ticks "$WORK/foreign.json"
    # shellcheck disable=SC2086
    t0=$(cpu_ticks $pids)
    # Sample CPU time and VmHWM (monotonic) every 0.5 s, so that the last
    # values survive a proxy that dies during the run.
    local sample=$WORK/sample-$name-r$round sampler
    # shellcheck disable=SC2086
    ( while kill -0 $$ 2>/dev/null; do
          s="$(cpu_ticks $pids) $(hwm_kb $pids)"
          [ "${s#* }" != 0 ] && echo "$s" > "$sample.tmp" && mv "$sample.tmp" "$sample"
          sleep 0.5
      done ) &
    sampler=$!
    SAMPLER_PID=$sampler
    run_wrk "$port" "$DURATION" "$logf" || rc=$?
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    SAMPLER_PID=""
    # shellcheck disable=SC2086
    t1=$(cpu_ticks $pids)
    # shellcheck disable=SC2086
    rss=$(hwm_kb $pids)
    if [ "$rss" = 0 ] && [ -s "$sample" ]; then
        read -r t1 rss < "$sample"
    fi
    foreign=$(foreign_ticks "$WORK/foreign.json" delta)
    if [ "$name" != backend ] && ! alive "${PID_OF[$name]}"; then
        local exitrc=0
        wait "${PID_OF[$name]}" 2>/dev/null || exitrc=$?
        status="died(exit=$exitrc)"
        log "!!! $name (pid ${PID_OF[$name]}) DIED during round $round, exit status $exitrc (>128 = signal $((exitrc > 128 ? exitrc - 128 : 0))); stderr: $LOGDIR/$name.stderr"
        tail -n 20 "$WORK/$name.stderr" 2>/dev/null | sed "s/^/  $name stderr: /" >&2 || true
        if [ "$round" -lt "$ROUNDS" ]; then
            log "restarting $name for the next rounds"
            start_daemon "$name" || log "$name did not restart"
        fi
    fi
    if [ "$rc" != 0 ] || ! grep -q '^BENCH ' "$logf"; then
        log "wrk against $name failed (rc=$rc), output: $logf"
        sed 's/^/  wrk: /' "$logf" >&2 || true
        [ "$status" = ok ] && status="wrk-failed(rc=$rc)"
        printf '%s\t%s\t%s\n' "$name" "$round" "$status" >>"$RESULTS"
        return 0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$name" "$round" "$status" \
        "$(field requests "$logf")" "$(field duration_us "$logf")" \
        "$(field p50_us "$logf")" "$(field p75_us "$logf")" "$(field p90_us "$logf")" \
        "$(field p99_us "$logf")" "$(field max_us "$logf")" \
        "$(field err_connect "$logf")" "$(field err_read "$logf")" \
        "$(field err_write "$logf")" "$(field err_timeout "$logf")" \
        "$(field err_status "$logf")" "$rss" \
        "$(( (t1 - t0) * 1000000 / CLK_TCK ))" \
        "$(( foreign * 100 / CLK_TCK / DURATION ))" >>"$RESULTS"
    log "$(printf '%-8s round %s: %s' "$name" "$round" \
        "$(awk -F'\t' 'END { if ($3 != "ok" && NF < 4) { print $3; exit }
            printf "%.0f req/s  p50 %.3f ms  p99 %.3f ms  non2xx %d  sockerr %d  rss %d kB  cpu %.1f us/req  other load %d%%  %s",
            $4 / ($5 / 1e6), $6 / 1000, $9 / 1000, $15, $11 + $12 + $13 + $14, $16,
            ($4 > 0 ? $17 / $4 : 0), $18, ($3 == "ok" ? "" : $3) }' "$RESULTS")")"
}

# ---------------------------------------------------------------- run
log "layout: $LAYOUT"
log "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, proxies: ${ACTIVE[*]:-none}"
start_daemon backend || die "backend nginx did not start"
STARTED=()
for p in "${ACTIVE[@]}"; do
    if start_daemon "$p"; then
        STARTED+=("$p")
    else
        log "note: $p did not start; it is left out (stderr: $LOGDIR/$p.stderr)"
        printf '%s\t0\tstart-failed\n' "$p" >>"$RESULTS"
    fi
done

if [ "$WARMUP" -gt 0 ]; then
    for p in backend "${STARTED[@]}"; do
        log "warm-up $p (${WARMUP}s, not recorded)"
        run_wrk "${PORT_OF[$p]}" "$WARMUP" "$WORK/wrk-$p-warmup.log" || true
    done
fi

log "baseline: wrk straight to the backend"
measure backend 1

for r in $(seq "$ROUNDS"); do
    for p in "${STARTED[@]}"; do
        log "round $r/$ROUNDS: $p"
        measure "$p" "$r"
    done
done

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$OUT" "$LAYOUT" "$THREADS" "$CONNECTIONS" "$DURATION" "$ROUNDS" \
    "$(nginx -v 2>&1 | sed 's/.*nginx\///')" \
    "$(command -v haproxy >/dev/null && haproxy -v 2>/dev/null | sed -n '1s/HAProxy version \([^ ]*\).*/\1/p')" \
    "$(wrk --version 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p')" \
    "$RUN_SPILLWAY" "$SPILLWAY" "$LOGDIR" "$SPILLWAY_BUILD" <<'EOF'
import sys, statistics, datetime, platform, os
(res, out, layout, threads, conns, dur, rounds, nginx_v, haproxy_v, wrk_v,
 run_spillway, spillway_bin, logdir, spillway_build) = sys.argv[1:]

rows = {}
notes = []
for line in open(res):
    f = line.rstrip("\n").split("\t")
    name, rnd, status = f[0], f[1], f[2]
    if len(f) < 17:
        notes.append(f"{name} round {rnd}: {status}")
        continue
    req, dus = int(f[3]), int(f[4])
    r = dict(round=int(rnd), status=status, req=req,
             rps=req / (dus / 1e6) if dus else 0.0,
             p50=int(f[5]) / 1000, p75=int(f[6]) / 1000, p90=int(f[7]) / 1000,
             p99=int(f[8]) / 1000, max=int(f[9]) / 1000,
             sock=int(f[10]) + int(f[11]) + int(f[12]) + int(f[13]),
             non2xx=int(f[14]), rss=int(f[15]), cpu_us=int(f[16]),
             other=int(f[17]) if len(f) > 17 and f[17] else 0)
    r["cpu_per_req"] = r["cpu_us"] / req if req else 0.0
    if status != "ok":
        notes.append(f"{name} round {rnd}: {status}")
    rows.setdefault(name, []).append(r)

order = [n for n in ("backend", "spillway", "old", "refusing", "haproxy",
                    "nginx") if n in rows]
label = {"backend": "direct (no proxy)", "spillway": "spillway",
         "old": "spillway before (SPILLWAY_OLD)",
         "refusing": "spillway, every request refused (429)",
         "haproxy": "haproxy", "nginx": "nginx"}

# Performance medians use the runs in which the proxy stayed up; a run in
# which it died is flagged in the runs column and in the notes, and its
# errors still count in "errors total".
summary = {}
for n in order:
    rs = rows[n]
    good = [r for r in rs if r["status"] == "ok"] or rs
    m = lambda k: statistics.median(r[k] for r in good)
    summary[n] = dict(
        runs=f"{sum(r['status'] == 'ok' for r in rs)}/{len(rs)}",
        rps=m("rps"), p50=m("p50"), p99=m("p99"),
        non2xx=m("non2xx"), sock=m("sock"),
        rss=max(r["rss"] for r in rs), cpu=m("cpu_per_req"),
        tot_err=sum(r["non2xx"] + r["sock"] for r in rs))

def fmt_int(x):
    return f"{x:,.0f}"

hdr = ["proxy", "runs ok", "req/s", "p50 ms", "p99 ms", "non-2xx/3xx",
       "socket err", "errors total", "peak RSS MiB", "CPU us/req"]
table = []
for n in order:
    s = summary[n]
    table.append([label[n], s["runs"], fmt_int(s["rps"]), f'{s["p50"]:.3f}',
                  f'{s["p99"]:.3f}', fmt_int(s["non2xx"]), fmt_int(s["sock"]),
                  fmt_int(s["tot_err"]),
                  "-" if n == "backend" else f'{s["rss"] / 1024:.1f}',
                  "-" if n == "backend" else f'{s["cpu"]:.1f}'])

ratios = []
if "spillway" in summary:
    for other in ("old", "haproxy", "nginx"):
        if other in summary and summary[other]["rps"] and summary[other]["p99"]:
            ratios.append([f"spillway / {label[other]}",
                           f'{summary["spillway"]["rps"] / summary[other]["rps"]:.2f}',
                           f'{summary["spillway"]["p99"] / summary[other]["p99"]:.2f}',
                           f'{summary["spillway"]["cpu"] / summary[other]["cpu"]:.2f}'
                           if summary[other]["cpu"] else "-"])
if "spillway" in summary and "refusing" in summary and summary["spillway"]["cpu"]:
    ratios.append(["refused / proxied (spillway)",
                   f'{summary["refusing"]["rps"] / summary["spillway"]["rps"]:.2f}',
                   f'{summary["refusing"]["p99"] / summary["spillway"]["p99"]:.2f}',
                   f'{summary["refusing"]["cpu"] / summary["spillway"]["cpu"]:.2f}'])
rhdr = ["ratio", "req/s (higher is better)", "p99 (lower is better)",
        "CPU us/req (lower is better)"]

def text_table(h, t):
    w = [max(len(x) for x in col) for col in zip(h, *t)]
    lines = ["  ".join(x.rjust(w[i]) if i else x.ljust(w[i]) for i, x in enumerate(r))
             for r in [h] + t]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)

def md_table(h, t):
    return "\n".join(["| " + " | ".join(h) + " |",
                      "|" + "|".join("---" if i == 0 else "---:" for i in range(len(h))) + "|"]
                     + ["| " + " | ".join(r) + " |" for r in t])

per_round = []
noisy = []
for n in order:
    for r in sorted(rows[n], key=lambda r: r["round"]):
        per_round.append([label[n], str(r["round"]), fmt_int(r["rps"]),
                          f'{r["p50"]:.3f}', f'{r["p75"]:.3f}', f'{r["p90"]:.3f}',
                          f'{r["p99"]:.3f}', f'{r["max"]:.3f}', str(r["non2xx"]),
                          str(r["sock"]), "-" if n == "backend" else f'{r["rss"] / 1024:.1f}',
                          "-" if n == "backend" else f'{r["cpu_per_req"]:.1f}',
                          str(r["other"]), r["status"]])
        if r["other"] >= 20:
            noisy.append(f'{label[n]} round {r["round"]}: other processes used '
                         f'{r["other"]}% of a CPU during the run')

print()
print(f"pass-through, wrk -t{threads} -c{conns} -d{dur}s, median of {rounds} rounds; {layout}")
print(text_table(hdr, table))
if ratios:
    print()
    print(text_table(rhdr, ratios))
elif run_spillway != "1":
    print("\n(spillway leg skipped: binary not found; no ratios)")
if spillway_build:
    print("spillway", spillway_build)
for n in notes:
    print("NOTE:", n)
for n in noisy:
    print("NOISY:", n)
print()

with open(out, "w") as fh:
    fh.write("# spillway pass-through benchmark\n\n")
    fh.write(f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}, host: "
             f"{platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}\n")
    fh.write(f"- load: `wrk -t{threads} -c{conns} -d{dur}s --latency`, keep-alive, "
             f"GET / answered by the backend with `200 ok`\n")
    fh.write(f"- rounds: {rounds}, alternating spillway, haproxy, nginx; "
             f"direct-to-backend baseline once\n")
    fh.write(f"- CPU layout: {layout}\n")
    fh.write(f"- versions: nginx {nginx_v}, haproxy {haproxy_v}, wrk {wrk_v}, "
             f"spillway {spillway_bin if run_spillway == '1' else '(skipped)'}"
             f"{' (' + spillway_build + ')' if spillway_build else ''}\n")
    fh.write("- req/s, p50, p99, non-2xx/3xx (wrk counts status >= 400), socket errors "
             "and CPU us/req are medians over the rounds in which the proxy stayed up "
             "(all rounds if it never did); errors total sums every round; peak RSS is the largest VmHWM seen "
             "(nginx: worker process only); CPU us/req is user+system time of the proxy "
             "process(es) during the run divided by requests\n\n")
    fh.write("## Summary\n\n" + md_table(hdr, table) + "\n\n")
    if ratios:
        fh.write(md_table(rhdr, ratios) + "\n\n")
    elif run_spillway != "1":
        fh.write("spillway leg skipped: binary not found.\n\n")
    if notes or noisy:
        fh.write("## Notes\n\n" + "".join(f"- {n}\n" for n in notes + noisy) + "\n")
    fh.write("## Every run\n\n" + md_table(
        ["proxy", "round", "req/s", "p50 ms", "p75 ms", "p90 ms", "p99 ms", "max ms",
         "non-2xx/3xx", "socket err", "RSS MiB", "CPU us/req", "other load %", "status"],
        per_round) + "\n\n")
    fh.write("other load %: CPU time of processes outside this benchmark (other "
             "tenants, builds; kernel threads excluded) during the run, in % of one CPU.\n\n")
    fh.write(f"Raw wrk output and daemon stderr: `{logdir}`\n")
print(f"markdown results: {out}")
print(f"raw logs: {logdir}")
EOF
