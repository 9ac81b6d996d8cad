#!/usr/bin/env python3
"""Worker threads ([proxy] workers = N): connections land on every
worker (SO_REUSEPORT), a reload reaches every worker (the new
configuration seen on connections of each), a graceful stop finishes
in-flight requests on every worker, and the shared state stays one: the
global bucket and the concurrency limit are not multiplied by the number
of workers, and the metrics are summed.

Which worker holds a connection is read from the debug log: worker w of
n numbers its connections k * n - w, so with two workers, worker 0's ids
are even and worker 1's odd."""

import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (admin, admin_spillway, Backend, check, Client, delayed,
                     diag, eq, metrics, respond, run_main, Spillway, test,
                     wait_for)

os.environ["SPILLWAY_DEBUG"] = "1"     # conn ids and peers in the log
NWORKERS = 2
PROXY = {"workers": NWORKERS, "access_log": "off"}
ACCEPT_RE = re.compile(r"conn_accept: conn (\d+) from [0-9.]+:(\d+)")


def worker_of(sp, clients):
    """{local port: worker} for the given clients, from the debug log."""
    ports = {c.sock.getsockname()[1] for c in clients}
    seen = {}

    def found():
        for m in ACCEPT_RE.finditer(sp.stderr_text()):
            cid, port = int(m.group(1)), int(m.group(2))
            if port in ports:
                seen[port] = (-cid) % NWORKERS
        return len(seen) == len(ports)
    check(wait_for(found, 5), "accepted connections not all logged: %d of "
          "%d" % (len(seen), len(ports)))
    return seen


def spread(sp, n=24):
    """n new connections, each with one request answered; SO_REUSEPORT
    spreads them by hash, so some land on every worker (with 24, all on
    one has a chance of 2**-23)."""
    cs = []
    for _ in range(n):
        c = Client(sp.port, timeout=5)
        cs.append(c)
        r = c.exchange("GET", "/")
        eq(r.status, 200, "a request before the reload")
    return cs


@test("with workers = 2 spillway says so and connections land on both")
def t_started():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], proxy=PROXY)
    check(wait_for(lambda: "2 workers" in sp.stderr_text(), 3),
          "no '2 workers' at start: %s" % sp.stderr_tail())
    cs = spread(sp)
    workers = worker_of(sp, cs)
    eq(set(workers.values()), {0, 1}, "workers that accepted")
    diag("connections per worker: %d and %d" % (
        list(workers.values()).count(0), list(workers.values()).count(1)))
    for c in cs:
        c.close()


@test("a reload reaches every worker: kept-alive and new connections of "
      "each take the new configuration")
def t_reload():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], proxy=dict(PROXY, max_body_size="1m"))
    cs = spread(sp)
    workers = worker_of(sp, cs)
    eq(set(workers.values()), {0, 1}, "workers of the kept-alive conns")
    body = b"x" * 100
    # generation 1 takes the body
    r = cs[0].exchange("POST", "/", body=body)
    eq(r.status, 200, "100-byte body before the reload")
    sp.reconfigure(proxy=dict(PROXY, max_body_size="10"))
    sp.reload()
    check(wait_for(lambda: "configuration generation 2" in
                   sp.stderr_text(), 5), "no reload: %s" % sp.stderr_tail())
    by_worker = {0: [], 1: []}
    for c in cs:
        r = c.exchange("POST", "/", body=body)
        by_worker[workers[c.sock.getsockname()[1]]].append(r.status)
        c.close()
    for w, statuses in by_worker.items():
        check(statuses and set(statuses) == {413},
              "kept-alive connections of worker %d after the reload: %r"
              % (w, statuses))
    fresh = []
    for _ in range(24):
        c = Client(sp.port, timeout=5)
        fresh.append(c)
        eq(c.exchange("POST", "/", body=body).status, 413,
           "a new connection after the reload")
    eq(set(worker_of(sp, fresh).values()), {0, 1},
       "workers of the new connections")
    for c in fresh:
        c.close()


@test("graceful stop with requests in flight on both workers: all "
      "answered, then exit 0", timeout=40)
def t_stop():
    be = Backend(delayed(1.0, respond(200, b"slow")))
    sp = Spillway([be], proxy=dict(PROXY, shutdown_timeout="8s"),
                  sections=[("limiter", {"algorithm": "fixed",
                                         "limit": 30})])
    # 24: all on one worker has a chance of 2**-23 (12 once did)
    cs = [Client(sp.port, timeout=10) for _ in range(24)]
    for c in cs:
        c.request("GET", "/slow")
    check(wait_for(lambda: be.count() >= len(cs), 5),
          "requests did not reach the backend: %d" % be.count())
    workers = worker_of(sp, cs)
    eq(set(workers.values()), {0, 1}, "workers with requests in flight")
    sp.signal(15)
    statuses = [c.read_response(timeout=10).status for c in cs]
    eq(statuses, [200] * len(cs), "in-flight requests after SIGTERM")
    rc = sp.wait(10)
    eq(rc, 0, "exit status after the graceful stop")
    check("shutdown_timeout reached" not in sp.stderr_text(),
          "a worker waited for shutdown_timeout")
    for c in cs:
        c.close()


@test("the global bucket is one for all workers: burst 10 admits 10, "
      "not 10 per worker")
def t_bucket():
    be = Backend(respond(200, b"ok"))
    sp = admin_spillway([be], proxy=PROXY, sections=[
        ("admission", {"rate": "1/m", "burst": 10})])
    cs = [Client(sp.port, timeout=5) for _ in range(40)]
    statuses = [c.exchange("GET", "/").status for c in cs]
    eq(set(worker_of(sp, cs).values()), {0, 1}, "workers that answered")
    eq(statuses.count(200), 10, "admitted of 40 (statuses %r)" % statuses)
    eq(statuses.count(429), 30, "refused of 40")
    m = metrics(sp)
    eq(m.sum("spillway_requests_total"), 40,
       "requests summed over the workers")
    # every request asked the admission bucket under its lock, counted
    taken = m.value("spillway_lock_acquisitions_total", lock="admission")
    waited = m.value("spillway_lock_waits_total", lock="admission")
    check(taken is not None and taken >= 40,
          "admission lock taken %r times for 40 requests" % taken)
    check(waited is not None and 0 <= waited <= taken,
          "admission lock waits %r of %r" % (waited, taken))
    for name in ("shed", "health", "access_log"):
        check(m.value("spillway_lock_acquisitions_total", lock=name)
              is not None, "no %s lock count" % name)
    for c in cs:
        c.close()


@test("the concurrency limit is one for all workers: limit 3 lets 3 "
      "through at once, not 3 per worker", timeout=40)
def t_limit():
    lock = threading.Lock()
    state = {"active": 0, "max": 0}

    def h(req, conn):
        with lock:
            state["active"] += 1
            state["max"] = max(state["max"], state["active"])
        time.sleep(0.3)
        with lock:
            state["active"] -= 1
        return respond(200, b"ok")(req, conn)
    be = Backend(h)
    sp = admin_spillway([be], proxy=PROXY, sections=[
        ("limiter", {"algorithm": "fixed", "limit": 3, "min_limit": 1,
                     "queue_size": 100, "queue_timeout": "20s",
                     "codel_target": "0"})])
    cs = [Client(sp.port, timeout=20) for _ in range(16)]
    for c in cs:
        c.request("GET", "/")
    statuses = [c.read_response(timeout=20).status for c in cs]
    eq(set(worker_of(sp, cs).values()), {0, 1}, "workers that answered")
    eq(statuses, [200] * len(cs), "every waiter served in turn")
    eq(state["max"], 3, "requests at the backend at once")
    m = metrics(sp)
    eq(m.value("spillway_concurrency_limit"), 3, "the limit reported")
    for c in cs:
        c.close()


@test("reloads while waiters come and go on both workers never hang the "
      "proxy: every waiter answered, /status served after each", timeout=60)
def t_reload_waiters():
    # A reload once deleted other workers' queue timers from the main
    # thread under the shed lock; libevent's event_del() from another
    # thread waits for that timer's callback, which could be waiting for
    # the lock: both stopped for ever. Each worker now re-arms its own.
    be = Backend(delayed(0.02, respond(200, b"ok")))
    sp = admin_spillway([be], proxy=PROXY, sections=[
        ("limiter", {"algorithm": "fixed", "limit": 1, "min_limit": 1,
                     "queue_size": 100, "queue_timeout": "100ms",
                     "codel_target": "0"})])
    stop = threading.Event()
    answered = []

    def client():
        while not stop.is_set():
            c = Client(sp.port, timeout=10)
            try:
                for _ in range(5):
                    answered.append(c.exchange("GET", "/").status)
            finally:
                c.close()
    ts = [threading.Thread(target=client) for _ in range(6)]
    for t in ts:
        t.start()
    try:
        for _ in range(30):
            sp.signal(1)
            time.sleep(0.05)
            eq(admin(sp, "/status").status, 200, "/status after a reload")
    finally:
        stop.set()
        for t in ts:
            t.join(20)
    check(not any(t.is_alive() for t in ts), "a client still waiting")
    check(len(answered) > 30, "answers: %d" % len(answered))
    eq(set(answered) - {200, 503}, set(), "statuses")


@test("SIGUSR1 reopens the access log for every worker: after a rename, "
      "lines from both workers go to the new file")
def t_reopen():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], proxy=dict(PROXY, access_log=None))
    log = sp.path("access.log")
    sp.reconfigure(proxy=dict(PROXY, access_log=log))
    sp.reload()
    check(wait_for(lambda: "configuration generation 2" in
                   sp.stderr_text(), 5), "no reload: %s" % sp.stderr_tail())
    cs = spread(sp)
    check(wait_for(lambda: os.path.exists(log) and
                   len(open(log).read().splitlines()) >= len(cs), 5),
          "access log lines before the rename")
    os.rename(log, log + ".1")
    sp.signal(10)       # SIGUSR1
    check(wait_for(lambda: os.path.exists(log), 5),
          "no new access log after SIGUSR1: %s" % sp.stderr_tail())
    for c in cs:
        eq(c.exchange("GET", "/after").status, 200, "a request after")
    ports = worker_of(sp, cs)

    def after():
        lines = [l for l in open(log).read().splitlines() if "/after" in l]
        return len(lines) == len(cs) and lines
    lines = wait_for(after, 5)
    check(lines, "lines in the new file: %r" % open(log).read()[-500:])
    workers = set()
    for l in open(log).read().splitlines():
        m = re.search(r":(\d+) \"GET /after", l)
        if m and int(m.group(1)) in ports:
            workers.add(ports[int(m.group(1))])
    eq(workers, {0, 1}, "workers whose lines reached the new file")
    old = [l for l in open(log + ".1").read().splitlines() if "/after" in l]
    eq(old, [], "lines after SIGUSR1 in the renamed file")
    for c in cs:
        c.close()


@test("each worker buffers its own access log lines: a reload to another "
      "file and format right after requests puts every line before it in "
      "the old file in the old format, every line after in the new")
def t_log_buffers():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], proxy=PROXY)
    old, new = sp.path("old.log"), sp.path("new.log")
    sp.reconfigure(proxy=dict(PROXY, access_log=old))
    sp.reload()
    check(wait_for(lambda: "configuration generation 2" in
                   sp.stderr_text(), 5), "no reload: %s" % sp.stderr_tail())
    cs = spread(sp)
    ports = worker_of(sp, cs)
    eq(set(ports.values()), {0, 1}, "workers with requests")
    for c in cs:
        eq(c.exchange("GET", "/before").status, 200, "a request before")
    # at once: the lines are still in the workers' buffers (written once
    # a second), the old file must get them all the same
    sp.reconfigure(proxy=dict(PROXY, access_log=new,
                              access_log_format="json"))
    sp.reload()
    check(wait_for(lambda: "configuration generation 3" in
                   sp.stderr_text(), 5), "no reload: %s" % sp.stderr_tail())
    for c in cs:
        eq(c.exchange("GET", "/after").status, 200, "a request after")

    def settled(path, want):
        lines = open(path).read().splitlines() if os.path.exists(path) \
            else []
        return len(lines) >= want and lines
    before = wait_for(lambda: settled(old, 2 * len(cs)), 5) or []
    eq(len([l for l in before if "/before" in l]), len(cs),
       "lines of /before in the old file")
    check(all(not l.startswith("{") for l in before),
          "json in the old file: %r" % before[-2:])
    after = wait_for(lambda: settled(new, len(cs)), 5) or []
    eq(len(after), len(cs), "lines in the new file")
    eq(sorted(json.loads(l)["path"] for l in after), ["/after"] * len(cs),
       "the new file's lines, in json")
    check("/after" not in open(old).read(), "a line after in the old file")
    check("lost" not in sp.stderr_text(), "lines lost: %s" % sp.stderr_tail())
    for c in cs:
        c.close()


if __name__ == "__main__":
    run_main()
