#!/usr/bin/env python3
"""Request smuggling and strict framing (RFC 9112 sections 2-7), through
the real binary to a recording backend.

Every malformed or ambiguous request gets its exact status, with
Connection: close, the connection closes, and the backend sees nothing:
no connection, no request, no stray bytes; not even the valid request
pipelined after the bad one. Cases are drawn from RFC 9112, HAProxy's
reg-tests/http-messaging and published request-smuggling research
(CL.TE, TE.CL, TE.TE obfuscation, chunk-size tricks), written afresh.

One spillway and one backend serve every table case (the last test checks
that spillway lived through them all); the few cases that need a
configuration of their own start their own."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import (Backend, Client, Spillway, add_test, build_request,
                     check, delayed, echo, eq, interim_continue, raw,
                     respond, short, test, wait_for)

# A valid request pipelined after every bad one: it must never be served.
TRAILER = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

H = b"Host: a"


def req(head_lines, body=b"", line=b"POST / HTTP/1.1"):
    """A request from its first line and raw header lines (CRLF added)."""
    out = line + b"\r\n"
    for h in head_lines:
        out += h + b"\r\n"
    return out + b"\r\n" + body


def chunked_req(body, extra=()):
    return req([H, b"Transfer-Encoding: chunked"] + list(extra), body)


# (name, raw bytes, status). Unknown transfer codings are 501 (RFC 9112
# 6.1: a server that does not understand one SHOULD answer 501); every
# other malformed request is 400; sizes are 414 and 431.
CASES = [
    # --- Content-Length with Transfer-Encoding (CL.TE and TE.CL)
    ("CL then TE", req([H, b"Content-Length: 5",
                        b"Transfer-Encoding: chunked"], b"0\r\n\r\n"), 400),
    ("TE then CL", req([H, b"Transfer-Encoding: chunked",
                        b"Content-Length: 5"], b"0\r\n\r\n"), 400),
    ("CL: 0 with TE", req([H, b"Content-Length: 0",
                           b"Transfer-Encoding: chunked"], b"0\r\n\r\n"),
     400),
    ("CL with TE: identity", req([H, b"Content-Length: 3",
                                  b"Transfer-Encoding: identity"], b"abc"),
     400),
    # --- Transfer-Encoding other than a final chunked
    ("TE: chunked twice in one field",
     chunked_req(b"0\r\n\r\n", [b"Transfer-Encoding: chunked, chunked"]),
     400),
    ("TE: chunked in two fields",
     req([H, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
         b"0\r\n\r\n"), 400),
    ("TE: chunked, identity",
     req([H, b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"), 400),
    ("TE: chunked then TE: gzip in a second field",
     req([H, b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"],
         b"0\r\n\r\n"), 400),
    ("TE: identity", req([H, b"Transfer-Encoding: identity"], b"abc"), 501),
    ("TE: gzip, chunked",
     req([H, b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"), 501),
    ("TE: xchunked", req([H, b"Transfer-Encoding: xchunked"], b"0\r\n\r\n"),
     501),
    ("TE: chunkedx", req([H, b"Transfer-Encoding: chunkedx"], b"0\r\n\r\n"),
     501),
    ("TE: chunked-false",
     req([H, b"Transfer-Encoding: chunked-false"], b"0\r\n\r\n"), 501),
    ("TE: chunked with a parameter",
     req([H, b"Transfer-Encoding: chunked;q=1"], b"0\r\n\r\n"), 400),
    ("TE: \"chunked\" quoted",
     req([H, b"Transfer-Encoding: \"chunked\""], b"0\r\n\r\n"), 400),
    ("TE: empty value", req([H, b"Transfer-Encoding:"], b"0\r\n\r\n"), 400),
    ("TE: a lone comma", req([H, b"Transfer-Encoding: ,"], b"0\r\n\r\n"),
     400),
    ("TE: chunk (misspelt)",
     req([H, b"Transfer-Encoding: chunk"], b"0\r\n\r\n"), 501),
    ("TE: chunked with a vertical tab",
     req([H, b"Transfer-Encoding: chunked\x0b"], b"0\r\n\r\n"), 400),
    ("TE: form feed before chunked",
     req([H, b"Transfer-Encoding: \x0cchunked"], b"0\r\n\r\n"), 400),
    ("TE: NUL after chunked",
     req([H, b"Transfer-Encoding: chunked\x00"], b"0\r\n\r\n"), 400),
    ("TE: space before the colon",
     req([H, b"Transfer-Encoding : chunked"], b"0\r\n\r\n"), 400),
    ("TE: tab before the colon",
     req([H, b"Transfer-Encoding\t: chunked"], b"0\r\n\r\n"), 400),
    ("TE as an obs-fold continuation",
     req([H, b"X-Foo: bar", b" Transfer-Encoding: chunked"], b"0\r\n\r\n"),
     400),
    ("TE value folded onto the next line",
     req([H, b"Transfer-Encoding:", b" chunked"], b"0\r\n\r\n"), 400),
    ("Transfer_Encoding (underscore) lookalike",
     req([H, b"Transfer_Encoding: chunked"], b"0\r\n\r\n"), 400),
    ("Content_Length (underscore) lookalike",
     req([H, b"Content_Length: 5"], b"hello"), 400),
    ("TE in HTTP/1.0",
     req([b"Transfer-Encoding: chunked"], b"0\r\n\r\n",
         line=b"POST / HTTP/1.0"), 400),
    # --- Content-Length
    ("CL: +5", req([H, b"Content-Length: +5"], b"hello"), 400),
    ("CL: -1", req([H, b"Content-Length: -1"], b""), 400),
    ("CL: 1,1 (a list)", req([H, b"Content-Length: 1,1"], b"a"), 400),
    ("CL: 5, 6", req([H, b"Content-Length: 5, 6"], b"hello!"), 400),
    ("CL: 5 twice (equal values)",
     req([H, b"Content-Length: 5", b"Content-Length: 5"], b"hello"), 400),
    ("CL: 5 and 6", req([H, b"Content-Length: 5", b"Content-Length: 6"],
                        b"hello!"), 400),
    ("CL: 0x5", req([H, b"Content-Length: 0x5"], b"hello"), 400),
    ("CL: 5.0", req([H, b"Content-Length: 5.0"], b"hello"), 400),
    ("CL: 1e1", req([H, b"Content-Length: 1e1"], b"helloworld"), 400),
    ("CL: 5 5", req([H, b"Content-Length: 5 5"], b"hello"), 400),
    ("CL: empty", req([H, b"Content-Length:"], b""), 400),
    ("CL: 2^64 (wraps to 0)",
     req([H, b"Content-Length: 18446744073709551616"], b""), 400),
    ("CL: 2^63 (past off_t)",
     req([H, b"Content-Length: 9223372036854775808"], b""), 400),
    ("CL: 30 digits",
     req([H, b"Content-Length: " + b"9" * 30], b""), 400),
    ("CL: space before the colon",
     req([H, b"Content-Length : 5"], b"hello"), 400),
    ("CL: NUL in the value", req([H, b"Content-Length: 5\x00"], b"hello"),
     400),
    # --- chunked bodies (sent with the head: refused before forwarding)
    ("chunk size not hex", chunked_req(b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size overflows 64 bits",
     chunked_req(b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size 2^64 + 5 (wraps to 5)",
     chunked_req(b"10000000000000005\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size 0x5", chunked_req(b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size +5", chunked_req(b"+5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size -5", chunked_req(b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size with a leading space",
     chunked_req(b" 5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size with trailing space, no extension",
     chunked_req(b"5 \r\nhello\r\n0\r\n\r\n"), 400),
    ("empty chunk-size line", chunked_req(b"\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk size ended by a bare LF",
     chunked_req(b"5\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension ended by a bare LF",
     chunked_req(b"5;a=b\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension with a NUL",
     chunked_req(b"5;a=\x00\r\nhello\r\n0\r\n\r\n"), 400),
    # chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ) (RFC 9112
    # 7.1.1); name a token, value a token or a quoted-string
    ("chunk extension: a bare semicolon",
     chunked_req(b"5;\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension: a name that is not a token",
     chunked_req(b"5;bad[=x\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension: no name before =",
     chunked_req(b"5;=x\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension: = without a value",
     chunked_req(b"5;a=\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension: a value that is not a token",
     chunked_req(b"5;a=b/c\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension: an unterminated quoted string",
     chunked_req(b"5;a=\"x\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension: whitespace before the CRLF",
     chunked_req(b"5;a \r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk extension: two semicolons",
     chunked_req(b"5;;a\r\nhello\r\n0\r\n\r\n"), 400),
    ("last chunk with a bare semicolon",
     chunked_req(b"5\r\nhello\r\n0;\r\n\r\n"), 400),
    ("chunk size ended by a bare CR",
     chunked_req(b"5\rhello\r\n0\r\n\r\n"), 400),
    ("chunk data longer than its size",
     chunked_req(b"3\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk data not followed by CRLF",
     chunked_req(b"5\r\nhello0\r\n\r\n"), 400),
    ("chunk data followed by a bare LF",
     chunked_req(b"5\r\nhello\n0\r\n\r\n"), 400),
    ("last chunk ended by bare LFs", chunked_req(b"0\n\n"), 400),
    ("obs-fold in the trailer section",
     chunked_req(b"0\r\nX-T: a\r\n b\r\n\r\n"), 400),
    ("bare LF in the trailer section",
     chunked_req(b"0\r\nX-T: a\n\r\n"), 400),
    ("Content-Length in the trailer section",
     chunked_req(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"), 400),
    ("Transfer-Encoding in the trailer section",
     chunked_req(b"0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
    ("Host in the trailer section",
     chunked_req(b"0\r\nX-T: 1\r\nHost: evil\r\n\r\n"), 400),
    ("trailer field without a colon",
     chunked_req(b"0\r\nX-T\r\n\r\n"), 400),
    # --- line endings and control bytes in the head
    ("bare LF line endings", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare LF after one header", b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
     400),
    ("bare LF ending the head", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    # lines that read as valid ones if a bare LF ended them: only the
    # bare-LF rule stands between these and the backend
    ("bare LF ending a field line, the next one valid",
     b"GET / HTTP/1.1\r\nX-Foo: ab\nHost: a\r\n\r\n", 400),
    ("bare LF ending a field line that hides a Content-Length",
     b"POST / HTTP/1.1\r\nHost: a\r\nX-Foo: ab\nContent-Length: 5\r\n"
     b"\r\nhello", 400),
    ("bare CR in a header value",
     req([H, b"X-Foo: a\rb"], line=b"GET / HTTP/1.1"), 400),
    ("bare CR in the request line", b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
     400),
    ("CR CR LF", b"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400),
    ("bare LFs before the request line", b"\n\nGET / HTTP/1.1\r\n" + H +
     b"\r\n\r\n", 400),
    ("obs-fold with SP", req([H, b"X-Foo: a", b" b"], line=b"GET / HTTP/1.1"),
     400),
    ("obs-fold with HTAB",
     req([H, b"X-Foo: a", b"\tb"], line=b"GET / HTTP/1.1"), 400),
    ("obs-fold on the first header",
     b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("NUL in a header value",
     req([H, b"X-Foo: a\x00b"], line=b"GET / HTTP/1.1"), 400),
    ("NUL in a header name",
     req([H, b"X-F\x00oo: a"], line=b"GET / HTTP/1.1"), 400),
    ("NUL in the target", b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("DEL in a header value",
     req([H, b"X-Foo: a\x7fb"], line=b"GET / HTTP/1.1"), 400),
    ("SOH in a header value",
     req([H, b"X-Foo: a\x01b"], line=b"GET / HTTP/1.1"), 400),
    ("ESC in the target", b"GET /a\x1bb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("non-ASCII byte in the target",
     b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("fragment in the target", b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
     400),
    # --- header names
    ("space in a header name",
     req([H, b"X Foo: a"], line=b"GET / HTTP/1.1"), 400),
    ("double quote in a header name",
     req([H, b"X\"Foo: a"], line=b"GET / HTTP/1.1"), 400),
    ("parenthesis in a header name",
     req([H, b"X(Foo): a"], line=b"GET / HTTP/1.1"), 400),
    ("at sign in a header name",
     req([H, b"X@Foo: a"], line=b"GET / HTTP/1.1"), 400),
    ("slash in a header name",
     req([H, b"X/Foo: a"], line=b"GET / HTTP/1.1"), 400),
    ("non-ASCII byte in a header name",
     req([H, b"X\xe9: a"], line=b"GET / HTTP/1.1"), 400),
    ("empty header name", req([H, b": a"], line=b"GET / HTTP/1.1"), 400),
    ("header line without a colon",
     req([H, b"X-Foo"], line=b"GET / HTTP/1.1"), 400),
    ("space before the colon",
     req([H, b"X-Foo : a"], line=b"GET / HTTP/1.1"), 400),
    ("Host with space before the colon",
     b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    # --- Host
    ("missing Host in HTTP/1.1", b"GET / HTTP/1.1\r\nX-Foo: a\r\n\r\n", 400),
    ("two equal Host headers", req([H, H], line=b"GET / HTTP/1.1"), 400),
    ("two different Host headers",
     req([H, b"Host: b"], line=b"GET / HTTP/1.1"), 400),
    ("Host with a space", req([b"Host: a b"], line=b"GET / HTTP/1.1"), 400),
    ("Host with a slash", req([b"Host: a/b"], line=b"GET / HTTP/1.1"), 400),
    ("Host with userinfo", req([b"Host: u@a"], line=b"GET / HTTP/1.1"), 400),
    ("Host with a backslash",
     req([b"Host: a\\b"], line=b"GET / HTTP/1.1"), 400),
    ("Host with a comma list",
     req([b"Host: a, b"], line=b"GET / HTTP/1.1"), 400),
    ("absolute-form naming another host than Host",
     req([b"Host: a"], line=b"GET http://b/ HTTP/1.1"), 400),
    ("Connection with an invalid token",
     req([H, b"Connection: close, a b"], line=b"GET / HTTP/1.1"), 400),
    # --- request line and version
    ("two spaces after the method", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
     400),
    ("two spaces before the version", b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
     400),
    ("trailing space after the version",
     b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    ("leading space before the method", b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
     400),
    ("tab as a separator", b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("space in the target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("invalid character in the method",
     b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("target without a leading slash", b"GET a HTTP/1.1\r\nHost: a\r\n\r\n",
     400),
    ("asterisk target with GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("CONNECT naming another authority than Host",
     b"CONNECT b:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400),
    ("CONNECT with an origin-form target",
     b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("CONNECT: no tunnels, answered before any backend",
     b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    ("CONNECT in HTTP/1.0",
     b"CONNECT a:443 HTTP/1.0\r\n\r\n", 501),
    ("HTTP/1.1x", b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400),
    ("HTTP/01.1", b"GET / HTTP/01.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/1.10", b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
    ("HTTP/1", b"GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
    ("lowercase http/1.1", b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/1.1 with no slash", b"GET / HTTP1.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/0.9 request line (no version)", b"GET /\r\n\r\n", 400),
    ("missing version after the target", b"GET / \r\nHost: a\r\n\r\n", 400),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
    ("HTTP/0.9 as a version", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
    ("HTTP/2 connection preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("Expect: 100-continue with an invalid CL",
     req([H, b"Expect: 100-continue", b"Content-Length: x"]), 400),
]

# Our limits for the shared instance: one size, known to every case.
MAX_HEAD = 4096

SIZE_CASES = [
    ("target longer than max_header_size",
     b"GET /" + b"a" * (MAX_HEAD + 100) + b" HTTP/1.1\r\nHost: a\r\n\r\n",
     414),
    ("request line alone longer than max_header_size, not yet ended",
     b"GET /" + b"a" * (MAX_HEAD + 100), 414),
    ("one header line longer than max_header_size",
     req([H, b"X-Big: " + b"v" * (MAX_HEAD + 100)], line=b"GET / HTTP/1.1"),
     431),
    ("head longer than max_header_size",
     req([H] + [b"X-Pad-%d: %s" % (i, b"v" * 60) for i in range(80)],
         line=b"GET / HTTP/1.1"), 431),
    ("101 header fields",
     req([H] + [b"X-%d: v" % i for i in range(100)], line=b"GET / HTTP/1.1"),
     431),
]


class Shared:
    """The spillway and backend every table case shares. Created on first
    use and kept out of the per-test cleanup; closed by the last test."""
    be = sp = None

    @classmethod
    def get(cls):
        if cls.sp is None:
            cls.be = Backend(echo())
            cls.sp = Spillway([cls.be],
                              proxy={"max_header_size": MAX_HEAD})
            harness._resources.remove(cls.sp)
            harness._resources.remove(cls.be)
        return cls.be, cls.sp


def backend_state(be):
    with be.lock:
        return be.accepted, len(be.requests), len(be.bad)


def check_refused(data, status):
    be, sp = Shared.get()
    before = backend_state(be)
    c = Client(sp.port)
    c.send(data + TRAILER)
    r = c.read_response(timeout=3)
    eq(r.status, status, "status (response %r)" % r)
    check("close" in r.tokens("connection"),
          "no Connection: close on %d: %r" % (status, r.headers))
    eq(int(r.header("content-length") or -1), len(r.body), "Content-Length")
    check(c.wait_closed(2), "connection not closed after %d" % status)
    time.sleep(0.02)
    eq(backend_state(be), before,
       "backend (connections, requests, unparsable heads)")
    check(sp.alive(), "spillway died")


def make_case(data, status):
    return lambda: check_refused(data, status)


for _name, _data, _status in CASES + SIZE_CASES:
    add_test("%d for %s" % (_status, _name), make_case(_data, _status))


# --- what must pass, and how it reaches the backend

def check_passes(data, expect_body, check_req=None):
    be, sp = Shared.get()
    n = be.count()
    c = Client(sp.port)
    c.send(data)
    r = c.read_response("POST", timeout=3)
    eq(r.status, 200, "status (response %r)" % r)
    eq(r.body, expect_body, "echoed body")
    check(be.wait_requests(n + 1, 2), "backend saw no request")
    q = be.requests[n]
    if check_req:
        check_req(q)
    # the connection is in sync: a second request on it
    c.send(build_request("GET", "/after"))
    r = c.read_response(timeout=3)
    eq(r.status, 200, "next request on the connection")
    eq(be.requests[n + 1].target, "/after", "next request at the backend")
    return q


def te_canonical(q):
    te = [v for k, v in q.headers if k.lower() == "transfer-encoding"]
    eq(te, ["chunked"], "Transfer-Encoding fields at the backend")
    check(b"\r\nTransfer-Encoding: chunked\r\n" in q.raw_head,
          "Transfer-Encoding not canonical at the backend: %s"
          % short(q.raw_head))


def cl_canonical(n):
    def f(q):
        cl = [v for k, v in q.headers if k.lower() == "content-length"]
        eq(cl, [str(n)], "Content-Length fields at the backend")
    return f


PASSES = [
    ("TE: chunked with OWS around it",
     chunked_req(b"5\r\nhello\r\n0\r\n\r\n")
     .replace(b"Transfer-Encoding: chunked", b"Transfer-Encoding:  chunked "),
     b"hello", te_canonical),
    ("TE:\\tchunked (HTAB is OWS)",
     chunked_req(b"5\r\nhello\r\n0\r\n\r\n")
     .replace(b"Transfer-Encoding: chunked", b"Transfer-Encoding:\tchunked"),
     b"hello", te_canonical),
    ("TE: Chunked in capitals, sent on as chunked",
     chunked_req(b"5\r\nhello\r\n0\r\n\r\n")
     .replace(b"Transfer-Encoding: chunked", b"transfer-encoding: CHUNKED"),
     b"hello", te_canonical),
    ("chunk sizes with leading zeros, upper-case hex, extensions, trailers",
     chunked_req(b"0005;a=b\r\nhello\r\n00A ; x\r\n0123456789\r\n"
                 b"0\r\nX-T: 1\r\n\r\n"),
     b"hello0123456789", te_canonical),
    ("CL: 005 is sent on as 5",
     req([H, b"Content-Length: 005"], b"hello"), b"hello", cl_canonical(5)),
    ("CL with OWS", req([H, b"Content-Length:  5\t"], b"hello"), b"hello",
     cl_canonical(5)),
    ("GET with a body", req([H, b"Content-Length: 5"], b"hello",
                            line=b"GET /g HTTP/1.1"), b"hello",
     cl_canonical(5)),
    ("empty lines before the request line",
     b"\r\n\r\n" + req([H, b"Content-Length: 2"], b"ok"), b"ok", None),
    ("absolute-form with the same host as Host",
     req([b"Host: a", b"Content-Length: 2"], b"ok",
         line=b"POST http://A/x HTTP/1.1"), b"ok", None),
    ("HTTP/1.2 is served as HTTP/1.1",
     req([H, b"Content-Length: 2"], b"ok", line=b"POST / HTTP/1.2"), b"ok",
     lambda q: eq(q.version, "1.1", "version at the backend")),
    ("obs-text in a header value",
     req([H, b"X-Name: caf\xe9", b"Content-Length: 2"], b"ok"), b"ok",
     lambda q: eq(q.header("x-name"), "caf\xe9", "X-Name at the backend")),
]


def make_pass(data, body, fn):
    return lambda: check_passes(data, body, fn)


for _name, _data, _body, _fn in PASSES:
    add_test("accepted: %s" % _name, make_pass(_data, _body, _fn))


@test("a lowercase method is a different method, sent on as it is")
def lowercase_method():
    q = check_passes(req([H, b"Content-Length: 2"], b"ok",
                         line=b"get /lc HTTP/1.1"), b"ok")
    eq(q.method, "get", "method at the backend")


LATE_BODIES = [
    ("chunk data overrun", b"5\r\nhello\r\n3\r\nabcdef\r\n0\r\n\r\n"),
    ("chunk size not hex", b"5\r\nhello\r\nzz\r\nabc\r\n0\r\n\r\n"),
    ("chunk extension longer than 4 KiB",
     b"5;" + b"e" * 4200 + b"\r\nhello\r\n0\r\n\r\n"),
    ("chunk extension: a bare semicolon",
     b"5\r\nhello\r\n5;\r\nworld\r\n0\r\n\r\n"),
    ("chunk extension: a name that is not a token",
     b"5\r\nhello\r\n5;bad[=x\r\nworld\r\n0\r\n\r\n"),
    ("Content-Length as a trailer field",
     b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"),
    ("obs-fold in the trailer section",
     b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
]


@test("a bad chunk after the head was sent on: 400 and close; nothing past "
      "the last valid byte is forwarded; spillway carries on")
def late_bad_chunk():
    be = Backend(echo())
    sp = Spillway([be])
    for name, body in LATE_BODIES:
        c = Client(sp.port)
        c.send(req([H, b"Transfer-Encoding: chunked"]))
        time.sleep(0.1)
        c.send(body + TRAILER)
        r = c.read_response(timeout=3)
        eq(r.status, 400, "%s: status (response %r)" % (name, r))
        check("close" in r.tokens("connection"),
              "%s: no Connection: close: %r" % (name, r.headers))
        check(c.wait_closed(2), "%s: connection not closed after 400" % name)
    time.sleep(0.1)
    eq([q.target for q in be.requests if q.target == "/smuggled"], [],
       "smuggled request at the backend")
    eq(be.bad, [], "unparsable heads at the backend")
    eq(be.requests, [], "requests the backend read whole")
    c = Client(sp.port)
    eq(c.exchange("POST", "/next", body=b"xyz").body, b"xyz", "next request")


@test("after the head was sent on, 400, 413 and 408 say Connection: close "
      "and close; nothing after them is read")
def late_refusals_say_close():
    be = Backend(echo())
    sp = Spillway([be], proxy={"max_body_size": "1k",
                               "idle_timeout": "500ms"})
    chunked = req([H, b"Transfer-Encoding: chunked"])
    late = [
        (400, "bad chunk size", chunked, b"5\r\nhello\r\nzz\r\n"),
        (413, "chunked body over max_body_size", chunked,
         b"800\r\n" + b"x" * 0x800 + b"\r\n0\r\n\r\n"),
        (408, "body stalled for idle_timeout",
         req([H, b"Content-Length: 100"]), b"0123456789"),
    ]
    for status, name, head, body in late:
        n = be.accepted
        c = Client(sp.port)
        c.send(head)
        check(wait_for(lambda: be.accepted > n, 2),
              "%s: head not sent on" % name)
        time.sleep(0.05)
        c.send(body + (TRAILER if status != 408 else b""))
        r = c.read_response("POST", timeout=3)
        eq(r.status, status, "%s: status (response %r)" % (name, r))
        check("close" in r.tokens("connection"),
              "%s: %d without Connection: close: %r"
              % (name, status, r.headers))
        check(c.wait_closed(2), "%s: connection open after %d"
              % (name, status))
    time.sleep(0.1)
    eq(be.requests, [], "requests the backend read whole")
    eq(be.bad, [], "unparsable heads at the backend")


@test("chunk extensions never reach the backend: each chunk line goes on "
      "as HEX CRLF, with the head or after it, whole or a byte at a time")
def chunk_lines_written_afresh():
    be = Backend(echo())
    sp = Spillway([be])
    head = req([H, b"Transfer-Encoding: chunked"], line=b"POST /rc HTTP/1.1")
    body = (b"0005;a=b ; c=\"x;y\\\"\" \t;d\r\nhello\r\n00A;e=f\r\n"
            b"0123456789\r\n0;last=1\r\nX-T: 1\r\n\r\n")
    want = (b"5\r\nhello\r\na\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n")
    for how in ("with the head", "after the head", "a byte at a time"):
        c = Client(sp.port)
        n = be.count()
        if how == "with the head":
            c.send(head + body)
        else:
            c.send(head)
            time.sleep(0.1)     # the head goes on alone first
            if how == "after the head":
                c.send(body)
            else:
                for i in range(len(body)):
                    c.send(body[i:i + 1])
                    time.sleep(0.002)
        r = c.read_response("POST", timeout=5)
        eq((r.status, r.body), (200, b"hello0123456789"),
           "%s: response" % how)
        check(be.wait_requests(n + 1, 2), "%s: backend saw no request" % how)
        q = be.requests[n]
        eq(q.raw_body, want, "%s: chunked body at the backend" % how)
        eq(q.trailers, [("X-T", "1")], "%s: trailers at the backend" % how)
        c.send(build_request("GET", "/after"))
        eq(c.read_response(timeout=3).status, 200, "%s: next request" % how)
        eq(be.requests[n + 1].target, "/after",
           "%s: next request at the backend" % how)


@test("CONNECT: 501 at once with Spillway-Reason and Connection: close; "
      "no backend connection; spillway carries on")
def connect_refused():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443"
           b"\r\n\r\n" + TRAILER)
    r = c.read_response(timeout=3)
    eq((r.status, r.header("spillway-reason")), (501, "connect_unsupported"),
       "response %r" % r)
    check("close" in r.tokens("connection"), "no Connection: close: %r"
          % r.headers)
    check(c.wait_closed(2), "connection open after the 501")
    time.sleep(0.1)
    eq((be.accepted, be.count()), (0, 0), "backend connections, requests")
    eq(Client(sp.port).exchange("GET", "/next").status, 200, "next client")


# --- desync: what follows a refused or answered request

def upload_limited(handler=None, proxy=None):
    """POSTs limited to one a minute by a class bucket; GETs unlimited."""
    be = Backend(handler or echo())
    sp = Spillway([be], proxy=proxy or {}, sections=[
        ("class uploads", {"method": "POST", "rate": "1/m", "burst": 1})])
    return be, sp


GLUED = b"GET /glued HTTP/1.1\r\nHost: a\r\n\r\n"


@test("429 with a small body that looks like a request: the body is "
      "discarded, the pipelined request is answered on its own")
def refused_429_body_not_glued():
    be, sp = upload_limited()
    c = Client(sp.port)
    eq(c.exchange("POST", "/first", body=b"x").status, 200, "first POST")
    c.send(build_request("POST", "/refused", body=GLUED) +
           build_request("GET", "/next"))
    r1, r2 = c.read_responses(2, ["POST", "GET"], timeout=3)
    eq(r1.status, 429, "refused POST")
    eq((r2.status, r2.header("x-echo-target")), (200, "/next"),
       "pipelined GET")
    check(c.is_open(0.1), "connection closed after a 429 with a small body")
    eq([q.target for q in be.requests], ["/first", "/next"],
       "requests at the backend")


@test("429 with a chunked body: discarded to its last chunk, the next "
      "request is parsed from the byte after it")
def refused_429_chunked_not_glued():
    be, sp = upload_limited()
    c = Client(sp.port)
    eq(c.exchange("POST", "/first", body=b"x").status, 200, "first POST")
    body = b"%x\r\n%s\r\n0\r\nX-T: 1\r\n\r\n" % (len(GLUED), GLUED)
    c.send(build_request("POST", "/refused",
                         [("Transfer-Encoding", "chunked")], body) +
           build_request("GET", "/next"))
    r1, r2 = c.read_responses(2, ["POST", "GET"], timeout=3)
    eq(r1.status, 429, "refused POST")
    eq((r2.status, r2.header("x-echo-target")), (200, "/next"),
       "pipelined GET")
    eq([q.target for q in be.requests], ["/first", "/next"],
       "requests at the backend")


@test("413 before the body: Connection: close; nothing after it is parsed")
def refused_413_closes():
    be = Backend(echo())
    sp = Spillway([be], proxy={"max_body_size": "1k"})
    c = Client(sp.port)
    c.send(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n" +
           GLUED)
    r = c.read_response("POST", timeout=3)
    eq(r.status, 413, "status")
    check("close" in r.tokens("connection"), "no Connection: close: %r"
          % r.headers)
    check(c.wait_closed(2), "connection not closed after 413")
    eq(be.count(), 0, "requests at the backend")


@test("a body that looks like a request is a body; the next request is "
      "the one after it")
def body_is_not_a_request():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(build_request("POST", "/outer", body=GLUED) +
           build_request("GET", "/next"))
    r1, r2 = c.read_responses(2, ["POST", "GET"], timeout=3)
    eq((r1.status, r1.body), (200, GLUED), "first response")
    eq((r2.status, r2.header("x-echo-target")), (200, "/next"),
       "second response")
    eq([q.target for q in be.requests], ["/outer", "/next"],
       "requests at the backend")


@test("Connection naming Content-Length, Transfer-Encoding and Host strips "
      "none of them")
def connection_names_all_framing():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    hs = [("Host", "h.test"),
          ("Connection", "content-length, transfer-encoding, host"),
          ("Transfer-Encoding", "chunked")]
    c.send(build_request("POST", "/te", hs, b"5\r\nhello\r\n0\r\n\r\n",
                         host=None) + GLUED)
    r1, r2 = c.read_responses(2, ["POST", "GET"], timeout=3)
    eq((r1.status, r1.body), (200, b"hello"), "chunked POST")
    eq(r2.header("x-echo-target"), "/glued", "next request")
    q = be.requests[0]
    eq(q.header("host"), "h.test", "Host at the backend")
    eq(q.header("transfer-encoding"), "chunked", "TE at the backend")
    eq(q.body, b"hello", "body at the backend")
    check(not q.has("connection"), "Connection forwarded: %r" % q.headers)
    c.send(build_request("POST", "/cl", [
        ("Connection", "Content-Length, Host")], b"abc"))
    r = c.read_response("POST", timeout=3)
    eq((r.status, r.body), (200, b"abc"), "Content-Length POST")
    eq(be.requests[2].header("content-length"), "3", "CL at the backend")


@test("requests pipelined after Connection: close are never read")
def pipelined_after_close():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(build_request("GET", "/last", [("Connection", "close")]) + GLUED)
    r = c.read_response(timeout=3)
    eq(r.header("x-echo-target"), "/last", "response")
    check("close" in r.tokens("connection"), "no Connection: close")
    check(c.wait_closed(2), "connection still open")
    eq([q.target for q in be.requests], ["/last"], "requests at the backend")


@test("requests pipelined after an HTTP/1.0 request without keep-alive are "
      "never read")
def pipelined_after_http10():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(b"GET /old HTTP/1.0\r\n\r\n" + GLUED)
    r = c.read_response(timeout=3)
    eq(r.header("x-echo-target"), "/old", "response")
    check(c.wait_closed(2), "connection still open")
    eq([q.target for q in be.requests], ["/old"], "requests at the backend")


# --- Expect: 100-continue (forwarded; the backend's 100 is relayed)

@test("Expect: the backend's 100 Continue is relayed before the body is "
      "sent, then its final answer")
def expect_relayed():
    be = Backend(interim_continue(echo()))
    sp = Spillway([be])
    c = Client(sp.port)
    c.request("POST", "/up", [("Expect", "100-continue"),
                              ("Content-Length", "5")])
    r = c.read_response("POST", timeout=3, keep_interim=True)
    eq(r.status, 100, "interim status before the body")
    c.send(b"hello")
    r = c.read_response("POST", timeout=3)
    eq((r.status, r.body), (200, b"hello"), "final response")
    eq(c.exchange("GET", "/next").status, 200, "next request")


@test("Expect: a backend that refuses before the body: its final status "
      "at once, Connection: close, no body needed")
def expect_backend_refuses():
    be = Backend(respond(401, b"who are you", headers=[
        ("WWW-Authenticate", "Basic")]))
    be.default.streams_body = True        # answer without reading a body
    sp = Spillway([be])
    c = Client(sp.port)
    t0 = time.monotonic()
    c.request("POST", "/up", [("Expect", "100-continue"),
                              ("Content-Length", "100000")])
    r = c.read_response("POST", timeout=3, keep_interim=True)
    eq(r.status, 401, "status")
    check(time.monotonic() - t0 < 1, "401 took %.2fs"
          % (time.monotonic() - t0))
    check("close" in r.tokens("connection"), "no Connection: close: %r"
          % r.headers)
    check(c.wait_closed(2), "connection still open")
    eq(Client(sp.port).exchange("GET", "/next").status, 401,
       "spillway carries on")


@test("Expect: 100 Continue from the backend, then a final status without "
      "reading the body")
def expect_continue_then_final():
    inner = respond(413, b"too big for the app")

    def h(req, conn):
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        time.sleep(0.05)
        return inner(req, conn) and False
    h.streams_body = True
    be = Backend(h)
    sp = Spillway([be])
    c = Client(sp.port)
    c.request("POST", "/up", [("Expect", "100-continue"),
                              ("Content-Length", "10")])
    r = c.read_response("POST", timeout=3, keep_interim=True)
    eq(r.status, 100, "interim")
    r = c.read_response("POST", timeout=3)
    eq(r.status, 413, "final status")
    check("close" in r.tokens("connection"), "no Connection: close: %r"
          % r.headers)


@test("Expect with Content-Length over max_body_size: 413 at once, no 100")
def expect_413():
    be = Backend(echo())
    sp = Spillway([be], proxy={"max_body_size": "1k"})
    c = Client(sp.port)
    t0 = time.monotonic()
    c.request("POST", "/up", [("Expect", "100-continue"),
                              ("Content-Length", "5000")])
    r = c.read_response("POST", timeout=3, keep_interim=True)
    eq(r.status, 413, "status")
    check(time.monotonic() - t0 < 1, "413 took %.2fs"
          % (time.monotonic() - t0))
    check(c.wait_closed(2), "connection still open after 413")
    eq(be.count(), 0, "requests at the backend")


@test("Expect refused by the queue: 503 at once, no 100, Connection: close")
def expect_503_queue_full():
    be = Backend(delayed(1.0, respond(200, b"slow")))
    sp = Spillway([be], sections=[("limiter", {
        "algorithm": "fixed", "limit": 1, "min_limit": 1,
        "queue_size": 0})])
    parked = Client(sp.port)
    parked.request("GET", "/park")
    check(be.wait_requests(1, 3), "could not park a request")
    c = Client(sp.port)
    t0 = time.monotonic()
    c.request("POST", "/up", [("Expect", "100-continue"),
                              ("Content-Length", "5")])
    r = c.read_response("POST", timeout=3, keep_interim=True)
    eq((r.status, r.header("spillway-reason")), (503, "queue_full"),
       "refusal")
    check(time.monotonic() - t0 < 0.8, "503 took %.2fs"
          % (time.monotonic() - t0))
    check("close" in r.tokens("connection"), "no Connection: close on a "
          "refusal whose body may never come: %r" % r.headers)
    check(c.wait_closed(2), "connection still open")
    eq(parked.read_response(timeout=3).status, 200, "parked request")


@test("Expect from an HTTP/1.0 client is ignored: no 100 is relayed")
def expect_http10():
    be = Backend(interim_continue(echo()))
    sp = Spillway([be])
    c = Client(sp.port)
    c.send(b"POST /up HTTP/1.0\r\nExpect: 100-continue\r\n"
           b"Content-Length: 5\r\n\r\nhello")
    r = c.read_response("POST", timeout=3, keep_interim=True)
    eq((r.status, r.body), (200, b"hello"), "response")


# --- Upgrade (stripped as hop-by-hop, as nginx does by default)

@test("Upgrade: websocket is stripped (hop-by-hop); the request is served "
      "as a plain one")
def upgrade_stripped():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/ws", [
        ("Connection", "Upgrade"), ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13")])
    eq(r.status, 200, "status")
    q = be.requests[0]
    check(not q.has("upgrade"), "Upgrade forwarded: %r" % q.headers)
    check("upgrade" not in q.tokens("connection"),
          "Connection: upgrade forwarded: %r" % q.headers)
    eq(c.exchange("GET", "/next").status, 200, "connection still in HTTP")


@test("Upgrade: h2c and its HTTP2-Settings are stripped")
def upgrade_h2c():
    be = Backend(echo())
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/h2c", [
        ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
        ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
    eq(r.status, 200, "status")
    q = be.requests[0]
    check(not q.has("upgrade") and not q.has("http2-settings"),
          "upgrade headers forwarded: %r" % q.headers)


@test("a backend that switches protocols anyway: 502, not a tunnel")
def upgrade_backend_101():
    be = Backend(raw(b"HTTP/1.1 101 Switching Protocols\r\n"
                     b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                     b"\x81\x05hello", close=False))
    sp = Spillway([be])
    c = Client(sp.port)
    r = c.exchange("GET", "/ws", [("Connection", "Upgrade"),
                                  ("Upgrade", "websocket")])
    eq((r.status, r.header("spillway-reason")), (502, "upstream_error"),
       "response")


@test("shared instance: spillway lived through every case")
def shared_alive():
    be, sp = Shared.get()
    harness.register(be)
    harness.register(sp)
    c = Client(sp.port)
    r = c.exchange("POST", "/alive", body=b"still here")
    eq((r.status, r.body), (200, b"still here"), "response")
    check(sp.alive(), "spillway died")


if __name__ == "__main__":
    harness.run_main()
