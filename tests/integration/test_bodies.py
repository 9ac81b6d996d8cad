#!/usr/bin/env python3
"""Bodies stream both ways, byte-exact, with bounded memory; response
framing: Content-Length, chunked, close-delimited, HEAD, 204, 304."""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Backend, Client, Spillway, build_request, check,
                     chunk_encode, chunked, close_delimited, diag, echo, eq,
                     interim_continue, large, pattern, pattern_chunks,
                     pattern_sha256, respond, run_main, sha256, short,
                     slow_sink, test)

MB = 1024 * 1024


def send_in_thread(c, data):
    """sendall on another thread, so that the caller can read meanwhile."""
    err = []

    def run():
        try:
            c.sock.sendall(data)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, err


@test("5 MB POST with Content-Length is echoed byte-exact")
def post_5mb_length():
    be = Backend(echo())
    sp = Spillway([be], proxy={"max_body_size": "16m"})
    body = pattern(5 * MB)
    c = Client(sp.port, timeout=20)
    t, err = send_in_thread(c, build_request("POST", "/up", body=body))
    r = c.read_response("POST", timeout=20)
    t.join(5)
    check(not err, "send failed: %r" % err)
    eq(r.status, 200, "status")
    eq(len(r.body), len(body), "echoed length")
    eq(sha256(r.body), sha256(body), "echoed sha256")
    req = be.requests[0]
    eq(req.header("content-length"), str(len(body)),
       "Content-Length at backend")
    eq(sha256(req.body), sha256(body), "sha256 at backend")


@test("chunked POST of many chunks with extensions and trailers is echoed")
def post_chunked_many():
    be = Backend(echo())
    sp = Spillway([be], proxy={"max_body_size": "16m"})
    rnd = random.Random(7)
    data = pattern(1 * MB + 12345)
    parts, off = [], 0
    while off < len(data):
        n = rnd.choice((1, 2, 7, 100, 1000, 4096, 10000, 65536))
        parts.append(data[off:off + n])
        off += n
    body = chunk_encode(parts, trailers=[("X-Trailer", "t")],
                        extensions=True)
    c = Client(sp.port, timeout=20)
    t, err = send_in_thread(c, build_request(
        "POST", "/chunks", [("Transfer-Encoding", "chunked")], body))
    r = c.read_response("POST", timeout=20)
    t.join(5)
    check(not err, "send failed: %r" % err)
    eq(r.status, 200, "status")
    eq(len(r.body), len(data), "echoed length (%d chunks)" % len(parts))
    eq(sha256(r.body), sha256(data), "echoed sha256")
    # the connection is still in sync afterwards
    r = c.exchange("GET", "/next")
    eq(r.status, 200, "status of the next request")
    eq(be.requests[1].target, "/next", "next request at backend")


@test("request with Expect: 100-continue gets its body through")
def expect_continue():
    be = Backend(interim_continue(echo()))
    sp = Spillway([be])
    c = Client(sp.port)
    c.request("POST", "/cont", [("Expect", "100-continue"),
                                ("Content-Length", "11")])
    # A 100 Continue may come from spillway or the backend; a client may
    # also go ahead without it after a while. Wait a little, then send.
    c.nothing_within(1.0)
    c.send(b"hello world")
    r = c.read_response("POST")
    eq(r.status, 200, "final status")
    eq(r.body, b"hello world", "echoed body")
    for i in r.interim:
        eq(i.status, 100, "interim status")


def _slow_download(sp, n, paced_seconds):
    """Read n bytes slowly through spillway while sampling its RSS.
    Returns (sha256, bytes, baseline_kb, peak_kb, samples)."""
    c = Client(sp.port, timeout=20, rcvbuf=32768)
    c.request("GET", "/big")
    sock = c.sock
    # read the head with the harness reader, the body by hand
    r = c.reader
    head = r.read_head(time.monotonic() + 10)
    check(head.startswith(b"HTTP/1.1 200"), "head: %s" % short(head))
    import hashlib
    h = hashlib.sha256()
    got = len(r.buf)
    h.update(r.buf)
    r.buf.clear()
    baseline = sp.rss_kb()
    peak, samples = baseline, []
    step = 64 * 1024
    per_step = paced_seconds / (n / step)
    start = time.monotonic()
    sock.settimeout(10)
    while got < n:
        data = sock.recv(min(step, n - got))
        if not data:
            break
        h.update(data)
        got += len(data)
        rss = sp.rss_kb()
        peak = max(peak, rss)
        samples.append(rss)
        # pace: where we should be by now
        due = start + per_step * (got / step)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return h.hexdigest(), got, baseline, peak, samples


@test("20 MB download by a slow client: intact, spillway RSS bounded",
      timeout=60)
def slow_download_bounded_memory():
    n = 20 * MB
    be = Backend(large(n))
    sp = Spillway([be])
    # warm up: one small request through the same path
    be.route("/small", respond(200, b"x" * 1000))
    c = Client(sp.port)
    eq(c.exchange("GET", "/small").status, 200, "warm-up status")
    c.close()
    time.sleep(0.05)
    digest, got, base, peak, samples = _slow_download(sp, n, 6.0)
    eq(got, n, "bytes received")
    eq(digest, pattern_sha256(n), "payload sha256")
    growth = (peak - base) / 1024.0
    diag("spillway RSS baseline %d kB, peak %d kB during the download"
         % (base, peak))
    check(growth < 8, "spillway RSS grew by %.1f MB while relaying 20 MB to "
          "a slow client (baseline %d kB, peak %d kB); back-pressure "
          "missing?" % (growth, base, peak))


@test("16 MB upload to a slow backend: intact, spillway RSS bounded",
      timeout=60)
def slow_upload_bounded_memory():
    n = 16 * MB
    # the backend reads 64 KB every 20 ms, about 3 MB/s
    be = Backend(slow_sink(chunk=65536, delay=0.02))
    be.route("/small", respond(200, b"small"))
    sp = Spillway([be], proxy={"max_body_size": "64m"})
    c = Client(sp.port)
    eq(c.exchange("GET", "/small").status, 200, "warm-up status")
    c.close()
    time.sleep(0.05)
    base = sp.rss_kb()
    c = Client(sp.port, timeout=30)
    stop = threading.Event()
    peak = [base]

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], sp.rss_kb())
            except OSError:
                return
            time.sleep(0.02)
    st = threading.Thread(target=sample, daemon=True)
    st.start()
    try:
        c.send(build_request("POST", "/sink",
                             [("Content-Length", str(n))]))
        for piece in pattern_chunks(n, 256 * 1024):
            c.sock.settimeout(30)
            c.sock.sendall(piece)
        r = c.read_response("POST", timeout=30)
    finally:
        stop.set()
        st.join(2)
    eq(r.status, 200, "status")
    eq(r.body.decode(), "%d %s" % (n, pattern_sha256(n)),
       "length and sha256 the backend received")
    growth = (peak[0] - base) / 1024.0
    diag("spillway RSS baseline %d kB, peak %d kB during the upload"
         % (base, peak[0]))
    check(growth < 8, "spillway RSS grew by %.1f MB while relaying 16 MB to "
          "a slow backend (baseline %d kB, peak %d kB)" % (growth, base,
                                                          peak[0]))


@test("Content-Length response is relayed with its length")
def response_content_length():
    body = pattern(300000)
    be = Backend(respond(200, body))
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/cl")
    eq(r.status, 200, "status")
    eq(r.framing, "length", "framing")
    eq(r.header("content-length"), str(len(body)), "Content-Length")
    eq(sha256(r.body), sha256(body), "body sha256")
    r = c.exchange("GET", "/empty")
    eq(r.body, body, "second body")


@test("chunked response is relayed chunked to an HTTP/1.1 client")
def response_chunked():
    parts = [b"first;", b"second;", pattern(70000), b"x"]
    be = Backend(chunked(parts, trailers=[("X-Checksum", "abc")],
                         extensions=True))
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/chunked")
    eq(r.status, 200, "status")
    eq(r.framing, "chunked", "framing")
    check(not r.has("content-length"), "Content-Length with chunked: %r"
          % r.headers)
    eq(r.body, b"".join(parts), "payload")
    # and the connection is usable afterwards
    r = c.exchange("GET", "/again")
    eq(r.body, b"".join(parts), "payload of the second response")


@test("close-delimited response is relayed close-delimited, then closed")
def response_close_delimited():
    body = pattern(200000)
    be = Backend(close_delimited(body, headers=[("X-App", "1")]))
    sp = Spillway([be])
    c = Client(sp.port, timeout=10)
    c.request("GET", "/eof")
    r = c.read_response()
    eq(r.status, 200, "status")
    eq(r.header("x-app"), "1", "X-App")
    eq(r.framing, "close", "framing (no Content-Length, no chunking)")
    eq(len(r.body), len(body), "length")
    eq(sha256(r.body), sha256(body), "body sha256")


@test("HEAD response carries no body; the connection stays usable")
def head_no_body():
    be = Backend(respond(200, b"z" * 1000))
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("HEAD", "/h")
    eq(r.status, 200, "HEAD status")
    eq(r.header("content-length"), "1000", "Content-Length of HEAD")
    check(c.nothing_within(0.2), "bytes after the HEAD response: %s"
          % short(c.reader.buf))
    r = c.exchange("GET", "/g")
    eq(r.status, 200, "GET status")
    eq(r.body, b"z" * 1000, "GET body")
    eq([q.method for q in be.requests], ["HEAD", "GET"], "methods")


@test("204 and 304 responses carry no body")
def no_body_statuses():
    be = Backend()
    be.route("/204", respond(204, b""))
    be.route("/304", respond(304, b"", [("Content-Length", "1234"),
                                         ("ETag", '"v1"')]))
    be.route("/200", respond(200, b"after"))
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/204")
    eq(r.status, 204, "status")
    check(c.nothing_within(0.2), "bytes after 204: %s" % short(c.reader.buf))
    r = c.exchange("GET", "/304", [("If-None-Match", '"v1"')])
    eq(r.status, 304, "status")
    eq(r.header("etag"), '"v1"', "ETag")
    check(c.nothing_within(0.2), "bytes after 304: %s" % short(c.reader.buf))
    r = c.exchange("GET", "/200")
    eq((r.status, r.body), (200, b"after"), "response after 204 and 304")


@test("empty Content-Length: 0 response and GET with empty body")
def zero_length():
    be = Backend(respond(200, b""))
    sp = Spillway([be])
    c = Client(sp.port)
    for i in range(3):
        r = c.exchange("GET", "/z%d" % i)
        eq((r.status, r.body, r.header("content-length")), (200, b"", "0"),
           "response %d" % i)


if __name__ == "__main__":
    run_main()
