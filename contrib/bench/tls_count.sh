#!/usr/bin/env bash
# tls_count.sh: the cost of a keep-alive HTTPS request through spillway and
# HAProxy counted rather than timed, for machines too noisy (or too
# virtual: no perf counters) for tls.sh's CPU times to say much:
#   - system calls per request: strace -c -f on the proxy during a wrk run
#   - user-space instructions per request: the proxy under valgrind's
#     callgrind, instrumentation switched on for one wrk run only (after a
#     warm-up, so start-up and the first handshakes are left out)
# Same certificate, same backend (nginx answering "200 ok"), same wrk
# command for both; neither count depends on what else the machine runs.
# Kernel work per call is not counted: compare calls, not their time.
#
# Usage:  contrib/bench/tls_count.sh
# Environment (all optional):
#   SPILLWAY=path      spillway binary (default: <repo>/src/spillway)
#   PROXIES="spillway haproxy"
#   DURATION=5         seconds of the counted wrk run under strace
#   CG_DURATION=20     seconds of the counted wrk run under callgrind
#   CONNECTIONS=2      wrk connections (-c); each makes one handshake,
#                      counted in (few: its cost is spread thin)
#   CERT=rsa           rsa (2048 bits) or ecdsa (P-256)
#   OUT=/tmp/spillway-bench/tls_count.md   markdown results file
# See contrib/bench/README.md.
set -eu
# shellcheck disable=SC2034  # read by lib.sh's log
BENCH_NAME=tls_count
. "$(dirname "$0")/lib.sh"
set -o pipefail

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
SPILLWAY=${SPILLWAY:-$REPO_DIR/src/spillway}
PROXIES=${PROXIES:-spillway haproxy}
DURATION=${DURATION:-5}
CG_DURATION=${CG_DURATION:-20}
CONNECTIONS=${CONNECTIONS:-2}
CERT=${CERT:-rsa}
OUT=${OUT:-/tmp/spillway-bench/tls_count.md}

for v in DURATION CG_DURATION CONNECTIONS; do
    case ${!v} in ''|*[!0-9]*|0) die "$v must be a positive whole number" ;; esac
done
case $CERT in rsa|ecdsa) ;; *) die "CERT must be rsa or ecdsa (got '$CERT')" ;; esac
for p in $PROXIES; do
    case $p in spillway|haproxy) ;; *) die "unknown proxy '$p' in PROXIES" ;; esac
done
need wrk wrk
need strace strace
need valgrind valgrind
need callgrind_control valgrind
need openssl openssl
need nginx nginx-light
need curl curl
case " $PROXIES " in *" haproxy "*) need haproxy haproxy ;; esac
[ -x "$SPILLWAY" ] || { log "spillway binary '$SPILLWAY' not found"; missing=1; }
[ "$missing" = 0 ] || die "prerequisites missing, see above"

WORK=$(mktemp -d /tmp/spillway-tls-count.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$(dirname "$OUT")"
PIDS=()          # daemons we started; PIDS[0] is the backend
TOOL_PID=""      # strace or valgrind, while one runs

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [ -n "$TOOL_PID" ] && alive "$TOOL_PID" && kill -TERM "$TOOL_PID" 2>/dev/null
    [ "${#PIDS[@]}" -gt 1 ] && stop_all "${PIDS[@]:1}"
    [ "${#PIDS[@]}" -gt 0 ] && stop_all "${PIDS[0]}"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- certificate
if [ "$CERT" = ecdsa ]; then
    keyopt=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
else
    keyopt=(-newkey rsa:2048)
fi
openssl req -x509 "${keyopt[@]}" -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/server.key" -out "$WORK/server.pem" >"$WORK/openssl.log" 2>&1 ||
    { cat "$WORK/openssl.log" >&2; die "openssl failed"; }
cat "$WORK/server.pem" "$WORK/server.key" > "$WORK/combined.pem"
chmod 644 "$WORK"/*.pem "$WORK"/server.key

# ---------------------------------------------------------------- configs
read -r BACKEND_PORT SP_PORT HA_PORT <<EOF
$(free_ports 3)
EOF
write_backend_conf "$WORK" "$BACKEND_PORT"
spillway_tls_ini "$SP_PORT" - "TLSv1.2 TLSv1.3" 0 "$WORK" "$BACKEND_PORT" \
    > "$WORK/spillway.ini"
haproxy_http_conf 1 5000 "127.0.0.1:$HA_PORT ssl crt $WORK/combined.pem alpn http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 no-tls-tickets" \
    "127.0.0.1:$BACKEND_PORT" "" "tune.ssl.cachesize 0" > "$WORK/haproxy.conf"

nginx -p "$WORK/backend" -c "$WORK/backend.conf" -g 'daemon off;' \
    >"$WORK/backend.log" 2>&1 &
PIDS+=("$!")
wait_up backend "${PIDS[0]}" "does not answer on $BACKEND_PORT" \
    curl -sf -o /dev/null "http://127.0.0.1:$BACKEND_PORT/"

proxy_cmd() { # proxy_cmd NAME: the command line of one proxy, in CMD
    case $1 in
        spillway) CMD=("$SPILLWAY" -c "$WORK/spillway.ini") ;;
        haproxy) CMD=(haproxy -f "$WORK/haproxy.conf" -db) ;;
    esac
}
port_of() { case $1 in spillway) echo "$SP_PORT" ;; haproxy) echo "$HA_PORT" ;; esac; }

wrk_run() { # wrk_run PORT SECONDS: prints the requests wrk completed
    wrk -t1 -c"$CONNECTIONS" -d"$2"s "https://127.0.0.1:$1/" > "$WORK/wrk.out" 2>&1 ||
        { cat "$WORK/wrk.out" >&2; die "wrk failed"; }
    grep -q 'Non-2xx' "$WORK/wrk.out" && die "non-2xx answers: $(cat "$WORK/wrk.out")"
    awk '/requests in/ { print $1 }' "$WORK/wrk.out"
}

declare -A SYS INSN
for p in $PROXIES; do
    port=$(port_of "$p")
    # --- system calls
    proxy_cmd "$p"
    "${CMD[@]}" > "$WORK/$p.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_up "$p" "$pid" "does not answer on $port" \
        curl -skf -o /dev/null "https://127.0.0.1:$port/"
    wrk_run "$port" 2 > /dev/null
    strace -c -f -p "$pid" -o "$WORK/$p.strace" 2>/dev/null &
    TOOL_PID=$!
    sleep 1
    n=$(wrk_run "$port" "$DURATION")
    kill -INT "$TOOL_PID"
    wait "$TOOL_PID" 2>/dev/null || true
    TOOL_PID=""
    stop_all "$pid" || true   # haproxy exits 143 on TERM
    forget "$pid"
    calls=$(awk '$NF == "total" { print $4 }' "$WORK/$p.strace")
    SYS[$p]=$(awk -v c="$calls" -v n="$n" 'BEGIN { printf "%.2f", c / n }')
    top=$(awk -v n="$n" '$1 ~ /^[0-9]/ && $NF != "total" && $4 / n >= 0.01 {
        printf "%s%s %.2f", sep, $NF, $4 / n; sep = ", " }' "$WORK/$p.strace")
    log "$p: $n requests, $calls system calls: ${SYS[$p]} per request ($top)"
    printf '%s\t%s\n' "$p" "$top" >> "$WORK/calls.tsv"

    # --- user-space instructions
    valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$WORK/$p.cg" "${CMD[@]}" > "$WORK/$p.vg.log" 2>&1 &
    TOOL_PID=$!
    ok=0
    for _ in $(seq 120); do
        curl -skf -o /dev/null "https://127.0.0.1:$port/" && { ok=1; break; }
        sleep 1
    done
    [ "$ok" = 1 ] || die "$p under valgrind does not answer: $(tail -5 "$WORK/$p.vg.log")"
    wrk_run "$port" 5 > /dev/null
    callgrind_control -i on "$TOOL_PID" > /dev/null
    n=$(wrk_run "$port" "$CG_DURATION")
    callgrind_control -i off "$TOOL_PID" > /dev/null
    callgrind_control -d "$TOOL_PID" > /dev/null
    kill -TERM "$TOOL_PID"
    wait "$TOOL_PID" 2>/dev/null || true
    TOOL_PID=""
    ir=$(awk '/^totals:/ { print $2 }' "$WORK/$p.cg".*[0-9] | sort -n | tail -n 1)
    INSN[$p]=$(awk -v i="$ir" -v n="$n" 'BEGIN { printf "%.1f", i / n / 1000 }')
    log "$p: $n requests under callgrind, $ir instructions: ${INSN[$p]} k per request"
done

{
    echo "# spillway keep-alive HTTPS, counted"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, kernel $(uname -r)"
    echo "- wrk -t1 -c$CONNECTIONS, GET / answered 200 by nginx; certificate $CERT;" \
        "$(haproxy -v 2>/dev/null | head -n 1 | cut -d' ' -f1-3); $(openssl version)"
    echo "- spillway: $SPILLWAY"
    echo
    echo "| proxy | system calls / request | user-space k instructions / request |"
    echo "|---|---:|---:|"
    for p in $PROXIES; do echo "| $p | ${SYS[$p]} | ${INSN[$p]} |"; done
    if [ -n "${SYS[spillway]:-}" ] && [ -n "${SYS[haproxy]:-}" ]; then
        awk -v a="${SYS[spillway]}" -v b="${SYS[haproxy]}" -v c="${INSN[spillway]}" \
            -v d="${INSN[haproxy]}" \
            'BEGIN { printf "| spillway / HAProxy | %.2fx | %.2fx |\n", a / b, c / d }'
    fi
    echo
    echo "System calls per request, by call:"
    echo
    while IFS=$'\t' read -r p top; do echo "- $p: $top"; done < "$WORK/calls.tsv"
} > "$OUT"
cat "$OUT"
log "markdown results: $OUT"
