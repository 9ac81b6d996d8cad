#!/usr/bin/env bash
# tls.sh: HTTPS through spillway and HAProxy, side by side, with the same
# throwaway certificate, in front of the same plain-HTTP backend (nginx
# answering "200 ok"), measured with wrk, alternating between the proxies.
#
# Legs (LEGS, in this order within a round):
#   plain  plain HTTP keep-alive through the same processes (reference)
#   ka     HTTPS keep-alive requests/s (TLS 1.3 negotiated)
#   hs     a new TCP connection and full TLS handshake per request
#          (wrk -H "Connection: close"; resumption off on the proxies)
#   hs12   the same with both proxies limited to TLS 1.2
#   hsr    the same with session tickets and cache on (wrk resumes)
#
# Usage:  contrib/bench/tls.sh
# Environment (all optional):
#   SPILLWAY=path      spillway binary (default: <repo>/src/spillway)
#   CERT=rsa           server key: rsa (2048 bits) or ecdsa (P-256)
#   LEGS="plain ka hs hs12 hsr"
#   ROUNDS=3           measured rounds; each round runs every leg on both
#   DURATION=10        seconds per wrk run
#   CONNECTIONS=50     wrk connections (-c)
#   THREADS=1          wrk threads (-t)
#   WARMUP=2           seconds of unrecorded warm-up per daemon (0 = none)
#   PROBE_RATE=20      handshake-latency probes per second during the
#                      handshake legs (0 = no probe)
#   PERF=auto          1: count the proxy's instructions and cycles per request
#                      with perf stat (auto: if perf can count here), 0: don't
#   PROXY_CPUS=0 LOAD_CPUS=1 PIN=1   CPU pinning, as in passthrough.sh
#   OUT=/tmp/spillway-bench/tls.md   markdown results file
#   LOGDIR=$(dirname OUT)/tls-logs   raw wrk output, daemon stderr
#   KEEP_WORKDIR=0     1 keeps the temporary directory (configs, certificates)
# See contrib/bench/README.md.
set -eu
BENCH_NAME=tls
. "$(dirname "$0")/lib.sh"
set -o pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)

SPILLWAY=${SPILLWAY:-$REPO_DIR/src/spillway}
CERT=${CERT:-rsa}
LEGS=${LEGS:-plain ka hs hs12 hsr}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
PROBE_RATE=${PROBE_RATE:-20}
PERF=${PERF:-auto}
PROXY_CPUS=${PROXY_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
PIN=${PIN:-1}
OUT=${OUT:-/tmp/spillway-bench/tls.md}
LOGDIR=${LOGDIR:-$(dirname "$OUT")/tls-logs}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}
PROXIES="spillway haproxy"

for v in ROUNDS DURATION CONNECTIONS THREADS WARMUP PROBE_RATE; do
    val=${!v}
    case $val in
        ''|*[!0-9]*) die "$v must be a whole number (got '$val')" ;;
    esac
done
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"
[ "$DURATION" -ge 1 ] || die "DURATION must be at least 1"
[ "$CONNECTIONS" -ge "$THREADS" ] || die "CONNECTIONS must be >= THREADS"
case $CERT in rsa|ecdsa) ;; *) die "CERT must be rsa or ecdsa (got '$CERT')" ;; esac
for l in $LEGS; do
    case $l in plain|ka|hs|hs12|hsr) ;; *) die "unknown leg '$l' in LEGS" ;; esac
done

# ---------------------------------------------------------------- prerequisites
need wrk wrk
need python3 python3
need getconf libc-bin
need openssl openssl
need haproxy haproxy
need nginx nginx-light
[ -x "$SPILLWAY" ] || { log "spillway binary '$SPILLWAY' not found (make src/spillway, or set SPILLWAY=)"; missing=1; }
[ "$missing" = 0 ] || die "prerequisites missing, see above"
if [ "$PERF" = auto ]; then
    PERF=0
    # the counters may be busy for a moment (another perf user): try thrice
    for _ in 1 2 3; do
        if command -v perf >/dev/null 2>&1 &&
            perf stat -x, -e instructions,cycles -- true 2>&1 | grep -q '^[0-9][0-9]*,.*instructions'; then
            PERF=1
            break
        fi
        sleep 1
    done
    [ "$PERF" = 1 ] || log "note: perf cannot count instructions here; no instructions/req (PERF=0)"
fi

TASKSET_PROXY=() TASKSET_LOAD=()
NCPU=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if [ "$PIN" = 1 ] && command -v taskset >/dev/null 2>&1 && [ "$NCPU" -ge 2 ]; then
    TASKSET_PROXY=(taskset -c "$PROXY_CPUS")
    TASKSET_LOAD=(taskset -c "$LOAD_CPUS")
    LAYOUT="proxy on CPU $PROXY_CPUS; backend nginx, wrk and probe on CPU $LOAD_CPUS"
else
    [ "$PIN" = 1 ] && log "note: not pinning CPUs (taskset missing or fewer than 2 CPUs)"
    LAYOUT="not pinned ($NCPU CPUs)"
fi

# The DWARF producer string (present with -g) holds the flags; the last -O wins.
producer=$(LC_ALL=C grep -a -o -m 1 -E '(GNU C|clang version)[ -~]*' "$SPILLWAY" | head -n 1 || true)
opt=$(printf '%s\n' "$producer" | grep -o -E '(^| )-O[0-9sgz]*' | tail -n 1 | tr -d ' ' || true)
if [ -n "$producer" ]; then
    SPILLWAY_BUILD="built with ${opt:-no -O flag (= -O0)}"
    case ${opt:--O0} in
        -O0|-O|-Og) SPILLWAY_BUILD="$SPILLWAY_BUILD: WARNING, not an optimised build" ;;
    esac
else
    SPILLWAY_BUILD="optimisation level unknown (no debug info)"
fi
log "spillway: $SPILLWAY ($SPILLWAY_BUILD)"

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- workdir, cleanup
WORK=$(mktemp -d /tmp/spillway-tls.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$(dirname "$OUT")" "$LOGDIR"
RESULTS=$WORK/results.tsv
: > "$RESULTS"
PIDS=()          # every daemon we started (bash children); PIDS[0] is the backend
EXTRA_PIDS=()    # nginx workers, killed too if their master did not take them along
WRK_PID=""
SAMPLER_PID=""
PROBE_PID=""
PERF_PID=""

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    set +e
    for pid in "$WRK_PID" "$SAMPLER_PID" "$PROBE_PID" "$PERF_PID"; do
        [ -n "$pid" ] && alive "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    stop_all "${PIDS[@]:1}"
    [ "${#PIDS[@]}" -gt 0 ] && stop_all "${PIDS[0]}"
    for pid in "${EXTRA_PIDS[@]}"; do
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    cp "$WORK"/*.log "$WORK"/*.stderr "$WORK"/*.conf "$WORK"/*.ini \
        "$WORK"/results.tsv "$LOGDIR"/ 2>/dev/null
    if [ "$KEEP_WORKDIR" = 1 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- certificates
# A CA and a server certificate for localhost and 127.0.0.1, made here and
# thrown away with the work directory.
make_certs() {
    local d=$WORK/pki keyopt
    mkdir -p "$d"
    if [ "$CERT" = ecdsa ]; then
        keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    else
        keyopt=(-newkey rsa:2048)
    fi
    {
        openssl req -x509 "${keyopt[@]}" -nodes -days 2 -subj /CN=spillway-bench-ca \
            -keyout "$d/ca.key" -out "$d/ca.pem" &&
        openssl req "${keyopt[@]}" -nodes -subj /CN=localhost \
            -keyout "$d/server.key" -out "$d/server.csr" &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$d/ext.cnf" &&
        openssl x509 -req -days 2 -in "$d/server.csr" -CA "$d/ca.pem" \
            -CAkey "$d/ca.key" -CAcreateserial -extfile "$d/ext.cnf" \
            -out "$d/server.pem"
    } >"$WORK/openssl.log" 2>&1 || { cat "$WORK/openssl.log" >&2; die "openssl failed"; }
    cat "$d/server.pem" "$d/server.key" > "$d/combined.pem"
    chmod 644 "$d"/*
}
make_certs
PKI=$WORK/pki
CERT_DESC=$(openssl x509 -in "$PKI/server.pem" -noout -text |
    sed -n 's/^ *Public Key Algorithm: *//p; s/^ *Public-Key: *//p' | paste -sd ' ')

# ---------------------------------------------------------------- ports, configs
# Each proxy runs three instances, all idle but the one under test:
#   full    TLSv1.2 + TLSv1.3, no resumption, plus a plain listener (plain, ka, hs)
#   tls12   TLSv1.2 only, no resumption (hs12)
#   resume  TLSv1.2 + TLSv1.3, session tickets and cache on (hsr)
read -r BACKEND_PORT SP_FULL SP_PLAIN SP_12 SP_RES HA_FULL HA_PLAIN HA_12 HA_RES <<EOF
$(free_ports 9)
EOF

NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
HAPROXY_MAXCONN=$(( (NOFILE - 200) / 2 ))
[ "$HAPROXY_MAXCONN" -gt 10000 ] && HAPROXY_MAXCONN=10000
[ "$HAPROXY_MAXCONN" -gt "$CONNECTIONS" ] || die "ulimit -n ($NOFILE) too low for $CONNECTIONS connections"

write_backend_conf "$WORK" "$BACKEND_PORT"

spillway_tls_ini "$SP_FULL" "$SP_PLAIN" "TLSv1.2 TLSv1.3" 0 "$PKI" "$BACKEND_PORT" > "$WORK/spillway-full.ini"
spillway_tls_ini "$SP_12" - "TLSv1.2" 0 "$PKI" "$BACKEND_PORT" > "$WORK/spillway-tls12.ini"
spillway_tls_ini "$SP_RES" - "TLSv1.2 TLSv1.3" 1 "$PKI" "$BACKEND_PORT" > "$WORK/spillway-resume.ini"

haproxy_conf() { # haproxy_conf TLSPORT PLAINPORT|- MAXVER RESUME(0|1) STATSOCK
    local bind="127.0.0.1:$1 ssl crt $PKI/combined.pem alpn http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver $3"
    local cache="tune.ssl.cachesize 20000"
    if [ "$4" != 1 ]; then
        cache="tune.ssl.cachesize 0"
        bind="$bind no-tls-tickets"
    fi
    [ "$2" != - ] && bind="$bind;127.0.0.1:$2"
    haproxy_http_conf 1 "$HAPROXY_MAXCONN" "$bind" "127.0.0.1:$BACKEND_PORT" "" \
        "stats socket $5 mode 600 level admin" "$cache"
}
haproxy_conf "$HA_FULL" "$HA_PLAIN" TLSv1.3 0 "$WORK/haproxy-full.sock" > "$WORK/haproxy-full.conf"
haproxy_conf "$HA_12" - TLSv1.2 0 "$WORK/haproxy-tls12.sock" > "$WORK/haproxy-tls12.conf"
haproxy_conf "$HA_RES" - TLSv1.3 1 "$WORK/haproxy-resume.sock" > "$WORK/haproxy-resume.conf"

# ---------------------------------------------------------------- daemons
declare -A PID_OF PORT_OF
PORT_OF[backend]=$BACKEND_PORT
PORT_OF[spillway-full]=$SP_FULL PORT_OF[spillway-tls12]=$SP_12 PORT_OF[spillway-resume]=$SP_RES
PORT_OF[haproxy-full]=$HA_FULL PORT_OF[haproxy-tls12]=$HA_12 PORT_OF[haproxy-resume]=$HA_RES
PORT_OF[spillway-plain]=$SP_PLAIN PORT_OF[haproxy-plain]=$HA_PLAIN

# tls_probe MODE PORT [ARG]: one python client against 127.0.0.1:PORT
#   get PORT [tls]    GET / answers 200 (over TLS if tls)
#   info PORT         "protocol cipher group-or-? resumed(yes|no)": two
#                     connections, the second offering the first's session
#   rate PORT R S     open-loop: R new TLS connections per second for S
#                     seconds, each GET / then close; prints
#                     "n p50_us p99_us errors" of connect..handshake..response
tls_probe() {
    python3 - "$@" <<'EOF'
import socket, ssl, sys, time
mode, port = sys.argv[1], int(sys.argv[2])
REQ = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])

def fetch(tls=True, session=None, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        s = ctx.wrap_socket(s, server_hostname="localhost", session=session)
    s.sendall(REQ)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    return s, data

if mode == "get":
    try:
        s, d = fetch(tls=len(sys.argv) > 3)
        sys.exit(0 if d.startswith(b"HTTP/1.1 200") else 1)
    except Exception:
        sys.exit(1)
elif mode == "info":
    s1, _ = fetch()
    s2, _ = fetch(session=s1.session)
    c = s2.cipher()
    print(f"{s2.version()} {c[0]} {'yes' if s2.session_reused else 'no'}")
elif mode == "rate":
    rate, secs = float(sys.argv[3]), float(sys.argv[4])
    lat, errors = [], 0
    t0 = time.monotonic()
    n = int(rate * secs)
    for i in range(n):
        if time.monotonic() > t0 + secs + 10:   # bounded, even if connects hang
            errors += n - i
            break
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        start = time.monotonic()
        try:
            s, d = fetch(timeout=5)
            s.close()
            if not d.startswith(b"HTTP/1.1 200"):
                raise ValueError
            lat.append(time.monotonic() - start)
        except Exception:
            errors += 1
    lat.sort()
    pick = lambda q: int(lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6) if lat else 0
    print(len(lat), pick(0.50), pick(0.99), errors)
EOF
}

wait_ready() { # wait_ready NAME PID PORT [tls]: up to 10 s
    # shellcheck disable=SC2086
    wait_up "$1" "$2" "does not answer 200 on 127.0.0.1:$3" \
        tls_probe get "$3" ${4:-}
}

start_daemon() { # start_daemon NAME: start (pinned), wait until it answers
    local name=$1 pid tls=tls
    case $name in
        backend)
            tls=""
            "${TASKSET_LOAD[@]}" nginx -p "$WORK/backend" -c "$WORK/backend.conf" \
                -g 'daemon off;' >"$WORK/backend.stdout.log" 2>>"$WORK/backend.stderr" &
            ;;
        haproxy-*)
            "${TASKSET_PROXY[@]}" haproxy -f "$WORK/$name.conf" -db \
                >"$WORK/$name.stdout.log" 2>>"$WORK/$name.stderr" &
            ;;
        spillway-*)
            "${TASKSET_PROXY[@]}" "$SPILLWAY" -c "$WORK/$name.ini" \
                >"$WORK/$name.stdout.log" 2>>"$WORK/$name.stderr" &
            ;;
    esac
    pid=$!
    PIDS+=("$pid")
    PID_OF[$name]=$pid
    if ! wait_ready "$name" "$pid" "${PORT_OF[$name]}" $tls; then
        tail -n 20 "$WORK/$name.stderr" 2>/dev/null | sed "s/^/  $name stderr: /" >&2 || true
        return 1
    fi
    if [ "$name" = backend ]; then
        local w
        for w in $(children_of "$pid"); do EXTRA_PIDS+=("$w"); done
    fi
    log "$name started: pid $pid, 127.0.0.1:${PORT_OF[$name]}"
}

# ---------------------------------------------------------------- wrk
cat > "$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
        summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.timeout, e.status))
end
EOF

run_wrk() { # run_wrk URL SECONDS LOGFILE [wrk args...]
    local url=$1 secs=$2 logf=$3 rc=0
    shift 3
    "${TASKSET_LOAD[@]}" timeout -k 5 $((secs + 30)) \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$secs"s --latency -s "$WORK/report.lua" \
        "$@" "$url" >"$logf" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

# CPU ticks of this shell's reaped children: read around run_wrk, the
# difference is wrk's own CPU time (and that of timeout and taskset).
child_ticks() {
    local st
    st=$(cat "/proc/$$/stat")
    st=${st##*) }
    # shellcheck disable=SC2086
    set -- $st
    echo $(( ${14} + ${15} ))
}

field() { # field NAME LOGFILE
    sed -n "s/^BENCH .*$1=\([0-9.]*\).*/\1/p" "$2" | head -n 1
}

# leg_target LEG PROXY: "daemon url" for that leg
leg_target() {
    case $1 in
        plain) echo "$2-full http://127.0.0.1:${PORT_OF[$2-plain]}/" ;;
        ka|hs) echo "$2-full https://127.0.0.1:${PORT_OF[$2-full]}/" ;;
        hs12) echo "$2-tls12 https://127.0.0.1:${PORT_OF[$2-tls12]}/" ;;
        hsr) echo "$2-resume https://127.0.0.1:${PORT_OF[$2-resume]}/" ;;
    esac
}

measure() { # measure LEG PROXY ROUND: one recorded wrk run, append to results.tsv
    local leg=$1 proxy=$2 round=$3 daemon url pid logf t0 t1 rc=0 status=ok rss
    local foreign probe="0 0 0 0" probef=$WORK/probe-$leg-$proxy-r$round.log
    local wrkargs=() port c0 c1 insn=0 cyc=0 perff=$WORK/perf-$leg-$proxy-r$round.log
    read -r daemon url <<<"$(leg_target "$leg" "$proxy")"
    pid=${PID_OF[$daemon]}
    logf=$WORK/wrk-$leg-$proxy-r$round.log
    if ! alive "$pid"; then
        log "!!! $daemon (pid $pid) is down; restarting it"
        printf '%s\t%s\t%s\tdied-between-runs\n' "$leg" "$proxy" "$round" >>"$RESULTS"
        start_daemon "$daemon" || return 0
        pid=${PID_OF[$daemon]}
    fi
    case $leg in hs*) wrkargs=(-H "Connection: close") ;; esac
    foreign_ticks "$WORK/foreign.json"
    t0=$(cpu_ticks "$pid")
    ( while kill -0 $$ 2>/dev/null; do
          s="$(cpu_ticks "$pid") $(hwm_kb "$pid")"
          [ "${s#* }" != 0 ] && echo "$s" > "$WORK/sample.tmp" && mv "$WORK/sample.tmp" "$WORK/sample"
          sleep 0.5
      done ) &
    SAMPLER_PID=$!
    if [ "$PROBE_RATE" -gt 0 ] && [ "${leg#hs}" != "$leg" ]; then
        # starts after wrk's first second, so that it sees the steady state
        ( sleep 1
          port=${url##*:}; tls_probe rate "${port%/}" "$PROBE_RATE" "$((DURATION > 2 ? DURATION - 2 : 1))" ) \
            >"$probef" 2>&1 &
        PROBE_PID=$!
        # on the load CPU with wrk (its python inherits the affinity)
        [ "${#TASKSET_LOAD[@]}" -gt 0 ] && taskset -p -c "$LOAD_CPUS" "$PROBE_PID" >/dev/null
    fi
    if [ "$PERF" = 1 ]; then
        perf stat -x, -e instructions,cycles -p "$pid" -o "$perff" &
        PERF_PID=$!
    fi
    c0=$(child_ticks)
    run_wrk "$url" "$DURATION" "$logf" "${wrkargs[@]}" || rc=$?
    c1=$(child_ticks)
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
        insn=$(awk -F, '$3 ~ /^instructions/ { print $1 }' "$perff" 2>/dev/null)
        cyc=$(awk -F, '$3 ~ /^cycles/ { print $1 }' "$perff" 2>/dev/null)
    fi
    if [ -n "$PROBE_PID" ]; then
        wait "$PROBE_PID" 2>/dev/null || true
        PROBE_PID=""
        probe=$(tail -n 1 "$probef")
        case $probe in *[!0-9\ ]*|'') log "probe failed: $probe"; probe="0 0 0 0" ;; esac
    fi
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    t1=$(cpu_ticks "$pid")
    rss=$(hwm_kb "$pid")
    if [ "$rss" = 0 ] && [ -s "$WORK/sample" ]; then
        read -r t1 rss < "$WORK/sample"
    fi
    foreign=$(foreign_ticks "$WORK/foreign.json" delta)
    if ! alive "$pid"; then
        local exitrc=0
        wait "$pid" 2>/dev/null || exitrc=$?
        status="died(exit=$exitrc)"
        log "!!! $daemon (pid $pid) DIED during $leg round $round, exit status $exitrc"
        tail -n 20 "$WORK/$daemon.stderr" 2>/dev/null | sed "s/^/  $daemon stderr: /" >&2 || true
        start_daemon "$daemon" || log "$daemon did not restart"
    fi
    if [ "$rc" != 0 ] || ! grep -q '^BENCH ' "$logf"; then
        log "wrk against $daemon failed (rc=$rc), output: $logf"
        sed 's/^/  wrk: /' "$logf" >&2 || true
        [ "$status" = ok ] && status="wrk-failed(rc=$rc)"
        printf '%s\t%s\t%s\t%s\n' "$leg" "$proxy" "$round" "$status" >>"$RESULTS"
        return 0
    fi
    local p
    read -r -a p <<<"$probe"
    printf '%s\t' "$leg" "$proxy" "$round" "$status" \
        "$(field requests "$logf")" "$(field duration_us "$logf")" \
        "$(field p50_us "$logf")" "$(field p99_us "$logf")" "$(field max_us "$logf")" \
        "$(( $(field err_connect "$logf") + $(field err_read "$logf") + $(field err_write "$logf") + $(field err_timeout "$logf") ))" \
        "$(field err_status "$logf")" "$rss" "$(( (t1 - t0) * 1000000 / CLK_TCK ))" \
        "$(( foreign * 100 / CLK_TCK / DURATION ))" "${p[0]}" "${p[1]}" "${p[2]}" "${p[3]}" >>"$RESULTS"
    printf '%s\t' "$(( (c1 - c0) * 100 / CLK_TCK / DURATION ))" >>"$RESULTS"
    case $insn$cyc in *[!0-9]*|'') insn=0 cyc=0 ;; esac
    printf '%s\t%s\n' "$insn" "$cyc" >>"$RESULTS"
    log "$(awk -F'\t' 'END { if (NF < 5) { print $4; exit }
        printf "%-5s %-8s r%s: %.0f req/s  p50 %.3f ms  p99 %.3f ms  err %d/%d  rss %d kB  cpu %.1f us/req  other %d%%  probe n=%d p50 %.1f p99 %.1f ms  wrk cpu %d%%  kinsn/req %.1f  kcyc/req %.1f",
        $1, $2, $3, $5 / ($6 / 1e6), $7 / 1000, $8 / 1000, $10, $11, $12,
        ($5 + $15 > 0 ? $13 / ($5 + $15) : 0), $14, $15, $16 / 1000, $17 / 1000, $19,
        ($5 + $15 > 0 ? $20 / 1000 / ($5 + $15) : 0), ($5 + $15 > 0 ? $21 / 1000 / ($5 + $15) : 0) }' "$RESULTS")"
}

# ---------------------------------------------------------------- run
log "layout: $LAYOUT; certificate: $CERT_DESC"
log "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, legs: $LEGS"
start_daemon backend || die "backend nginx did not start"
for p in $PROXIES; do
    for v in full tls12 resume; do
        start_daemon "$p-$v" || die "$p-$v did not start (stderr: $LOGDIR/$p-$v.stderr)"
    done
done

# What each instance negotiates with a default OpenSSL client, and whether a
# second connection offering the first one's session is resumed.
INFO=$WORK/info.tsv
: > "$INFO"
for p in $PROXIES; do
    for v in full tls12 resume; do
        i=$(tls_probe info "${PORT_OF[$p-$v]}" 2>&1 | tail -n 1) || i="failed"
        printf '%s\t%s\t%s\n' "$p" "$v" "$i" >>"$INFO"
        log "$p-$v: $i"
    done
done

if [ "$WARMUP" -gt 0 ]; then
    for p in $PROXIES; do
        for v in full tls12 resume; do
            run_wrk "https://127.0.0.1:${PORT_OF[$p-$v]}/" "$WARMUP" "$WORK/wrk-warmup-$p-$v.log" || true
        done
    done
fi
HAPROXY_INFO_BEFORE=$(printf 'show info\n' | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.makefile().read())' "$WORK/haproxy-resume.sock" 2>/dev/null | grep -E '^Ssl(FrontendSessionReuse_pct|CacheLookups|CacheMisses|FrontendKeyRate)' | paste -sd ' ' || true)

for r in $(seq "$ROUNDS"); do
    for leg in $LEGS; do
        for p in $PROXIES; do
            measure "$leg" "$p" "$r"
        done
    done
    # the other proxy first next round, so that neither always runs second
    PROXIES=$(echo "$PROXIES" | awk '{ print $2, $1 }')
done

# HAProxy's own count of resumed handshakes on the instance with resumption on
# (after the hsr leg: tells whether wrk resumes its sessions)
HAPROXY_INFO=$(printf 'show info\n' | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.makefile().read())' "$WORK/haproxy-resume.sock" 2>/dev/null | grep -E '^Ssl(FrontendSessionReuse_pct|CacheLookups|CacheMisses)' | paste -sd ' ' || true)
log "haproxy-resume show info (after the runs): $HAPROXY_INFO (before: $HAPROXY_INFO_BEFORE)"

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$INFO" "$OUT" "$LAYOUT" "$THREADS" "$CONNECTIONS" "$DURATION" \
    "$ROUNDS" "$(haproxy -v 2>/dev/null | sed -n '1s/HAProxy version \([^ ]*\).*/\1/p')" \
    "$(wrk --version 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p')" \
    "$(openssl version)" "$SPILLWAY" "$SPILLWAY_BUILD" "$CERT_DESC" "$LOGDIR" \
    "$HAPROXY_INFO" "$PROBE_RATE" "$LEGS" <<'EOF'
import sys, statistics, datetime, platform, os
(res, info, out, layout, threads, conns, dur, rounds, haproxy_v, wrk_v, ossl_v,
 spillway_bin, spillway_build, cert, logdir, ha_info, probe_rate, legs) = sys.argv[1:]
legs = legs.split()
LEG = {"plain": "plain HTTP keep-alive (reference)",
       "ka": "HTTPS keep-alive",
       "hs": "new connection + full handshake per request, TLS 1.3",
       "hs12": "new connection + full handshake per request, TLS 1.2 only",
       "hsr": "new connection per request, resumption on (wrk offers its last session)"}
rows, notes = {}, []
for line in open(res):
    f = line.rstrip("\n").split("\t")
    leg, proxy, rnd, status = f[:4]
    if len(f) < 21:
        notes.append(f"{leg} {proxy} round {rnd}: {status}")
        continue
    n = [int(x or 0) for x in f[4:21]]
    req, dus, p50, p99, mx, sock, st, rss, cpu, other, pn, pp50, pp99, perr, wcpu, insn, cyc = n
    r = dict(round=int(rnd), status=status, req=req, rps=req / (dus / 1e6) if dus else 0,
             p50=p50 / 1000, p99=p99 / 1000, max=mx / 1000, err=sock + st, rss=rss,
             cpu=cpu / (req + pn) if req + pn else 0, other=other,
             pn=pn, pp50=pp50 / 1000, pp99=pp99 / 1000, perr=perr, wcpu=wcpu,
             insn=insn / 1000 / (req + pn) if req + pn else 0,
             cyc=cyc / 1000 / (req + pn) if req + pn else 0)
    if status != "ok":
        notes.append(f"{leg} {proxy} round {rnd}: {status}")
    if other >= 20:
        notes.append(f"NOISY: {leg} {proxy} round {rnd}: other processes used {other}% of a CPU")
    rows.setdefault((leg, proxy), []).append(r)

def med(rs, k):
    return statistics.median(r[k] for r in rs)

def md(h, t):
    return "\n".join(["| " + " | ".join(h) + " |",
                      "|" + "|".join("---" if i == 0 else "---:" for i in range(len(h))) + "|"]
                     + ["| " + " | ".join(r) + " |" for r in t])

hdr = ["leg", "proxy", "runs ok", "req/s", "best req/s", "p50 ms", "p99 ms", "errors",
       "CPU us/req", "k instr/req", "k cycles/req", "peak RSS MiB", "probe p50 ms",
       "probe p99 ms", "wrk CPU %"]
tab, rat, bound = [], [], []
for leg in legs:
    s = {}
    for proxy in ("spillway", "haproxy"):
        rs = rows.get((leg, proxy))
        if not rs:
            continue
        good = [r for r in rs if r["status"] == "ok"] or rs
        s[proxy] = dict(rps=med(good, "rps"), best=max(r["rps"] for r in good),
                        p50=med(good, "p50"), p99=med(good, "p99"),
                        cpu=med(good, "cpu"), rss=max(r["rss"] for r in rs),
                        err=sum(r["err"] for r in rs),
                        pp50=med(good, "pp50"), pp99=med(good, "pp99"),
                        pn=sum(r["pn"] for r in rs), wcpu=med(good, "wcpu"),
                        insn=med(good, "insn"), cyc=med(good, "cyc"))
        x = s[proxy]
        probe = leg.startswith("hs") and x["pn"] > 0
        tab.append([leg, proxy, f'{sum(r["status"] == "ok" for r in rs)}/{len(rs)}',
                    f'{x["rps"]:,.0f}', f'{x["best"]:,.0f}', f'{x["p50"]:.3f}', f'{x["p99"]:.3f}', str(x["err"]),
                    f'{x["cpu"]:.1f}', f'{x["insn"]:.1f}' if x["insn"] else "-",
                    f'{x["cyc"]:.1f}' if x["cyc"] else "-", f'{x["rss"] / 1024:.1f}',
                    f'{x["pp50"]:.2f}' if probe else "-", f'{x["pp99"]:.2f}' if probe else "-",
                    str(round(x["wcpu"]))])
        if x["wcpu"] >= 90:
            bound.append(f"{leg} {proxy}")
    if len(s) == 2:
        a, b = s["spillway"], s["haproxy"]
        q = lambda k: f"{a[k] / b[k]:.2f}" if b[k] else "-"
        rat.append([leg, q("rps"), q("best"), q("p99"), q("cpu"), q("insn"), q("cyc"), q("rss"),
                    q("pp99") if leg.startswith("hs") and b["pn"] else "-"])
rhdr = ["leg", "req/s (higher is better)", "best req/s", "p99 (lower is better)",
        "CPU us/req (lower is better)", "instr/req", "cycles/req", "peak RSS", "probe p99"]

per = []
for (leg, proxy), rs in rows.items():
    for r in rs:
        per.append([leg, proxy, str(r["round"]), f'{r["rps"]:,.0f}', f'{r["p50"]:.3f}',
                    f'{r["p99"]:.3f}', f'{r["max"]:.1f}', str(r["err"]), f'{r["cpu"]:.1f}',
                    f'{r["insn"]:.1f}', f'{r["cyc"]:.1f}',
                    f'{r["rss"] / 1024:.1f}', f'{r["pp50"]:.2f}', f'{r["pp99"]:.2f}',
                    str(r["wcpu"]), str(r["other"]), r["status"]])
infos = [l.rstrip("\n").split("\t") for l in open(info)]

with open(out, "w") as fh:
    fh.write("# spillway TLS benchmark\n\n")
    fh.write(f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}, host: "
             f"{platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}\n")
    fh.write(f"- load: `wrk -t{threads} -c{conns} -d{dur}s --latency`, GET / answered by "
             f"the plain-HTTP backend with `200 ok`; handshake legs add "
             f"`-H 'Connection: close'`\n")
    fh.write(f"- certificate: {cert}, self-made CA, leaf only on the wire; "
             f"{rounds} rounds, legs in turn, the two proxies alternating (and swapping "
             f"order each round)\n")
    fh.write(f"- CPU layout: {layout}\n")
    fh.write(f"- versions: haproxy {haproxy_v}, wrk {wrk_v}, {ossl_v}, spillway "
             f"{spillway_bin} ({spillway_build})\n")
    fh.write("- medians over the rounds; CPU us/req = user+system time of the proxy "
             "process / (wrk requests + probe connections); peak RSS = VmHWM of the "
             "instance (the full instance serves plain, ka and hs); best req/s: the "
             "fastest round, the one least slowed by other tenants; k instr/req and "
             "k cycles/req: the proxy's instructions and cycles (user + kernel, `perf "
             "stat -p`) per request, in thousands: instructions are the figure least "
             "moved by other tenants\n")
    fh.write("- p50/p99 are wrk's: from the request's first byte to the response, so "
             "**the handshake is not included** (wrk starts its clock once SSL_connect "
             "is done). The probe columns are: a Python client opening "
             f"{probe_rate} new TLS connections/s (open loop) during the handshake legs, "
             "timed from connect() to the end of the response, full handshake each "
             "(it never offers a session)\n\n")
    fh.write("## Summary\n\n" + md(hdr, tab) + "\n\nspillway / HAProxy:\n\n"
             + md(rhdr, rat) + "\n\n")
    if bound:
        fh.write("**Client-bound** (wrk used 90% or more of its CPU, so req/s and "
                 "latency measure wrk as much as the proxy; compare CPU us/req): "
                 + ", ".join(bound) + "\n\n")
    fh.write("Legs: " + "; ".join(f"**{l}**: {LEG[l]}" for l in legs) + "\n\n")
    fh.write("## What is negotiated\n\nA Python (OpenSSL) client, two connections, the "
             "second offering the first's session:\n\n"
             + md(["proxy", "instance", "protocol cipher resumed"], infos) + "\n\n")
    if ha_info:
        fh.write(f"HAProxy `show info` on its resumption instance after the runs: `{ha_info}`\n\n")
    if notes:
        fh.write("## Notes\n\n" + "".join(f"- {n}\n" for n in notes) + "\n")
    fh.write("## Every run\n\n" + md(["leg", "proxy", "round", "req/s", "p50 ms", "p99 ms",
             "max ms", "errors", "CPU us/req", "k instr/req", "k cycles/req", "RSS MiB",
             "probe p50", "probe p99",
             "wrk CPU %", "other load %", "status"], per) + "\n\n")
    fh.write(f"Raw wrk output, configs and daemon stderr: `{logdir}`\n")

print()
print(open(out).read().split("## What is negotiated")[0])
for n in notes:
    print("NOTE:", n)
print(f"markdown results: {out}")
EOF
