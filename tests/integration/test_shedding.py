#!/usr/bin/env python3
"""Shedding: the concurrency limiter and its waiting queue. Fixed limits,
queue_full / queue_timeout / overloaded (CoDel) refusals, priority order
and eviction, client hang-ups while queued and in flight, refused bodies
that must not desync the connection, and an adaptive limit (gradient) in
front of a backend of known capacity."""

import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (access_lines, admin_spillway, Backend, build_request,
                     check, Client, delayed, diag, echo_path, eq, _head_bytes,
                     log_fields, metrics, register, run_main, short, Spillway,
                     test)


# --------------------------------------------------------------------------
# helpers

CODEL_OFF = {"codel_target": "0"}


def limiter(**kw):
    """A [limiter] section; values as given (fixed unless told)."""
    keys = {"algorithm": "fixed"}
    keys.update(kw)
    # spillway checks min_limit <= limit <= max_limit even for fixed, and
    # min_limit defaults to 2
    if int(keys.get("limit", 20)) < 2 and "min_limit" not in keys:
        keys["min_limit"] = 1
    return ("limiter", keys)


class TmpDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="spillway-it-shed-")
        register(self)

    def join(self, name):
        return os.path.join(self.path, name)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Tracker:
    """Backend handlers that record when each request was worked on and
    how many were worked on at once. The count is lowered *before* the
    response is sent, so a request spillway sends on only after it has
    the previous response can never be counted as overlapping it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.spans = []         # (path, start, end)

    def handler(self, seconds):
        def h(req, conn):
            t0 = time.monotonic()
            with self.lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            deadline = t0 + seconds
            while time.monotonic() < deadline and not conn.stopping():
                time.sleep(min(0.01, max(0, deadline - time.monotonic())))
            t1 = time.monotonic()
            with self.lock:
                self.active -= 1
                self.spans.append((req.path, t0, t1))
            body = ("%s %s" % (req.method, req.target)).encode()
            conn.send(_head_bytes(200, [("Content-Length",
                                         str(len(body)))]) + body)
            return True
        return h


class Result:
    def __init__(self, target):
        self.target = target
        self.resp = None
        self.error = None
        self.t0 = self.t1 = None

    @property
    def status(self):
        return self.resp.status if self.resp is not None else None

    @property
    def reason(self):
        return self.resp.header("spillway-reason") if self.resp else None

    @property
    def latency(self):
        return self.t1 - self.t0

    def __repr__(self):
        return "<%s: %s %s %s>" % (
            self.target, self.status, self.reason,
            ("%.0fms" % (1000 * self.latency)) if self.t1 else
            "error %r" % self.error)


def fire(port, targets, timeout=10.0):
    """One request per target, each on its own connection, all sent at
    once (connections made first, then a barrier). targets: paths or
    (method, path, headers). Returns [Result] in the order given."""
    reqs = [(t if isinstance(t, tuple) else ("GET", t, None))
            for t in targets]
    results = [Result(r[1]) for r in reqs]
    clients = [Client(port, timeout=timeout) for _ in reqs]
    barrier = threading.Barrier(len(reqs) + 1)

    def run(i):
        m, path, hs = reqs[i]
        res = results[i]
        try:
            barrier.wait(5)
            res.t0 = time.monotonic()
            res.resp = clients[i].exchange(m, path, hs, timeout=timeout)
        except Exception as e:      # noqa: reported by the test
            res.error = e
        res.t1 = time.monotonic()

    threads = [threading.Thread(target=run, args=(i,), daemon=True)
               for i in range(len(reqs))]
    for t in threads:
        t.start()
    barrier.wait(5)
    for t in threads:
        t.join(timeout + 5)
    for c in clients:
        c.close()
    return results


class Load:
    """n client threads, each issuing requests back-to-back on a kept-alive
    connection (a new one when spillway closes it) until `seconds` pass.
    pause_503: seconds a thread waits after a 503 before the next request
    (keeps the Python side from spinning). Records
    (t0, t1, status, reason, retry_after) per request."""

    def __init__(self, port, n, seconds, target="/", pause_503=0.0,
                 timeout=5.0):
        self.port = port
        self.lock = threading.Lock()
        self.records = []
        self.errors = []
        self.pause_503 = pause_503
        self.timeout = timeout
        self.target = target
        self.rnd = random.Random(n)
        self.t_start = time.monotonic()
        self.t_stop = self.t_start + seconds
        self.threads = [threading.Thread(target=self._run, args=(i,),
                                         daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        c = None
        k = 0
        while time.monotonic() < self.t_stop:
            k += 1
            t0 = time.monotonic()
            try:
                if c is None:
                    c = Client(self.port, timeout=self.timeout)
                r = c.exchange("GET", "%s?t=%d&k=%d" % (self.target, i, k),
                               timeout=self.timeout)
            except Exception as e:  # noqa: counted
                with self.lock:
                    self.errors.append(repr(e))
                if c is not None:
                    c.close()
                c = None
                time.sleep(0.01)
                continue
            t1 = time.monotonic()
            with self.lock:
                self.records.append((t0, t1, r.status,
                                     r.header("spillway-reason"),
                                     r.header("retry-after")))
            if "close" in r.tokens("connection"):
                c.close()
                c = None
            if r.status == 503 and self.pause_503:
                # jittered, so that the clients do not come back in waves
                time.sleep(self.pause_503 * (0.5 + self.rnd.random()))
        if c is not None:
            c.close()

    def join(self):
        for t in self.threads:
            t.join(self.timeout + 5)
        check(not any(t.is_alive() for t in self.threads),
              "load threads still running")
        return self.records


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))]


def check_503(r, reason, what="response"):
    eq(r.status, 503, "%s status (%r)" % (what, r))
    eq(r.header("retry-after"), "1", "%s Retry-After" % what)
    eq(r.header("spillway-reason"), reason, "%s Spillway-Reason" % what)
    check(r.has("content-length"), "%s: no Content-Length: %r"
          % (what, r.headers))
    eq(int(r.header("content-length")), len(r.body), "%s Content-Length"
       % what)


def paths(be):
    with be.lock:
        return [r.path for r in be.requests]


# --------------------------------------------------------------------------
# 1. fixed limit, no queue

@test("fixed limit 2, queue_size 0: 2 of 5 served, 3 get 503 queue_full "
      "at once")
def fixed_no_queue():
    tr = Tracker()
    be = Backend(tr.handler(0.5))
    sp = Spillway([be], sections=[limiter(limit=2, queue_size=0)])
    rs = fire(sp.port, ["/r%d" % i for i in range(5)])
    check(all(r.error is None for r in rs), "client errors: %r" % rs)
    ok = [r for r in rs if r.status == 200]
    refused = [r for r in rs if r.status != 200]
    eq(len(ok), 2, "200s among 5 (%r)" % rs)
    for r in refused:
        check_503(r.resp, "queue_full", r.target)
        check(r.latency < 0.2, "%s refused after %.0f ms, want < 200 ms"
              % (r.target, 1000 * r.latency))
    for r in ok:
        eq(r.resp.body, b"GET " + r.target.encode(), "body of %s" % r.target)
    time.sleep(0.1)
    eq(sorted(paths(be)), sorted(r.target for r in ok), "backend saw")
    eq(tr.max_active, 2, "backend max concurrency")


# --------------------------------------------------------------------------
# 2. fixed limit 1, queue: one at a time

@test("fixed limit 1, queue_size 3: 4 concurrent all served, one at a time")
def fixed_one_at_a_time():
    tr = Tracker()
    be = Backend(tr.handler(0.3))
    sp = Spillway([be], sections=[limiter(limit=1, queue_size=3,
                                          queue_timeout="5s", **CODEL_OFF)])
    rs = fire(sp.port, ["/o%d" % i for i in range(4)])
    check(all(r.error is None for r in rs), "client errors: %r" % rs)
    eq([r.status for r in rs], [200] * 4, "statuses (%r)" % rs)
    eq(tr.max_active, 1, "backend max concurrency")
    spans = sorted(tr.spans, key=lambda s: s[1])
    eq(len(spans), 4, "requests worked on by the backend")
    for a, b in zip(spans, spans[1:]):
        check(b[1] >= a[2] - 0.001, "backend spans overlap: %r then %r"
              % (a, b))
    lat = sorted(r.latency for r in rs)
    diag("latencies ms: %s" % [int(1000 * x) for x in lat])
    check(lat[-1] >= 1.1, "last response after %.0f ms, want >= 1200 ms "
          "(4 x 300 ms, serialised)" % (1000 * lat[-1]))


# --------------------------------------------------------------------------
# 3. queue_timeout

@test("queue_timeout 200ms: a waiter gets 503 queue_timeout after ~200 ms")
def queue_timeout():
    be = Backend(delayed(1.0, echo_path()))
    sp = Spillway([be], sections=[limiter(limit=1, queue_size=10,
                                          queue_timeout="200ms",
                                          **CODEL_OFF)])
    first = Client(sp.port)
    first.request("GET", "/first")
    check(be.wait_requests(1, 2), "first request never reached the backend")
    t0 = time.monotonic()
    second = Client(sp.port)
    r2 = second.exchange("GET", "/second", timeout=3)
    took = time.monotonic() - t0
    check_503(r2, "queue_timeout", "second")
    check(0.15 <= took <= 0.8, "queue_timeout after %.0f ms, want 150..800"
          % (1000 * took))
    r1 = first.read_response(timeout=3)
    eq((r1.status, r1.body), (200, b"GET /first"), "first response")
    eq(paths(be), ["/first"], "backend saw")
    diag("queue_timeout after %.0f ms" % (1000 * took))


# --------------------------------------------------------------------------
# 4. CoDel

@test("a standing queue past the budget is cut to what can be served in "
      "time (overloaded, Retry-After computed); served waits stay short",
      timeout=30)
def codel():
    # 30 clients that retry 20 ms after a refusal, in front of 10/s: they
    # would wait ~3 s; the budget of 400 ms lets ~4 wait, the rest are
    # told no, with a Retry-After that spreads their return.
    tr = Tracker()
    be = Backend(tr.handler(0.1))
    sp = Spillway([be], sections=[limiter(
        limit=1, queue_size=50, latency_budget="400ms")])
    load = Load(sp.port, 30, 1.5, pause_503=0.02, timeout=8)
    recs = load.join()
    check(not load.errors, "client errors: %r" % load.errors[:5])
    reasons = {}
    for r in recs:
        key = r[2] if r[2] == 200 else "%d %s" % (r[2], r[3])
        reasons[key] = reasons.get(key, 0) + 1
    ok = [r[1] - r[0] for r in recs if r[2] == 200]
    shed = [r[1] - r[0] for r in recs if r[2] == 503]
    diag("%d requests: %r; served latency ms p50 %.0f p90 %.0f "
         "max %.0f; shed after ms p50 %.0f max %.0f; Retry-After %r; backend "
         "max concurrency %d"
         % (len(recs), reasons, 1000 * pct(ok, .5), 1000 * pct(ok, .9),
            1000 * max(ok or [0]), 1000 * pct(shed, .5),
            1000 * max(shed or [0]), sorted(set(r[4] for r in recs
                                                if r[2] == 503)),
            tr.max_active))
    check(reasons.get("503 overloaded", 0) > 0,
          "no 503 overloaded past the budget: %r" % reasons)
    check(set(reasons) <= {200, "503 overloaded", "503 queue_timeout"},
          "responses other than 200 and 503 overloaded/queue_timeout: %r"
          % reasons)
    for r in recs:
        if r[2] == 503:
            check(r[4] is not None and r[4].isdigit() and 1 <= int(r[4])
                  <= 60, "Retry-After of a 503: %r" % r[4])
    check(len(ok) >= 8, "only %d served in 1.5 s at 10/s capacity" % len(ok))
    # without a budget, 30 clients in front of 10/s wait ~3 s each
    check(max(ok) < 1.0, "a served request took %.0f ms" % (1000 * max(ok)))
    check(max(shed) < 0.6, "a request was shed only after %.0f ms"
          % (1000 * max(shed)))
    eq(tr.max_active, 1, "backend max concurrency")


def open_loop(port, rate, seconds, timeout=8.0):
    """Requests leaving on a fixed schedule whatever the answers (each on
    its own connection and thread): [(sent, done, status, reason)]."""
    out, lock = [], threading.Lock()

    def one(i):
        t0 = time.monotonic()
        try:
            c = Client(port, timeout=timeout)
            try:
                r = c.exchange("GET", "/o%d" % i, None, timeout=timeout)
            finally:
                c.close()
            rec = (t0, time.monotonic(), r.status,
                   r.header("Spillway-Reason"))
        except Exception as e:      # noqa: counted as an error
            rec = (t0, time.monotonic(), 0, repr(e))
        with lock:
            out.append(rec)
    threads, start = [], time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(i,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout + 2)
    return out


@test("5x open-loop overload: refusals come at once, not after waiting",
      timeout=40)
def fast_refusals():
    # 20/s of capacity behind one slot, offered 100/s: a newcomer that
    # could only wait longer than it is allowed (queue_timeout, or
    # codel_target once the queue is congested) is told no at arrival.
    # codel_target is 300 ms, so that waiting it out cannot pass for fast.
    tr = Tracker()
    be = Backend(tr.handler(0.05))
    sp = Spillway([be], sections=[limiter(
        limit=1, queue_size=100, queue_timeout="5s", codel_target="300ms",
        codel_interval="100ms")])
    recs = open_loop(sp.port, 100, 3.0)
    errors = [r for r in recs if r[2] == 0]
    check(not errors, "client errors: %r" % errors[:5])
    t0 = min(r[0] for r in recs)
    shed = [r[1] - r[0] for r in recs if r[2] == 503 and r[0] > t0 + 1.0]
    ok = [r[1] - r[0] for r in recs if r[2] == 200]
    reasons = sorted(set(r[3] for r in recs if r[2] == 503))
    diag("%d sent, %d served (p50 %.0f ms), %d refused after the first "
         "second: p50 %.1f ms, p90 %.1f ms; reasons %r"
         % (len(recs), len(ok), 1000 * pct(ok, .5), len(shed),
            1000 * pct(shed, .5), 1000 * pct(shed, .9), reasons))
    check(len(shed) > 100, "only %d refusals at 5x overload" % len(shed))
    check(pct(shed, .5) < 0.05, "median refusal took %.1f ms"
          % (1000 * pct(shed, .5)))
    check(len(ok) >= 40, "only %d served in 3 s at 20/s" % len(ok))
    eq(tr.max_active, 1, "backend max concurrency")


# --------------------------------------------------------------------------
# 5. priority order

PRIO_CLASSES = [("class vip", {"header": "X-Vip", "priority": "critical"}),
                ("class bulk", {"path": "/bulk", "priority": "sheddable"})]


@test("priority: critical, then normal, then sheddable (FIFO within)")
def priority_order():
    be = Backend(echo_path(), routes={"/slow": delayed(0.6, echo_path())})
    sp = Spillway([be], sections=[limiter(
        limit=1, queue_size=10, queue_timeout="5s", adaptive_lifo="no",
        **CODEL_OFF)] + PRIO_CLASSES)
    slow = Client(sp.port)
    slow.request("GET", "/slow")
    check(be.wait_requests(1, 2), "/slow never reached the backend")
    order = [("/bulk/1", None), ("/n1", None), ("/v1", [("X-Vip", "1")]),
             ("/bulk/2", None)]
    cs = []
    for path, hs in order:
        c = Client(sp.port)
        c.request("GET", path, hs)
        cs.append((path, c))
        time.sleep(0.05)
    eq(paths(be), ["/slow"], "backend requests while the slot is taken")
    eq(slow.read_response(timeout=3).status, 200, "/slow status")
    for path, c in cs:
        r = c.read_response(timeout=5)
        eq((r.status, r.body), (200, b"GET " + path.encode()),
           "response to %s" % path)
    eq(paths(be), ["/slow", "/v1", "/n1", "/bulk/1", "/bulk/2"],
       "order at the backend")


# --------------------------------------------------------------------------
# 6. eviction

@test("eviction: a critical arrival pushes out the newest sheddable waiter")
def eviction():
    be = Backend(echo_path(), routes={"/slow": delayed(0.8, echo_path())})
    sp = Spillway([be], sections=[limiter(
        limit=1, queue_size=2, queue_timeout="5s", **CODEL_OFF)] +
        PRIO_CLASSES)
    slow = Client(sp.port)
    slow.request("GET", "/slow")
    check(be.wait_requests(1, 2), "/slow never reached the backend")
    b1, b2 = Client(sp.port), Client(sp.port)
    b1.request("GET", "/bulk/1")
    time.sleep(0.05)
    b2.request("GET", "/bulk/2")
    time.sleep(0.05)
    check(b1.nothing_within(0) and b2.nothing_within(0),
          "a queued bulk request was answered before the critical one came")
    vip = Client(sp.port)
    t0 = time.monotonic()
    vip.request("GET", "/v1", [("X-Vip", "yes")])
    r = b2.read_response(timeout=3)
    took = time.monotonic() - t0
    check_503(r, "queue_full", "/bulk/2 (evicted)")
    check(took < 0.2, "/bulk/2 evicted %.0f ms after the critical arrival"
          % (1000 * took))
    check(b1.nothing_within(0.05), "/bulk/1 answered: %s"
          % short(b1.reader.buf))
    b3 = Client(sp.port)
    t0 = time.monotonic()
    r = b3.exchange("GET", "/bulk/3", timeout=3)
    took = time.monotonic() - t0
    check_503(r, "queue_full", "/bulk/3 (queue full of bulk1, vip)")
    check(took < 0.2, "/bulk/3 refused after %.0f ms" % (1000 * took))
    eq(slow.read_response(timeout=3).status, 200, "/slow status")
    r = vip.read_response(timeout=3)
    eq((r.status, r.body), (200, b"GET /v1"), "critical response")
    r = b1.read_response(timeout=3)
    eq((r.status, r.body), (200, b"GET /bulk/1"), "/bulk/1 response")
    eq(paths(be), ["/slow", "/v1", "/bulk/1"], "order at the backend")


# --------------------------------------------------------------------------
# 7. hang-up while queued

@test("client hangs up while queued: never sent, logged 499 client_closed")
def hangup_queued():
    td = TmpDir()
    alog = td.join("access.log")
    be = Backend(echo_path(), routes={"/slow": delayed(0.5, echo_path())})
    # CoDel off: with it, a lone waiter is shed (overloaded) once the
    # queue has been non-empty for codel_interval, 100 ms
    sp = Spillway([be], proxy={"access_log": alog},
                  sections=[limiter(limit=1, queue_size=10,
                                    queue_timeout="5s", **CODEL_OFF)])
    slow = Client(sp.port)
    slow.request("GET", "/slow")
    check(be.wait_requests(1, 2), "/slow never reached the backend")
    gone = Client(sp.port)
    gone.request("GET", "/gone")
    time.sleep(0.1)
    gone.close()
    eq(slow.read_response(timeout=3).status, 200, "/slow status")
    time.sleep(0.3)
    later = Client(sp.port)
    t0 = time.monotonic()
    r = later.exchange("GET", "/later", timeout=3)
    took = time.monotonic() - t0
    eq((r.status, r.body), (200, b"GET /later"), "later response")
    check(took < 0.3, "later request took %.0f ms" % (1000 * took))
    eq(paths(be), ["/slow", "/later"], "backend saw")
    lines = access_lines(alog, lambda ls: sum(1 for l in ls if l) >= 3)
    gl = [l for l in lines if "/gone" in l]
    eq(len(gl), 1, "access log lines for /gone (%r)" % lines)
    st, cls, reason, req = log_fields(gl[0])
    eq((st, reason), (499, "client_closed"), "access log of /gone (%r)"
       % gl[0])


# --------------------------------------------------------------------------
# 8. hang-up in flight

@test("client gone in flight frees its slot")
def hangup_in_flight():
    be = Backend(echo_path(), routes={"/hang": delayed(3.0, echo_path())})
    sp = Spillway([be], sections=[limiter(limit=1)])
    a = Client(sp.port)
    a.request("GET", "/hang")
    check(be.wait_requests(1, 2), "/hang never reached the backend")
    time.sleep(0.2)
    a.close()
    t0 = time.monotonic()
    b = Client(sp.port)
    r = b.exchange("GET", "/fast", timeout=3)
    took = time.monotonic() - t0
    eq((r.status, r.header("spillway-reason"), r.body),
       (200, None, b"GET /fast"), "response to /fast after A left")
    check(took < 1.0, "/fast answered after %.0f ms" % (1000 * took))
    eq(paths(be), ["/hang", "/fast"], "backend saw")


# --------------------------------------------------------------------------
# 9. refused body

@test("refused POST body is discarded: the pipelined GET is not desynced")
def refused_body_no_desync():
    be = Backend(echo_path(), routes={"/slow": delayed(0.5, echo_path())})
    sp = Spillway([be], sections=[limiter(limit=1, queue_size=0)])
    slow = Client(sp.port)
    slow.request("GET", "/slow")
    check(be.wait_requests(1, 2), "/slow never reached the backend")
    # a body that is itself a request: a desync would show it
    body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    body += b"x" * (100 - len(body))
    eq(len(body), 100, "body length")
    c = Client(sp.port)
    c.send(build_request("POST", "/post", [("Content-Length", "100")], body) +
           build_request("GET", "/g1"))
    r1 = c.read_response("POST", timeout=3)
    check_503(r1, "queue_full", "POST")
    check("close" not in r1.tokens("connection"),
          "a 100-byte refused body closes the connection: %r" % r1)
    r2 = c.read_response(timeout=3)
    check(r2.status in (200, 503), "pipelined GET got %r" % r2)
    if r2.status == 503:
        check_503(r2, "queue_full", "pipelined GET")
    else:
        eq(r2.body, b"GET /g1", "pipelined GET body")
    check(c.nothing_within(0.2), "more bytes after the two responses: %s"
          % short(c.reader.buf))
    eq(slow.read_response(timeout=3).status, 200, "/slow status")
    time.sleep(0.05)
    r3 = c.exchange("GET", "/g2", timeout=3)
    eq((r3.status, r3.body), (200, b"GET /g2"), "GET after the slot freed")
    got = paths(be)
    check("/smuggled" not in got and "/post" not in got,
          "backend saw %r" % got)
    eq(be.bad, [], "heads the backend could not parse")
    diag("pipelined GET: %d %s" % (r2.status,
                                   r2.header("spillway-reason") or ""))


@test("refused bodies: 200 KiB discarded (kept alive), 300 KiB closes")
def refused_big_bodies():
    be = Backend(echo_path(), routes={"/slow": delayed(0.8, echo_path())})
    sp = Spillway([be], sections=[limiter(limit=1, queue_size=0)])
    slow = Client(sp.port)
    slow.request("GET", "/slow")
    check(be.wait_requests(1, 2), "/slow never reached the backend")
    # under the discard limit: read and thrown away, the connection lives
    body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" * 6000
    body = body[:200 * 1024]
    c = Client(sp.port)
    c.send(build_request("POST", "/post", None, body) +
           build_request("GET", "/g1"))
    r1 = c.read_response("POST", timeout=3)
    check_503(r1, "queue_full", "POST of 200 KiB")
    check("close" not in r1.tokens("connection"),
          "a 200 KiB refused body closes the connection: %r" % r1)
    r2 = c.read_response(timeout=3)
    check(r2.status in (200, 503), "pipelined GET got %r" % r2)
    if r2.status == 503:
        check_503(r2, "queue_full", "pipelined GET")
    check(c.nothing_within(0.2), "more bytes after the two responses: %s"
          % short(c.reader.buf))
    # over it: refused with Connection: close (head sent alone, so the
    # answer cannot be lost to a reset)
    d = Client(sp.port)
    d.send(build_request("POST", "/big", [("Content-Length",
                                           str(300 * 1024))]))
    r3 = d.read_response("POST", timeout=3)
    check_503(r3, "queue_full", "POST of 300 KiB")
    check("close" in r3.tokens("connection"),
          "no Connection: close on a refusal with a 300 KiB body: %r" % r3)
    check(d.wait_closed(2), "connection open after Connection: close")
    eq(slow.read_response(timeout=3).status, 200, "/slow status")
    time.sleep(0.05)
    r4 = c.exchange("GET", "/g2", timeout=3)
    eq((r4.status, r4.body), (200, b"GET /g2"), "GET after the slot freed")
    got = paths(be)
    check(not set(got) & {"/smuggled", "/post", "/big"},
          "backend saw %r" % got)
    eq(be.bad, [], "heads the backend could not parse")


# --------------------------------------------------------------------------
# 10. adaptive limit

def capacity_backend(workers=4, service=0.02):
    """A backend of `workers` workers, `service` s per request; requests
    beyond that wait for a worker inside the backend."""
    sem = threading.Semaphore(workers)

    def h(req, conn):
        with sem:
            time.sleep(service)
        body = b"ok"
        conn.send(_head_bytes(200, [("Content-Length", str(len(body)))]) +
                  body)
        return True
    return Backend(h)


def summarize(recs, t_from, t_to):
    win = [r for r in recs if t_from <= r[1] < t_to]
    ok = [r[1] - r[0] for r in win if r[2] == 200]
    return win, ok


@test("gradient in front of a 200/s backend, closed loop: a standing queue "
      "within the budget is served, nothing refused", timeout=40)
def gradient_capacity():
    # 40 clients that wait for their answers in front of 200/s: a queue of
    # ~36 that drains in ~180 ms, within the 500 ms budget. It is not
    # overload: nothing may be refused (issue 12: it used to be, 99%).
    n, seconds = 40, 4.0
    raw_be = capacity_backend()
    base = Load(raw_be.port, n, 1.5, timeout=8)
    brecs = base.join()
    bwin, bok = summarize(brecs, base.t_stop - 1.0, base.t_stop)
    direct = len(bok) / 1.0
    diag("without spillway: %.0f/s, p50 %.0f ms, p90 %.0f ms"
         % (direct, 1000 * pct(bok, .5), 1000 * pct(bok, .9)))
    raw_be.close()

    be = capacity_backend()
    # a budget of 1 s: the queue (~180 ms) is as far within it as before,
    # and a stall of the shared machine (seen: 600 ms under a sanitizer
    # build beside another suite) does not push waits past the longest
    # wait; at 500 ms such a stall cost 4-6% of queue timeouts
    sp = Spillway([be], sections=[("limiter", {"algorithm": "gradient",
                                               "latency_budget": "1s"})])
    load = Load(sp.port, n, seconds, pause_503=0.005, timeout=8)
    recs = load.join()
    check(not load.errors, "client errors: %r" % load.errors[:5])
    win, ok = summarize(recs, load.t_stop - 2.0, load.t_stop)
    statuses = {}
    for r in recs:
        key = r[2] if r[2] == 200 else "%d %s" % (r[2], r[3])
        statuses[key] = statuses.get(key, 0) + 1
    goodput = len(ok) / 2.0
    diag("gradient: %d requests %r; last 2 s: goodput %.0f/s, p50 %.0f ms, "
         "p90 %.0f ms, p99 %.0f ms" % (len(recs), statuses, goodput,
                                       1000 * pct(ok, .5), 1000 * pct(ok, .9),
                                       1000 * pct(ok, .99)))
    # nothing, but for a stall of a shared machine (a Python backend and
    # 40 Python clients on 2 cores): 1% at most
    refused = len([r for r in recs if r[2] != 200])
    check(set(r[2] for r in recs) <= {200, 503} and
          refused <= 0.01 * len(recs), "statuses (%r)" % statuses)
    check(goodput >= min(150, 0.85 * direct), "goodput %.0f/s over the last "
          "2 s, want >= min(150, 85%% of direct %.0f)" % (goodput, direct))


@test("gradient, closed loop past the budget: the excess is refused with "
      "Retry-After, those served wait within the budget", timeout=40)
def gradient_past_budget():
    # 80 clients in front of 200/s with a 200 ms budget: waiting would take
    # ~400 ms, so some must be told no; those served are served in time.
    n, seconds = 80, 4.0
    be = capacity_backend()
    sp = Spillway([be], sections=[("limiter", {"algorithm": "gradient",
                                               "latency_budget": "200ms"})])
    load = Load(sp.port, n, seconds, pause_503=0.005, timeout=8)
    recs = load.join()
    check(not load.errors, "client errors: %r" % load.errors[:5])
    win, ok = summarize(recs, load.t_stop - 2.0, load.t_stop)
    shed = [r for r in recs if r[2] == 503]
    statuses = {}
    for r in recs:
        key = r[2] if r[2] == 200 else "%d %s" % (r[2], r[3])
        statuses[key] = statuses.get(key, 0) + 1
    goodput = len(ok) / 2.0
    diag("%d requests %r; last 2 s: goodput %.0f/s, p50 %.0f ms, p99 %.0f ms"
         % (len(recs), statuses, goodput, 1000 * pct(ok, .5),
            1000 * pct(ok, .99)))
    check(set(r[2] for r in recs) <= {200, 503},
          "statuses other than 200 and 503: %r" % statuses)
    check(shed, "nothing shed with %d clients waiting ~400 ms" % n)
    for r in shed:
        check(r[4] is not None and re.match(r"^[0-9]+$", r[4]) and
              int(r[4]) >= 1, "503 without a proper Retry-After: %r"
              % (r,))
        check(r[3] in ("queue_full", "queue_timeout", "overloaded"),
              "503 with Spillway-Reason %r" % r[3])
    # half the capacity: a shared machine's Python clients, retrying,
    # take CPU from the Python backend
    check(goodput >= 100, "goodput %.0f/s over the last 2 s, want >= 100/s "
          "(capacity 200/s)" % goodput)
    # the budget, with room for a shared machine's hiccups
    check(pct(ok, .9) < 0.35, "p90 of those served %.0f ms, budget 200 ms"
          % (1000 * pct(ok, .9)))


# --------------------------------------------------------------------------
# dry run

@test("limiter dry_run: the limit learns, nothing waits or is refused; the "
      "decisions are in the access log and /metrics", timeout=30)
def shed_dry_run():
    # a fixed limit of 1 in front of 10/s, a 100 ms budget: 8 at once
    # would have 1 sent, the rest queued or, past the budget, refused
    tr = Tracker()
    be = Backend(tr.handler(0.1))
    alog = TmpDir().join("access.log")
    sp = admin_spillway([be], sections=[limiter(
        limit=1, latency_budget="100ms", dry_run="yes")],
        proxy={"access_log": alog})
    c = Client(sp.port)
    for i in range(3):      # a latency known: predictions can be made
        eq(c.exchange("GET", "/warm%d" % i).status, 200, "warm-up")
    rs = fire(sp.port, ["/d%d" % i for i in range(8)])
    check(all(r.error is None for r in rs), "client errors: %r" % rs)
    eq([r.status for r in rs], [200] * 8, "statuses in dry-run mode")
    for r in rs:
        check(r.reason is None and r.resp.header("retry-after") is None,
              "shedding headers on a dry-run response: %r" % r.resp.headers)
    check(tr.max_active >= 6, "backend max concurrency %d: requests were "
          "held back" % tr.max_active)
    lines = access_lines(alog, 11)
    notes = [log_fields(ln)[2] for ln in lines]
    diag("access log reasons: %r" % notes)
    check(set(notes) <= {"-", "overloaded(dry_run)", "queue_full(dry_run)"},
          "reasons in the access log: %r" % notes)
    check("overloaded(dry_run)" in notes, "no overloaded(dry_run) among %r"
          % notes)
    m = metrics(sp)
    over = m.value("spillway_dry_run_shed_total", 0, decision="overloaded")
    queued = m.value("spillway_dry_run_shed_total", 0, decision="queued")
    diag("dry run: %r overloaded, %r queued" % (over, queued))
    eq(over, notes.count("overloaded(dry_run)"),
       "overloaded decisions in /metrics and in the log")
    check(over + queued >= 6, "decisions counted: %r + %r, want >= 6 of 8 "
          "past the limit" % (over, queued))
    eq(m.value("spillway_refused_total", 0, reason="overloaded",
               **{"class": "default"}), 0, "refusals made")
    eq(m.value("spillway_queue_length"), 0, "queue length")


# --------------------------------------------------------------------------
# 11. in flight never above the limit

@test("fixed limit 3: the backend never sees more than 3 at once")
def max_in_flight():
    tr = Tracker()
    be = Backend(tr.handler(0.1))
    sp = Spillway([be], sections=[limiter(limit=3, queue_size=20,
                                          queue_timeout="5s", **CODEL_OFF)])
    rs = fire(sp.port, ["/m%d" % i for i in range(15)])
    check(all(r.error is None for r in rs), "client errors: %r" % rs)
    eq([r.status for r in rs], [200] * 15, "statuses (%r)" % rs)
    eq(tr.max_active, 3, "backend max concurrency")
    eq(len(tr.spans), 15, "requests worked on by the backend")


if __name__ == "__main__":
    run_main()
