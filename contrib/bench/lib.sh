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
    local f st pp
    for f in /proc/[0-9]*/stat; do
        st=$(cat "$f" 2>/dev/null) || continue
        st=${st##*) }
        pp=${st#* }; pp=${pp%% *}
        if [ "$pp" = "$1" ]; then f=${f#/proc/}; echo "${f%/stat}"; fi
    done
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
