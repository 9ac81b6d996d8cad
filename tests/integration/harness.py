#!/usr/bin/env python3
"""
harness.py: what spillway's integration tests share.

  - a tiny TAP runner: @test registers a function, main() runs them in
    order and prints "ok N - name" / "not ok N - name", "# " diagnostics
    and the plan "1..N" at the end; exit status 1 if any test failed.
    Each test has a hard timeout (SIGALRM), so a hang fails that test only.
  - Backend: a threaded HTTP/1.1 origin server on raw sockets, with full
    control over framing, that records every request it receives.
  - Spillway: runs the real binary ($SPILLWAY_BIN, default ../../src/spillway
    from this file) with a generated INI configuration in a temporary
    directory, and stops it again.
  - Client: a raw socket HTTP client that reads responses with exact
    framing (Content-Length, chunked, until close), pipelining included.

Every process and thread a test starts is registered and torn down after
the test, whatever its outcome. Python 3 standard library only; loopback
only; free ports picked at random below the kernel's ephemeral range
(free_port()).
"""

import hashlib
import os
import random
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.join(HERE, "..", "..")
TOP_SRCDIR = os.path.abspath(TOP_SRCDIR)
SPILLWAY_BIN = os.path.abspath(os.environ.get("SPILLWAY_BIN") or
                               os.path.join(HERE, "..", "..", "src",
                                            "spillway"))
VERBOSE = bool(os.environ.get("SPILLWAY_TEST_VERBOSE"))
# a command that runs spillway, e.g. "valgrind -q --error-exitcode=99
# --leak-check=full" (README: Hardening); start-up waits are longer then
WRAPPER = shlex.split(os.environ.get("SPILLWAY_WRAPPER", ""))
LOCALHOST = "127.0.0.1"


# --------------------------------------------------------------------------
# TAP runner

class SkipTest(Exception):
    pass


class TestTimeout(Exception):
    pass


_tests = []             # (name, function, timeout seconds)
_resources = []         # things to close after the current test


def test(name=None, timeout=30):
    """Register a test: @test, @test("name") or @test("name", timeout=10)."""
    def add(fn, tname=None):
        _tests.append((tname or fn.__name__.replace("_", " "), fn, timeout))
        return fn
    if callable(name):
        return add(name)
    return lambda fn: add(fn, name)


def add_test(name, fn, timeout=30):
    _tests.append((name, fn, timeout))


def skip(reason):
    raise SkipTest(reason)


def register(resource_obj):
    """Close resource_obj (anything with close()) at the end of the test."""
    _resources.append(resource_obj)
    return resource_obj


def diag(msg):
    for line in str(msg).splitlines() or [""]:
        print("# " + line)
    sys.stdout.flush()


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its hard timeout")


def _cleanup():
    """Close every resource of the test; return a list of problems."""
    problems, extra = [], []
    while _resources:
        r = _resources.pop()
        try:
            p = r.close()
            if p:
                problems.extend(p)
        except BaseException as e:      # noqa: keep tearing down
            problems.append("cleanup of %r failed: %r" % (r, e))
        if isinstance(r, Spillway):
            extra.append(r)
    return problems, extra


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    tests = [t for t in _tests
             if not argv or any(a in t[0] for a in argv)]
    failed = 0
    signal.signal(signal.SIGALRM, _alarm)
    for n, (name, fn, timeout) in enumerate(tests, 1):
        t0 = time.monotonic()
        status, tb = "ok", None
        signal.alarm(timeout)
        try:
            fn()
        except SkipTest as e:
            status, tb = "skip", str(e)
        except BaseException as e:      # noqa: a test failure of any kind
            if isinstance(e, KeyboardInterrupt):
                signal.alarm(0)
                _cleanup()
                raise
            status, tb = "fail", traceback.format_exc()
        finally:
            signal.alarm(0)
        spillways = [r for r in _resources if isinstance(r, Spillway)]
        signal.alarm(20)
        try:
            problems, _ = _cleanup()
        except TestTimeout:
            problems = ["cleanup timed out"]
        finally:
            signal.alarm(0)
        if problems and status == "ok":
            status = "fail"
        took = time.monotonic() - t0
        if status == "ok":
            print("ok %d - %s" % (n, name))
        elif status == "skip":
            print("ok %d - %s # SKIP %s" % (n, name, tb))
        else:
            failed += 1
            print("not ok %d - %s" % (n, name))
            if tb:
                diag(tb.rstrip())
            for p in problems:
                diag("problem: " + p)
            for sp in spillways:
                diag("--- spillway pid %s config %s:" % (sp.pid, sp.name))
                diag(sp.config_text.rstrip())
                diag("--- spillway stderr (last lines):")
                diag(sp.stderr_tail(25))
        if VERBOSE or took > 10:
            diag("%s: %.2fs" % (name, took))
        sys.stdout.flush()
    print("1..%d" % len(tests))
    sys.stdout.flush()
    return 1 if failed else 0


def run_main():
    sys.exit(main())


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, what="value"):
    if a != b:
        raise AssertionError("%s: expected %r, got %r" % (what, b, a))


def short(data, n=300):
    """Bytes shortened for a diagnostic."""
    if data is None:
        return "None"
    if len(data) <= n:
        return repr(bytes(data))
    return "%r...(%d bytes)" % (bytes(data[:n]), len(data))


def wait_for(pred, timeout=5.0, interval=0.01):
    """Poll pred() until it returns a true value or timeout; return it."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)


# --------------------------------------------------------------------------
# Payloads

_BLOCK_LEN = 65521          # a prime, so slices never align with buffers
_BLOCK = b"".join(hashlib.sha256(b"spillway%d" % i).digest()
                  for i in range(_BLOCK_LEN // 32 + 1))[:_BLOCK_LEN]
_BLOCK2 = _BLOCK + _BLOCK


def pattern_chunks(n, chunk=65536):
    """Yield n bytes of a deterministic, non-repeating-looking pattern."""
    mv = memoryview(_BLOCK2)
    off = 0
    while off < n:
        k = min(chunk, n - off, _BLOCK_LEN)
        s = off % _BLOCK_LEN
        yield mv[s:s + k]
        off += k


def pattern(n):
    return b"".join(bytes(c) for c in pattern_chunks(n))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def pattern_sha256(n):
    h = hashlib.sha256()
    for c in pattern_chunks(n):
        h.update(c)
    return h.hexdigest()


# --------------------------------------------------------------------------
# Ports and addresses

def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out = set()


def free_port(host=LOCALHOST):
    """A port that was free a moment ago, below the kernel's ephemeral
    range. Port 0's pick came from that range, where every connect() on
    the machine takes its local port: between the pick and a child's
    bind, another test's client could take it (EADDRINUSE, or a stranger
    on the port); a demo that restarts its app between runs lost its
    port that way."""
    hi = min(_ephemeral_low(), 65536)
    lo = 15000 if hi > 20000 else 1024
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(lo, hi)
        if port not in _handed_out and port_bindable(port, host):
            _handed_out.add(port)
            return port
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_bindable(port, host=LOCALHOST):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def ipv6_available():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _listening_sockets():
    """(port, inode) of every TCP socket in LISTEN state, from
    /proc/net/tcp{,6}."""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    p = line.split()
                    if len(p) >= 10 and p[3] == "0A":
                        yield int(p[1].rsplit(":", 1)[1], 16), p[9]
        except OSError:
            pass


def _listen_inodes(port):
    """Inodes of sockets in LISTEN state on port."""
    return {inode for p, inode in _listening_sockets() if p == port}


def listening_ports(pid):
    """Ports pid has listening TCP sockets on (Linux /proc)."""
    mine = _pid_socket_inodes(pid)
    return {p for p, inode in _listening_sockets() if inode in mine}


def _pid_socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        try:
            t = os.readlink(os.path.join(d, n))
        except OSError:
            continue
        if t.startswith("socket:["):
            out.add(t[8:-1])
    return out


def pid_listens_on(pid, port):
    """True if process pid has a listening socket on port (Linux /proc)."""
    inodes = _listen_inodes(port)
    return bool(inodes and inodes & _pid_socket_inodes(pid))


# --------------------------------------------------------------------------
# HTTP message parsing shared by the backend and the client

class ProtocolError(Exception):
    pass


class _Reader:
    """Buffered reads from a socket with deadlines."""

    def __init__(self, sock, default_timeout=5.0):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.timeout = default_timeout

    def _fill(self, deadline, bufsize=65536):
        """Read more bytes; return False on EOF. Raise socket.timeout."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out reading")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(bufsize)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None
                                   else timeout)

    def read_until(self, sep, deadline, limit=1 << 20, eof_ok=False):
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            start = max(0, len(self.buf) - len(sep) + 1)
            if len(self.buf) > limit:
                raise ProtocolError("no %r within %d bytes" % (sep, limit))
            if not self._fill(deadline):
                if eof_ok and not self.buf:
                    return None
                raise ProtocolError("EOF before %r; have %s"
                                    % (sep, short(self.buf)))

    def read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ProtocolError("EOF after %d of %d bytes"
                                    % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self, deadline):
        while self._fill(deadline):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_head(self, deadline, eof_ok=False):
        """A message head up to and including the empty line."""
        return self.read_until(b"\r\n\r\n", deadline, eof_ok=eof_ok)

    def read_chunked(self, deadline, raw=None):
        """Decode a chunked body; return (payload, trailers, chunk sizes)."""
        body = bytearray()
        sizes = []
        while True:
            line = self.read_until(b"\r\n", deadline, limit=8192)
            if raw is not None:
                raw += line
            size_s = line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise ProtocolError("bad chunk size line %r" % line)
            if size == 0:
                break
            sizes.append(size)
            data = self.read_exact(size + 2, deadline)
            if raw is not None:
                raw += data
            if data[-2:] != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF: %r"
                                    % data[-2:])
            body += data[:-2]
        trailers = []
        while True:
            line = self.read_until(b"\r\n", deadline, limit=16384)
            if raw is not None:
                raw += line
            if line == b"\r\n":
                break
            name, _, value = line[:-2].decode("latin-1").partition(":")
            trailers.append((name, value.strip()))
        return bytes(body), trailers, sizes


def parse_headers(lines):
    headers = []
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError("header line without colon: %r" % line)
        headers.append((name, value.strip(" \t")))
    return headers


def find_header(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def all_headers(headers, name):
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


def header_tokens(headers, name):
    out = []
    for v in all_headers(headers, name):
        out.extend(t.strip().lower() for t in v.split(",") if t.strip())
    return out


# --------------------------------------------------------------------------
# Backend

class _Headers:
    """Header lookups of a parsed message (self.headers: [(name, value)])."""

    def header(self, name):
        return find_header(self.headers, name)

    def headers_named(self, name):
        return all_headers(self.headers, name)

    def has(self, name):
        return find_header(self.headers, name) is not None

    def tokens(self, name):
        return header_tokens(self.headers, name)


class Request(_Headers):
    """One request as the backend received it."""

    def __init__(self):
        self.method = self.target = self.version = None
        self.headers = []       # [(name, value)] in order
        self.body = b""
        self.trailers = []
        self.chunked = False
        self.raw_head = b""
        self.raw_body = b""     # a chunked body as it came, framing too
        self.conn_id = None
        self.time = time.monotonic()
        self.body_len = None    # set by streaming handlers
        self.body_sha = None

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def __repr__(self):
        return "<Request %s %s %s conn=%s %r body=%d>" % (
            self.method, self.target, self.version, self.conn_id,
            self.headers, len(self.body))


class BackendConn:
    """A backend's connection, as handlers see it."""

    def __init__(self, backend, sock, cid):
        self.backend = backend
        self.sock = sock
        self.id = cid
        self.reader = _Reader(sock, default_timeout=30)

    def send(self, data):
        self.sock.sendall(data)

    def stopping(self):
        return self.backend._stop.is_set()

    def wait_peer_close(self, limit=60):
        """Block until the peer closes, the backend stops or limit s pass."""
        deadline = time.monotonic() + limit
        while not self.stopping() and time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if r:
                try:
                    if not self.sock.recv(65536):
                        return
                except OSError:
                    return


def _status_line(status, reason=None, version="1.1"):
    reasons = {100: "Continue", 200: "OK", 204: "No Content",
               304: "Not Modified", 404: "Not Found",
               500: "Internal Server Error"}
    return ("HTTP/%s %d %s\r\n" % (version, status,
                                   reason or reasons.get(status, "Whatever"))
            ).encode()


def _head_bytes(status, headers, reason=None, version="1.1"):
    out = _status_line(status, reason, version)
    for k, v in headers:
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    return out + b"\r\n"


def respond(status=200, body=b"", headers=(), reason=None, close=False,
            content_length=True):
    """Handler: a fixed response framed with Content-Length."""
    if isinstance(body, str):
        body = body.encode()

    def h(req, conn):
        hs = list(headers)
        no_body = req.method == "HEAD" or status in (204, 304) or \
            100 <= status < 200
        if content_length and status not in (204,) and \
                find_header(hs, "content-length") is None:
            hs.append(("Content-Length", str(len(body))))
        if close:
            hs.append(("Connection", "close"))
        conn.send(_head_bytes(status, hs, reason) +
                  (b"" if no_body else body))
        return not close
    return h


def echo(status=200, headers=()):
    """Handler: the request body back, with Content-Length."""
    def h(req, conn):
        hs = list(headers) + [("Content-Length", str(len(req.body))),
                              ("X-Echo-Method", req.method),
                              ("X-Echo-Target", req.target)]
        conn.send(_head_bytes(status, hs) +
                  (b"" if req.method == "HEAD" else req.body))
        return True
    return h


def echo_path():
    """Handler: body is "METHOD TARGET [body]"."""
    def h(req, conn):
        body = ("%s %s" % (req.method, req.target)).encode()
        if req.body:
            body += b" " + req.body
        conn.send(_head_bytes(200, [("Content-Length", str(len(body)))]) +
                  (b"" if req.method == "HEAD" else body))
        return True
    return h


def chunked(chunks, trailers=(), headers=(), status=200, extensions=False):
    """Handler: a chunked response of the given chunks (bytes or str)."""
    chunks = [c.encode() if isinstance(c, str) else c for c in chunks]

    def h(req, conn):
        hs = list(headers) + [("Transfer-Encoding", "chunked")]
        if trailers:
            hs.append(("Trailer", ", ".join(k for k, _ in trailers)))
        out = bytearray(_head_bytes(status, hs))
        if req.method != "HEAD":
            for i, c in enumerate(chunks):
                if not c:
                    continue
                ext = (";i=%d" % i) if extensions else ""
                out += b"%x%s\r\n" % (len(c), ext.encode()) + c + b"\r\n"
            out += b"0\r\n"
            for k, v in trailers:
                out += ("%s: %s\r\n" % (k, v)).encode()
            out += b"\r\n"
        conn.send(bytes(out))
        return True
    return h


def close_delimited(body, headers=(), version="1.1"):
    """Handler: no Content-Length, no chunking; the body ends at close."""
    if isinstance(body, str):
        body = body.encode()

    def h(req, conn):
        conn.send(_head_bytes(200, list(headers), version=version))
        for i in range(0, len(body), 16384):
            conn.send(body[i:i + 16384])
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return False
    return h


def large(n, chunk=65536, headers=()):
    """Handler: n bytes of pattern(), Content-Length, streamed."""
    def h(req, conn):
        hs = list(headers) + [("Content-Length", str(n))]
        conn.send(_head_bytes(200, hs))
        if req.method == "HEAD":
            return True
        for c in pattern_chunks(n, chunk):
            if conn.stopping():
                return False
            conn.send(c)
        return True
    return h


def delayed(seconds, inner):
    """Handler: wait, then inner."""
    def h(req, conn):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not conn.stopping():
            time.sleep(min(0.02, max(0, deadline - time.monotonic())))
        return inner(req, conn)
    h.streams_body = getattr(inner, "streams_body", False)
    return h


def never():
    """Handler: never answers; holds the connection until the peer closes."""
    def h(req, conn):
        conn.wait_peer_close()
        return False
    return h


def raw(data, close=True):
    """Handler: exactly these bytes, then close (or not)."""
    if isinstance(data, str):
        data = data.encode()

    def h(req, conn):
        conn.send(data)
        if close:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return not close
    return h


def interim_continue(inner):
    """Handler: send "100 Continue" before reading the body (if asked)."""
    def h(req, conn):
        return inner(req, conn)
    h.sends_continue = True
    h.streams_body = getattr(inner, "streams_body", False)
    return h


def slow_sink(chunk=65536, delay=0.005):
    """Handler: reads a Content-Length body slowly (chunk per delay) and
    answers with "LENGTH SHA256". The backend records body_len/body_sha."""
    def h(req, conn):
        n = int(req.header("content-length") or 0)
        sha = hashlib.sha256()
        got = 0
        r = conn.reader
        while got < n:
            if r.buf:
                take = min(len(r.buf), n - got, chunk)
                sha.update(r.buf[:take])
                del r.buf[:take]
                got += take
                time.sleep(delay)
                continue
            if not r._fill(time.monotonic() + 30, bufsize=chunk):
                break
        req.body_len, req.body_sha = got, sha.hexdigest()
        body = ("%d %s" % (got, req.body_sha)).encode()
        conn.send(_head_bytes(200, [("Content-Length", str(len(body)))]) +
                  body)
        return got == n
    h.streams_body = True
    return h


class Backend:
    """
    A threaded HTTP/1.1 origin server on 127.0.0.1 (port 0 by default).
    Serves any number of requests per connection (keep-alive), counts
    connections accepted and records every request it reads.

    Handlers are functions handler(req, conn) -> keep_alive: bool; choose
    one per path with route(path, handler) or for all with default.
    """

    def __init__(self, handler=None, host=LOCALHOST, port=0, routes=None):
        self.default = handler or respond(200, b"hello\n")
        self.routes = dict(routes or {})
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(256)
        self.host = host
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Condition()
        self.requests = []
        self.bad = []           # raw heads the backend could not parse
        self.accepted = 0
        self.active = 0         # connections open now
        self.peer_closes = 0    # connections the peer closed between requests
        self._conns = set()
        self._stop = threading.Event()
        self._threads = []
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name="backend-%d" % self.port)
        t.start()
        self._accept_thread = t
        register(self)

    @property
    def addr(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def route(self, path, handler):
        self.routes[path] = handler

    def _handler_for(self, req):
        return self.routes.get(req.path) or self.routes.get(req.target) or \
            self.default

    def count(self):
        with self.lock:
            return len(self.requests)

    def wait_requests(self, n, timeout=5.0):
        """Wait until at least n requests have been received."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.lsock], [], [], 0.1)
                if not r:
                    continue
                s, _ = self.lsock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.01)
                continue
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.accepted += 1
                cid = self.accepted
                self._conns.add(s)
            t = threading.Thread(target=self._serve, args=(s, cid),
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _read_request(self, conn):
        r = conn.reader
        head = r.read_head(time.monotonic() + 3600, eof_ok=True)
        if head is None:
            return None
        req = Request()
        req.raw_head = head
        req.conn_id = conn.id
        try:
            lines = head[:-4].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                raise ProtocolError("bad request line %r" % lines[0])
            req.method, req.target, v = parts
            req.version = v[5:]
            req.headers = parse_headers(lines[1:])
        except ProtocolError:
            with self.lock:
                self.bad.append(head)
            raise
        return req

    def _read_body(self, req, conn):
        te = req.header("transfer-encoding")
        if te is not None:
            req.chunked = True
            raw = bytearray()
            req.body, req.trailers, _ = conn.reader.read_chunked(
                time.monotonic() + 60, raw=raw)
            req.raw_body = bytes(raw)
        elif req.header("content-length") is not None:
            req.body = conn.reader.read_exact(
                int(req.header("content-length")), time.monotonic() + 60)

    def _serve(self, sock, cid):
        conn = BackendConn(self, sock, cid)
        with self.lock:
            self.active += 1
        try:
            while not self._stop.is_set():
                req = self._read_request(conn)
                if req is None:
                    with self.lock:
                        self.peer_closes += 1
                        self.lock.notify_all()
                    break
                h = self._handler_for(req)
                expect = (req.header("expect") or "").lower()
                if getattr(h, "sends_continue", False) and \
                        expect == "100-continue":
                    conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                if not getattr(h, "streams_body", False):
                    self._read_body(req, conn)
                with self.lock:
                    self.requests.append(req)
                    self.lock.notify_all()
                keep = h(req, conn)
                if not keep or "close" in header_tokens(req.headers,
                                                        "connection"):
                    break
                if req.version == "1.0" and "keep-alive" not in \
                        header_tokens(req.headers, "connection"):
                    break
        except (OSError, ProtocolError, ValueError):
            pass
        finally:
            with self.lock:
                self.active -= 1
                self._conns.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def close(self):
        self._stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(2)
        for t in self._threads:
            t.join(2)
        return None

    def __repr__(self):
        return "<Backend %s>" % self.addr


def dead_server():
    """host:port on which nothing listens (bound, then closed)."""
    return "%s:%d" % (LOCALHOST, free_port())


# --------------------------------------------------------------------------
# Client

class Response(_Headers):
    def __init__(self):
        self.version = self.status = self.reason = None
        self.headers = []
        self.body = b""
        self.trailers = []
        self.framing = None     # "length", "chunked", "close", "none"
        self.chunk_sizes = []
        self.raw = b""          # the head and body bytes as received
        self.interim = []       # 1xx responses skipped before this one

    def __repr__(self):
        return "<Response %s %s %s %r body=%s>" % (
            self.version, self.status, self.reason, self.headers,
            short(self.body, 120))


def build_request(method="GET", target="/", headers=None, body=None,
                  version="1.1", host="spillway.test"):
    """Raw request bytes. headers is a list of (name, value); a Host header
    is added unless headers has one or host is None; Content-Length is
    added for a body unless headers frame it already."""
    hs = list(headers or [])
    if host is not None and find_header(hs, "host") is None:
        hs.insert(0, ("Host", host))
    if isinstance(body, str):
        body = body.encode()
    if body is not None and find_header(hs, "content-length") is None and \
            find_header(hs, "transfer-encoding") is None:
        hs.append(("Content-Length", str(len(body))))
    out = ("%s %s HTTP/%s\r\n" % (method, target, version)).encode("latin-1")
    for k, v in hs:
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    return out + b"\r\n" + (body or b"")


def chunk_encode(parts, trailers=(), extensions=False):
    out = bytearray()
    for i, p in enumerate(parts):
        if not p:
            continue
        ext = (b";n=%d" % i) if extensions and i % 3 == 0 else b""
        out += b"%x%s\r\n" % (len(p), ext) + p + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers:
        out += ("%s: %s\r\n" % (k, v)).encode()
    return bytes(out + b"\r\n")


class Client:
    """A raw HTTP client on one TCP connection."""

    def __init__(self, port, host=LOCALHOST, timeout=5.0, rcvbuf=None,
                 connect=True):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.timeout = timeout
        self.addr = (host, port)
        self.reader = _Reader(self.sock, timeout)
        register(self)
        if connect:
            self.sock.settimeout(timeout)
            self.sock.connect(self.addr)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def request(self, method="GET", target="/", headers=None, body=None,
                version="1.1", host="spillway.test"):
        self.send(build_request(method, target, headers, body, version, host))

    def read_response(self, method="GET", timeout=None, keep_interim=False):
        """Read one response; 1xx responses are skipped (kept in
        .interim) unless keep_interim. Raises ProtocolError or
        socket.timeout."""
        r = self.reader
        deadline = r.deadline(timeout)
        interim = []
        while True:
            resp = self._read_one(method, deadline)
            if 100 <= resp.status < 200 and not keep_interim and \
                    resp.status != 101:
                interim.append(resp)
                continue
            resp.interim = interim
            return resp

    def _read_one(self, method, deadline):
        r = self.reader
        head = r.read_head(deadline)
        resp = Response()
        raw = bytearray(head)
        lines = head[:-4].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/(\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0])
        resp.version, resp.status, resp.reason = \
            m.group(1), int(m.group(2)), m.group(3) or ""
        resp.headers = parse_headers(lines[1:])
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if method == "HEAD" or resp.status in (204, 304) or \
                100 <= resp.status < 200:
            resp.framing = "none"
        elif te is not None:
            if te.lower().split(",")[-1].strip() != "chunked":
                raise ProtocolError("unexpected Transfer-Encoding %r" % te)
            resp.framing = "chunked"
            resp.body, resp.trailers, resp.chunk_sizes = r.read_chunked(
                deadline, raw)
        elif cl is not None:
            resp.framing = "length"
            resp.body = r.read_exact(int(cl), deadline)
            raw += resp.body
        else:
            resp.framing = "close"
            resp.body = r.read_to_eof(deadline)
            raw += resp.body
        resp.raw = bytes(raw)
        return resp

    def read_responses(self, n, methods=None, timeout=None):
        deadline = self.reader.deadline(timeout)
        out = []
        for i in range(n):
            m = methods[i] if methods else "GET"
            out.append(self.read_response(m, max(0.001, deadline -
                                                 time.monotonic())))
        return out

    def exchange(self, *args, **kw):
        """Send a request, read its response."""
        timeout = kw.pop("timeout", None)
        self.request(*args, **kw)
        method = args[0] if args else kw.get("method", "GET")
        return self.read_response(method, timeout=timeout)

    def wait_closed(self, timeout=2.0):
        """Wait for the peer to close. Returns True on EOF/reset, False if
        the connection is still open at timeout. Raises ProtocolError if
        the peer sends bytes instead."""
        r = self.reader
        if r.buf:
            raise ProtocolError("unexpected bytes: %s" % short(r.buf))
        deadline = time.monotonic() + timeout
        try:
            got = r._fill(deadline)
        except socket.timeout:
            return False
        if got:
            raise ProtocolError("unexpected bytes instead of close: %s"
                                % short(r.buf))
        return True

    def nothing_within(self, timeout):
        """True if no byte and no close arrives within timeout seconds."""
        if self.reader.buf or self.reader.eof:
            return False
        r, _, _ = select.select([self.sock], [], [], timeout)
        return not r

    def is_open(self, timeout=0.05):
        """Best effort: True if the peer has neither closed nor sent."""
        return self.nothing_within(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        return None


def get(port, target="/", method="GET", headers=None, body=None,
        timeout=5.0, host=LOCALHOST):
    """One request on a new connection; returns the Response."""
    c = Client(port, host=host, timeout=timeout)
    try:
        return c.exchange(method, target, headers, body)
    finally:
        c.close()


def get_until_ok(port, target, within, pause=0.1, why=""):
    """GET target on new connections until one answers 200, for at most
    `within` seconds (a listener may be paused on a timer). Returns the
    seconds it took; AssertionError with the last answer or error if none
    did."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < within:
        try:
            r = get(port, target, timeout=2)
            if r.status == 200:
                return time.monotonic() - t0
            last = r
        except Exception as e:      # noqa: retried
            last = e
        time.sleep(pause)
    raise AssertionError("no successful request within %gs%s; last: %r"
                         % (within, why, last))


# --------------------------------------------------------------------------
# Spillway

def run_binary(args, timeout=10):
    """Run spillway with args (no config unless given); CompletedProcess."""
    require_binary()
    return subprocess.run(WRAPPER + [SPILLWAY_BIN] + list(args),
                          stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout * (3 if WRAPPER else 1))


def require_binary():
    if not os.path.isfile(SPILLWAY_BIN) or not os.access(SPILLWAY_BIN,
                                                          os.X_OK):
        raise AssertionError("spillway binary not found at %s "
                             "(set SPILLWAY_BIN)" % SPILLWAY_BIN)


def _ini_value(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


# SPILLWAY_WORKERS=N: every generated configuration (and every given one
# with a [proxy] section but no workers key) gets "workers = N", so the
# suite runs with N worker threads (make check-workers).
WORKERS = os.environ.get("SPILLWAY_WORKERS", "")


def _with_workers(text):
    if not WORKERS or re.search(r"(?m)^\s*workers\s*=", text):
        return text
    return re.sub(r"(?m)^\[proxy\][ \t]*$", "[proxy]\nworkers = %s" % WORKERS,
                  text, count=1)


class Spillway:
    """
    The real binary with a generated configuration.

    servers: backend addresses ("host:port") or Backend objects.
    proxy, backend: dicts of keys to set or override in [proxy] and
    [backend]; a value of None removes a default key; a list value writes
    the key once per element. listen: list of listen addresses (default one
    ephemeral 127.0.0.1 port). config_text: write this instead.
    sections: more sections after [backend], a list of (name, keys) where
    name is the text between the brackets ("admission", "class api") and
    keys a dict or a list of (key, value) pairs (values as for proxy).
    """

    PROXY_DEFAULTS = {
        "header_timeout": "5s",
        "idle_timeout": "10s",
        "shutdown_timeout": "3s",
        "access_log": "-",
    }
    BACKEND_DEFAULTS = {
        "connect_timeout": "2s",
        "response_timeout": "10s",
    }

    def __init__(self, servers=(), proxy=None, backend=None, listen=None,
                 config_text=None, start=True, nofile=None, name="spillway",
                 sections=None):
        require_binary()
        self.name = name
        self.tmpdir = tempfile.mkdtemp(prefix="spillway-it-")
        self.proc = None
        self.stopped = False
        self.stop_rc = None
        self.nofile = nofile
        if listen is None:
            listen = ["%s:%d" % (LOCALHOST, free_port())]
        self.listen = list(listen)
        # a listen address may be followed by words ("fault_injection")
        self.port = int(self.listen[0].split()[0].rsplit(":", 1)[1])
        self.host = self.listen[0].split()[0].rsplit(":", 1)[0].strip("[]")
        # what the configuration was made of, for reconfigure()
        self.spec = {"servers": list(servers), "proxy": dict(proxy or {}),
                     "backend": dict(backend or {}),
                     "sections": list(sections or ())}
        if config_text is None:
            config_text = self._config(servers, proxy or {}, backend or {},
                                       sections or ())
        else:
            config_text = _with_workers(config_text)
        self.config_text = config_text
        self.config_path = os.path.join(self.tmpdir, "spillway.ini")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.stderr_path = os.path.join(self.tmpdir, "stderr")
        self.stdout_path = os.path.join(self.tmpdir, "stdout")
        register(self)
        if start:
            self.start()

    def path(self, name):
        """A path inside this instance's temporary directory."""
        return os.path.join(self.tmpdir, name)

    def _config(self, servers, proxy, backend, sections=()):
        p = dict(self.PROXY_DEFAULTS)
        if WORKERS:
            p["workers"] = WORKERS
        p.update(proxy)
        b = dict(self.BACKEND_DEFAULTS)
        b.update(backend)
        lines = ["# generated by tests/integration/harness.py", "[proxy]"]
        for a in self.listen:
            lines.append("listen = %s" % a)
        for k, v in p.items():
            if v is None:
                continue
            for x in (v if isinstance(v, list) else [v]):
                lines.append("%s = %s" % (k, _ini_value(x)))
        lines.append("")
        lines.append("[backend]")
        for s in servers:
            lines.append("server = %s" % (s.addr if isinstance(s, Backend)
                                          else s))
        for k, v in b.items():
            if v is None:
                continue
            for x in (v if isinstance(v, list) else [v]):
                lines.append("%s = %s" % (k, _ini_value(x)))
        for sname, keys in sections:
            lines.append("")
            lines.append("[%s]" % sname)
            items = keys.items() if isinstance(keys, dict) else keys
            for k, v in items:
                if v is None:
                    continue
                for x in (v if isinstance(v, list) else [v]):
                    lines.append("%s = %s" % (k, _ini_value(x)))
        return "\n".join(lines) + "\n"

    def _preexec(self):
        if self.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (self.nofile, self.nofile))

    def start(self, wait=True, timeout=5.0):
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(
            WRAPPER + [SPILLWAY_BIN, "-c", self.config_path],
            stdin=subprocess.DEVNULL,
            stdout=self._out, stderr=self._err,
            preexec_fn=self._preexec if self.nofile else None)
        if wait:
            self.wait_listening(timeout * (4 if WRAPPER else 1))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_listening(self, timeout=5.0):
        """Wait until every listen address has a listening socket."""
        ports = [int(a.split()[0].rsplit(":", 1)[1]) for a in self.listen]
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "spillway exited with status %s at start-up; stderr:\n%s"
                    % (self.proc.returncode, self.stderr_tail(20)))
            if os.path.isdir("/proc/%d" % self.pid):
                if all(pid_listens_on(self.pid, p) for p in ports):
                    return
            elif self._connect_probe():
                return
            if time.monotonic() >= deadline:
                raise AssertionError("spillway is not listening on %s "
                                     "after %.1fs" % (self.listen, timeout))
            time.sleep(0.01)

    def _connect_probe(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.2)
        try:
            s.connect((self.host, self.port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def signal(self, sig):
        """Send sig; after a stopping signal the exit is expected."""
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL,
                   signal.SIGQUIT):
            self.stopped = True
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; return the status, or None at timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=5.0, sig=None):
        """Send sig (SIGTERM), wait up to timeout, then SIGKILL. Return
        the status (negative: killed by that signal)."""
        sig = sig or signal.SIGTERM
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.stopped = True
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait(5)
        self.stopped = True
        return self.proc.returncode

    def stderr_text(self):
        if getattr(self, "_final_stderr", None) is not None:
            return self._final_stderr
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=25):
        lines = self.stderr_text().splitlines()
        return "\n".join(lines[-n:]) if lines else "(empty)"

    def read_config(self):
        """The text of the configuration file as it is now on disk."""
        with open(self.config_path) as f:
            return f.read()

    def write_config(self, text):
        """Replace the configuration file (a temporary file renamed over
        it, so that a reload never reads half a file). Does not reload."""
        text = _with_workers(text)
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        self.config_text = text
        return text

    def reconfigure(self, servers=None, proxy=None, backend=None,
                    listen=None, sections=None):
        """Rewrite the configuration file from the constructor's kind of
        arguments; an argument left out (None) keeps the value it had (each
        one is replaced whole, not merged). listen replaces the list of
        listen addresses (self.port stays the first original one). Does not
        reload: see reload(). Returns the new text."""
        for k, v in (("servers", servers), ("proxy", proxy),
                     ("backend", backend), ("sections", sections)):
            if v is not None:
                self.spec[k] = list(v) if k in ("servers", "sections") \
                    else dict(v)
        if listen is not None:
            self.listen = list(listen)
        return self.write_config(self._config(
            self.spec["servers"], self.spec["proxy"], self.spec["backend"],
            self.spec["sections"]))

    def reload(self):
        """Send SIGHUP (a reload request, not a stop)."""
        self.proc.send_signal(signal.SIGHUP)

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])     # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def close(self):
        problems = []
        if self.proc is not None:
            crashed = self.proc.poll() is not None and not self.stopped
            if crashed:
                rc = self.proc.returncode
                what = ("signal %s" % signal.Signals(-rc).name) if rc < 0 \
                    else "status %d" % rc
                problems.append("spillway exited by itself (%s) during the "
                                "test" % what)
            elif self.proc.poll() is None:
                t0 = time.monotonic()
                rc = self.stop(timeout=6)
                took = time.monotonic() - t0
                if rc == -signal.SIGKILL:
                    problems.append("spillway still running %.1fs after "
                                    "SIGTERM at the end of the test; killed"
                                    % took)
                elif rc != 0:
                    problems.append("spillway exit status %s after SIGTERM "
                                    "at the end of the test" % rc)
            self._err.close()
            self._out.close()
        self.problems = problems
        self._final_stderr = self.stderr_text()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        return problems

    def __repr__(self):
        return "<Spillway pid=%s %s>" % (self.proc and self.proc.pid,
                                         self.listen)


# --------------------------------------------------------------------------
# Prometheus text exposition format 0.0.4

_PROM_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROM_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_PROM_FLOAT_RE = re.compile(
    r"^[+-]?(?:Inf|NaN|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$")
PROM_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def prom_float(s):
    """A sample value: a Go-style float, +Inf, -Inf or NaN."""
    if not _PROM_FLOAT_RE.match(s):
        raise ProtocolError("bad sample value %r" % s)
    return float(s.replace("Inf", "inf").replace("NaN", "nan"))


class PromFamily:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []       # [(sample name, {label: value}, value)]

    def __repr__(self):
        return "<PromFamily %s %s %d samples>" % (self.name, self.type,
                                                  len(self.samples))


class PromMetrics:
    """What parse_prometheus() returns: families by name, samples in order."""

    def __init__(self):
        self.families = {}      # name -> PromFamily
        self.samples = []       # [(sample name, labels, value)]

    def find(self, name, **labels):
        """Samples named `name` whose labels include `labels`."""
        return [s for s in self.samples if s[0] == name and
                all(s[1].get(k) == v for k, v in labels.items())]

    def value(self, name, default=None, **labels):
        """The value of the one sample that matches; default if none;
        AssertionError if several do."""
        got = self.find(name, **labels)
        if not got:
            return default
        if len(got) > 1:
            raise AssertionError("%d samples match %s%r" % (len(got), name,
                                                          labels))
        return got[0][2]

    def sum(self, name, **labels):
        """The sum of the values of the samples that match (0 if none)."""
        return sum(s[2] for s in self.find(name, **labels))


def _prom_labels(line, i):
    """Parse {l="v",...} starting at line[i] == "{"; return (labels, i)."""
    labels = {}
    i += 1
    n = len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == "}":
            return labels, i + 1
        m = _PROM_LABEL_RE.match(line, i)
        if not m:
            raise ProtocolError("bad label name at column %d" % i)
        lname = m.group(0)
        i = m.end()
        while i < n and line[i] in " \t":
            i += 1
        if i >= n or line[i] != "=":
            raise ProtocolError("no '=' after label %s" % lname)
        i += 1
        while i < n and line[i] in " \t":
            i += 1
        if i >= n or line[i] != '"':
            raise ProtocolError("label %s: value not quoted" % lname)
        i += 1
        val = []
        while True:
            if i >= n:
                raise ProtocolError("label %s: unterminated value" % lname)
            c = line[i]
            if c == "\\":
                if i + 1 >= n or line[i + 1] not in '\\"n':
                    raise ProtocolError("label %s: bad escape %r"
                                        % (lname, line[i:i + 2]))
                val.append("\n" if line[i + 1] == "n" else line[i + 1])
                i += 2
                continue
            if c == '"':
                i += 1
                break
            val.append(c)
            i += 1
        if lname in labels:
            raise ProtocolError("label %s given twice" % lname)
        if lname.startswith("__"):
            raise ProtocolError("reserved label name %s" % lname)
        labels[lname] = "".join(val)
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == ",":
            i += 1
            continue
        if i < n and line[i] == "}":
            return labels, i + 1
        raise ProtocolError("expected ',' or '}' after label %s" % lname)


def _prom_unescape_help(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "\\n":
            out.append("\n" if s[i + 1] == "n" else "\\")
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _prom_family_of(name, types):
    """The family a sample name belongs to: itself if it has a TYPE, else
    the histogram/summary it is a _bucket/_sum/_count of; None if none."""
    if name in types:
        return name
    for suf, kinds in (("_bucket", ("histogram",)),
                       ("_sum", ("histogram", "summary")),
                       ("_count", ("histogram", "summary"))):
        if name.endswith(suf) and types.get(name[:-len(suf)]) in kinds:
            return name[:-len(suf)]
    return None


def parse_prometheus(text):
    """Parse and check Prometheus text format 0.0.4. Raises ProtocolError
    naming the line on anything malformed: a bad line, a sample without a
    TYPE'd family (TYPE must come before the samples), a TYPE or HELP given
    twice, a family whose lines are not together, a duplicate series, a
    negative or NaN counter, a histogram whose buckets are not ascending
    and cumulative, lack +Inf, or whose +Inf differs from _count or has no
    _sum. Returns PromMetrics."""
    out = PromMetrics()
    types = {}
    seen_series = set()
    done = set()            # families whose block of lines has ended
    current = None          # family of the previous line
    if text and not text.endswith("\n"):
        raise ProtocolError("the exposition does not end with a newline")
    for lineno, line in enumerate(text.split("\n"), 1):
        where = "line %d %r" % (lineno, line[:200])
        try:
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    name = parts[2]
                    if not _PROM_NAME_RE.fullmatch(name):
                        raise ProtocolError("bad metric name %r" % name)
                    fam = out.families.get(name)
                    if fam is None:
                        fam = out.families[name] = PromFamily(name)
                    if name in done:
                        raise ProtocolError("%s %s after its family's block"
                                            % (parts[1], name))
                    if current is not None and current != name:
                        done.add(current)
                    current = name
                    if parts[1] == "HELP":
                        if fam.help is not None:
                            raise ProtocolError("second HELP for %s" % name)
                        fam.help = _prom_unescape_help(
                            parts[3] if len(parts) > 3 else "")
                    else:
                        if fam.type is not None:
                            raise ProtocolError("second TYPE for %s" % name)
                        if fam.samples:
                            raise ProtocolError("TYPE %s after its samples"
                                                % name)
                        t = parts[3].strip() if len(parts) > 3 else ""
                        if t not in PROM_TYPES:
                            raise ProtocolError("unknown type %r" % t)
                        fam.type = t
                        types[name] = t
                continue        # any other comment
            m = _PROM_NAME_RE.match(line)
            if not m:
                raise ProtocolError("bad metric name")
            name = m.group(0)
            i = m.end()
            labels = {}
            if i < len(line) and line[i] == "{":
                labels, i = _prom_labels(line, i)
            rest = line[i:]
            if not rest or rest[0] not in " \t":
                raise ProtocolError("no blank before the value")
            fields = rest.split()
            if len(fields) not in (1, 2):
                raise ProtocolError("expected a value and maybe a timestamp")
            value = prom_float(fields[0])
            if len(fields) == 2 and not re.fullmatch(r"-?[0-9]+", fields[1]):
                raise ProtocolError("bad timestamp %r" % fields[1])
            famname = _prom_family_of(name, types)
            if famname is None:
                raise ProtocolError("sample %s has no TYPE'd family" % name)
            if famname in done:
                raise ProtocolError("sample of %s after its family's block"
                                    % famname)
            if current is not None and current != famname:
                done.add(current)
            current = famname
            fam = out.families[famname]
            key = (name, tuple(sorted(labels.items())))
            if key in seen_series:
                raise ProtocolError("duplicate series %s%r" % (name, labels))
            seen_series.add(key)
            if fam.type == "counter" and (value != value or value < 0):
                raise ProtocolError("counter %s is %r" % (name, value))
            if fam.type == "histogram" and name == famname + "_bucket" \
                    and "le" not in labels:
                raise ProtocolError("bucket without le")
            s = (name, labels, value)
            fam.samples.append(s)
            out.samples.append(s)
        except ProtocolError as e:
            raise ProtocolError("%s: %s" % (where, e))
    for fam in out.families.values():
        if fam.type == "histogram":
            _prom_check_histogram(fam)
    return out


def _prom_check_histogram(fam):
    groups = {}
    for name, labels, value in fam.samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None,
                                     "count": None})
        if name == fam.name + "_bucket":
            g["buckets"].append((prom_float(labels["le"]), value,
                                 labels["le"]))
        elif name == fam.name + "_sum":
            g["sum"] = value
        elif name == fam.name + "_count":
            g["count"] = value
        else:
            raise ProtocolError("histogram %s has a plain sample %s"
                                % (fam.name, name))
    for rest, g in groups.items():
        what = "histogram %s%r" % (fam.name, dict(rest))
        b = g["buckets"]
        if not b:
            raise ProtocolError("%s: no buckets" % what)
        les = [x[0] for x in b]
        if les != sorted(les) or len(set(les)) != len(les):
            raise ProtocolError("%s: le not strictly ascending: %r"
                                % (what, [x[2] for x in b]))
        if les[-1] != float("inf"):
            raise ProtocolError("%s: no +Inf bucket" % what)
        counts = [x[1] for x in b]
        for a, c in zip(counts, counts[1:]):
            if c < a:
                raise ProtocolError("%s: buckets not cumulative: %r"
                                    % (what, counts))
        if any(c != int(c) or c < 0 for c in counts):
            raise ProtocolError("%s: non-integer bucket counts %r"
                                % (what, counts))
        if g["count"] is None or g["sum"] is None:
            raise ProtocolError("%s: _count or _sum missing" % what)
        if counts[-1] != g["count"]:
            raise ProtocolError("%s: +Inf bucket %r != _count %r"
                                % (what, counts[-1], g["count"]))


# --------------------------------------------------------------------------
# helpers shared by the test files: the access log, the admin listener

def access_lines(path, want, timeout=3.0):
    """The access log's lines once want holds: want is a number of lines,
    or a predicate on the list of lines (the log is flushed about once a
    second)."""
    pred = want if callable(want) else (lambda ls: len(ls) >= want)

    def lines():
        try:
            with open(path, "rb") as f:
                ls = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return None
        return ls if pred(ls) else None
    got = wait_for(lines, timeout=timeout, interval=0.05)
    if not got:
        try:
            with open(path, "rb") as f:
                have = f.read().decode("utf-8", "replace")
        except OSError as e:
            have = repr(e)
        raise AssertionError("access log not as expected (%s) within %.1fs; "
                             "has:\n%s" % (want if not callable(want) else
                                           "predicate", timeout, have))
    return got


def log_fields(line):
    """(status, class, reason, request) of an access log line:
    TIME CLIENT "REQUEST" STATUS BYTES TOTAL UPSTREAM SERVER CLASS REASON"""
    m = re.match(r'^(\S+) (\S+) "([^"]*)" (\d{3}) (\d+) (\S+) (\S+) (\S+) '
                 r'(\S+) (\S+)$', line)
    check(m is not None, "access log line not in the expected format: %r"
          % line)
    return int(m.group(4)), m.group(9), m.group(10), m.group(3)


def admin_spillway(servers, sections=(), **kw):
    """A Spillway with an [admin] section on a free port; waits for the
    admin listener too. sp.admin_port is its port."""
    ap = free_port()
    sp = Spillway(servers, sections=list(sections) +
                  [("admin", {"listen": "%s:%d" % (LOCALHOST, ap)})], **kw)
    sp.admin_port = ap
    check(wait_for(lambda: pid_listens_on(sp.pid, ap), 5),
          "no admin listener on port %d" % ap)
    return sp


def admin(sp, path, method="GET", body=None, timeout=5.0):
    """A request to sp's admin listener (see admin_spillway)."""
    return get(sp.admin_port, path, method=method, body=body,
               timeout=timeout)


def metrics(sp):
    """sp's GET /metrics, parsed (see parse_prometheus)."""
    r = admin(sp, "/metrics")
    eq(r.status, 200, "GET /metrics status (%r)" % r)
    return parse_prometheus(r.body.decode("utf-8"))
