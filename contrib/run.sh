#!/bin/sh
# `make run`: spillway on its default configuration, in the foreground.
# Until the bundled demo app arrives, a stand-in backend (Python's
# http.server serving this source tree) listens on 127.0.0.1:8081, the
# backend the default configuration names. Ctrl-C stops both.
set -eu
bin=$1
conf=$2
top=$(cd "$(dirname "$0")/.." && pwd)

python3 -m http.server 8081 --bind 127.0.0.1 --directory "$top" \
    >/dev/null 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null; wait $backend 2>/dev/null || true' EXIT INT TERM
echo "run: stand-in backend on 127.0.0.1:8081 (pid $backend)"
echo "run: spillway on http://127.0.0.1:8080/ with $conf; Ctrl-C stops"
echo "run: live dashboard on http://127.0.0.1:8082/ (metrics: /metrics)"
"$bin" -c "$conf" || true
