#!/bin/sh
# demo.sh: the controlled-failure demo (`make demo`).
#
# A fragile database-backed app (contrib/legacy-app) is measured, then
# driven open-loop (contrib/loadgen) at several times its capacity:
#   1. directly: it queues everything, serves clients that gave up, and
#      its goodput falls toward zero;
#   2. through spillway on its default configuration: the app keeps
#      serving at its capacity, the rest is refused fast;
#   3. through spillway while the app's data doubles twice mid-run (its
#      capacity halves each time): spillway follows it down;
#   4. through spillway in front of two copies of the app, one of which
#      dies a third into the run and comes back at two thirds, when the
#      other's data doubles (it gets twice slower): spillway's health
#      checks take the dead one out and bring it back, the other keeps
#      serving, no client waits on the dead one, and each server keeps a
#      concurrency limit of its own (printed near the end of the run).
# Each run prints a table; at the end a report (report.html, demo.svg,
# CSVs) is written to OUTDIR.
#
# Usage: demo.sh SPILLWAY LOADGEN LEGACY_APP CONF [OUTDIR]
# Environment (all optional):
#   DEMO_SECONDS=15      seconds of load per run
#   DEMO_RATE=           offered req/s (default: DEMO_OVERLOAD x capacity)
#   DEMO_OVERLOAD=3      offered rate as a multiple of the capacity
#   DEMO_TIMEOUT=3       seconds a client waits before it gives up
#   DEMO_WORKERS=4 DEMO_ROWS=20000   the app
#   DEMO_PROBE_SECONDS=2 capacity measurement, per data size
#   DEMO_PROXY_PORT=8080 DEMO_APP_PORT=8081 DEMO_ADMIN_PORT=8082
#   DEMO_APP2_PORT=8083  the second app of run 4
#
# Every process it starts is stopped by PID when it exits, also on error
# or Ctrl-C.
set -eu

if [ $# -lt 4 ]; then
	echo "usage: $0 SPILLWAY LOADGEN LEGACY_APP CONF [OUTDIR]" >&2
	exit 2
fi
SPILLWAY=$1
LOADGEN=$2
APP=$3
CONF=$4
OUT=${5:-demo-out}
HERE=$(cd "$(dirname "$0")" && pwd)
py() { python3 "$HERE/demo.py" "$@"; }

SECONDS_=${DEMO_SECONDS:-15}
RATE=${DEMO_RATE:-}
OVERLOAD=${DEMO_OVERLOAD:-3}
TIMEOUT=${DEMO_TIMEOUT:-3}
WORKERS=${DEMO_WORKERS:-4}
ROWS=${DEMO_ROWS:-20000}
PROBE=${DEMO_PROBE_SECONDS:-2}
PROXY_PORT=${DEMO_PROXY_PORT:-8080}
APP_PORT=${DEMO_APP_PORT:-8081}
ADMIN_PORT=${DEMO_ADMIN_PORT:-8082}
APP2_PORT=${DEMO_APP2_PORT:-8083}

log() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in "$SECONDS_" "$TIMEOUT" "$WORKERS" "$ROWS" "$PROXY_PORT" \
    "$APP_PORT" "$ADMIN_PORT" "$APP2_PORT"; do
	case $v in ''|*[!0-9]*) die "not a whole number: '$v'" ;; esac
done
for v in "$OVERLOAD" "$PROBE" ${RATE:+"$RATE"}; do
	case $v in ''|*[!0-9.]*) die "not a number: '$v'" ;; esac
done
[ "$SECONDS_" -ge 3 ] || die "DEMO_SECONDS must be at least 3"
for b in "$SPILLWAY" "$LOADGEN" "$APP"; do
	[ -x "$b" ] || die "$b: not built (run make)"
done
[ -r "$CONF" ] || die "$CONF: cannot read"
command -v python3 >/dev/null || die "python3 missing (apt-get install python3)"

# ------------------------------------------------------------ processes
PIDS=""
alive() {	# alive PID: running, not a zombie waiting to be reaped
	_st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	_st=${_st##*) }
	[ "${_st%% *}" != Z ] && [ "${_st%% *}" != X ]
}
stop_pid() {	# stop_pid PID: TERM, up to 10 s, then KILL; reap
	_i=0
	kill -TERM "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
	while alive "$1" && [ $_i -lt 100 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	if alive "$1"; then
		log "pid $1 ignored SIGTERM; SIGKILL"
		kill -KILL "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}
forget() {	# forget PID: drop it from PIDS
	_keep=""
	for _p in $PIDS; do
		[ "$_p" = "$1" ] || _keep="$_keep $_p"
	done
	PIDS=$_keep
}
stop() {	# stop PID: stop it and forget it
	[ -n "$1" ] || return 0
	stop_pid "$1"
	forget "$1"
}
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	for p in $PIDS; do
		stop_pid "$p"
	done
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------ setup
taken=$(py free "$PROXY_PORT" "$APP_PORT" "$ADMIN_PORT" "$APP2_PORT") ||
    die "port(s) $taken on 127.0.0.1 in use (is \`make run\` running?); set DEMO_PROXY_PORT, DEMO_APP_PORT, DEMO_ADMIN_PORT, DEMO_APP2_PORT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/*.csv "$OUT"/*.json "$OUT"/*.log "$OUT"/*.ini \
    "$OUT/report.html" "$OUT/demo.svg" "$OUT/summary.txt"

# spillway's default configuration; only the ports and the access log
# (a file, not the terminal) differ
INI=$OUT/spillway.ini
sed -e "s|^listen = 127.0.0.1:8080|listen = 127.0.0.1:$PROXY_PORT|" \
    -e "s|^server = 127.0.0.1:8081|server = 127.0.0.1:$APP_PORT|" \
    -e "s|^listen = 127.0.0.1:8082|listen = 127.0.0.1:$ADMIN_PORT|" \
    -e "s|^access_log = .*|access_log = $OUT/spillway-access.log|" \
    "$CONF" > "$INI"
"$SPILLWAY" -t -c "$INI" >/dev/null 2>&1 ||
    { "$SPILLWAY" -t -c "$INI"; die "$INI: invalid"; }

# run 4: the same with a second app and active health checks
INI2=$OUT/spillway-failover.ini
sed -e "s|^server = 127.0.0.1:$APP_PORT|server = 127.0.0.1:$APP_PORT\\
server = 127.0.0.1:$APP2_PORT|" \
    -e "s|^;health_check = .*|health_check = GET /healthz|" \
    -e "s|^check_interval = .*|check_interval = 500ms|" \
    -e "s|^check_timeout = .*|check_timeout = 400ms|" \
    -e "s|^check_fall = .*|check_fall = 2|" \
    -e "s|^slowstart = .*|slowstart = 2s|" \
    "$INI" > "$INI2"
"$SPILLWAY" -t -c "$INI2" >/dev/null 2>&1 ||
    { "$SPILLWAY" -t -c "$INI2"; die "$INI2: invalid"; }

APP_PID=""
SPW_PID=""
start_app() {	# start_app LOGNAME [PORT]
	"$APP" --port "${2:-$APP_PORT}" --workers "$WORKERS" --rows "$ROWS" \
	    >"$OUT/app-$1.log" 2>&1 &
	APP_PID=$!
	PIDS="$PIDS $APP_PID"
	py wait "http://127.0.0.1:${2:-$APP_PORT}/healthz" 30 ||
	    { cat "$OUT/app-$1.log" >&2; die "legacy-app did not start"; }
}
start_spillway() {	# start_spillway LOGNAME [CONF]
	local try
	# A port of the ephemeral range that was free a moment ago can be
	# the local end of someone's outgoing connection now (another
	# program on the machine, the load generator of the run before):
	# spillway says "Address already in use"; such a connection is
	# short-lived, so try again a few times before giving up.
	for try in 1 2 3 4 5; do
		"$SPILLWAY" -c "${2:-$INI}" >"$OUT/spillway-$1.log" 2>&1 &
		SPW_PID=$!
		PIDS="$PIDS $SPW_PID"
		py wait "http://127.0.0.1:$ADMIN_PORT/status" 30 "$SPW_PID" &&
		    return 0
		kill -0 "$SPW_PID" 2>/dev/null && break
		forget "$SPW_PID"
		grep -q "Address already in use" "$OUT/spillway-$1.log" || break
		log "a port is taken for now; starting spillway again ($try)"
		sleep 1
	done
	cat "$OUT/spillway-$1.log" >&2
	die "spillway did not start"
}
load() {	# load NAME PORT: one run of open-loop load
	log "$1: $RATE req/s for $SECONDS_ s to 127.0.0.1:$2"
	"$LOADGEN" --rate "$RATE" --duration "$SECONDS_" --timeout "$TIMEOUT" \
	    --connections "$CONNS" --quiet --csv "$OUT/$1.csv" \
	    --json "$OUT/$1.json" "http://127.0.0.1:$2/" \
	    2>"$OUT/loadgen-$1.log" &
	_lg=$!
	PIDS="$PIDS $_lg"
	# in the background, so that a signal reaches the traps at once
	if ! wait "$_lg"; then
		cat "$OUT/loadgen-$1.log" >&2
		die "loadgen failed"
	fi
	forget "$_lg"
	echo
	py table "$OUT" "$1"
	echo
}

# ------------------------------------------------------------ capacity
log "measuring legacy-app's capacity ($WORKERS workers, closed loop, ${PROBE} s per data size)"
start_app probe
CAP=$(py capacity "$APP_PORT" "$WORKERS" "$PROBE")
py grow "$APP_PORT" 0 2>/dev/null
CAP2=$(py capacity "$APP_PORT" "$WORKERS" "$PROBE")
py grow "$APP_PORT" 0 2>/dev/null
CAP4=$(py capacity "$APP_PORT" "$WORKERS" "$PROBE")
stop "$APP_PID"
log "capacity: $CAP req/s with $ROWS rows; $CAP2 with twice the data, $CAP4 with four times"
if [ -z "$RATE" ]; then
	RATE=$(awk -v c="$CAP" -v x="$OVERLOAD" 'BEGIN { printf "%d", c * x + 0.5 }')
fi
[ "$RATE" != 0 ] || die "capacity measured as 0"
# every request may have its own connection, as with real users
CONNS=$(awk -v r="$RATE" -v t="$TIMEOUT" 'BEGIN { printf "%d", r * t + 64 }')
G1=$((SECONDS_ / 3))
G2=$((2 * SECONDS_ / 3))
py meta "$OUT" capacity="$CAP" capacity_steps="[$CAP, $CAP2, $CAP4]" \
    rate="$RATE" seconds="$SECONDS_" timeout="$TIMEOUT" \
    workers="$WORKERS" rows="$ROWS" growth_at="[$G1, $G2]"

# ------------------------------------------------------------ runs
echo
echo "== 1. legacy-app alone, $RATE req/s offered ($OVERLOAD x its capacity of $CAP req/s)"
start_app direct
load direct "$APP_PORT"
stop "$APP_PID"

echo "== 2. the same load through spillway (default configuration)"
start_app spillway
start_spillway spillway
load spillway "$PROXY_PORT"
stop "$SPW_PID"
stop "$APP_PID"

echo "== 3. through spillway while the data doubles at ${G1} s and ${G2} s"
start_app growth
start_spillway growth
python3 "$HERE/demo.py" grow "$APP_PORT" "$G1" "$G2" 2>"$OUT/growth.log" &
GROW_PID=$!
PIDS="$PIDS $GROW_PID"
load growth "$PROXY_PORT"
wait "$GROW_PID" 2>/dev/null || true
forget "$GROW_PID"
stop "$SPW_PID"
stop "$APP_PID"

echo "== 4. through spillway to two apps; the second dies at ${G1} s and is back at ${G2} s, when the first's data doubles"
start_app failover
APP1_PID=$APP_PID
start_app failover2 "$APP2_PORT"
APP2_PID=$APP_PID
start_spillway failover "$INI2"
# kill the second app at G1; at G2 this subshell becomes the app again
(
	sleep "$G1"
	kill -TERM "$APP2_PID" 2>/dev/null
	sleep $((G2 - G1))
	exec "$APP" --port "$APP2_PORT" --workers "$WORKERS" --rows "$ROWS" \
	    >"$OUT/app-failover2-back.log" 2>&1
) &
FAIL_PID=$!
PIDS="$PIDS $FAIL_PID"
python3 "$HERE/demo.py" grow "$APP_PORT" "$G2" 2>"$OUT/growth-failover.log" &
GROW_PID=$!
PIDS="$PIDS $GROW_PID"
# each server's state and limit a second before the end of the load
(
	sleep $((SECONDS_ - 1))
	exec python3 "$HERE/demo.py" servers "$ADMIN_PORT"
) >"$OUT/servers-failover.txt" 2>&1 &
SNAP_PID=$!
PIDS="$PIDS $SNAP_PID"
load failover "$PROXY_PORT"
grep -E -- '-> (ejected|down|up|trial)' "$OUT/spillway-failover.log" |
    sed 's/^[^ ]* [^ ]* //' || true
wait "$SNAP_PID" 2>/dev/null || true
forget "$SNAP_PID"
wait "$GROW_PID" 2>/dev/null || true
forget "$GROW_PID"
echo "each server, a second before the end (the first twice slower since ${G2} s):"
cat "$OUT/servers-failover.txt"
echo
stop "$FAIL_PID"
stop "$APP2_PID"
stop "$SPW_PID"
stop "$APP1_PID"

# ------------------------------------------------------------ report
echo "== summary"
py report "$OUT"
echo
echo "report: $OUT/report.html (picture: $OUT/demo.svg; per-second CSVs"
echo "        and every process's log in $OUT)"
echo "live:   run \`make run\` (spillway in front of legacy-app), open the"
echo "        dashboard at http://127.0.0.1:8082/ and drive it with"
echo "        contrib/loadgen/loadgen -r $RATE -d 60 http://127.0.0.1:8080/"
