#!/usr/bin/env python3
"""Backend health: a server that is black-holed, refuses connections or
answers 500 is ejected after max_fails failures in a row and no request
waits on it after that; it is used again once it is back; with every
server out, refusals are fast 503s that say why; retries stay within the
retry budget, and a non-idempotent request that reached a server is never
sent again."""

import json
import os
import socket
import sys
import threading
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import (Backend, Client, access_lines, admin, admin_spillway,
                     check,
                     eq, free_port, log_fields, metrics, raw, register,
                     respond, test, wait_for)


class BlackHole:
    """A listener on 127.0.0.1 that never accepts, its backlog full: a
    connect to it gets no answer at all (the SYN is dropped), like a host
    that went away."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind((harness.LOCALHOST, 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.addr = "%s:%d" % (harness.LOCALHOST, self.port)
        self.fill = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((harness.LOCALHOST, self.port))
            self.fill.append(s)
        # the first filler holds the queue; the others hang, as will ours
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect((harness.LOCALHOST, self.port))
            raise AssertionError("black hole accepted a connection")
        except socket.timeout:
            pass
        finally:
            probe.close()
        register(self)

    def close(self):
        for s in self.fill + [self.lsock]:
            try:
                s.close()
            except OSError:
                pass


def server_metric(sp, name, server):
    return metrics(sp).value(name, server=server)


def timed_get(port, target="/", method="GET", body=None, timeout=10):
    c = Client(port, timeout=timeout)
    t0 = time.monotonic()
    try:
        r = c.exchange(method, target, body=body, timeout=timeout)
    finally:
        c.close()
    return r, time.monotonic() - t0


@test("one of two servers black-holed: after max_fails no request waits "
      "connect_timeout; the healthy server serves them all", timeout=60)
def black_hole():
    be = Backend(respond(200, b"ok"))
    bh = BlackHole()
    sp = admin_spillway([be, bh.addr], backend={
        "connect_timeout": "3s", "max_fails": "2",
        "fail_timeout": "30s"})
    slow = 0
    # before detection: the requests that land on it wait connect_timeout
    # and go on to the healthy server (nothing was sent)
    for _ in range(6):
        r, took = timed_get(sp.port)
        eq((r.status, r.body), (200, b"ok"), "response %r" % r)
        slow += took >= 2.9
    check(1 <= slow <= 2, "%d requests waited connect_timeout before "
          "detection (max_fails 2)" % slow)
    eq(server_metric(sp, "spillway_server_up", bh.addr), 0, "black hole up")
    eq(server_metric(sp, "spillway_server_ejections_total", bh.addr), 1,
       "ejections")
    sent = server_metric(sp, "spillway_server_requests_total", bh.addr)
    eq(sent, 2, "tries sent to the black hole (max_fails 2)")
    n0 = be.count()
    for _ in range(40):
        r, took = timed_get(sp.port)
        eq((r.status, r.body), (200, b"ok"), "response %r" % r)
        check(took < 2.9, "a request waited %.2fs after detection "
              "(connect_timeout 3s)" % took)
    eq(be.count() - n0, 40, "requests served by the healthy server")
    eq(server_metric(sp, "spillway_server_requests_total", bh.addr), sent,
       "tries sent to the black hole after detection")
    text = sp.stderr_text()
    check("%s: up -> ejected (connect timed out" % bh.addr in text,
          "no log line of the ejection with its reason")


@test("a server refusing connections is ejected, probed after its "
      "back-off, and used again once it is back", timeout=60)
def refusing_comes_back():
    be = Backend(respond(200, b"a"))
    port = free_port()
    dead = "%s:%d" % (harness.LOCALHOST, port)
    sp = admin_spillway([be, dead], backend={
        "max_fails": "3", "fail_timeout": "1s", "max_ejection_time": "2s"})
    for _ in range(10):
        r, _ = timed_get(sp.port)
        eq((r.status, r.body), (200, b"a"), "response %r" % r)
    eq(server_metric(sp, "spillway_server_requests_total", dead), 3,
       "tries on the refusing server: max_fails, then none")
    eq(server_metric(sp, "spillway_server_up", dead), 0, "ejected")
    back = Backend(respond(200, b"b"), port=port)
    t0 = time.monotonic()
    # back-off at most 2s (max_ejection_time); a probe then a request
    while back.count() == 0 and time.monotonic() - t0 < 8:
        r, _ = timed_get(sp.port)
        eq(r.status, 200, "response %r" % r)
        time.sleep(0.05)
    check(back.count() > 0, "the server back was not used within 8s")
    harness.diag("used again after %.2fs" % (time.monotonic() - t0))
    eq(server_metric(sp, "spillway_server_up", dead), 1, "up again")
    # and it takes its share again
    n = back.count()
    for _ in range(10):
        timed_get(sp.port)
    check(back.count() - n >= 4, "the server back got %d of 10"
          % (back.count() - n))
    check("%s: trial -> up (trial connect succeeded)" % dead in
          sp.stderr_text(), "no log line of the recovery")


@test("a server answering 500 to everything is ejected; back on probation, "
      "one more 500 ejects it again", timeout=60)
def answers_500():
    good = Backend(respond(200, b"good"))
    bad = Backend(respond(500, b"bad"))
    sp = admin_spillway([good, bad], backend={
        "max_fails": "3", "fail_timeout": "1s", "max_ejection_time": "10s"})
    statuses = [timed_get(sp.port)[0].status for _ in range(12)]
    eq(statuses.count(500), 3, "500s relayed before the ejection: %r"
       % statuses)
    eq(bad.count(), 3, "requests at the 500 server")
    eq(metrics(sp).value("spillway_server_state", server=bad.addr,
                         state="ejected"), 1, "state ejected")
    eq(server_metric(sp, "spillway_server_failures_total", bad.addr), 3,
       "failures")
    # its kept-alive connection goes with it
    check(wait_for(lambda: bad.active == 0, 3),
          "%d connections to the ejected server still open" % bad.active)
    time.sleep(1.3)
    statuses = [timed_get(sp.port)[0].status for _ in range(12)]
    eq(statuses.count(500), 1, "500s after the back-off (probation): %r"
       % statuses)
    eq(bad.count(), 4, "requests at the 500 server")
    eq(server_metric(sp, "spillway_server_ejections_total", bad.addr), 2,
       "ejections")


@test("every server refusing: once they are out, fast 503 no_server with "
      "Retry-After, in the log and metrics; max_ejection_percent keeps one "
      "in by default", timeout=60)
def all_down():
    tmp = tempfile.mkdtemp(prefix="spillway-health-")
    alog = os.path.join(tmp, "access.log")
    d1 = "%s:%d" % (harness.LOCALHOST, free_port())
    d2 = "%s:%d" % (harness.LOCALHOST, free_port())
    sp = admin_spillway([d1, d2], proxy={"access_log": alog}, backend={
        "max_fails": "1", "fail_timeout": "30s",
        "max_ejection_percent": "100"})
    r, _ = timed_get(sp.port)
    eq(r.status, 502, "first request, both refuse: %r" % r)
    for _ in range(5):
        r, took = timed_get(sp.port)
        eq((r.status, r.header("spillway-reason")), (503, "no_server"),
           "response %r" % r)
        ra = int(r.header("retry-after") or 0)
        check(1 <= ra <= 30, "Retry-After %r" % r.header("retry-after"))
    m = metrics(sp)
    eq(m.sum("spillway_refused_total", reason="no_server"), 5,
       "refused no_server")
    eq(m.sum("spillway_server_up"), 0, "servers up")
    lines = access_lines(alog, lambda ls: len(ls) >= 6)
    eq([log_fields(l)[2] for l in lines[1:6]], ["no_server"] * 5,
       "access log reasons")
    os.unlink(alog)
    os.rmdir(tmp)
    # the default share: of two servers one may be out, never both
    sp2 = admin_spillway([d1, d2], backend={"max_fails": "1",
                                            "fail_timeout": "30s"})
    for _ in range(6):
        r, _ = timed_get(sp2.port)
        eq((r.status, r.header("spillway-reason")), (502, "upstream_error"),
           "response %r" % r)
    eq(metrics(sp2).sum("spillway_server_up"), 1, "servers up at 50%")


@test("all servers black-holed: after detection the 503s come at once, "
      "not after connect_timeout", timeout=60)
def all_black_holes():
    b1, b2 = BlackHole(), BlackHole()
    sp = admin_spillway([b1.addr, b2.addr], backend={
        "connect_timeout": "3s", "max_fails": "1", "fail_timeout": "30s",
        "max_ejection_percent": "100"})
    r, took = timed_get(sp.port)
    eq(r.status, 502, "first request: %r" % r)
    for _ in range(5):
        r, took = timed_get(sp.port)
        eq((r.status, r.header("spillway-reason")), (503, "no_server"),
           "response %r" % r)
        check(took < 2.9, "a 503 took %.2fs (connect_timeout 3s)" % took)
    eq(metrics(sp).sum("spillway_server_requests_total"), 2,
       "tries sent to the black holes: one each, before detection")


@test("one of three servers down, passive health off: retries stay within "
      "the budget, counted; the rest get 502", timeout=60)
def retry_budget():
    a = Backend(respond(200, b"a"))
    b = Backend(respond(200, b"b"))
    dead = "%s:%d" % (harness.LOCALHOST, free_port())
    sp = admin_spillway([a, dead, b], backend={
        "max_fails": "0", "retry_budget": "0.1",
        "retry_min_per_second": "0"})
    n = 90
    statuses = [timed_get(sp.port)[0].status for _ in range(n)]
    m = metrics(sp)
    retries = m.value("spillway_retries_total")
    spent = m.value("spillway_retry_budget_exhausted_total")
    tried_dead = m.value("spillway_server_requests_total", server=dead)
    eq(tried_dead, n / 3, "first tries on the dead server (round robin)")
    eq(retries + spent, tried_dead, "retries and budget refusals")
    check(retries <= 0.1 * n, "%d retries for %d requests (budget 10%%)"
          % (retries, n))
    check(spent > 0, "the budget was never spent")
    eq(statuses.count(502), spent, "502s: %r" % statuses)
    eq(statuses.count(200), n - spent, "200s")
    eq(a.count() + b.count(), n - spent, "requests at the live servers")


@test("a server that closes without answering: GET is retried on another "
      "server, POST that reached it never is", timeout=60)
def no_retry_non_idempotent():
    good = Backend(respond(200, b"good"))
    bad = Backend(raw(b"", close=True))
    sp = admin_spillway([good, bad], backend={"max_fails": "0"})
    posts = 10
    for i in range(posts):
        r, _ = timed_get(sp.port, "/p%d" % i, method="POST", body=b"x")
        check(r.status in (200, 502), "POST answered %r" % r)
    seen = [q.target for q in good.requests + bad.requests
            if q.method == "POST"]
    eq(sorted(seen), sorted("/p%d" % i for i in range(posts)),
       "each POST reached exactly one server")
    check(any(q.method == "POST" for q in bad.requests),
          "no POST went to the closing server")
    n_good = good.count()
    for i in range(10):
        r, _ = timed_get(sp.port, "/g%d" % i)
        eq((r.status, r.body), (200, b"good"), "GET %r" % r)
    eq(good.count() - n_good, 10, "every GET answered by the good server")
    check(metrics(sp).value("spillway_retries_total") >= 1, "no retry")


class Health:
    """A /healthz handler whose answer the test sets: a status, or None
    for no answer at all (the connection is held until the check gives
    up). Counts the checks it answered and the connections open at once."""

    def __init__(self, status=200):
        self.status = status
        self.checks = 0
        self.open = 0
        self.most_open = 0
        self.lock = threading.Lock()

    def __call__(self, req, conn):
        with self.lock:
            self.checks += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            status = self.status
        try:
            if status is None:
                conn.sock.settimeout(5)
                try:
                    conn.sock.recv(1)       # until spillway gives up
                except OSError:
                    pass
                return False
            return respond(status, b"health", close=True)(req, conn)
        finally:
            with self.lock:
                self.open -= 1

    def count(self):
        with self.lock:
            return self.checks


def checked_pair(health, **backend):
    """Two backends, b with the Health handler on /healthz, behind a
    spillway checking both every 200ms."""
    a = Backend(respond(200, b"a"), routes={"/healthz": respond(200)})
    b = Backend(respond(200, b"b"), routes={"/healthz": health})
    keys = {"health_check": "GET /healthz", "check_interval": "200ms",
            "check_timeout": "150ms", "check_rise": "3", "check_fall": "2"}
    keys.update(backend)
    return a, b, admin_spillway([a, b], backend=keys)


def up(sp, server):
    return metrics(sp).value("spillway_server_up", server=server)


@test("active checks: down after check_fall failures in a row, no request "
      "meanwhile, up after check_rise passes", timeout=60)
def checks_rise_fall():
    h = Health(200)
    a, b, sp = checked_pair(h)
    check(wait_for(lambda: h.count() >= 2, 5), "no checks within 5s")
    h.status = 503
    check(wait_for(lambda: up(sp, b.addr) == 0, 5), "not down within 5s")
    check("%s: up -> down (check failed: status 503, 2 in a row)" % b.addr
          in sp.stderr_text(), "no log line of the fall")
    nb = len([q for q in b.requests if q.path != "/healthz"])
    for _ in range(10):
        r, _ = timed_get(sp.port, "/x")
        eq((r.status, r.body), (200, b"a"), "while b is down: %r" % r)
    eq(len([q for q in b.requests if q.path != "/healthz"]), nb,
       "requests at b while down")
    h.status = 200
    check(wait_for(lambda: up(sp, b.addr) == 1, 5), "not up within 5s")
    check("%s: down -> up (check passed: status 200, 3 in a row)" % b.addr
          in sp.stderr_text(), "no log line of the rise")
    m = metrics(sp)
    check(m.value("spillway_server_checks_total", server=b.addr,
                  result="failed") >= 2, "failed checks counted")
    check(m.value("spillway_server_checks_total", server=a.addr,
                  result="failed") == 0, "a's checks all passed")
    bodies = {timed_get(sp.port, "/y")[0].body for _ in range(6)}
    eq(bodies, {b"a", b"b"}, "both serve again")


@test("active checks: a check that gets no answer fails at check_timeout; "
      "one check per server at most, never piling up", timeout=60)
def checks_timeout():
    h = Health(None)
    a, b, sp = checked_pair(h, check_interval="300ms",
                            check_timeout="250ms")
    check(wait_for(lambda: up(sp, b.addr) == 0, 5), "not down within 5s")
    time.sleep(1.5)
    st = json.loads(admin(sp, "/status").body)
    sb = [x for x in st["servers"] if x["server"] == b.addr][0]
    eq(sb["checks"]["last"], "timed out", "last check of b")
    eq(sb["state"], "down", "state of b")
    check(h.most_open <= 1, "%d checks of b open at once" % h.most_open)
    # 300ms +-10% apart: about 3 a second, and never more than 4
    n0, t0 = h.count(), time.monotonic()
    time.sleep(2)
    rate = (h.count() - n0) / (time.monotonic() - t0)
    check(rate <= 4.5, "%.1f checks a second at check_interval 300ms"
          % rate)
    check(rate >= 1, "%.1f checks a second: checks stopped?" % rate)


@test("active checks: a reload keeping the servers keeps their checks and "
      "state, with no burst of checks; a reload turning them off frees a "
      "server they held down", timeout=60)
def checks_reload():
    h = Health(200)
    a, b, sp = checked_pair(h, check_interval="500ms",
                            check_timeout="400ms")
    check(wait_for(lambda: h.count() >= 2, 5), "no checks within 5s")
    h.status = 500
    check(wait_for(lambda: up(sp, b.addr) == 0, 5), "not down within 5s")
    n0, t0 = h.count(), time.monotonic()
    for _ in range(8):
        sp.reload()
        time.sleep(0.1)
    check(wait_for(lambda: "generation 9" in sp.stderr_text(), 5),
          "reloads not all done")
    time.sleep(2.2 - (time.monotonic() - t0))
    n = h.count() - n0
    # 500ms apart, +-10%: at most 5 in 2.2s; a storm would be one a reload
    check(n <= 6, "%d checks of b in 2.2s across 8 reloads" % n)
    check(n >= 2, "%d checks of b in 2.2s: checks stopped by reload?" % n)
    eq(up(sp, b.addr), 0, "b still down after the reloads")
    eq(metrics(sp).value("spillway_server_ejections_total", server=b.addr),
       0, "no passive ejection")
    # turned off: b is up at once
    sp.reconfigure(backend={"health_check": None})
    sp.reload()
    check(wait_for(lambda: up(sp, b.addr) == 1, 5), "b not up after checks "
          "were turned off")
    n1 = h.count()
    time.sleep(1.2)
    eq(h.count(), n1, "checks after they were turned off")


@test("active checks: a reload removing a server stops its checks, even "
      "one in flight; the proxy serves on", timeout=60)
def checks_server_removed():
    h = Health(None)        # every check hangs until spillway gives up
    a, b, sp = checked_pair(h, check_interval="300ms",
                            check_timeout="300ms")
    check(wait_for(lambda: h.open >= 1, 5), "no check in flight")
    sp.reconfigure(servers=[a])
    sp.reload()
    check(wait_for(lambda: "generation 2" in sp.stderr_text(), 5),
          "reload not done")
    time.sleep(0.5)
    n = h.count()
    time.sleep(1)
    eq(h.count(), n, "checks of the removed server after the reload")
    check(wait_for(lambda: h.open == 0, 5), "a check still open")
    for _ in range(5):
        r, _ = timed_get(sp.port)
        eq((r.status, r.body), (200, b"a"), "after the reload: %r" % r)
    check(sp.alive(), "spillway died")


@test("slow start: a server back from an ejection gets a small share, its "
      "weight rising from 0", timeout=60)
def slow_start():
    be = Backend(respond(200, b"a"))
    port = free_port()
    dead = "%s:%d" % (harness.LOCALHOST, port)
    sp = admin_spillway([be, dead], backend={
        "max_fails": "1", "fail_timeout": "1s", "slowstart": "30s"})
    for _ in range(4):
        eq(timed_get(sp.port)[0].status, 200, "while the server is down")
    eq(up(sp, dead), 0, "ejected")
    eq(metrics(sp).value("spillway_server_weight", server=dead), 0,
       "weight while out")
    back = Backend(respond(200, b"b"), port=port)
    time.sleep(1.1)
    t0 = time.monotonic()
    check(wait_for(lambda: (timed_get(sp.port), up(sp, dead))[1] == 1, 5),
          "not back within 5s")
    for _ in range(40):
        eq(timed_get(sp.port)[0].status, 200, "while ramping")
    # the weight has 3 decimals: give it the time to show (1/30 a second)
    time.sleep(max(0, 0.6 - (time.monotonic() - t0)))
    took = time.monotonic() - t0
    w = metrics(sp).value("spillway_server_weight", server=dead)
    check(0 < w < 1, "weight %r %.1fs into a 30s slow start" % (w, took))
    # round robin would give it 20 of 40; the ramp was at w or less
    check(back.count() <= 40 * w / 2 + 2, "%d of 40 requests at weight "
          "%.3f" % (back.count(), w))


@test("round robin over the servers that are up: an ejected server's "
      "share is spread evenly, not given to its neighbour", timeout=60)
def even_share():
    a = Backend(respond(200, b"a"))
    b = Backend(respond(200, b"b"))
    dead = "%s:%d" % (harness.LOCALHOST, free_port())
    sp = admin_spillway([a, dead, b], backend={
        "max_fails": "1", "fail_timeout": "60s"})
    for _ in range(3):
        timed_get(sp.port)
    eq(up(sp, dead), 0, "ejected")
    na, nb = a.count(), b.count()
    for _ in range(40):
        eq(timed_get(sp.port)[0].status, 200, "response")
    eq((a.count() - na, b.count() - nb), (20, 20), "shares of a and b")


@test("configuration: health_check and check keys are validated with "
      "file:line")
def checks_config():
    cases = [
        ("health_check = /healthz", "health_check: the method is not a"),
        ("health_check = GET healthz", "health_check: needs a path"),
        ("health_check = GET / a b", "too many words"),
        ("health_check = GET /\ncheck_interval = 1s\ncheck_timeout = 2s",
         "check_timeout <= check_interval"),
        ("check_status = 42", "check_status: 42 is no HTTP status"),
        ("fail_timeout = 10m\nmax_ejection_time = 1m",
         "fail_timeout <= max_ejection_time"),
        ("max_ejection_percent = 101", "max_ejection_percent"),
        ("retry_budget = 1.5", "retry_budget"),
    ]
    tmp = tempfile.mkdtemp(prefix="spillway-health-")
    path = os.path.join(tmp, "s.ini")
    try:
        for text, want in cases:
            with open(path, "w") as f:
                f.write("[backend]\nserver = 127.0.0.1:9\n%s\n" % text)
            p = harness.run_binary(["-t", "-c", path])
            out = p.stderr.decode()
            check(p.returncode != 0, "-t accepted %r" % text)
            check(want in out and "s.ini:" in out,
                  "-t on %r said %r (want %r with file:line)"
                  % (text, out, want))
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(tmp)

if __name__ == "__main__":
    harness.run_main()
