#!/usr/bin/env python3
"""Admission: token buckets (global, per client key, per class), request
classes, 429 responses and what they do to the connection, dry-run mode,
and a bounded table of client buckets."""

import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (access_lines, Backend, build_request, check, chunk_encode,
                     Client, diag, echo_path, eq, log_fields, register,
                     respond, run_binary, run_main, short, Spillway, test)


# --------------------------------------------------------------------------
# helpers

_rate_forms = {}


def _form_accepted(value):
    """True if `spillway -t` accepts `rate = value` in [admission]."""
    if value not in _rate_forms:
        d = tempfile.mkdtemp(prefix="spillway-it-")
        try:
            p = os.path.join(d, "t.ini")
            with open(p, "w") as f:
                f.write("[proxy]\nlisten = 127.0.0.1:1\n[backend]\n"
                        "server = 127.0.0.1:2\n[admission]\nrate = %s\n"
                        % value)
            r = run_binary(["-t", "-c", p])
            _rate_forms[value] = r.returncode == 0
            if r.returncode != 0:
                diag("spillway -t rejects rate = %s: %s" % (
                    value, r.stderr.decode("utf-8", "replace").strip()))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return _rate_forms[value]


def per_s(n):
    """A rate of n per second: "n/s" if the binary takes that form, else
    the plain number (which means per second)."""
    return "%d/s" % n if _form_accepted("1/s") else "%d" % n


def per_m(n):
    """A rate of n per minute; there is no other way to write it."""
    return "%d/m" % n


class TmpDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="spillway-it-adm-")
        register(self)

    def join(self, name):
        return os.path.join(self.path, name)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def admission_proxy(admission=None, classes=(), backend=None, proxy=None,
                    handler=None, limiter=None):
    """A Backend and a Spillway with an [admission] section and classes:
    classes is a list of (name, keys); limiter, a [limiter] section."""
    be = backend or Backend(handler or echo_path())
    sections = []
    if admission is not None:
        sections.append(("admission", admission))
    if limiter is not None:
        sections.append(("limiter", limiter))
    for name, keys in classes:
        sections.append(("class %s" % name, keys))
    sp = Spillway([be], proxy=proxy or {}, sections=sections)
    return be, sp


def check_429(r, what="response"):
    """A refusal by the token buckets, as the design promises it."""
    eq(r.status, 429, "%s status (%r)" % (what, r))
    ra = r.header("retry-after")
    check(ra is not None and re.match(r"^[0-9]+$", ra) is not None,
          "%s: Retry-After missing or not whole seconds: %r" % (what, ra))
    check(int(ra) >= 1, "%s: Retry-After %s < 1" % (what, ra))
    eq(r.header("spillway-reason"), "rate_limited", "%s Spillway-Reason"
       % what)
    check(r.has("content-length"), "%s: no Content-Length: %r"
          % (what, r.headers))
    eq(int(r.header("content-length")), len(r.body), "%s Content-Length"
       % what)
    check(0 < len(r.body) < 1024, "%s: body of %d bytes, want a short one"
          % (what, len(r.body)))
    return int(ra)


def pipeline(c, targets, method="GET", headers=None, timeout=5):
    """Send one request per target in one write; read them all."""
    c.send(b"".join(build_request(method, t, headers) for t in targets))
    return c.read_responses(len(targets), methods=[method] * len(targets),
                            timeout=timeout)


def statuses(rs):
    return [r.status for r in rs]


# --------------------------------------------------------------------------
# configuration

@test("rate forms: N, N/s and N/m are accepted by spillway -t", timeout=20)
def rate_forms():
    bad = [v for v in ("10", "10/s", "600/m") if not _form_accepted(v)]
    check(not bad, "spillway -t rejects rate = %s" % ", ".join(bad))


@test("class and admission errors: spillway -t fails with FILE:LINE",
      timeout=20)
def config_errors():
    base = ("[proxy]\nlisten = 127.0.0.1:1\n[backend]\n"
            "server = 127.0.0.1:2\n")
    cases = [
        ("[class default]\npath = /x/\n", (5, 6)),   # section or key
        ("[class api]\npriority = normal\n", 5),
        ("[class api]\npath = /api/\npriority = urgent\n", 7),
        ("[class api]\npath = /api/\nrate = 5/h\n", 7),
        ("[admission]\nclient_key = cookie:x\n", 6),
        ("[admission]\nrate = -3\n", 6),
        ("[admission]\ndry_run = perhaps\n", 6),
    ]
    td = TmpDir()
    p = td.join("bad.ini")
    for text, line in cases:
        with open(p, "w") as f:
            f.write(base + text)
        r = run_binary(["-t", "-c", p])
        err = r.stderr.decode("utf-8", "replace")
        check(r.returncode == 1, "spillway -t exit %d for:\n%s"
              % (r.returncode, text))
        lines = line if isinstance(line, tuple) else (line,)
        check(any(re.search(r"(?m)^%s:%d: \S" % (re.escape(p), n), err)
                  for n in lines),
              "no '%s:%s: message' for:\n%s\nstderr: %s"
              % (p, "|".join(map(str, lines)), text, err.strip()))


# --------------------------------------------------------------------------
# the global bucket

@test("global rate 5/s burst 5: 5 of 20 pass, the rest get a proper 429")
def global_rate():
    be, sp = admission_proxy({"rate": per_s(5), "burst": 5})
    c = Client(sp.port)
    rs = pipeline(c, ["/g%d" % i for i in range(20)])
    st = statuses(rs)
    ok = [i for i, s in enumerate(st) if s == 200]
    check(5 <= len(ok) <= 6, "%d of 20 admitted, want 5 (or 6): %r"
          % (len(ok), st))
    eq(st[:5], [200] * 5, "the first 5 statuses")
    for i, r in enumerate(rs):
        if r.status == 200:
            eq(r.body, b"GET /g%d" % i, "body of admitted response %d" % i)
        else:
            ra = check_429(r, "response %d" % i)
            eq(ra, 1, "Retry-After at 5/s (a token in 0.2s, rounded up)")
            check("close" not in r.tokens("connection"),
                  "429 %d closes the connection: %r" % (i, r.headers))
    # the connection is still there and answers
    r = c.exchange("GET", "/after")
    check(r.status in (200, 429), "request after the 429s: %r" % r)
    n = len(ok) + (1 if r.status == 200 else 0)
    time.sleep(0.2)
    eq(be.count(), n, "requests at the backend (only the admitted ones)")
    eq(sorted(q.target for q in be.requests),
       sorted(["/g%d" % i for i in ok] +
              (["/after"] if r.status == 200 else [])),
       "targets at the backend")


@test("global rate: the bucket refills (5 more after 1.1s)")
def global_refill():
    be, sp = admission_proxy({"rate": per_s(5), "burst": 5})
    c = Client(sp.port)
    st = statuses(pipeline(c, ["/a%d" % i for i in range(10)]))
    check(5 <= st.count(200) <= 6, "first round: %r" % st)
    st = statuses(pipeline(c, ["/b%d" % i for i in range(3)]))
    eq(st, [429] * 3, "right after the first round")
    time.sleep(1.1)
    st = statuses(pipeline(c, ["/c%d" % i for i in range(10)]))
    check(5 <= st.count(200) <= 6 and st[:5] == [200] * 5,
          "after 1.1s at 5/s with burst 5: want 5 (or 6) admitted: %r" % st)


@test("burst unset: one second's worth of rate (3/s -> 3)")
def default_burst():
    be, sp = admission_proxy({"rate": per_s(3)})
    c = Client(sp.port)
    st = statuses(pipeline(c, ["/d%d" % i for i in range(8)]))
    check(3 <= st.count(200) <= 4 and st[:3] == [200] * 3,
          "rate 3/s, burst unset: want 3 (or 4) admitted: %r" % st)


# --------------------------------------------------------------------------
# per client

@test("client key header:X-Api-Key: one bucket per key, no header = IP")
def client_key_header():
    be, sp = admission_proxy({"client_rate": per_s(2), "client_burst": 2,
                              "client_key": "header:X-Api-Key"})
    c = Client(sp.port)
    a = [("X-Api-Key", "key-A")]
    b = [("X-Api-Key", "key-B")]
    st = statuses(pipeline(c, ["/a%d" % i for i in range(5)], headers=a))
    check(st[:2] == [200, 200] and st[3:] == [429, 429] and
          st[2] in (200, 429), "key A: want 2 admitted then 429: %r" % st)
    st = statuses(pipeline(c, ["/b%d" % i for i in range(5)], headers=b))
    check(st[:2] == [200, 200] and st[3:] == [429, 429] and
          st[2] in (200, 429), "key B (own bucket): %r" % st)
    # without the header: keyed by the IP, a bucket of its own; two
    # connections share it
    c2 = Client(sp.port)
    st = statuses(pipeline(c2, ["/n%d" % i for i in range(2)]))
    eq(st, [200, 200], "no header, first connection")
    c3 = Client(sp.port)
    st = statuses(pipeline(c3, ["/m%d" % i for i in range(3)]))
    check(st[1:] == [429, 429] and st[0] in (200, 429),
          "no header, second connection from the same IP: %r" % st)
    # key A is still limited, a new key C is not
    r = c3.exchange("GET", "/a-again", headers=a)
    check_429(r, "key A again")
    r = c3.exchange("GET", "/c", headers=[("X-Api-Key", "key-C")])
    eq(r.status, 200, "new key C")
    # long keys that differ only after their first 64 bytes are distinct
    long1 = [("X-Api-Key", "L" * 100 + "1")]
    long2 = [("X-Api-Key", "L" * 100 + "2")]
    st = statuses(pipeline(c3, ["/l1-%d" % i for i in range(3)],
                           headers=long1))
    check(st[:2] == [200, 200] and st[2] == 429, "long key 1: %r" % st)
    st = statuses(pipeline(c3, ["/l2-%d" % i for i in range(2)],
                           headers=long2))
    eq(st, [200, 200], "long key 2 (differs from key 1 at byte 101)")
    # keys past 256 bytes are asked at once, not batched: the same buckets
    for n, name in ((300, "a 300-byte key"), (4000, "a 4000-byte key")):
        k = [("X-Api-Key", "V" * n)]
        st = statuses(pipeline(c3, ["/v%d-%d" % (n, i) for i in range(4)],
                               headers=k))
        check(st[:2] == [200, 200] and st[3] == 429 and st[2] in (200, 429),
              "%s: want 2 admitted then 429: %r" % (name, st))
        k2 = [("X-Api-Key", "V" * (n - 1) + "W")]
        r = c3.exchange("GET", "/w%d" % n, headers=k2)
        eq(r.status, 200, "%s that differs in its last byte" % name)


@test("client key header: a header value equal to an IP is not that IP's "
      "bucket")
def client_key_namespaces():
    # Keys from the header are chosen by clients: one must not be able to
    # empty the bucket of the clients without the header that come from
    # some IP by sending that IP as its key (or the other way round).
    be, sp = admission_proxy({"client_rate": per_m(1), "client_burst": 1,
                              "client_key": "header:X-Api-Key"})
    c = Client(sp.port)
    eq(c.exchange("GET", "/by-header",
                  headers=[("X-Api-Key", "127.0.0.1")]).status,
       200, "X-Api-Key: 127.0.0.1 (a new key)")
    r = c.exchange("GET", "/by-ip")
    eq(r.status, 200, "no header from 127.0.0.1 after a request with "
       "X-Api-Key: 127.0.0.1 (got %r): the IP bucket and the header "
       "bucket of the same text are one" % r)


@test("client key ip: two connections from one IP share a bucket")
def client_key_ip():
    be, sp = admission_proxy({"client_rate": per_s(2), "client_burst": 2,
                              "client_key": "ip"})
    c1 = Client(sp.port)
    c2 = Client(sp.port)
    eq(c1.exchange("GET", "/1").status, 200, "first request, connection 1")
    eq(c2.exchange("GET", "/2", headers=[("X-Api-Key", "other")]).status,
       200, "second request, connection 2")
    check_429(c1.exchange("GET", "/3", headers=[("X-Api-Key", "x")]),
              "third request, connection 1")
    check_429(c2.exchange("GET", "/4"), "fourth request, connection 2")
    c3 = Client(sp.port)
    check_429(c3.exchange("GET", "/5"), "new connection, same IP")
    time.sleep(0.1)
    eq(be.count(), 2, "requests at the backend")


@test("client_rate 6/m burst 1: Retry-After is 10 (9..10)")
def per_minute_retry_after():
    be, sp = admission_proxy({"client_rate": per_m(6), "client_burst": 1})
    c = Client(sp.port)
    eq(c.exchange("GET", "/first").status, 200, "first request")
    r = c.exchange("GET", "/second")
    ra = check_429(r, "second request")
    check(9 <= ra <= 10, "Retry-After %d at 6/m with an empty bucket; "
          "want 10 (a token every 10s, rounded up)" % ra)
    time.sleep(1.0)
    r = c.exchange("GET", "/third")
    ra = check_429(r, "third request, 1s later")
    check(8 <= ra <= 9, "Retry-After %d one second later; want 9" % ra)


# --------------------------------------------------------------------------
# classes

@test("class by path prefix: /api/ limited to 2, other paths unlimited")
def class_path():
    td = TmpDir()
    alog = td.join("access.log")
    be, sp = admission_proxy(
        {}, [("api", {"path": "/api/", "rate": per_s(2), "burst": 2}),
             ("default", {"priority": "sheddable"})],
        proxy={"access_log": alog})
    c = Client(sp.port)
    st = statuses(pipeline(c, ["/api/x%d?q=1" % i for i in range(5)]))
    check(st[:2] == [200, 200] and st[3:] == [429, 429] and
          st[2] in (200, 429), "/api/ requests: want 2 then 429: %r" % st)
    st = statuses(pipeline(c, ["/other%d" % i for i in range(10)] +
                           ["/api", "/apix/y", "/API/z"]))
    eq(st, [200] * 13, "requests outside /api/ (prefix is case-sensitive "
       "and ends in /)")
    # the query is not part of the path
    r = c.exchange("GET", "/x?/api/")
    eq(r.status, 200, "/x?/api/ is not in class api")
    lines = access_lines(alog, 19)
    refused = [log_fields(ln) for ln in lines if '"GET /api/x' in ln]
    eq(len(refused), 5, "access log lines of /api/x requests")
    for (status, cls, reason, req) in refused:
        eq(cls, "api", "class in the access log of %r" % req)
        if status == 429:
            eq(reason, "rate_limited", "reason of a 429 in the access log")
        else:
            eq((status, reason), (200, "-"), "an admitted /api/ request "
               "in the access log")
    for ln in lines:
        status, cls, reason, req = log_fields(ln)
        if "/api/x" not in req:
            eq((status, cls, reason), (200, "default", "-"),
               "access log of %r" % req)


@test("class default with a bucket of its own limits unmatched requests")
def class_default_rate():
    be, sp = admission_proxy(
        {}, [("static", {"path": "/static/"}),
             ("default", {"rate": per_s(2), "burst": 2})])
    c = Client(sp.port)
    st = statuses(pipeline(c, ["/page%d" % i for i in range(5)]))
    check(st[:2] == [200, 200] and st[3:] == [429, 429],
          "unmatched requests: want 2 then 429: %r" % st)
    st = statuses(pipeline(c, ["/static/%d.css" % i for i in range(6)]))
    eq(st, [200] * 6, "class static (no bucket)")


@test("class by method and header value; the first matching class wins")
def class_method_header():
    td = TmpDir()
    alog = td.join("access.log")
    be, sp = admission_proxy(
        {}, [("writes", {"method": "POST, PUT", "rate": per_s(1),
                         "burst": 1}),
             ("gold", {"header": "X-Tier: gold"}),
             ("tiered", {"header": "X-Tier", "rate": per_s(1),
                         "burst": 1})],
        proxy={"access_log": alog})
    c = Client(sp.port)
    gold = [("X-Tier", "gold")]
    # class gold: no bucket of its own, never refused
    st = statuses(pipeline(c, ["/g%d" % i for i in range(6)], headers=gold))
    eq(st, [200] * 6, "GET with X-Tier: gold (class gold, no limit)")
    # class writes: POST and PUT share one token
    eq(c.exchange("POST", "/w1", body=b"x").status, 200, "first POST")
    check_429(c.exchange("PUT", "/w2", body=b"y"), "PUT after the POST")
    # a gold POST is in class writes (first match), not gold: refused
    check_429(c.exchange("POST", "/w3", headers=gold, body=b"z"),
              "POST with X-Tier: gold (first match: writes)")
    # header value must match exactly; any other value is class tiered
    # (presence), which has one token
    silver = [("X-Tier", "golden")]
    st = statuses(pipeline(c, ["/s%d" % i for i in range(3)],
                           headers=silver))
    check(st[0] == 200 and st[2] == 429,
          "X-Tier: golden is class tiered (rate 1, burst 1): %r" % st)
    # no X-Tier, GET: default class, unlimited
    st = statuses(pipeline(c, ["/d%d" % i for i in range(6)]))
    eq(st, [200] * 6, "GET without X-Tier (default class)")
    lines = access_lines(alog, 18)
    want = {"/g": "gold", "/w": "writes", "/s": "tiered", "/d": "default"}
    for ln in lines:
        status, cls, reason, req = log_fields(ln)
        target = req.split(" ")[1]
        eq(cls, want[target[:2]], "class in the access log of %r" % req)
        eq(reason, "rate_limited" if status == 429 else "-",
           "reason in the access log of %r" % req)


@test("global + class buckets: a refusal takes no token, Retry-After is "
      "the longest wait")
def several_buckets():
    be, sp = admission_proxy(
        {"rate": per_m(6), "burst": 2},
        [("api", {"path": "/api/", "rate": per_s(1), "burst": 1})])
    c = Client(sp.port)
    eq(c.exchange("GET", "/api/1").status, 200, "/api/1 (global 2 -> 1, "
       "class 1 -> 0)")
    ra = check_429(c.exchange("GET", "/api/2"), "/api/2 (class empty)")
    eq(ra, 1, "Retry-After when only the class bucket (1/s) is empty")
    # /api/2 took nothing from the global bucket: one token is left
    eq(c.exchange("GET", "/other/1").status, 200, "/other/1 takes the last "
       "global token (the refused /api/2 must not have taken it)")
    ra = check_429(c.exchange("GET", "/other/2"), "/other/2 (global empty)")
    check(9 <= ra <= 10, "Retry-After %d when the global 6/m bucket is "
          "empty; want 10" % ra)
    time.sleep(1.05)
    # class has a token again, global has not: wait for the global one
    ra = check_429(c.exchange("GET", "/api/3"), "/api/3 (global empty)")
    check(8 <= ra <= 9, "Retry-After %d for a request needing both "
          "buckets, global empty for ~9 more seconds; want 9" % ra)
    time.sleep(0.1)
    eq(sorted(q.target for q in be.requests), ["/api/1", "/other/1"],
       "requests at the backend")


# --------------------------------------------------------------------------
# refused requests and the connection

@test("refused POST with a body: body discarded, pipelined request served")
def refused_body_discarded():
    be, sp = admission_proxy(
        {}, [("uploads", {"method": "POST", "rate": per_s(1), "burst": 1})])
    c = Client(sp.port)
    eq(c.exchange("POST", "/up0", body=b"first").status, 200, "first POST")
    # a body that looks like requests: it must never be parsed as one
    smuggle = (b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" * 40)
    body = (smuggle + b"Z" * 1000)[:1000]
    data = build_request("POST", "/up1", body=body) + \
        build_request("GET", "/after1")
    c.send(data)
    rs = c.read_responses(2, methods=["POST", "GET"])
    check_429(rs[0], "refused POST (Content-Length 1000)")
    check("close" not in rs[0].tokens("connection"), "refused POST with a "
          "small body closes the connection: %r" % rs[0].headers)
    eq((rs[1].status, rs[1].body), (200, b"GET /after1"),
       "the request pipelined after the refused body")
    # chunked
    chunks = chunk_encode([smuggle[:300], b"x" * 100, smuggle[300:700]],
                          trailers=[("X-T", "1")])
    c.send(build_request("POST", "/up2",
                         headers=[("Transfer-Encoding", "chunked")]) +
           chunks + build_request("GET", "/after2"))
    rs = c.read_responses(2, methods=["POST", "GET"])
    check_429(rs[0], "refused chunked POST")
    eq((rs[1].status, rs[1].body), (200, b"GET /after2"),
       "the request pipelined after the refused chunked body")
    r = c.exchange("GET", "/after3")
    eq(r.status, 200, "one more request on the connection")
    # the 429 comes at once; the body follows later, in pieces
    c.request("POST", "/up3", headers=[("Content-Length", "3000")])
    check_429(c.read_response("POST", timeout=2), "refused POST, body "
              "not sent yet")
    c.send(smuggle[:1000])
    time.sleep(0.1)
    c.send(smuggle[1000:1300] + b"q" * 700)
    time.sleep(0.1)
    c.send(b"r" * 1000 + build_request("GET", "/after4"))
    r = c.read_response()
    eq((r.status, r.body), (200, b"GET /after4"),
       "the request after a body sent in pieces after the 429")
    time.sleep(0.2)
    eq(sorted(q.target for q in be.requests),
       ["/after1", "/after2", "/after3", "/after4", "/up0"],
       "requests at the backend")
    eq(be.bad, [], "heads the backend could not parse")


@test("refused POST with a body over 256 KiB: 429, Connection: close")
def refused_large_body():
    # max_body_size (default 1m) above the body: the refusal is admission's
    be, sp = admission_proxy(
        {}, [("uploads", {"method": "POST", "rate": per_s(1), "burst": 1})],
        proxy={"max_body_size": "100m"})
    c = Client(sp.port)
    eq(c.exchange("POST", "/up0", body=b"first").status, 200, "first POST")
    c.send(build_request("POST", "/big",
                         headers=[("Content-Length", "10000000")]) +
           b"x" * 4096)
    t0 = time.monotonic()
    r = c.read_response("POST", timeout=3)
    check_429(r, "refused POST of 10 MB")
    check("close" in r.tokens("connection"), "no Connection: close on the "
          "429 to a 10 MB body: %r" % r.headers)
    check(c.wait_closed(3), "connection still open 3s after the 429 with "
          "Connection: close")
    diag("429 and close after %.2fs" % (time.monotonic() - t0))
    # chunked, no length known in advance: the 429 may keep the
    # connection, but once the discarded body passes 256 KiB it closes
    c = Client(sp.port)
    c.request("POST", "/bigchunked",
              headers=[("Transfer-Encoding", "chunked")])
    check_429(c.read_response("POST", timeout=3), "refused chunked POST")
    chunk = b"%x\r\n" % 16384 + b"c" * 16384 + b"\r\n"
    sent = 0
    try:
        while sent < 320 * 1024:       # past the bound, and no further
            c.send(chunk)
            sent += 16384
    except OSError:
        pass                            # closed (reset) already: fine
    t0 = time.monotonic()
    check(c.wait_closed(3), "connection still open 3s after %d KiB of a "
          "refused chunked body (bound: 256 KiB)" % (sent // 1024))
    diag("closed %.2fs after %d KiB of discarded chunked body"
         % (time.monotonic() - t0, sent // 1024))
    eq(be.count(), 1, "requests at the backend")


@test("refused Expect: 100-continue: prompt 429, no 100, Connection: close")
def refused_expect_continue():
    be, sp = admission_proxy(
        {}, [("uploads", {"method": "POST", "rate": per_s(1), "burst": 1})])
    c = Client(sp.port)
    eq(c.exchange("POST", "/up0", body=b"first").status, 200, "first POST")
    c.request("POST", "/wait", headers=[("Expect", "100-continue"),
                                        ("Content-Length", "1000")])
    t0 = time.monotonic()
    r = c.read_response("POST", timeout=3, keep_interim=True)
    took = time.monotonic() - t0
    check(r.status != 100, "got 100 Continue for a request that is "
          "refused: %r" % r)
    check_429(r, "refused POST with Expect: 100-continue")
    check(took < 1.0, "429 took %.2fs without the body" % took)
    check("close" in r.tokens("connection"), "no Connection: close: %r"
          % r.headers)
    check(c.wait_closed(3), "connection not closed after the 429")
    eq(be.count(), 1, "requests at the backend")


@test("refused HEAD: headers only; refused requests never reach backend")
def refused_head():
    be, sp = admission_proxy({"rate": per_s(1), "burst": 1})
    c = Client(sp.port)
    eq(c.exchange("GET", "/one").status, 200, "first request")
    c.send(build_request("HEAD", "/head") + build_request("GET", "/get"))
    rs = c.read_responses(2, methods=["HEAD", "GET"])
    r = rs[0]
    eq(r.status, 429, "refused HEAD status")
    eq(r.header("spillway-reason"), "rate_limited", "Spillway-Reason")
    check(r.has("retry-after"), "no Retry-After on the refused HEAD")
    eq(r.body, b"", "body of the refused HEAD")
    # the GET right after parsed as a response of its own: no stray body
    # bytes of the HEAD response in front of it
    check_429(rs[1], "refused GET after HEAD")
    check(not c.reader.buf, "bytes after the responses: %s"
          % short(c.reader.buf))
    check(c.nothing_within(0.3), "unexpected bytes or close: %s"
          % short(c.reader.buf))
    eq([q.target for q in be.requests], ["/one"], "requests at the backend")


# --------------------------------------------------------------------------
# dry run

@test("dry_run: nothing refused, would-be refusals in the access log")
def dry_run():
    td = TmpDir()
    alog = td.join("access.log")
    be, sp = admission_proxy({"rate": per_s(1), "burst": 1,
                              "dry_run": "yes"},
                             proxy={"access_log": alog})
    c = Client(sp.port)
    rs = pipeline(c, ["/dry%d" % i for i in range(10)])
    eq(statuses(rs), [200] * 10, "statuses in dry-run mode")
    for r in rs:
        check(r.header("spillway-reason") is None and
              r.header("retry-after") is None,
              "admission headers on a dry-run response: %r" % r.headers)
    time.sleep(0.1)
    eq(be.count(), 10, "requests at the backend")
    lines = access_lines(alog, 10)
    fields = [log_fields(ln) for ln in lines]
    eq([f[0] for f in fields], [200] * 10, "statuses in the access log")
    eq(fields[0][2], "-", "reason of the first (admitted) request")
    marked = [f for f in fields if f[2] == "rate_limited(dry_run)"]
    check(8 <= len(marked) <= 9 and
          all(f[2] in ("-", "rate_limited(dry_run)") for f in fields),
          "want 9 (8..9) lines with rate_limited(dry_run): %r"
          % [f[2] for f in fields])
    for f in fields:
        eq(f[1], "default", "class in the access log")


# --------------------------------------------------------------------------
# memory

@test("20000 distinct client keys: all admitted, RSS bounded", timeout=45)
def key_flood():
    # a fixed limit: on a loaded machine the adaptive one could shed a
    # burst of 400 pipelined requests, and this test is about admission
    be, sp = admission_proxy({"client_rate": per_s(1),
                              "client_key": "header:X-Key",
                              "max_clients": 1000},
                             handler=respond(200, b"ok"),
                             limiter={"algorithm": "fixed", "limit": 1000,
                                      "max_limit": 1000,
                                      "queue_size": 1000})
    nconn, batch, total = 4, 100, 20000
    conns = [Client(sp.port, timeout=10) for _ in range(nconn)]
    head = b"GET /k HTTP/1.1\r\nHost: spillway.test\r\nX-Key: "
    sent = 0
    bad = []
    rss0 = None
    t0 = time.monotonic()
    while sent < total:
        if time.monotonic() - t0 > 25:
            raise AssertionError("only %d of %d requests in 25s"
                                 % (sent, total))
        busy = []
        for c in conns:
            if sent >= total:
                break
            n = min(batch, total - sent)
            c.send(b"".join(head + b"key-%d\r\n\r\n" % (sent + i)
                            for i in range(n)))
            sent += n
            busy.append((c, n))
        for c, n in busy:
            for r in c.read_responses(n, timeout=10):
                if r.status != 200 and len(bad) < 5:
                    bad.append(r)
                elif r.status != 200:
                    bad.append(None)
        if rss0 is None:
            rss0 = sp.rss_kb()      # after the first round: warmed up
    took = time.monotonic() - t0
    rss1 = sp.rss_kb()
    diag("%d requests with distinct keys in %.1fs; RSS %d -> %d kB"
         % (total, took, rss0, rss1))
    check(not bad, "%d responses not 200, e.g. %r" % (len(bad), bad[:3]))
    check(rss1 - rss0 < 10 * 1024, "RSS grew by %d kB with 20000 keys and "
          "max_clients 1000" % (rss1 - rss0))
    # the table really is bounded per key: a key seen just now is limited
    r = conns[0].exchange("GET", "/k", headers=[("X-Key",
                                                 "key-%d" % (total - 1))])
    check_429(r, "the last key again")
    # ...and the first one, long evicted, comes back with a full bucket
    r = conns[0].exchange("GET", "/k", headers=[("X-Key", "key-0")])
    eq(r.status, 200, "the first key, evicted from the table, again")


if __name__ == "__main__":
    run_main()
