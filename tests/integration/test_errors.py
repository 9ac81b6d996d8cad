#!/usr/bin/env python3
"""Responses spillway makes itself: upstream errors and timeouts, server
selection, malformed and oversized requests, header and idle timeouts."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, Spillway, add_test,
                     build_request, check, dead_server, eq, echo_path, get,
                     never, raw, respond, run_main, short, test, wait_for,
                     delayed)


def check_own_response(r, status, reason=None):
    """A response spillway made: status, Content-Length, short body."""
    eq(r.status, status, "status (response %r)" % r)
    check(r.has("content-length"), "no Content-Length in the %d response: %r"
          % (status, r.headers))
    eq(int(r.header("content-length")), len(r.body), "Content-Length")
    check(len(r.body) < 1024, "long body in the %d response: %d bytes"
          % (status, len(r.body)))
    if reason:
        eq(r.header("spillway-reason"), reason, "Spillway-Reason")


@test("backend down: 502 upstream_error")
def backend_down():
    sp = Spillway([dead_server()])
    t0 = time.monotonic()
    r = get(sp.port, "/down")
    check_own_response(r, 502, "upstream_error")
    check(time.monotonic() - t0 < 3, "502 took %.1fs"
          % (time.monotonic() - t0))


@test("backend answers garbage: 502 upstream_error")
def backend_garbage():
    be = Backend(raw(b"BANANA\r\n\r\n"))
    sp = Spillway([be])
    r = get(sp.port, "/garbage")
    check_own_response(r, 502, "upstream_error")
    check(be.wait_requests(1), "backend saw no request")


@test("backend never answers: 504 upstream_timeout after response_timeout")
def backend_timeout():
    be = Backend(never())
    sp = Spillway([be], backend={"response_timeout": "500ms"})
    c = Client(sp.port)
    t0 = time.monotonic()
    r = c.exchange("GET", "/slow", timeout=5)
    took = time.monotonic() - t0
    check_own_response(r, 504, "upstream_timeout")
    check(0.4 <= took < 3, "504 after %.2fs; response_timeout is 500ms"
          % took)


@test("backend closes mid-response: the client connection is closed")
def backend_truncates():
    be = Backend(raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                     + b"x" * 100))
    sp = Spillway([be])
    c = Client(sp.port)
    c.request("GET", "/trunc")
    # Either a 502 (if nothing was forwarded yet) or the partial response
    # and then a close; never a hang, never a complete 200.
    deadline = time.monotonic() + 3
    data = b""
    c.sock.settimeout(3)
    while time.monotonic() < deadline:
        try:
            d = c.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        except socket.timeout:
            raise AssertionError("connection still open 3s after the "
                                 "backend cut the response; got %s"
                                 % short(data))
        if not d:
            break
        data += d
    if data.startswith(b"HTTP/1.1 200"):
        check(len(data.split(b"\r\n\r\n", 1)[1]) < 1000,
              "complete body from a truncated response")
    else:
        check(data.startswith(b"HTTP/1.1 502") or data == b"",
              "unexpected response %s" % short(data))


@test("dead server first, live second: every request succeeds")
def failover_dead_first():
    be = Backend(respond(200, b"alive"))
    sp = Spillway([dead_server(), be])
    for i in range(6):
        r = get(sp.port, "/f%d" % i)
        eq((r.status, r.body), (200, b"alive"), "request %d" % i)
    eq(be.count(), 6, "requests at the live backend")


@test("round-robin spreads requests over two live servers")
def round_robin():
    a = Backend(respond(200, b"a"))
    b = Backend(respond(200, b"b"))
    sp = Spillway([a, b], backend={"balance": "roundrobin"})
    bodies = [get(sp.port, "/rr%d" % i).body for i in range(10)]
    check(all(x in (b"a", b"b") for x in bodies), "bodies %r" % bodies)
    check(a.count() >= 3 and b.count() >= 3,
          "uneven spread: a=%d b=%d (%r)" % (a.count(), b.count(), bodies))


@test("backend closes without answering: 502 upstream_error")
def backend_closes_silently():
    be = Backend(raw(b""))
    sp = Spillway([be])
    r = get(sp.port, "/silent")
    check_own_response(r, 502, "upstream_error")


@test("leastconn sends requests past a server that is busy")
def least_conn():
    slow = Backend(delayed(1.5, respond(200, b"slow")))
    fast = Backend(respond(200, b"fast"))
    sp = Spillway([slow, fast], backend={"balance": "leastconn"})
    # park one request on the slow server
    parked = []
    for i in range(3):
        c = Client(sp.port)
        c.request("GET", "/park%d" % i)
        parked.append(c)
        if slow.wait_requests(1, timeout=0.3):
            break
    check(slow.count() == 1, "could not park a request on the slow server")
    t0 = time.monotonic()
    for i in range(5):
        r = get(sp.port, "/lc%d" % i)
        eq((r.status, r.body), (200, b"fast"), "request %d while the slow "
           "server has one active request" % i)
    check(time.monotonic() - t0 < 1.0, "5 requests took %.1fs"
          % (time.monotonic() - t0))


@test("keepalive = 0 keeps no idle backend connection")
def keepalive_zero():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], backend={"keepalive": 0})
    c = Client(sp.port)
    for i in range(4):
        eq(c.exchange("GET", "/n%d" % i).status, 200, "status %d" % i)
    eq(be.accepted, 4, "backend connections for 4 requests")


@test("a burst's connections past keepalive are kept a moment, then closed "
      "down to keepalive")
def keepalive_surplus():
    be = Backend(delayed(0.3, respond(200, b"ok")))
    sp = Spillway([be], backend={"keepalive": 2, "keepalive_timeout": "60s"},
                  sections=[("limiter", {"algorithm": "fixed", "limit": 16})])

    def burst(tag):
        out = []
        ts = [threading.Thread(target=lambda i=i: out.append(
            get(sp.port, "/%s%d" % (tag, i)).status)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        eq(sorted(out), [200] * 8, "burst %s" % tag)

    burst("a")
    eq(be.accepted, 8, "backend connections for 8 requests at once")
    # all eight come back to a pool of keepalive = 2 at once; the six past
    # it are kept for a moment, so a second burst right after reuses them
    burst("b")
    eq(be.accepted, 8, "backend connections after a second burst at once "
       "(the first burst's surplus was closed instead of reused)")
    t0 = time.monotonic()
    check(wait_for(lambda: be.active <= 2, 5), "%d backend connections "
          "still open 5s after the burst (keepalive = 2)" % be.active)
    took = time.monotonic() - t0
    check(took >= 0.5, "the surplus was closed after only %.2fs" % took)
    time.sleep(1.5)
    eq(be.active, 2, "backend connections kept (keepalive = 2, "
       "keepalive_timeout 60s)")


@test("idle pooled connections are closed after keepalive_timeout")
def keepalive_timeout():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], backend={"keepalive_timeout": "300ms"})
    eq(get(sp.port, "/").status, 200, "status")
    t0 = time.monotonic()
    check(wait_for(lambda: be.peer_closes >= 1, 3), "pooled connection "
          "still open 3s after the request (keepalive_timeout 300ms)")
    took = time.monotonic() - t0
    check(took >= 0.2, "pooled connection closed after only %.2fs" % took)
    eq(get(sp.port, "/again").status, 200, "status after the close")


# Malformed requests: 400 with Connection: close, then close; the backend
# sees nothing.
MALFORMED = [
    ("bare LF line endings",
     b"GET / HTTP/1.1\nHost: a\n\n"),
    ("Content-Length with Transfer-Encoding",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two different Content-Length headers",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
     b"Content-Length: 6\r\n\r\nhello!"),
    ("two equal Content-Length headers",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
     b"Content-Length: 5\r\n\r\nhello"),
    ("missing Host in HTTP/1.1",
     b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"),
    ("invalid character in a header name",
     b"GET / HTTP/1.1\r\nHost: a\r\nX@Bad: 1\r\n\r\n"),
    ("space before the colon",
     b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo : 1\r\n\r\n"),
    ("obs-fold continuation line",
     b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo: a\r\n  b\r\n\r\n"),
]


def check_refused(sp, be, data, status, conn_close=True, what=""):
    c = Client(sp.port)
    c.send(data)
    r = c.read_response(timeout=3)
    check_own_response(r, status)
    if conn_close:
        check("close" in r.tokens("connection"),
              "no Connection: close on %d: %r" % (status, r.headers))
        check(c.wait_closed(2), "connection not closed after %d" % status)
    time.sleep(0.05)
    eq(be.count(), 0, "requests forwarded to the backend %s" % what)
    return r


def make_malformed(data):
    def t():
        be = Backend(echo_path())
        sp = Spillway([be])
        check_refused(sp, be, data, 400)
        eq(be.accepted, 0, "backend connections")
    return t


for name, data in MALFORMED:
    add_test("400 for %s" % name, make_malformed(data))


@test("414 for a request line longer than max_header_size")
def uri_too_long():
    be = Backend()
    sp = Spillway([be], proxy={"max_header_size": "1k"})
    check_refused(sp, be, build_request("GET", "/" + "a" * 2000), 414,
                  conn_close=False)


@test("431 for headers longer than max_header_size")
def headers_too_large():
    be = Backend()
    sp = Spillway([be], proxy={"max_header_size": "1k"})
    hs = [("X-Pad-%d" % i, "v" * 60) for i in range(30)]
    check_refused(sp, be, build_request("GET", "/", hs), 431,
                  conn_close=False)


@test("head just under max_header_size is accepted")
def headers_just_fit():
    be = Backend(respond(200, b"fits"))
    sp = Spillway([be], proxy={"max_header_size": "1k"})
    data = build_request("GET", "/", [("X-Pad", "v" * 800)])
    check(len(data) < 1000, "test head too long: %d" % len(data))
    c = Client(sp.port)
    c.send(data)
    r = c.read_response()
    eq((r.status, r.body), (200, b"fits"), "response")


@test("413 for Content-Length above max_body_size, before the body")
def body_too_large():
    be = Backend()
    sp = Spillway([be], proxy={"max_body_size": "1k"})
    c = Client(sp.port)
    t0 = time.monotonic()
    c.send(b"POST /big HTTP/1.1\r\nHost: a\r\n"
           b"Content-Length: 10485760\r\n\r\n")
    r = c.read_response("POST", timeout=3)
    check_own_response(r, 413)
    check(time.monotonic() - t0 < 2, "413 took %.1fs"
          % (time.monotonic() - t0))
    time.sleep(0.05)
    eq(be.count(), 0, "requests forwarded")


@test("501 for Transfer-Encoding: gzip")
def te_gzip():
    be = Backend()
    sp = Spillway([be])
    check_refused(sp, be, b"POST / HTTP/1.1\r\nHost: a\r\n"
                  b"Transfer-Encoding: gzip\r\n\r\nxxxx", 501,
                  conn_close=False)


@test("505 for HTTP/2.0 in the request line")
def version_2():
    be = Backend()
    sp = Spillway([be])
    check_refused(sp, be, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505,
                  conn_close=False)


@test("408 and close for a head that stalls past header_timeout")
def header_timeout():
    be = Backend()
    sp = Spillway([be], proxy={"header_timeout": "500ms"})
    c = Client(sp.port)
    t0 = time.monotonic()
    c.send(b"GET /stall HTTP/1.1\r\nHost: a\r\n")
    r = c.read_response(timeout=4)
    took = time.monotonic() - t0
    check_own_response(r, 408)
    check(0.4 <= took < 2.5, "408 after %.2fs; header_timeout is 500ms"
          % took)
    check(c.wait_closed(2), "connection not closed after 408")
    eq(be.count(), 0, "requests forwarded")


@test("idle keep-alive connection is closed after idle_timeout")
def idle_timeout():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], proxy={"idle_timeout": "500ms"})
    c = Client(sp.port)
    eq(c.exchange("GET", "/").status, 200, "status")
    t0 = time.monotonic()
    check(c.wait_closed(3), "idle connection still open after 3s")
    took = time.monotonic() - t0
    check(0.3 <= took < 2.5, "closed after %.2fs; idle_timeout is 500ms"
          % took)


if __name__ == "__main__":
    run_main()
