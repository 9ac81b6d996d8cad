#!/usr/bin/env python3
"""Limits: the connection cap, file descriptor exhaustion, concurrency."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, Spillway, build_request, check, delayed,
                     diag, echo_path, eq, get, get_until_ok, register,
                     respond, run_main, short, skip, test)


class RawConn:
    """A non-blocking connection attempt that never blocks the test."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.err = self.sock.connect_ex(("127.0.0.1", port))
        register(self)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@test("max_connections: a 4th connection waits until one of 3 closes")
def max_connections():
    be = Backend(echo_path())
    sp = Spillway([be], proxy={"max_connections": 3, "idle_timeout": "30s",
                               "header_timeout": "30s"})
    first = []
    for i in range(3):
        c = Client(sp.port)
        r = c.exchange("GET", "/idle%d" % i)
        eq(r.status, 200, "status on connection %d" % i)
        first.append(c)
    fourth = Client(sp.port)        # sits in the backlog, or is accepted
    fourth.request("GET", "/fourth")
    check(fourth.nothing_within(1.0), "4th connection answered or closed "
          "while 3 connections were open: %s" % short(fourth.reader.buf))
    eq(be.count(), 3, "requests at backend while over the cap")
    first[0].close()
    t0 = time.monotonic()
    r = fourth.read_response(timeout=5)
    eq((r.status, r.body), (200, b"GET /fourth"), "4th response")
    check(time.monotonic() - t0 < 3, "4th answered %.1fs after a slot "
          "freed" % (time.monotonic() - t0))
    for c in first[1:]:
        eq(c.exchange("GET", "/still").status, 200, "older connection "
           "still served")


@test("fd exhaustion: spillway stays up, does not spin, recovers",
      timeout=40)
def fd_exhaustion():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], nofile=64, proxy={"max_connections": 4096,
                                          "header_timeout": "30s",
                                          "idle_timeout": "30s"})
    eq(get(sp.port, "/before").status, 200, "request before exhaustion")
    conns = []
    for i in range(80):
        conns.append(RawConn(sp.port))   # some may be refused: fine
    time.sleep(0.1)
    req = build_request("GET", "/flood")
    for rc in conns:
        try:
            rc.sock.send(req)
        except OSError:
            pass
    time.sleep(0.3)                 # let spillway hit EMFILE
    check(sp.alive(), "spillway died under fd exhaustion")
    cpu0, t0 = sp.cpu_seconds(), time.monotonic()
    time.sleep(1.0)
    cpu = sp.cpu_seconds() - cpu0
    wall = time.monotonic() - t0
    check(sp.alive(), "spillway died under fd exhaustion")
    nfds = sp.nfds()
    diag("out of fds: %d fds open, %.2fs CPU in %.2fs" % (nfds, cpu, wall))
    check(cpu < 0.5, "spillway used %.2fs CPU in %.2fs while out of fds "
          "(%d fds open): accept loop spinning?" % (cpu, wall, nfds))
    for rc in conns:
        rc.close()
    # the listener may be paused on a timer: retry for a few seconds
    get_until_ok(sp.port, "/after", 8, why=" after the flood")
    check(sp.alive(), "spillway died")


@test("50 concurrent requests to a slow backend all succeed")
def concurrent_requests():
    # the proxy's own concurrency, so no shedding in the way
    be = Backend(delayed(0.2, echo_path()))
    sp = Spillway([be], sections=[("limiter", {
        "algorithm": "fixed", "limit": "100", "max_limit": "100"})])
    results, errors = {}, []

    def one(i):
        try:
            r = get(sp.port, "/c%d" % i, timeout=10)
            results[i] = (r.status, r.body)
        except Exception as e:      # noqa: reported below
            errors.append((i, repr(e)))
    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,), daemon=True)
               for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    took = time.monotonic() - t0
    check(not errors, "errors: %r" % errors[:5])
    for i in range(50):
        eq(results.get(i), (200, b"GET /c%d" % i), "response %d" % i)
    check(took < 8, "50 concurrent 200 ms requests took %.1fs" % took)


def _nofile_limits(pid):
    """(soft, hard) RLIMIT_NOFILE of process pid, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                p = line.split()
                conv = (lambda x: -1 if x == "unlimited" else int(x))
                return conv(p[3]), conv(p[4])
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


def _prlimit(prlimit, pid, soft, hard):
    r = subprocess.run([prlimit, "--pid", str(pid),
                        "--nofile=%d:%s" % (soft, "unlimited" if hard < 0
                                            else hard)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=5)
    return r.returncode, r.stderr.decode("utf-8", "replace").strip()


@test("EMFILE: the listener pauses and resumes, no busy loop", timeout=30)
def emfile_pause_resume():
    prlimit = shutil.which("prlimit") or (
        "/usr/bin/prlimit" if os.access("/usr/bin/prlimit", os.X_OK)
        else None)
    if prlimit is None:
        skip("prlimit (util-linux) is not installed")
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], proxy={"max_connections": 4096,
                               "header_timeout": "30s",
                               "idle_timeout": "30s"})
    eq(get(sp.port, "/before").status, 200, "request before the limit")
    # the pooled backend connection may or may not stay: count after it
    time.sleep(0.1)
    soft0, hard0 = _nofile_limits(sp.pid)
    n = sp.nfds() + 6
    # lower the soft limit only: that is what accept(2) runs into, and an
    # unprivileged prlimit can raise it again afterwards
    rc, err = _prlimit(prlimit, sp.pid, n, hard0)
    if rc != 0:
        skip("prlimit --pid %d --nofile=%d:%d failed: %s"
             % (sp.pid, n, hard0, err))
    eq(_nofile_limits(sp.pid)[0], n, "soft limit after prlimit")
    conns = [RawConn(sp.port) for _ in range(40)]
    time.sleep(0.3)                 # accepted up to the limit, then EMFILE
    check(sp.alive(), "spillway died at EMFILE")
    cpu0, t0 = sp.cpu_seconds(), time.monotonic()
    time.sleep(1.0)
    cpu, wall = sp.cpu_seconds() - cpu0, time.monotonic() - t0
    nfds = sp.nfds()
    diag("limit %d: %d fds open, %.2fs CPU in %.2fs" % (n, nfds, cpu, wall))
    check(sp.alive(), "spillway died at EMFILE")
    check(nfds <= n, "%d fds open with a limit of %d" % (nfds, n))
    check(cpu < 0.3, "spillway used %.2fs CPU in %.2fs at EMFILE "
          "(%d fds open): accept loop spinning?" % (cpu, wall, nfds))
    err_text = sp.stderr_text()
    check("pausing" in err_text, "no log line mentioning 'pausing' at "
          "EMFILE; stderr:\n%s" % sp.stderr_tail(10))
    for rc_ in conns:
        rc_.close()
    rc, err = _prlimit(prlimit, sp.pid, min(4096, hard0) if hard0 > 0
                       else 4096, hard0)
    check(rc == 0, "restoring the limit failed: %s" % err)
    took = get_until_ok(sp.port, "/after", 3, pause=0.05,
                        why=" after the limit was restored")
    diag("request after the limit was restored: %.2fs" % took)
    check(took < 2.5, "first request after restoring the limit took %.2fs"
          % took)
    check(sp.alive(), "spillway died")


if __name__ == "__main__":
    run_main()
