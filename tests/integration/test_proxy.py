#!/usr/bin/env python3
"""Basic proxying: request line, forwarding headers, hop-by-hop headers,
keep-alive on both sides, pipelining and HTTP/1.0 clients."""

import os
import re
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, Spillway, build_request, check,
                     chunk_encode, chunked, delayed, echo, echo_path, eq,
                     get, register, respond, run_main, short, test,
                     wait_for)

@test("GET is forwarded as HTTP/1.1 with target, Host and body intact")
def basic_get():
    be = Backend(respond(200, b"hello, world\n", [("X-App", "yes")]))
    sp = Spillway([be])
    r = get(sp.port, "/a/b%20c?x=1&y=%2F", headers=[("Host",
                                                     "example.test:8080")])
    eq(r.status, 200, "status")
    eq(r.body, b"hello, world\n", "body")
    eq(r.header("x-app"), "yes", "end-to-end response header")
    check(be.wait_requests(1), "backend saw no request")
    req = be.requests[0]
    eq((req.method, req.target, req.version),
       ("GET", "/a/b%20c?x=1&y=%2F", "1.1"), "request line at backend")
    eq(req.headers_named("host"), ["example.test:8080"], "Host at backend")


@test("X-Forwarded-For and X-Forwarded-Proto are set")
def forwarded_headers():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be])
    eq(get(sp.port, "/").status, 200, "status")
    req = be.requests[0]
    eq(req.headers_named("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For")
    eq(req.headers_named("x-forwarded-proto"), ["http"], "X-Forwarded-Proto")


@test("client X-Forwarded-For and X-Forwarded-Proto are replaced (no "
      "trusted_proxies)")
def forwarded_headers_replaced():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be])
    r = get(sp.port, "/", headers=[("X-Forwarded-For", "1.2.3.4"),
                                   ("X-Forwarded-Proto", "https")])
    eq(r.status, 200, "status")
    req = be.requests[0]
    eq(req.headers_named("x-forwarded-for"), ["127.0.0.1"],
       "X-Forwarded-For (the client's own dropped)")
    eq(req.headers_named("x-forwarded-proto"), ["http"], "X-Forwarded-Proto")


@test("end-to-end request headers and methods are forwarded unchanged")
def end_to_end_headers():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    hs = [("X-One", "1"), ("Accept", "*/*"), ("X-Dup", "a"), ("X-Dup", "b"),
          ("User-Agent", "spillway-tests/1.0 (x; y)"),
          ("X-Spaces", "a  b\tc")]
    for method, body in (("GET", None), ("PUT", b"put-body"),
                         ("DELETE", None), ("OPTIONS", None),
                         ("PATCH", b"{}"), ("POST", b""),
                         ("PROPFIND", b"<x/>")):
        r = c.exchange(method, "/m", hs, body)
        eq(r.status, 200, "%s status" % method)
        eq(r.body, body or b"", "%s echoed body" % method)
    check(be.wait_requests(7), "backend saw %d of 7 requests" % be.count())
    for req in be.requests:
        for k in ("x-one", "accept", "user-agent", "x-spaces"):
            eq(req.headers_named(k), [v for n, v in hs if n.lower() == k],
               "%s %s at backend" % (req.method, k))
        eq(req.headers_named("x-dup"), ["a", "b"],
           "repeated header (order kept)")
    eq([r.method for r in be.requests],
       ["GET", "PUT", "DELETE", "OPTIONS", "PATCH", "POST", "PROPFIND"],
       "methods at backend")


@test("hop-by-hop request headers are not forwarded")
def hop_by_hop_request():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be])
    hs = [("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
          ("TE", "trailers"), ("Upgrade", "foo/2"),
          ("Proxy-Connection", "keep-alive"), ("X-Secret", "s3cr3t"),
          ("X-Public", "visible")]
    r = get(sp.port, "/hop", headers=hs)
    eq(r.status, 200, "status")
    req = be.requests[0]
    for k in ("keep-alive", "te", "upgrade", "proxy-connection", "x-secret"):
        check(not req.has(k), "%s forwarded to backend: %r"
              % (k, req.headers))
    # spillway may say keep-alive or close on its own connection, but the
    # client's Connection header must not reach the backend
    check(set(req.tokens("connection")) <= {"keep-alive", "close"},
          "client Connection header forwarded: %r" % req.headers)
    eq(req.header("x-public"), "visible", "X-Public at backend")


@test("Connection naming Content-Length or Host does not drop them")
def connection_names_framing():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("POST", "/cl", [("Host", "h.test"),
                                   ("Connection", "Content-Length, Host")],
                   b"0123456789")
    eq(r.status, 200, "status")
    eq(r.body, b"0123456789", "echoed body")
    req = be.requests[0]
    eq(req.body, b"0123456789", "body at backend")
    eq(req.header("host"), "h.test", "Host at backend")


@test("Connection naming Transfer-Encoding does not break a chunked body")
def connection_names_te():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    body = chunk_encode([b"abc", b"defgh", b"i" * 100])
    r = c.exchange("POST", "/te", [("Connection", "Transfer-Encoding"),
                                   ("Transfer-Encoding", "chunked")], body)
    eq(r.status, 200, "status")
    eq(r.body, b"abcdefgh" + b"i" * 100, "echoed body")
    # the connection must still be in sync: another request on it
    r = c.exchange("GET", "/after")
    eq(r.status, 200, "status of the next request")
    eq(be.requests[1].target, "/after", "next request at backend")


@test("hop-by-hop response headers are not forwarded, end-to-end ones are")
def hop_by_hop_response():
    be = Backend(respond(200, b"body", [
        ("Connection", "X-Internal"), ("Keep-Alive", "timeout=5, max=100"),
        ("X-Internal", "1"), ("Upgrade", "foo/2"),
        ("Proxy-Connection", "keep-alive"), ("X-App", "yes")]))
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/")
    eq(r.status, 200, "status")
    eq(r.body, b"body", "body")
    eq(r.header("x-app"), "yes", "X-App")
    for k in ("keep-alive", "x-internal", "upgrade", "proxy-connection"):
        check(not r.has(k), "%s forwarded to client: %r" % (k, r.headers))
    check("x-internal" not in r.tokens("connection"),
          "backend's Connection header forwarded: %r" % r.headers)
    eq(c.exchange("GET", "/again").status, 200, "next request on the "
       "same connection")


@test("20 requests on one client connection use one backend connection")
def keepalive_one_client():
    be = Backend(echo_path())
    sp = Spillway([be])
    c = Client(sp.port)
    for i in range(20):
        r = c.exchange("GET", "/k%d" % i)
        eq(r.status, 200, "status of request %d" % i)
        eq(r.body, b"GET /k%d" % i, "body of request %d" % i)
    eq(be.count(), 20, "requests at backend")
    eq(be.accepted, 1, "backend connections accepted")


@test("20 client connections in turn reuse pooled backend connections")
def keepalive_pool_across_clients():
    be = Backend(echo_path())
    sp = Spillway([be])
    for i in range(20):
        c = Client(sp.port)
        r = c.exchange("GET", "/p%d" % i)
        eq(r.status, 200, "status of request %d" % i)
        eq(r.body, b"GET /p%d" % i, "body of request %d" % i)
        c.close()
    eq(be.count(), 20, "requests at backend")
    check(be.accepted <= 3, "backend accepted %d connections for 20 "
          "sequential requests (pool not reused; 1 expected)" % be.accepted)


@test("backend Connection: close is not reused, client connection stays")
def backend_connection_close():
    be = Backend(respond(200, b"closing", close=True))
    sp = Spillway([be])
    c = Client(sp.port)
    for i in range(3):
        r = c.exchange("GET", "/c%d" % i)
        eq(r.status, 200, "status of request %d" % i)
        eq(r.body, b"closing", "body of request %d" % i)
        check("close" not in r.tokens("connection"),
              "spillway closes the client after a backend close: %r"
              % r.headers)
    eq(be.count(), 3, "requests at backend")
    eq(be.accepted, 3, "backend connections (one per request)")
    eq(len(set(r.conn_id for r in be.requests)), 3, "distinct connections")


@test("a pooled connection the backend closed while idle is not used")
def pooled_connection_closed_by_backend():
    # The backend closes each connection 100ms after its response, without
    # saying so (no Connection: close), like a server keepalive timeout.
    def h(req, conn):
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        time.sleep(0.1)
        return False
    be = Backend(h)
    sp = Spillway([be])
    c = Client(sp.port)
    for i in range(3):
        r = c.exchange("GET", "/s%d" % i)
        eq(r.status, 200, "status of request %d (after the backend closed "
           "the pooled connection)" % i)
        time.sleep(0.3)


@test("three pipelined requests get three responses in order")
def pipelining():
    be = Backend(echo_path())
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(build_request("GET", "/one") + build_request("GET", "/two") +
           build_request("GET", "/three"))
    rs = c.read_responses(3)
    eq([r.status for r in rs], [200, 200, 200], "statuses")
    eq([r.body for r in rs], [b"GET /one", b"GET /two", b"GET /three"],
       "bodies in order")
    eq([r.target for r in be.requests], ["/one", "/two", "/three"],
       "order at backend")


@test("pipelined requests with bodies and HEAD stay in sync")
def pipelining_mixed():
    be = Backend(echo_path())
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(build_request("GET", "/a") +
           build_request("POST", "/b", body=b"x" * 3000) +
           build_request("HEAD", "/c") +
           build_request("POST", "/d", [("Transfer-Encoding", "chunked")],
                         chunk_encode([b"12", b"345"])) +
           build_request("GET", "/e"))
    rs = c.read_responses(5, methods=["GET", "POST", "HEAD", "POST", "GET"])
    eq([r.status for r in rs], [200] * 5, "statuses")
    eq(rs[0].body, b"GET /a", "1st body")
    eq(rs[1].body, b"POST /b " + b"x" * 3000, "2nd body")
    eq(rs[2].body, b"", "HEAD body")
    eq(rs[3].body, b"POST /d 12345", "4th body")
    eq(rs[4].body, b"GET /e", "5th body")


@test("pipelined slow then fast request: responses stay in order")
def pipelining_slow_first():
    be = Backend(echo_path())
    be.route("/slow", delayed(0.3, echo_path()))
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(build_request("GET", "/slow") + build_request("GET", "/fast") +
           build_request("GET", "/fast2"))
    rs = c.read_responses(3)
    eq([r.body for r in rs], [b"GET /slow", b"GET /fast", b"GET /fast2"],
       "bodies in order")


@test("pipelined request after a malformed one: 400, close, not forwarded")
def pipelining_then_malformed():
    be = Backend(echo_path())
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(build_request("GET", "/good") +
           b"GET /bad HTTP/1.1\r\nHost: a\r\nX Bad: 1\r\n\r\n" +
           build_request("GET", "/never"))
    r = c.read_response()
    eq((r.status, r.body), (200, b"GET /good"), "first response")
    r = c.read_response()
    eq(r.status, 400, "second response")
    check(c.wait_closed(2), "connection not closed after 400")
    eq([q.target for q in be.requests], ["/good"], "requests at backend")


@test("HEAD to a chunked resource: no body, connection usable")
def head_chunked():
    be = Backend(chunked([b"abc", b"def"]))
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("HEAD", "/hc")
    eq((r.status, r.body), (200, b""), "HEAD response")
    check(c.nothing_within(0.2), "bytes after the HEAD response: %s"
          % short(c.reader.buf))
    r = c.exchange("GET", "/hc")
    eq((r.status, r.body), (200, b"abcdef"), "GET response after HEAD")


@test("HTTP/1.0 request without keep-alive: response, then close")
def http10_close():
    be = Backend(respond(200, b"old school"))
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/ten", version="1.0")
    eq(r.status, 200, "status")
    eq(r.body, b"old school", "body")
    check(c.wait_closed(2.0), "spillway did not close the HTTP/1.0 "
          "connection")
    eq(be.requests[0].version, "1.1", "version toward the backend")
    eq(be.requests[0].target, "/ten", "target toward the backend")


@test("HTTP/1.0 request with Connection: keep-alive stays open")
def http10_keepalive():
    be = Backend(echo_path())
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/k1", [("Connection", "keep-alive")],
                   version="1.0")
    eq(r.status, 200, "status")
    eq(r.body, b"GET /k1", "body")
    check("keep-alive" in r.tokens("connection"),
          "no Connection: keep-alive in the response: %r" % r.headers)
    check(c.is_open(0.2), "connection closed after a keep-alive 1.0 "
          "response")
    r = c.exchange("GET", "/k2", [("Connection", "keep-alive")],
                   version="1.0")
    eq(r.status, 200, "status of the second request")
    eq(r.body, b"GET /k2", "body of the second request")


@test("chunked response to an HTTP/1.0 client is de-chunked and closed")
def http10_chunked_response():
    be = Backend(chunked([b"alpha-", b"beta-", b"g" * 5000],
                         trailers=[("X-Sum", "1")]))
    sp = Spillway([be])
    c = Client(sp.port)
    c.request("GET", "/chunks", version="1.0")
    r = c.read_response()
    eq(r.status, 200, "status")
    check(not r.has("transfer-encoding"),
          "Transfer-Encoding sent to an HTTP/1.0 client: %r" % r.headers)
    eq(r.body, b"alpha-beta-" + b"g" * 5000, "payload")
    if r.framing == "length":
        check(c.wait_closed(2.0), "connection not closed")
    else:
        eq(r.framing, "close", "framing")


@test("418 with a custom reason and repeated Set-Cookie is relayed")
def status_and_repeated_headers():
    be = Backend(respond(418, b"teapot", [("Set-Cookie", "a=1"),
                                          ("Set-Cookie", "b=2; Path=/")],
                         reason="I'm a teapot"))
    sp = Spillway([be])
    r = get(sp.port, "/tea")
    eq(r.status, 418, "status")
    eq(r.body, b"teapot", "body")
    eq(r.headers_named("set-cookie"), ["a=1", "b=2; Path=/"], "Set-Cookie")


class RawOrigin:
    """A bare listening socket: for each connection, records every byte
    received until `quiet` seconds after the request head (and the body
    its Content-Length announces) are complete, then answers 200 with
    Connection: close. Nothing parses more than the head's end and that
    one header, so stray bytes are seen as they are."""

    def __init__(self, quiet=0.3):
        self.quiet = quiet
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.1)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.received = []          # bytes per connection, in order
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        register(self)

    def _run(self):
        while not self.stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            data = bytearray()
            quiet_from = None
            deadline = time.monotonic() + 5
            while not self.stop.is_set() and time.monotonic() < deadline:
                if quiet_from is None:
                    end = data.find(b"\r\n\r\n")
                    if end >= 0:
                        m = re.search(br"(?im)^content-length:[ \t]*(\d+)",
                                      bytes(data[:end]))
                        need = end + 4 + (int(m.group(1)) if m else 0)
                        if len(data) >= need:
                            quiet_from = time.monotonic()
                elif time.monotonic() - quiet_from >= self.quiet:
                    break
                r, _, _ = select.select([s], [], [], 0.02)
                if r:
                    try:
                        d = s.recv(65536)
                    except OSError:
                        d = b""
                    if not d:
                        break
                    data += d
            self.received.append(bytes(data))
            try:
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                          b"Connection: close\r\n\r\nok")
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        self.thread.join(2)


def _check_raw_head(data, method, target, host, body_len):
    """data is exactly one request head and body_len bytes of body."""
    end = data.find(b"\r\n\r\n")
    check(end >= 0, "no complete head at the backend: %s" % short(data))
    head, rest = data[:end + 4], data[end + 4:]
    eq(len(rest), body_len, "bytes after the head at the backend (head "
       "%s, after it %s)" % (short(head, 600), short(rest)))
    lines = head[:-4].split(b"\r\n")
    eq(lines[0], ("%s %s HTTP/1.1" % (method, target)).encode(),
       "request line at the backend")
    check(all(lines[1:]), "empty line inside the head: %s" % short(head))
    names = [ln.split(b":", 1)[0].strip().lower() for ln in lines[1:]]
    values = {}
    for ln in lines[1:]:
        check(b":" in ln, "header line without a colon: %r" % ln)
        k, v = ln.split(b":", 1)
        values.setdefault(k.strip().lower(), []).append(v.strip())
    eq(values.get(b"host"), [host.encode()], "Host at the backend")
    eq(names.count(b"x-forwarded-for"), 1, "X-Forwarded-For headers")
    eq(names.count(b"x-forwarded-proto"), 1, "X-Forwarded-Proto headers")
    eq(values[b"x-forwarded-for"], [b"127.0.0.1"], "X-Forwarded-For")
    eq(values[b"x-forwarded-proto"], [b"http"], "X-Forwarded-Proto")
    return head, rest


@test("backend receives exactly the request bytes, nothing more")
def exact_request_bytes():
    origin = RawOrigin(quiet=0.3)
    sp = Spillway([origin.addr])
    c = Client(sp.port)
    r = c.exchange("GET", "/path", headers=[("Host", "exact.test:81")],
                   timeout=5)
    eq((r.status, r.body), (200, b"ok"), "GET response")
    check(wait_for(lambda: len(origin.received) >= 1, 2), "backend got "
          "no connection")
    _check_raw_head(origin.received[0], "GET", "/path", "exact.test:81", 0)
    c = Client(sp.port)
    r = c.exchange("POST", "/post?x=1", headers=[("Host", "exact.test")],
                   body=b"HELLO", timeout=5)
    eq((r.status, r.body), (200, b"ok"), "POST response")
    check(wait_for(lambda: len(origin.received) >= 2, 2), "backend got "
          "no second connection")
    head, rest = _check_raw_head(origin.received[1], "POST", "/post?x=1",
                                 "exact.test", 5)
    eq(rest, b"HELLO", "body bytes at the backend")
    check(re.search(br"(?im)^content-length: *5\r$", head) is not None,
          "Content-Length: 5 not in the head at the backend: %s"
          % short(head, 600))


if __name__ == "__main__":
    run_main()
