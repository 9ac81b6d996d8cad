#!/usr/bin/env python3
"""health.py: what one dead server of two costs the clients.

Usage: health.py SPILLWAY [SPILLWAY...]  (each binary measured in turn)

For each binary: two backend servers on loopback, a live one (a threaded
stdlib HTTP server) and one that is black-holed (a listener that never
accepts, its backlog full: connects get no answer) or refusing (nothing
listens); connect_timeout = 2s. USERS closed-loop clients send GETs for
SECONDS each; printed per case: requests, 200s, others, p50, p99 and max
latency, and how many requests took 1.9 s or more (waited connect_timeout).
Then the live server alone, for reference. Every process started here is
stopped by PID at the end. Environment: BENCH_SECONDS (10), USERS (4).
"""

import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SECS = float(os.environ.get("BENCH_SECONDS", 10))
USERS = int(os.environ.get("USERS", 4))
HOST = "127.0.0.1"


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def live_server():
    srv = http.server.ThreadingHTTPServer((HOST, 0), Quiet)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "%s:%d" % (HOST, srv.server_address[1])


def black_hole():
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fill = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, port))
        fill.append(s)
    return [ls] + fill, "%s:%d" % (HOST, port)


def get(port, timeout=10):
    t0 = time.monotonic()
    try:
        s = socket.create_connection((HOST, port), timeout=timeout)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        status = int(data.split(b" ", 2)[1]) if data else 0
    except OSError:
        status = 0
    return status, time.monotonic() - t0


def load(port):
    lat, statuses, lock = [], [], threading.Lock()
    end = time.monotonic() + SECS

    def user():
        while time.monotonic() < end:
            st, took = get(port)
            with lock:
                lat.append(took)
                statuses.append(st)
    ts = [threading.Thread(target=user) for _ in range(USERS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lat.sort()
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000)
    return {"n": len(lat), "ok": statuses.count(200),
            "other": len(statuses) - statuses.count(200),
            "p50": q(0.5), "p99": q(0.99), "max": lat[-1] * 1000,
            "slow": sum(x >= 1.9 for x in lat)}


def run(binary, servers):
    port = free_port()
    d = tempfile.mkdtemp(prefix="health-bench-")
    conf = os.path.join(d, "s.ini")
    with open(conf, "w") as f:
        f.write("[proxy]\nlisten = %s:%d\naccess_log = off\n[backend]\n"
                "%sconnect_timeout = 2s\n[limiter]\nalgorithm = fixed\n"
                "limit = 64\n" % (HOST, port,
                                   "".join("server = %s\n" % s
                                           for s in servers)))
    p = subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        return load(port)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        os.unlink(conf)
        os.rmdir(d)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    srv, live = live_server()
    socks, hole = black_hole()
    refusing = "%s:%d" % (HOST, free_port())
    print("%-28s %-22s %6s %6s %5s %8s %8s %8s %6s" % (
        "binary", "case", "reqs", "200", "other", "p50 ms", "p99 ms",
        "max ms", ">=1.9s"))
    for binary in sys.argv[1:]:
        for name, servers in (("live alone", [live]),
                              ("live + black hole", [live, hole]),
                              ("live + refusing", [live, refusing])):
            r = run(binary, servers)
            print("%-28s %-22s %6d %6d %5d %8.1f %8.1f %8.1f %6d" % (
                binary[-28:], name, r["n"], r["ok"], r["other"], r["p50"],
                r["p99"], r["max"], r["slow"]))
            sys.stdout.flush()
    srv.shutdown()
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
