#!/bin/sh
# `make run`: spillway on its default configuration, in the foreground, in
# front of the demo's fragile app (contrib/legacy-app) on 127.0.0.1:8081,
# the backend the default configuration names. Ctrl-C stops both.
#
# Usage: run.sh SPILLWAY CONF LEGACY_APP
set -eu
bin=$1
conf=$2
app=$3

"$app" --port 8081 &
backend=$!
trap 'kill $backend 2>/dev/null; wait $backend 2>/dev/null || true' EXIT INT TERM
echo "run: legacy-app on 127.0.0.1:8081 (pid $backend; POST" \
    "http://127.0.0.1:8081/admin/grow doubles its data)"
echo "run: spillway on http://127.0.0.1:8080/ with $conf; Ctrl-C stops"
echo "run: live dashboard on http://127.0.0.1:8082/ (metrics: /metrics)"
echo "run: load it: contrib/loadgen/loadgen -r 600 -d 60 http://127.0.0.1:8080/"
"$bin" -c "$conf" || true
