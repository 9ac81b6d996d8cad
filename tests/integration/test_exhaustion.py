#!/usr/bin/env python3
"""Resource exhaustion: slow header senders (slowloris), slow and stalled
request bodies (body_timeout), slow readers of large responses, a client
that pipelines and never reads, 10,000 idle connections, a flood of new
connections, a descriptor limit of 64 (the admin listener's too), a flood
of connections on the admin port. In each,
other clients are still served, spillway's memory stays bounded, and it
does not spin: its CPU time (utime + stime from /proc) is measured while it
is under attack. (test_limits.py has the EMFILE pause itself.)

These hold many sockets, so they use poll() and never select() (whose
descriptors stop at 1024)."""

import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import (Backend, Client, Spillway, _head_bytes, admin,
                     admin_spillway, build_request, check, diag, echo_path,
                     eq, get, pattern_chunks, register, respond, run_main,
                     skip, test, wait_for)

MB = 1024 * 1024


class Pile:
    """Many raw client sockets, closed together at the end of the test."""

    def __init__(self):
        self.socks = []
        register(self)

    def connect(self, port, n, blocking=True, rst=False):
        """Open n connections; with blocking=False, do not wait for the
        handshake (what cannot connect at once is still counted)."""
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rst:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
            if blocking:
                s.settimeout(10)
                s.connect(("127.0.0.1", port))
            else:
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
            self.socks.append(s)
        return self.socks[-n:]

    def send_all(self, data, socks=None):
        """Send data on each socket that takes it; return how many did."""
        n = 0
        for s in (self.socks if socks is None else socks):
            try:
                s.send(data)
                n += 1
            except OSError:
                pass
        return n

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks = []


def read_until_closed(socks, timeout):
    """Read every socket until it is closed (EOF or reset) or timeout
    passes. Returns ({sock: bytes received}, [socks still open])."""
    got = {s: b"" for s in socks}
    by_fd = {s.fileno(): s for s in socks}
    p = select.poll()
    for fd in by_fd:
        p.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while by_fd and time.monotonic() < deadline:
        for fd, _ in p.poll(max(1, int((deadline - time.monotonic()) *
                                       1000))):
            s = by_fd.get(fd)
            if s is None:
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                got[s] += data
            else:
                p.unregister(fd)
                del by_fd[fd]
    return got, list(by_fd.values())


def served_in(port, path="/", timeout=5.0):
    """Seconds one GET on a new connection takes; fails unless 200."""
    t0 = time.monotonic()
    r = get(port, path, timeout=timeout)
    eq(r.status, 200, "status of a client served meanwhile")
    return time.monotonic() - t0


def cpu_during(sp, seconds):
    """spillway's CPU seconds over the next `seconds` of wall time."""
    c0, t0 = sp.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return sp.cpu_seconds() - c0, time.monotonic() - t0


@test("slowloris: 300 trickling heads get 408 at header_timeout; others "
      "are served meanwhile; no busy loop", timeout=40)
def slowloris():
    be = Backend(echo_path())
    sp = Spillway([be], proxy={"header_timeout": "1500ms",
                               "idle_timeout": "10s"})
    eq(get(sp.port, "/warm").status, 200, "warm-up")
    rss0 = sp.rss_kb()
    pile = Pile()
    socks = pile.connect(sp.port, 300)
    t_start = time.monotonic()
    pile.send_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n")
    line = b"X-Slow-Loris: " + b"a" * 200
    worst, cpu, sent = 0.0, 0.0, 0
    # a byte per connection every 100 ms: the head never ends
    while time.monotonic() - t_start < 1.2:
        c0 = sp.cpu_seconds()
        pile.send_all(line[sent % len(line):sent % len(line) + 1])
        sent += 1
        worst = max(worst, served_in(sp.port, "/other%d" % sent))
        time.sleep(0.1)
        cpu += sp.cpu_seconds() - c0
    wall = time.monotonic() - t_start
    rss = sp.rss_kb()
    diag("300 slow heads: other clients served in at most %.0f ms; "
         "spillway CPU %.2fs in %.2fs; RSS %d -> %d kB"
         % (worst * 1000, cpu, wall, rss0, rss))
    check(worst < 1.0, "a client took %.2fs while 300 heads trickled in"
          % worst)
    check(cpu < 0.5 * wall, "spillway used %.2fs CPU in %.2fs of "
          "trickling heads" % (cpu, wall))
    got, still = read_until_closed(socks, 3.0)
    took = time.monotonic() - t_start
    eq(len(still), 0, "slow connections still open %.1fs after they "
       "began (header_timeout 1.5s)" % took)
    n408 = sum(1 for v in got.values() if v.startswith(b"HTTP/1.1 408 "))
    eq(n408, 300, "slow connections answered 408 before the close")
    eq([r.path for r in be.requests if r.path == "/slow"], [],
       "incomplete heads forwarded")
    check(rss - rss0 < 16 * 1024, "RSS grew %d kB with 300 slow heads"
          % (rss - rss0))
    eq(get(sp.port, "/after").status, 200, "served after the attack")


def _sink():
    """Handler: reads what comes of a Content-Length body (recorded as
    body_len); answers "ok" if it is all there, else closes."""
    def sink(req, conn):
        n = int(req.header("content-length") or 0)
        got = len(conn.reader.buf)
        while got < n:
            if not conn.reader._fill(time.monotonic() + 30):
                break
            got = len(conn.reader.buf)
        req.body_len = got
        conn.reader.buf.clear()
        if got < n:
            return False
        conn.send(_head_bytes(200, [("Content-Length", "2")]) + b"ok")
        return True
    sink.streams_body = True
    return sink


@test("stalled request body: 408 at idle_timeout, the backend's request is "
      "cut; a trickling body holds one slot, others are served", timeout=40)
def slow_body():
    be = Backend(echo_path())
    be.route("/upload", _sink())
    sp = Spillway([be], proxy={"idle_timeout": "1s", "header_timeout": "5s"})
    stalled = Client(sp.port, timeout=5)
    stalled.send(build_request("POST", "/upload", headers=[
        ("Content-Length", "100000")]) + b"x" * 1000)
    check(be.wait_requests(1, 3), "the request never reached the backend")
    t0 = time.monotonic()
    r = stalled.read_response(timeout=5)
    took = time.monotonic() - t0
    eq(r.status, 408, "status after the body stalled")
    check(0.7 < took < 3.0, "408 after %.2fs; idle_timeout is 1s" % took)
    check(stalled.wait_closed(2), "stalled connection not closed after 408")
    check(wait_for(lambda: be.active == 0, 3), "the backend's connection "
          "for the stalled body is still open")
    eq(be.requests[0].body_len, 1000, "body bytes the backend got before "
       "the cut")
    # a body that trickles (a byte every 300 ms, under idle_timeout) is
    # not cut; it holds its one connection while others are served
    trickle = Client(sp.port, timeout=5)
    trickle.send(build_request("POST", "/upload", headers=[
        ("Content-Length", "8")]))
    c0 = sp.cpu_seconds()
    for i in range(8):
        trickle.send(b"y")
        eq(get(sp.port, "/other%d" % i).status, 200, "other client")
        time.sleep(0.3)
    r = trickle.read_response(timeout=5)
    eq((r.status, r.body), (200, b"ok"), "trickled body's response")
    cpu = sp.cpu_seconds() - c0
    check(cpu < 1.0, "spillway used %.2fs CPU relaying a trickle" % cpu)


@test("body_timeout: trickling bodies holding every slot are cut with 408; "
      "the request waiting behind them is served", timeout=30)
def body_timeout():
    be = Backend(echo_path())
    be.route("/upload", _sink())
    sp = Spillway([be], proxy={"idle_timeout": "1s", "body_timeout": "2s"},
                  sections=[("limiter", {"algorithm": "fixed", "limit": 2,
                                         "queue_size": 10,
                                         "queue_timeout": "10s",
                                         "codel_target": "10s"})])
    slow = []
    for i in range(2):
        c = Client(sp.port, timeout=5)
        c.send(build_request("POST", "/upload", headers=[
            ("Content-Length", "1000")]))
        slow.append(c)
    check(be.wait_requests(2, 3), "the slow uploads never reached the "
          "backend")
    t0 = time.monotonic()
    waiting = Client(sp.port, timeout=8)
    waiting.request("GET", "/waiting")
    while time.monotonic() - t0 < 1.5:      # under idle_timeout each time
        for c in slow:
            c.send(b"z")
        time.sleep(0.3)
    for c in slow:
        r = c.read_response(timeout=3)
        eq(r.status, 408, "status of a body past body_timeout")
        check(c.wait_closed(2), "connection not closed after the 408")
    r = waiting.read_response(timeout=5)
    took = time.monotonic() - t0
    eq((r.status, r.body), (200, b"GET /waiting"), "the waiting request")
    check(took < 4.0, "the waiting request took %.1fs (body_timeout 2s)"
          % took)
    check(wait_for(lambda: be.active <= 1, 3), "the backend connections of "
          "the cut uploads are still open")


@test("20 slow readers of 64 MB responses: RSS bounded, the backend is "
      "held back; closed at idle_timeout", timeout=60)
def slow_readers():
    n, readers = 64 * MB, 20
    sent = {}
    lock = threading.Lock()

    def big(req, conn):
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        conn.send(_head_bytes(200, [("Content-Length", str(n))]))
        for c in pattern_chunks(n):
            if conn.stopping():
                return False
            conn.send(c)
            with lock:
                sent[conn.id] = sent.get(conn.id, 0) + len(c)
        return True
    be = Backend(big)
    be.route("/small", respond(200, b"ok"))
    sp = Spillway([be], proxy={"idle_timeout": "2s"}, sections=[
        ("limiter", {"algorithm": "fixed", "limit": 100})])
    eq(get(sp.port, "/small").status, 200, "warm-up")
    rss0 = sp.rss_kb()
    clients = []
    for i in range(readers):
        c = Client(sp.port, rcvbuf=16384)
        c.request("GET", "/big%d" % i)
        clients.append(c)
    check(wait_for(lambda: len(sent) == readers, 5), "only %d of %d "
          "downloads started" % (len(sent), readers))
    time.sleep(1.0)                 # buffers fill; nobody reads
    cpu, wall = cpu_during(sp, 1.0)
    with lock:
        most = max(sent.values())
        total = sum(sent.values())
    rss = sp.rss_kb()
    diag("%d readers not reading: RSS %d -> %d kB; the backend sent %.1f MB "
         "(at most %.1f MB on one); spillway CPU %.2fs in %.2fs"
         % (readers, rss0, rss, total / MB, most / MB, cpu, wall))
    check(rss - rss0 < 24 * 1024, "spillway RSS grew by %d kB holding %d "
          "responses nobody reads" % (rss - rss0, readers))
    check(most < 16 * MB, "the backend sent %.1f MB of a response nobody "
          "reads: no back-pressure" % (most / MB))
    check(cpu < 0.3, "spillway used %.2fs CPU while its readers stalled"
          % cpu)
    eq(get(sp.port, "/small").status, 200, "another client served")
    # a reader that takes a little and stops again is still in time
    got, _ = read_until_closed([c.sock for c in clients], 6.0)
    check(all(len(v) < n for v in got.values()), "a response completed")
    check(wait_for(lambda: be.active <= 1, 5), "%d backend connections "
          "still open after the readers were cut off" % be.active)
    check(wait_for(lambda: sp.nfds() <= 12, 3), "spillway still has %d "
          "descriptors open" % sp.nfds())


def pipeline_unread(port, seconds):
    """Pipeline GET /p on one connection with a small receive buffer for
    `seconds`, reading nothing. Returns (socket, requests sent whole, bytes
    sent); the socket is left non-blocking."""
    one = build_request("GET", "/p")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    register(Pile()).socks.append(s)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    burst = one * 2000
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            sent += s.send(burst[sent % len(burst):])
        except BlockingIOError:
            time.sleep(0.01)
    return s, sent // len(one), sent


@test("a client that pipelines requests and never reads: parsing stops, "
      "memory stays bounded; every answer arrives once it reads", timeout=40)
def pipelined_non_reader():
    be = Backend(echo_path())
    # refused at once (429): the cheapest answers to pile up
    sp = Spillway([be], sections=[("admission", {"rate": 1, "burst": 1})])
    rss0 = sp.rss_kb()
    s, n, sent = pipeline_unread(sp.port, 3)
    rss = sp.rss_kb()
    diag("%d requests (%.1f MB) sent in 3s without reading; RSS %d -> %d kB"
         % (n, sent / MB, rss0, rss))
    check(rss - rss0 < 8 * 1024, "RSS grew by %d kB: answers pile up in "
          "memory" % (rss - rss0))
    s.setblocking(True)
    s.settimeout(10)
    got, count = bytearray(), 0
    while count < n:
        data = s.recv(1 << 20)
        if not data:
            break
        got += data
        count += got.count(b"HTTP/1.1 ")
        del got[:max(0, len(got) - 8)]     # no whole match left
    eq(count, n, "answers received")


@test("graceful stop with pipelined answers unread: they are finished, "
      "whole, before the close", timeout=40)
def stop_with_answers_unread():
    be = Backend(echo_path())
    sp = Spillway([be], proxy={"shutdown_timeout": "5s"},
                  sections=[("admission", {"rate": 1, "burst": 1})])
    s = pipeline_unread(sp.port, 1.5)[0]
    sp.signal(signal.SIGTERM)
    time.sleep(0.3)
    s.setblocking(True)
    s.settimeout(10)
    got = bytearray()
    while True:
        try:
            data = s.recv(1 << 20)
        except ConnectionResetError:
            raise AssertionError("connection reset after %d bytes: the "
                                 "answers were thrown away" % len(got))
        if not data:
            break
        got += data
    diag("%d answers received after SIGTERM, %d bytes"
         % (got.count(b"HTTP/1.1 "), len(got)))
    check(got.endswith(b"429 Too Many Requests\n"), "the stream ends "
          "mid-answer: %r" % bytes(got[-40:]))
    eq(sp.wait(8), 0, "exit status after SIGTERM")


def instrumented(sp):
    """True if spillway runs under ASan or valgrind: more memory per
    allocation, so the memory bounds are doubled."""
    try:
        with open("/proc/%d/maps" % sp.pid) as f:
            maps = f.read()
    except OSError:
        return False
    return "libasan" in maps or "vgpreload" in maps or \
        "__asan" in maps


def _raise_nofile(want):
    """Raise this process's descriptor limit (and with it spillway's, which
    inherits it) to want if allowed; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want or soft == resource.RLIM_INFINITY:
        return soft if soft != resource.RLIM_INFINITY else want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (want, max(want, hard) if hard !=
                            resource.RLIM_INFINITY else hard))
        return want
    except (ValueError, OSError):
        pass
    if hard != resource.RLIM_INFINITY and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@test("10,000 idle connections: another client is served at once; memory "
      "per connection is small", timeout=90)
def ten_thousand_idle():
    want_n, keepalive = 10000, 4
    # spillway keeps two descriptors per connection (one for its backend)
    # and a reserve: max_connections is lowered to what fits (main.c)
    limit = _raise_nofile(2 * want_n + 200)
    n = min(want_n, (limit - keepalive - 17) // 2 - 50)
    if n < 1000:
        skip("the descriptor limit (%d, hard limit included) allows only "
             "%d connections" % (limit, n))
    be = Backend(echo_path())
    sp = Spillway([be], proxy={"max_connections": n + 50,
                               "header_timeout": "60s",
                               "idle_timeout": "60s"},
                  backend={"keepalive": keepalive})
    eq(get(sp.port, "/warm").status, 200, "warm-up")
    rss0, fds0 = sp.rss_kb(), sp.nfds()
    pile = Pile()
    t0 = time.monotonic()
    for i in range(0, n, 500):
        pile.connect(sp.port, min(500, n - i))
    check(wait_for(lambda: sp.nfds() >= fds0 + n - 2, 20), "spillway holds "
          "%d descriptors, expected %d" % (sp.nfds(), fds0 + n))
    took = time.monotonic() - t0
    rss = sp.rss_kb()
    per = (rss - rss0) * 1024.0 / n
    cpu, wall = cpu_during(sp, 1.0)
    worst = max(served_in(sp.port, "/other%d" % i) for i in range(5))
    diag("%d idle connections opened in %.1fs: RSS %d -> %d kB, %.0f bytes "
         "per connection; another client served in %.1f ms; CPU while "
         "idle %.2fs in %.2fs" % (n, took, rss0, rss, per, worst * 1000,
                                   cpu, wall))
    if n < want_n:
        diag("only %d connections: the descriptor limit is %d" % (n, limit))
    check(worst < 1.0, "a client took %.0f ms with %d idle connections "
          "open" % (worst * 1000, n))
    bound = 16384 * (2 if instrumented(sp) else 1)
    check(per < bound, "%.0f bytes of RSS per idle connection (at most %d)"
          % (per, bound))
    check(cpu < 0.2, "spillway used %.2fs CPU holding idle connections"
          % cpu)
    pile.close()
    check(wait_for(lambda: sp.nfds() <= fds0 + 2, 10), "spillway still "
          "holds %d descriptors after the clients closed (%d before)"
          % (sp.nfds(), fds0))
    eq(get(sp.port, "/after").status, 200, "served after")


@test("a flood of 5,000 connections that close at once: spillway keeps "
      "serving and keeps nothing", timeout=60)
def connection_flood():
    be = Backend(echo_path())
    # the flood's whole requests are proxied, then abandoned: no shedding
    # in the way, this is about connections
    sp = Spillway([be], sections=[("limiter", {"algorithm": "fixed",
                                               "limit": 1000})])
    eq(get(sp.port, "/warm").status, 200, "warm-up")
    fds0 = sp.nfds()
    worst, done = [0.0], threading.Event()
    errors = []

    def other():
        i = 0
        while not done.is_set():
            try:
                worst[0] = max(worst[0], served_in(sp.port, "/o%d" % i))
            except Exception as e:      # noqa: reported below
                errors.append(repr(e))
                return
            i += 1
            time.sleep(0.02)
    t = threading.Thread(target=other, daemon=True)
    t.start()
    c0, t0 = sp.cpu_seconds(), time.monotonic()
    opened = 0
    for batch in range(50):
        pile = Pile()
        # half reset at close, most others close after a partial head,
        # a few after a whole request they do not wait for (each costs the
        # thread-per-connection test backend a connection)
        socks = pile.connect(sp.port, 50, rst=True)
        socks += pile.connect(sp.port, 50)
        pile.send_all(b"GET /fl", socks[50:95])
        pile.send_all(build_request("GET", "/flood"), socks[95:])
        opened += len(socks)
        pile.close()
    wall = time.monotonic() - t0
    cpu = sp.cpu_seconds() - c0
    done.set()
    t.join(10)
    check(not errors, "a client failed during the flood: %s" % errors[:3])
    diag("%d connections in %.1fs (%.0f/s); other clients served in at "
         "most %.0f ms; spillway CPU %.2fs"
         % (opened, wall, opened / wall, worst[0] * 1000, cpu))
    check(sp.alive(), "spillway died")
    check(worst[0] < 1.0, "a client took %.2fs during the flood" % worst[0])
    check(wait_for(lambda: sp.nfds() <= fds0 + 2, 10), "spillway holds %d "
          "descriptors after the flood (%d before)" % (sp.nfds(), fds0))
    eq(get(sp.port, "/after").status, 200, "served after the flood")


@test("a burst of connections while spillway is busy waits in a listen "
      "backlog as long as net.core.somaxconn allows: no SYN dropped",
      timeout=30)
def listen_backlog():
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    n = min(somaxconn, 2000) - 50   # the kernel may hold one past it
    be = Backend(echo_path())
    sp = Spillway([be])
    eq(get(sp.port, "/before").status, 200, "served before")
    pile = Pile()
    os.kill(sp.pid, signal.SIGSTOP)     # a loop busy elsewhere: no accept
    try:
        socks = pile.connect(sp.port, n, blocking=False)
        p = select.poll()
        for s in socks:
            p.register(s.fileno(), select.POLLOUT)
        up, deadline = set(), time.monotonic() + 2.0
        while len(up) < n and time.monotonic() < deadline:
            for fd, ev in p.poll(100):
                up.add(fd)
                p.unregister(fd)
    finally:
        os.kill(sp.pid, signal.SIGCONT)
    diag("%d of %d connections established while spillway was stopped "
         "(somaxconn %d)" % (len(up), n, somaxconn))
    # nginx's 511 would leave the rest in SYN-SENT, retried a second later
    eq(len(up), n, "connections the kernel queued for spillway")
    pile.close()
    eq(get(sp.port, "/after").status, 200, "served after")
    check(sp.alive(), "spillway died")


@test("ulimit -n 64: idle connections beyond the limit wait, spillway does "
      "not spin, stays within its descriptors, serves again", timeout=40)
def nofile_64():
    be = Backend(echo_path())
    sp = Spillway([be], nofile=64, proxy={"header_timeout": "1s",
                                          "idle_timeout": "10s"})
    eq(get(sp.port, "/before").status, 200, "served before")
    pile = Pile()
    pile.connect(sp.port, 150, blocking=False)
    time.sleep(0.5)
    check(sp.alive(), "spillway died")
    cpu, wall = cpu_during(sp, 2.0)
    nfds = sp.nfds()
    diag("150 idle connections at ulimit -n 64: %d descriptors open, "
         "spillway CPU %.2fs in %.2fs" % (nfds, cpu, wall))
    check(nfds <= 64, "%d descriptors open at a limit of 64" % nfds)
    check(cpu < 0.3, "spillway used %.2fs CPU in %.2fs while out of "
          "connections: spinning?" % (cpu, wall))
    # the idle ones are cut at header_timeout, a batch at a time, and the
    # waiting ones accepted: each gets a verdict (a close) in the end
    got, still = read_until_closed(pile.socks, 20.0)
    eq(len(still), 0, "connections never accepted or never closed")
    pile.close()
    t0 = time.monotonic()
    eq(get(sp.port, "/after").status, 200, "served after")
    check(time.monotonic() - t0 < 1.0, "first request after took %.2fs"
          % (time.monotonic() - t0))
    check(sp.alive(), "spillway died")


@test("admin listener out of descriptors: paused, not spinning; serves "
      "again once its connections close", timeout=30)
def admin_out_of_descriptors():
    be = Backend(echo_path())
    sp = admin_spillway([be], nofile=64)
    eq(admin(sp, "/status").status, 200, "admin before")
    pile = Pile()
    pile.connect(sp.admin_port, 80, blocking=False)
    time.sleep(0.5)
    cpu, wall = cpu_during(sp, 2.0)
    diag("80 idle admin connections at ulimit -n 64: %d descriptors open, "
         "spillway CPU %.2fs in %.2fs" % (sp.nfds(), cpu, wall))
    check(cpu < 0.3, "spillway used %.2fs CPU in %.2fs with its admin "
          "listener out of descriptors: spinning?" % (cpu, wall))
    check("pausing" in sp.stderr_text(), "no log line mentioning "
          "'pausing'; stderr:\n%s" % sp.stderr_tail(5))
    # paused every 100 ms for 2.5 s: warned once (at most once per 10 s)
    warned = sp.stderr_text().count("pausing")
    check(warned <= 2, "%d 'pausing' warnings in 2.5 s" % warned)
    pile.close()
    check(wait_for(lambda: sp.nfds() < 40, 5), "%d descriptors still open"
          % sp.nfds())
    r = wait_for(lambda: admin(sp, "/status", timeout=2), 3)
    eq(r.status, 200, "admin after")
    eq(get(sp.port, "/after").status, 200, "proxy after")


def median_served(port, n, tag):
    """The median of n GETs, each on a new connection, in seconds."""
    times = sorted(served_in(port, "/%s%d" % (tag, i)) for i in range(n))
    return times[n // 2]


@test("admin flood: 5,000 connections to the admin port hold at most "
      "[admin] max_connections descriptors; the proxy serves at its usual "
      "latency meanwhile; the admin listener serves again after",
      timeout=90)
def admin_flood():
    flood, cap = 5000, 64
    limit = _raise_nofile(flood + 500)
    if limit < flood + 100:
        skip("the descriptor limit (%d) does not allow %d connections"
             % (limit, flood))
    be = Backend(echo_path())
    # 2048 descriptors: without a cap the flood would take them all, and
    # the proxy's listener would be out of descriptors with it
    sp = admin_spillway([be], nofile=2048)
    eq(admin(sp, "/status").status, 200, "admin before")
    for i in range(20):
        served_in(sp.port, "/warm%d" % i)
    before = median_served(sp.port, 200, "before")
    fds0, rss0 = sp.nfds(), sp.rss_kb()
    pile = Pile()
    t0 = time.monotonic()
    for i in range(0, flood, 500):
        pile.connect(sp.admin_port, 500, blocking=False)
    # the ones that got through hold a partial head, slowloris-like
    time.sleep(0.3)
    heads = pile.send_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n")
    opened = time.monotonic() - t0
    time.sleep(0.3)
    c0 = sp.cpu_seconds()
    during = median_served(sp.port, 200, "during")
    cpu = sp.cpu_seconds() - c0
    fds, rss = sp.nfds(), sp.rss_kb()
    diag("%d admin connections opened in %.1fs (%d took a partial head); "
         "spillway: %d -> %d descriptors, RSS %d -> %d kB; proxy median "
         "%.2f ms before, %.2f ms during (CPU %.2fs for its 200 requests)"
         % (flood, opened, heads, fds0, fds, rss0, rss, before * 1000,
            during * 1000, cpu))
    check(sp.alive(), "spillway died")
    check(fds <= fds0 + cap + 4, "spillway holds %d descriptors during the "
          "flood, %d before: more than max_connections (%d) admin ones"
          % (fds, fds0, cap))
    check(during <= max(3 * before, before + 0.020), "the proxy's median "
          "latency went from %.2f ms to %.2f ms during the admin flood"
          % (before * 1000, during * 1000))
    bound = 16 * 1024 * (2 if instrumented(sp) else 1)
    check(rss - rss0 < bound, "RSS grew by %d kB during the admin flood"
          % (rss - rss0))
    pile.close()

    def status():
        try:
            return admin(sp, "/status", timeout=2).status == 200
        except (OSError, harness.ProtocolError):
            return False
    check(wait_for(status, 10), "admin listener not serving after the "
          "flood")
    check(wait_for(lambda: sp.nfds() <= fds0 + 2, 10), "spillway holds %d "
          "descriptors after the flood (%d before)" % (sp.nfds(), fds0))
    eq(get(sp.port, "/after").status, 200, "proxy after")


if __name__ == "__main__":
    run_main()
