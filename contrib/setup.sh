#!/bin/sh
# Set up a fresh Debian 12 machine for spillway: install the build and
# test dependencies (when run as root, or with sudo), then generate and run
# ./configure unless a Makefile already exists. Extra arguments go to
# ./configure. Safe to run again.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="build-essential autoconf automake pkg-config libevent-dev
libssl-dev libinih-dev libsqlite3-dev libsystemd-dev libhiredis-dev python3
mandoc clang redis-server
wrk haproxy nginx-light chromium strace valgrind prometheus goaccess"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		SUDO=""
	elif command -v sudo >/dev/null; then
		SUDO="sudo"
	else
		echo "setup: please install as root:$missing" >&2
		exit 1
	fi
	echo "setup: installing$missing"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
	    --no-install-recommends $missing
fi

if [ ! -f Makefile ] || [ $# -gt 0 ]; then
	[ -x configure ] || autoreconf -fi
	./configure "$@"
fi
