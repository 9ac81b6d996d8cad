#!/usr/bin/env python3
"""Backend faults: a backend that is down, silent, resets, sends more than
its framing or more responses than requests, frames a response wrongly,
or closes a kept-alive connection as a request is sent. spillway answers
502 or 504, or cuts the client off when a response was already under way;
a backend connection that misbehaved is never used again; and spillway
carries on serving the next request."""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import (Backend, Client, Spillway, add_test, build_request,
                     check, eq, free_port, never, raw, respond, short, test)


def good():
    return respond(200, b"good")


def check_own(r, status, reason):
    eq((r.status, r.header("spillway-reason")), (status, reason),
       "response %r" % r)
    eq(int(r.header("content-length")), len(r.body), "Content-Length")


def read_all(c, timeout=3):
    """Everything the client gets until the connection closes."""
    data = bytes(c.reader.buf)
    c.reader.buf.clear()
    c.sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = c.sock.recv(65536)
        except ConnectionResetError:
            return data, True
        except socket.timeout:
            return data, False
        if not d:
            return data, True
        data += d
    return data, False


def carries_on(sp, be=None):
    r = Client(sp.port).exchange("GET", "/good")
    eq((r.status, r.body), (200, b"good"), "next request")


@test("backend down at start: a fast 502; once it is up, requests pass")
def down_at_start():
    port = free_port()
    sp = Spillway(["127.0.0.1:%d" % port])
    t0 = time.monotonic()
    r = Client(sp.port).exchange("GET", "/")
    check_own(r, 502, "upstream_error")
    check(time.monotonic() - t0 < 1, "502 took %.2fs"
          % (time.monotonic() - t0))
    Backend(good(), port=port)
    carries_on(sp)


@test("backend accepts and never answers: 504 after response_timeout; the "
      "next request passes")
def never_answers():
    be = Backend(good(), routes={"/never": never()})
    sp = Spillway([be], backend={"response_timeout": "400ms"})
    c = Client(sp.port)
    t0 = time.monotonic()
    r = c.exchange("GET", "/never", timeout=4)
    took = time.monotonic() - t0
    check_own(r, 504, "upstream_timeout")
    check(0.3 <= took < 2, "504 after %.2fs (response_timeout 400ms)" % took)
    eq(c.exchange("GET", "/good").body, b"good", "same client connection")
    carries_on(sp)


def reset_mid_body(req, conn):
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" +
              b"x" * 1000)
    time.sleep(0.05)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
    conn.sock.close()
    return False


@test("backend resets mid-body: the client is cut off, never given a "
      "complete response; the next request passes")
def reset_mid_body_test():
    be = Backend(good(), routes={"/reset": reset_mid_body})
    sp = Spillway([be])
    c = Client(sp.port)
    c.request("GET", "/reset")
    data, closed = read_all(c)
    check(closed, "client connection still open after the backend reset")
    check(data.startswith(b"HTTP/1.1 200"), "head: %s" % short(data))
    check(len(data.split(b"\r\n\r\n", 1)[1]) < 100000,
          "complete body from a reset backend")
    carries_on(sp)


def stall_mid_body(req, conn):
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" +
              b"x" * 1000)
    conn.wait_peer_close(10)
    return False


@test("backend stalls mid-body past response_timeout: the client is cut "
      "off (no 504 after a 200 head); the next request passes")
def stall_mid_body_test():
    be = Backend(good(), routes={"/stall": stall_mid_body})
    sp = Spillway([be], backend={"response_timeout": "400ms"})
    c = Client(sp.port)
    t0 = time.monotonic()
    c.request("GET", "/stall")
    data, closed = read_all(c, timeout=4)
    took = time.monotonic() - t0
    check(closed, "client connection still open after the stall")
    check(0.3 <= took < 3, "cut off after %.2fs (response_timeout 400ms)"
          % took)
    check(data.startswith(b"HTTP/1.1 200") and b"504" not in data,
          "response: %s" % short(data))
    carries_on(sp)


@test("backend sends more than its Content-Length: the client gets the "
      "framed body only, the extra is never a response, the connection is "
      "not reused")
def more_than_framing():
    be = Backend(good(), routes={"/extra": raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!", close=False)})
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/extra")
    eq((r.status, r.body), (200, b"hello"), "first response")
    r = c.exchange("GET", "/good")
    eq((r.status, r.body), (200, b"good"), "second response")
    eq([q.conn_id for q in be.requests], [1, 2], "backend connections used")


@test("backend sends a second response later, on an idle pooled "
      "connection: that connection is dropped, never read as an answer")
def late_extra_response():
    def late(req, conn):
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        time.sleep(0.15)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!")
        return True
    be = Backend(good(), routes={"/late": late})
    sp = Spillway([be])
    c = Client(sp.port)
    eq(c.exchange("GET", "/late").body, b"hello", "first response")
    time.sleep(0.4)
    r = c.exchange("GET", "/good")
    eq((r.status, r.body), (200, b"good"), "second response")
    eq([q.conn_id for q in be.requests], [1, 2], "backend connections used")


@test("a body in a response to HEAD, and in a 204: dropped, connection "
      "not reused")
def body_where_none_allowed():
    be = Backend(good(), routes={
        "/head": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                     close=False),
        "/204": raw(b"HTTP/1.1 204 No Content\r\n\r\nGARBAGE", close=False)})
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("HEAD", "/head")
    eq((r.status, r.body), (200, b""), "HEAD response")
    eq(c.exchange("GET", "/good").body, b"good", "after HEAD")
    r = c.exchange("GET", "/204")
    eq((r.status, r.body), (204, b""), "204 response")
    eq(c.exchange("GET", "/good").body, b"good", "after 204")
    ids = [q.conn_id for q in be.requests]
    check(ids[0] != ids[1] and ids[2] != ids[3], "a connection that sent "
          "a body where none belongs was reused: %r" % ids)


@test("response framing goes to the client written afresh: "
      "Content-Length: 005 as 5, Transfer-Encoding:  CHUNKED as chunked")
def response_framing_canonical():
    be = Backend(good(), routes={
        "/cl": raw(b"HTTP/1.1 200 OK\r\nContent-Length:  005 \r\n"
                   b"X-A: 1\r\n\r\nhello", close=False),
        "/te": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\tCHUNKED\r\n"
                   b"\r\n5\r\nhello\r\n0\r\n\r\n", close=False),
        "/head": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 0042\r\n\r\n",
                     close=False)})
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/cl")
    eq((r.body, r.headers_named("content-length")), (b"hello", ["5"]),
       "Content-Length response")
    eq(r.header("x-a"), "1", "other fields")
    r = c.exchange("GET", "/te")
    eq((r.body, r.headers_named("transfer-encoding")), (b"hello",
                                                         ["chunked"]),
       "chunked response")
    r = c.exchange("HEAD", "/head")
    eq(r.headers_named("content-length"), ["0042"],
       "Content-Length of a HEAD response, as sent")
    eq(be.accepted, 1, "backend connections")


# Invalid responses: 502 upstream_error, and the connection is not reused.
BAD_RESPONSES = [
    ("Content-Length with Transfer-Encoding",
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two different Content-Length",
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
     b"hello!"),
    ("two equal Content-Length",
     b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
     b"hello"),
    ("Content-Length: 5, 5",
     b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("Content-Length: +5", b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"
     b"hello"),
    ("Content-Length: abc", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"),
    ("Content-Length overflowing 64 bits",
     b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551621\r\n\r\n"),
    ("Transfer-Encoding in an HTTP/1.0 response",
     b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("chunked twice", b"HTTP/1.1 200 OK\r\n"
     b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding: chunked, gzip (close-delimited to some parsers)",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
     b"0\r\n\r\n"),
    ("Transfer-Encoding: gzip, chunked (a coding nobody asked for)",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     b"0\r\n\r\n"),
    ("Transfer-Encoding: gzip alone", b"HTTP/1.1 200 OK\r\n"
     b"Transfer-Encoding: gzip\r\n\r\nxyz"),
    ("Transfer-Encoding: xchunked", b"HTTP/1.1 200 OK\r\n"
     b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),

    ("bare LF line endings", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
    ("bare CR in a header", b"HTTP/1.1 200 OK\r\nX: a\rb\r\n"
     b"Content-Length: 0\r\n\r\n"),
    ("NUL in a header value", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n"
     b"Content-Length: 0\r\n\r\n"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n"
     b"Content-Length: 0\r\n\r\n"),
    ("space before the colon", b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n"
     b"\r\n"),
    ("header without a colon", b"HTTP/1.1 200 OK\r\nBogus\r\n"
     b"Content-Length: 0\r\n\r\n"),
    ("two-digit status", b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
    ("four-digit status", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
    ("status 600", b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n"),
    ("no space after the status", b"HTTP/1.1 200OK\r\nContent-Length: 0\r\n"
     b"\r\n"),
    ("HTTP/2 status line", b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("HTTP/2.0 status line", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("lowercase http", b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("ICY status line", b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("control byte in the reason", b"HTTP/1.1 200 O\x01K\r\n"
     b"Content-Length: 0\r\n\r\n"),
    ("101 to a request that asked no upgrade",
     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
    ("head larger than max_header_size",
     b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 20000 + b"\r\n"
     b"Content-Length: 0\r\n\r\n"),
]


class Shared:
    be = sp = None

    @classmethod
    def get(cls):
        if cls.sp is None:
            cls.be = Backend(good())
            for i, (_, data) in enumerate(BAD_RESPONSES):
                cls.be.route("/bad%d" % i, raw(data, close=False))
            cls.sp = Spillway([cls.be])
            harness._resources.remove(cls.sp)
            harness._resources.remove(cls.be)
        return cls.be, cls.sp


def make_bad(i):
    def t():
        be, sp = Shared.get()
        n = be.count()
        c = Client(sp.port)
        r = c.exchange("GET", "/bad%d" % i, timeout=3)
        check_own(r, 502, "upstream_error")
        r = c.exchange("GET", "/good", timeout=3)
        eq((r.status, r.body), (200, b"good"), "next request")
        check(be.wait_requests(n + 2, 2), "backend requests")
        bad, ok = be.requests[n], be.requests[n + 1]
        check(bad.conn_id != ok.conn_id, "the backend connection that "
              "sent an invalid response was reused")
    return t


for _i, (_name, _data) in enumerate(BAD_RESPONSES):
    add_test("502 for a response with %s; connection not reused" % _name,
             make_bad(_i))


@test("shared instance: spillway lived through every invalid response")
def shared_alive():
    be, sp = Shared.get()
    harness.register(be)
    harness.register(sp)
    carries_on(sp)


BAD_CHUNKED = [
    ("a chunk size that is not hex", b"5\r\nhello\r\nzz\r\nEVIL\r\n"
     b"0\r\n\r\n"),
    ("Content-Length in the trailers", b"5\r\nhello\r\n0\r\n"
     b"Content-Length: 4\r\n\r\nEVIL"),
]


@test("invalid chunked framing in a response under way (%s): the client "
      "is cut off; the connection is not reused"
      % "; ".join(n for n, _ in BAD_CHUNKED))
def bad_chunk_in_response():
    be = Backend(good())
    for i, (_, body) in enumerate(BAD_CHUNKED):
        be.route("/badchunk%d" % i, raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
            body, close=False))
    sp = Spillway([be])
    for i, (name, _) in enumerate(BAD_CHUNKED):
        c = Client(sp.port)
        c.request("GET", "/badchunk%d" % i)
        data, closed = read_all(c)
        check(closed, "%s: client connection still open" % name)
        check(b"EVIL" not in data, "%s: bytes past the error relayed: %s"
              % (name, short(data)))
        check(not data.endswith(b"\r\n\r\n"), "%s: a complete chunked "
              "body relayed: %s" % (name, short(data)))
    carries_on(sp)
    eq(be.accepted, len(BAD_CHUNKED) + 1, "backend connections")


def flaky_backend(reset=False):
    """Answers the first request on each connection; closes the connection
    (with a reset if told) without an answer at the second (a keep-alive
    race lost)."""
    seen = {}
    lock = threading.Lock()

    def h(req, conn):
        with lock:
            n = seen.get(conn.id, 0)
            seen[conn.id] = n + 1
        if n >= 1:
            if reset:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            return False
        body = ("%s %s" % (req.method, req.target)).encode()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), b"" if req.method == "HEAD" else body))
        return True
    return Backend(h)


def make_retry(method, body, retried, reset=False):
    def t():
        be = flaky_backend(reset)
        sp = Spillway([be])
        c = Client(sp.port)
        eq(c.exchange("GET", "/warm").status, 200, "warm-up")
        r = c.exchange(method, "/x", body=body)
        targets = [(q.method, q.target, q.conn_id) for q in be.requests]
        if retried:
            eq(r.status, 200, "status of the retried %s" % method)
            eq(targets, [("GET", "/warm", 1), (method, "/x", 1),
                         (method, "/x", 2)], "requests at the backend")
        else:
            check_own(r, 502, "upstream_error")
            eq(targets, [("GET", "/warm", 1), (method, "/x", 1)],
               "requests at the backend (no retry)")
        r = Client(sp.port).exchange("GET", "/after")
        eq(r.status, 200, "spillway carries on")
    return t


for _m, _body, _retried in [("GET", None, True), ("HEAD", None, True),
                            ("PUT", None, True), ("DELETE", None, True),
                            ("OPTIONS", None, True), ("POST", b"data", False),
                            ("POST", None, False), ("PATCH", b"p", False),
                            ("PUT", b"with a body", False),
                            ("DELETE", b"", True), ("POST", b"", False)]:
    add_test("kept-alive connection closed as a %s%s is sent: %s"
             % (_m, " with a body" if _body else
                " with Content-Length: 0" if _body == b"" else "",
                "retried once on a fresh connection" if _retried
                else "502, not retried"),
             make_retry(_m, _body, _retried))


add_test("kept-alive connection reset as a GET is sent: retried once on a "
         "fresh connection", make_retry("GET", None, True, reset=True))
add_test("kept-alive connection reset as a POST is sent: 502, not retried",
         make_retry("POST", b"data", False, reset=True))


@test("a 502 and a 504 to POSTs with bodies leave the client connection in "
      "sync: the requests pipelined after them are answered on their own")
def failed_requests_keep_sync():
    be = Backend(good(), routes={"/drop": raw(b"", close=True),
                                 "/never": never()})
    sp = Spillway([be], backend={"response_timeout": "300ms"})
    c = Client(sp.port)
    glued = b"GET /glued HTTP/1.1\r\nHost: a\r\n\r\n"
    c.send(build_request("POST", "/drop", body=glued) +
           build_request("GET", "/good") +
           build_request("POST", "/never", body=glued) +
           build_request("GET", "/good"))
    rs = c.read_responses(4, ["POST", "GET", "POST", "GET"], timeout=4)
    eq([r.status for r in rs], [502, 200, 504, 200], "statuses")
    eq([r.body for r in rs if r.status == 200], [b"good", b"good"], "bodies")
    eq([q.target for q in be.requests], ["/drop", "/good", "/never",
                                         "/good"], "requests at the backend")


@test("a 502 before the body came: the body is read and dropped, never "
      "parsed as a request; the next request is answered on its own")
def failed_before_body_keeps_sync():
    sp = Spillway(["127.0.0.1:%d" % free_port()])
    c = Client(sp.port)
    glued = b"GET /glued HTTP/1.1\r\nHost: a\r\n\r\n"
    c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
           % len(glued))
    r = c.read_response("POST", timeout=3)
    check_own(r, 502, "upstream_error")
    check("close" not in r.tokens("connection"), "closed for a body that "
          "can still be read: %r" % r.headers)
    c.send(glued + build_request("GET", "/next"))
    r = c.read_response(timeout=3)
    check_own(r, 502, "upstream_error")
    check(c.is_open(0.2), "connection closed: out of sync?")


@test("a fresh connection closed as the request is sent: 502, no retry")
def fresh_conn_closed():
    be = Backend(raw(b"", close=True))
    sp = Spillway([be])
    r = Client(sp.port).exchange("GET", "/x")
    check_own(r, 502, "upstream_error")
    eq(be.count(), 1, "requests at the backend")


if __name__ == "__main__":
    harness.run_main()
