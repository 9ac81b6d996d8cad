#!/usr/bin/env bash
# soak.sh: a bounded soak run with everything on. A backend of known
# capacity (contrib/bench/collapse_backend.py: WORKERS workers of
# SERVICE_MS each) behind spillway with SPILLWAY_WORKERS event loops,
# driven open-loop by contrib/loadgen at OVERLOAD times that capacity for
# SOAK_SECONDS, with a reload (SIGHUP, alternating between two
# configurations) every RELOAD_EVERY seconds; a second, flapping server
# (the same backend, stopped and started again every FLAP_EVERY seconds)
# watched by active health checks; and, when redis-server is installed and
# spillway was built with hiredis, the admission buckets shared on a Redis
# that is restarted once, half-way. spillway's RSS (VmRSS), open
# descriptors and CPU time are sampled every second into a CSV.
#
# Verdict (exit 0 if every check passes, 1 otherwise):
#   - spillway is alive at the end, and stops cleanly on SIGTERM;
#   - RSS and descriptors are flat: the maximum over the last window is at
#     most the maximum over the first window after the warm-up, plus
#     SLACK_PCT percent, plus RSS_SLACK_KB or FD_SLACK;
#   - no request is lost: every request loadgen offered ended as a status
#     or a timeout (offered == the sum of its outcomes), and none ended as
#     an error (a reset, a refused connection, a bad response).
#
# Usage:  contrib/soak/soak.sh
# Environment (all optional):
#   SPILLWAY=path      spillway binary (default: <repo>/src/spillway)
#   LOADGEN=path       loadgen binary (default: <repo>/contrib/loadgen/loadgen)
#   SOAK_SECONDS=600   seconds of load
#   RELOAD_EVERY=10    seconds between reloads
#   WORKERS=4 SERVICE_MS=20   each backend server: capacity
#                      WORKERS*1000/SERVICE_MS
#   SPILLWAY_WORKERS=1 spillway's [proxy] workers (a build with them)
#   FLAP_EVERY=30      seconds between stopping and starting the second
#                      server; 0: one server, no health checks
#   REDIS=auto         yes: share the buckets on a redis-server of the
#                      run's own (restarted once); no; auto: yes if it can
#   OVERLOAD=5         offered rate = OVERLOAD x capacity
#   TIMEOUT=5          loadgen per-request timeout, seconds
#   CONNECTIONS=512    loadgen connection cap
#   WARMUP=            seconds before the first window (default: 60, or a
#                      sixth of a shorter run)
#   WINDOW=            window length (default: 60, or a quarter of a
#                      shorter run)
#   SLACK_PCT=10 RSS_SLACK_KB=1024 FD_SLACK=16
#   OUTDIR=/tmp/spillway-soak   samples.csv, soak.svg (curve.py), loadgen.json,
#                      logs, configs
set -eu
# shellcheck disable=SC2034  # read by lib.sh
BENCH_NAME=soak
# shellcheck source=contrib/bench/lib.sh
. "$(dirname "$0")/../bench/lib.sh"

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)

SPILLWAY=${SPILLWAY:-$REPO_DIR/src/spillway}
LOADGEN=${LOADGEN:-$REPO_DIR/contrib/loadgen/loadgen}
SOAK_SECONDS=${SOAK_SECONDS:-600}
RELOAD_EVERY=${RELOAD_EVERY:-10}
WORKERS=${WORKERS:-4}
SERVICE_MS=${SERVICE_MS:-20}
OVERLOAD=${OVERLOAD:-5}
TIMEOUT=${TIMEOUT:-5}
CONNECTIONS=${CONNECTIONS:-512}
SLACK_PCT=${SLACK_PCT:-10}
RSS_SLACK_KB=${RSS_SLACK_KB:-1024}
FD_SLACK=${FD_SLACK:-16}
OUTDIR=${OUTDIR:-/tmp/spillway-soak}

SPILLWAY_WORKERS=${SPILLWAY_WORKERS:-1}
FLAP_EVERY=${FLAP_EVERY:-30}
REDIS=${REDIS:-auto}

for v in SOAK_SECONDS RELOAD_EVERY WORKERS SERVICE_MS OVERLOAD TIMEOUT \
    CONNECTIONS SLACK_PCT RSS_SLACK_KB FD_SLACK SPILLWAY_WORKERS FLAP_EVERY; do
	case ${!v} in ''|*[!0-9]*) die "$v must be a whole number (got '${!v}')" ;; esac
done
[ "$SOAK_SECONDS" -ge 8 ] || die "SOAK_SECONDS must be at least 8"
[ "$RELOAD_EVERY" -ge 1 ] || die "RELOAD_EVERY must be at least 1"
if [ "$SOAK_SECONDS" -ge 360 ]; then
	WARMUP=${WARMUP:-60}
	WINDOW=${WINDOW:-60}
else
	WARMUP=${WARMUP:-$((SOAK_SECONDS / 6))}
	WINDOW=${WINDOW:-$((SOAK_SECONDS / 4))}
fi
[ $((WARMUP + 2 * WINDOW)) -le "$SOAK_SECONDS" ] ||
    die "WARMUP + 2 x WINDOW must fit in SOAK_SECONDS"
[ -x "$SPILLWAY" ] || die "no spillway binary at $SPILLWAY (make first)"
[ -x "$LOADGEN" ] || die "no loadgen binary at $LOADGEN (make first)"
need python3 python3
[ "${missing:-0}" -eq 0 ] || die "missing tools"
case $REDIS in
yes|no) ;;
auto)	if command -v redis-server >/dev/null 2>&1 &&
	    "$SPILLWAY" -V 2>&1 | grep -q redis; then
		REDIS=yes
	else
		REDIS=no
	fi ;;
*)	die "REDIS must be yes, no or auto (got '$REDIS')" ;;
esac
if [ "$REDIS" = yes ]; then
	need redis-server redis-server
	[ "${missing:-0}" -eq 0 ] || die "missing tools"
fi

CAPACITY=$((WORKERS * 1000 / SERVICE_MS))
RATE=$((OVERLOAD * CAPACITY))
mkdir -p "$OUTDIR"
CSV=$OUTDIR/samples.csv
JSON=$OUTDIR/loadgen.json
rm -f "$CSV" "$JSON"

pids=""
# shellcheck disable=SC2317  # run by the trap
cleanup() {
	local p
	for p in $pids; do
		if alive "$p"; then kill "$p" 2>/dev/null || true; fi
	done
}
trap cleanup EXIT
trap 'exit 1' INT TERM

read -r BPORT PPORT BPORT2 RPORT <<EOF
$(free_ports 4)
EOF

write_conf() { # write_conf QUEUE_TIMEOUT: the configuration, to reload
	cat > "$OUTDIR/spillway.ini.new" <<EOF
[proxy]
listen = 127.0.0.1:$PPORT
max_connections = 4096
header_timeout = 5s
idle_timeout = 30s
access_log = off
EOF
	if [ "$SPILLWAY_WORKERS" -gt 1 ]; then
		echo "workers = $SPILLWAY_WORKERS" >> "$OUTDIR/spillway.ini.new"
	fi
	cat >> "$OUTDIR/spillway.ini.new" <<EOF

[backend]
server = 127.0.0.1:$BPORT
response_timeout = 10s
EOF
	if [ "$FLAP_EVERY" -gt 0 ]; then
		cat >> "$OUTDIR/spillway.ini.new" <<EOF
server = 127.0.0.1:$BPORT2
health_check = GET /
check_interval = 1s
check_timeout = 500ms
check_rise = 2
check_fall = 2
EOF
	fi
	cat >> "$OUTDIR/spillway.ini.new" <<EOF

[limiter]
algorithm = gradient
queue_timeout = $1
EOF
	if [ "$REDIS" = yes ]; then
		# a global rate above what the servers take: the buckets are
		# used on every request, and refuse only past it
		cat >> "$OUTDIR/spillway.ini.new" <<EOF

[admission]
rate = $((4 * CAPACITY))
burst = $CAPACITY

[cluster]
redis = 127.0.0.1:$RPORT
EOF
	fi
	mv "$OUTDIR/spillway.ini.new" "$OUTDIR/spillway.ini"
}

start_backend2() {
	python3 "$REPO_DIR/contrib/bench/collapse_backend.py" --port "$BPORT2" \
	    --workers "$WORKERS" --service-ms "$SERVICE_MS" --quiet \
	    2>> "$OUTDIR/backend2.log" &
	B2PID=$!
	pids="$pids $B2PID"
}

start_redis() {
	redis-server --port "$RPORT" --bind 127.0.0.1 --save '' \
	    --appendonly no --dir "$OUTDIR" > "$OUTDIR/redis.log" 2>&1 &
	RPID=$!
	pids="$pids $RPID"
}

stop_pid() { # stop_pid PID: TERM, then wait for it
	kill "$1" 2>/dev/null || true
	for _ in $(seq 50); do alive "$1" || break; sleep 0.1; done
	wait "$1" 2>/dev/null || true
}

log "backend: $WORKERS workers x ${SERVICE_MS} ms = $CAPACITY req/s on :$BPORT"
python3 "$REPO_DIR/contrib/bench/collapse_backend.py" --port "$BPORT" \
    --workers "$WORKERS" --service-ms "$SERVICE_MS" --quiet \
    2> "$OUTDIR/backend.log" &
BPID=$!
pids="$pids $BPID"
B2PID=""
if [ "$FLAP_EVERY" -gt 0 ]; then
	log "second server on :$BPORT2, stopped and started every ${FLAP_EVERY}s, health checked"
	start_backend2
fi
RPID=""
if [ "$REDIS" = yes ]; then
	log "redis-server on :$RPORT, the buckets shared there, restarted half-way"
	start_redis
fi
# the servers listen before spillway starts checking them
for _ in $(seq 50); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$BPORT") 2>/dev/null &&
	    { [ "$FLAP_EVERY" -eq 0 ] ||
	    (exec 3<>"/dev/tcp/127.0.0.1/$BPORT2") 2>/dev/null; }; then
		break
	fi
	sleep 0.1
done
write_conf 1s
"$SPILLWAY" -c "$OUTDIR/spillway.ini" 2> "$OUTDIR/spillway.log" &
SPID=$!
pids="$pids $SPID"
for _ in $(seq 50); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null; then
		break
	fi
	sleep 0.1
done
alive "$SPID" || die "spillway did not start; see $OUTDIR/spillway.log"

log "load: $RATE req/s (${OVERLOAD}x) for ${SOAK_SECONDS}s, a reload every ${RELOAD_EVERY}s; samples in $CSV"
"$LOADGEN" -r "$RATE" -d "$SOAK_SECONDS" -t "$TIMEOUT" -c "$CONNECTIONS" \
    -q --csv "$OUTDIR/loadgen.csv" --json "$JSON" \
    "http://127.0.0.1:$PPORT/" 2> "$OUTDIR/loadgen.log" &
LPID=$!
pids="$pids $LPID"

echo "second,rss_kb,fds,cpu_ticks,reloads" > "$CSV"
t=0
t0=$SECONDS
reloads=0
next_reload=$RELOAD_EVERY
next_log=60
flaps=0
next_flap=$FLAP_EVERY
redis_restarted=0
while alive "$LPID"; do
	sleep 1
	t=$((SECONDS - t0))
	alive "$SPID" || break
	if [ "$t" -ge "$next_reload" ] && [ "$t" -lt "$SOAK_SECONDS" ]; then
		next_reload=$((next_reload + RELOAD_EVERY))
		if [ $((reloads % 2)) -eq 0 ]; then
			write_conf 900ms
		else
			write_conf 1s
		fi
		kill -HUP "$SPID"
		reloads=$((reloads + 1))
	fi
	if [ "$FLAP_EVERY" -gt 0 ] && [ "$t" -ge "$next_flap" ] &&
	    [ "$t" -lt "$SOAK_SECONDS" ]; then
		next_flap=$((next_flap + FLAP_EVERY))
		if alive "$B2PID"; then
			stop_pid "$B2PID"
		else
			start_backend2
		fi
		flaps=$((flaps + 1))
	fi
	if [ "$REDIS" = yes ] && [ "$redis_restarted" -eq 0 ] &&
	    [ "$t" -ge $((SOAK_SECONDS / 2)) ]; then
		log "t=${t}s: redis-server stopped for 3 s"
		stop_pid "$RPID"
		sleep 3
		start_redis
		redis_restarted=1
	fi
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SPID/status" 2>/dev/null) || rss=
	fds=$(find "/proc/$SPID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	cpu=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$SPID/stat" 2>/dev/null) || cpu=
	echo "$t,${rss:-},$fds,${cpu:-},$reloads" >> "$CSV"
	if [ "$t" -ge "$next_log" ]; then
		next_log=$((next_log + 60))
		log "t=${t}s rss=${rss:-?} kB fds=$fds reloads=$reloads flaps=$flaps"
	fi
done
wait "$LPID" || true

verdict=0
fail() { log "FAIL: $*"; verdict=1; }

if alive "$SPID"; then
	log "spillway alive after ${t}s and $reloads reloads"
else
	fail "spillway died; see $OUTDIR/spillway.log"
fi
ok_reloads=$(grep -c "reloaded " "$OUTDIR/spillway.log" || true)
[ "$ok_reloads" -eq "$reloads" ] ||
    fail "$reloads reloads sent, $ok_reloads logged as done"

# flat: last window's maximum against the first window's after warm-up
flat() { # flat COLUMN NAME SLACK
	awk -F, -v col="$1" -v name="$2" -v slack="$3" -v pct="$SLACK_PCT" \
	    -v w0="$WARMUP" -v win="$WINDOW" -v last="$t" '
	NR > 1 && $col != "" {
		if ($1 > w0 && $1 <= w0 + win && $col > a) a = $col
		if ($1 > last - win && $col > b) b = $col
	}
	END {
		bound = a * (1 + pct / 100) + slack
		printf "%s: first window max %d, last window max %d, bound %d\n",
		    name, a, b, bound
		exit !(a > 0 && b <= bound)
	}' "$CSV"
}
if ! flat 2 rss_kb "$RSS_SLACK_KB" >&2; then fail "RSS grew"; fi
if ! flat 3 fds "$FD_SLACK" >&2; then fail "descriptors grew"; fi

if [ -s "$JSON" ]; then
	python3 - "$JSON" <<'EOF' >&2 || fail "requests lost or failed"
import json, sys
j = json.load(open(sys.argv[1]))
ended = sum(j[k] for k in ("ok_2xx", "s429", "s503", "s502", "s504",
                            "other_status", "errors", "timeouts"))
print("loadgen: offered %d, 2xx %d, 503 %d, 429 %d, 502 %d, 504 %d, "
      "other %d, errors %d, timeouts %d; goodput %.1f/s, p99 %s ms"
      % (j["offered"], j["ok_2xx"], j["s503"], j["s429"], j["s502"],
         j["s504"], j["other_status"], j["errors"], j["timeouts"],
         j["goodput"], j["p99_ms"]))
bad = []
if j["offered"] == 0 or ended != j["offered"]:
    bad.append("offered %d, ended %d" % (j["offered"], ended))
if j["errors"]:
    bad.append("%d errors" % j["errors"])
for b in bad:
    print("loadgen: " + b)
sys.exit(1 if bad else 0)
EOF
else
	fail "loadgen wrote no summary; see $OUTDIR/loadgen.log"
fi

# the minute marks, for the record
awk -F, 'NR == 1 || NR == 2 || int($1 / 60) > m {
	if (NR > 1) m = int($1 / 60)
	printf "%8s %10s %6s %10s %8s\n", $1, $2, $3, $4, $5
}' "$CSV" >&2
python3 "$(dirname "$0")/curve.py" "$CSV" "$OUTDIR/soak.svg" \
    "spillway soak: ${SOAK_SECONDS}s at ${OVERLOAD}x, ${SPILLWAY_WORKERS:-1} worker(s)" &&
    log "the curve: $OUTDIR/soak.svg"

if alive "$SPID"; then
	kill -TERM "$SPID"
	for _ in $(seq 100); do alive "$SPID" || break; sleep 0.1; done
	if alive "$SPID"; then
		fail "spillway still running 10s after SIGTERM"
	elif ! wait "$SPID"; then
		fail "spillway exited with an error status after SIGTERM"
	fi
fi
if [ "$verdict" -eq 0 ]; then log "PASS"; else log "FAIL"; fi
exit "$verdict"
