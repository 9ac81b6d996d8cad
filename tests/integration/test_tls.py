#!/usr/bin/env python3
"""TLS: termination on [tls] listeners (TLS 1.2 and 1.3, ALPN http/1.1,
X-Forwarded-Proto https, keep-alive, large bodies both ways, SNI with two
certificates, session resumption), certificates reloaded with the
configuration (new handshakes get the new one, an established connection
keeps its own, a bad file fails the reload and changes nothing), plain
HTTP, garbage, a stalled handshake and renegotiation on the TLS port
(closed, counted, nothing leaks), and TLS to backends with verification.

Certificates are made at test time with the openssl command line."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (admin, admin_spillway, Backend, check, Client, diag, echo,
                     eq, free_port, large, LOCALHOST, metrics,
                     pattern, pid_listens_on, register, respond, run_binary,
                     run_main, sha256, short, skip, Spillway, test, wait_for,
                     _Reader)


# --------------------------------------------------------------------------
# certificates

class Certs:
    """A test CA and leaf certificates signed by it, in a temporary
    directory: make(name, dns_names) -> (chain path, key path)."""

    def __init__(self):
        if shutil.which("openssl") is None:
            skip("no openssl command")
        self.dir = tempfile.mkdtemp(prefix="spillway-tls-")
        self.ca = self.path("ca.pem")
        self.ca_key = self.path("ca.key")
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes",
                  "-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                  "-subj", "/CN=spillway test CA")
        self.serial = 1

    def path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, *args):
        r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise AssertionError("openssl %s: %s" % (args[0],
                                                     r.stderr.decode()))

    def make(self, name, dns=("localhost",), ips=("127.0.0.1",),
             org="spillway"):
        key, csr, crt = (self.path(name + ".key"), self.path(name + ".csr"),
                         self.path(name + ".crt"))
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(
                ["DNS:" + d for d in dns] + ["IP:" + i for i in ips]) + "\n")
        self._run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                  "-out", csr, "-subj", "/O=%s/CN=%s" % (org, dns[0]))
        self.serial += 1
        self._run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
                  self.ca_key, "-set_serial", str(self.serial), "-out", crt,
                  "-days", "2", "-extfile", ext)
        chain = self.path(name + ".chain.pem")
        with open(chain, "w") as out:
            out.write(open(crt).read())
            out.write(open(self.ca).read())
        combined = self.path(name + ".pem")     # chain and key in one file
        with open(combined, "w") as out:
            out.write(open(chain).read())
            out.write(open(key).read())
        return chain, key

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


_certs = None


def certs():
    global _certs
    if _certs is None:
        _certs = Certs()
        _certs.site = _certs.make("site")
        _certs.site2 = _certs.make("site2", org="second")
        _certs.other = _certs.make("other", dns=("other.test",), ips=())
    return _certs


def client_ctx(ca=True, version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(certs().ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


class TLSClient(Client):
    """harness.Client over TLS."""

    def __init__(self, port, ctx=None, server_hostname="localhost",
                 timeout=5.0, session=None, rcvbuf=None):
        super().__init__(port, timeout=timeout, connect=False, rcvbuf=rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(self.addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = (ctx or client_ctx()).wrap_socket(
            self.sock, server_hostname=server_hostname, session=session)
        self.reader = _Reader(self.sock, timeout)


def tls_get(port, target="/", **kw):
    c = TLSClient(port, **kw)
    try:
        r = c.exchange("GET", target)
        r.tls_version = c.sock.version()
        r.alpn = c.sock.selected_alpn_protocol()
        r.cert = c.sock.getpeercert()
        return r
    finally:
        c.close()


def tls_spillway(servers, cert=None, key=None, tls=None, admin=True, **kw):
    """spillway with one plain and one TLS listener; sp.tls_port."""
    c = certs()
    chain, k = cert or c.site[0], key or c.site[1]
    tp = free_port()
    keys = {"listen": "%s:%d" % (LOCALHOST, tp), "certificate": chain,
            "private_key": k, "handshake_timeout": "1s"}
    keys.update(tls or {})
    sections = [("tls", keys)]
    if admin:
        sp = admin_spillway(servers, sections=sections, **kw)
    else:
        sp = Spillway(servers, sections=sections, **kw)
    sp.tls_port = tp
    check(wait_for(lambda: pid_listens_on(sp.pid, tp), 5),
          "no TLS listener on port %d" % tp)
    return sp


def org_of(cert):
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "organizationName":
                return v
    return None


def tls_counts(sp):
    m = metrics(sp)
    return {r: m.value("spillway_tls_handshakes_total", 0.0, result=r)
            for r in ("ok", "failed", "timeout")}


class TLSBackend(Backend):
    """harness.Backend behind TLS with the given certificate."""

    def __init__(self, chain, key, **kw):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(chain, key)
        self.handshakes = 0
        self.resumed = 0
        self.handshake_errors = 0
        super().__init__(**kw)

    def _serve(self, sock, cid):
        sock.settimeout(5)
        try:
            s = self.ctx.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.handshake_errors += 1
            sock.close()
            return
        s.settimeout(None)
        with self.lock:
            self.handshakes += 1
            self.resumed += s.session_reused
        super()._serve(s, cid)


# --------------------------------------------------------------------------
# termination

@test("TLS 1.3 and 1.2: request proxied, ALPN http/1.1, "
      "X-Forwarded-Proto https")
def t_versions():
    be = Backend(echo())
    sp = tls_spillway([be])
    for ver, name in ((ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
                      (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        r = tls_get(sp.tls_port, "/v", ctx=client_ctx(version=ver))
        eq(r.status, 200, "%s status" % name)
        eq(r.tls_version, name, "negotiated version")
        eq(r.alpn, "http/1.1", "ALPN with a client offering h2 first")
    reqs = be.requests
    eq(len(reqs), 2, "requests at the backend")
    for q in reqs:
        eq(q.header("x-forwarded-proto"), "https", "X-Forwarded-Proto")
    # the plain listener still says http
    c = Client(sp.port)
    eq(c.exchange("GET", "/p").status, 200, "plain status")
    eq(be.requests[-1].header("x-forwarded-proto"), "http",
       "X-Forwarded-Proto on the plain listener")
    eq(tls_counts(sp)["ok"], 2.0, "handshakes counted")
    st = json.loads(admin(sp, "/status").body)
    eq(st["tls"]["handshakes"], 2, "/status tls.handshakes")
    eq(st["config"]["tls"]["listen"], ["%s:%d" % (LOCALHOST, sp.tls_port)],
       "/status config.tls.listen")
    eq(st["config"]["tls"]["protocols"], ["TLSv1.2", "TLSv1.3"],
       "/status config.tls.protocols")


@test("a client spoofing X-Forwarded-Proto over plain HTTP is corrected")
def t_xfp_spoof():
    be = Backend(echo())
    sp = tls_spillway([be], admin=False)
    c = Client(sp.port)
    eq(c.exchange("GET", "/", [("X-Forwarded-Proto", "https")]).status, 200,
       "status")
    eq(be.requests[-1].headers_named("x-forwarded-proto"), ["http"],
       "X-Forwarded-Proto values")


@test("protocols = TLSv1.3: a TLS 1.2 client is refused and counted")
def t_protocols():
    be = Backend()
    sp = tls_spillway([be], tls={"protocols": "TLSv1.3"})
    try:
        tls_get(sp.tls_port, ctx=client_ctx(version=ssl.TLSVersion.TLSv1_2))
        raise AssertionError("a TLS 1.2 handshake succeeded")
    except (ssl.SSLError, ConnectionError):
        pass
    eq(tls_get(sp.tls_port).tls_version, "TLSv1.3", "TLS 1.3 still works")
    check(wait_for(lambda: tls_counts(sp)["failed"] == 1.0, 3),
          "failed handshake counted: %r" % tls_counts(sp))
    eq(be.count(), 1, "requests at the backend")


@test("keep-alive and pipelining over TLS: one TLS and one backend "
      "connection")
def t_keepalive():
    be = Backend(echo())
    sp = tls_spillway([be], admin=False)
    c = TLSClient(sp.tls_port)
    for i in range(20):
        r = c.exchange("GET", "/k%d" % i)
        eq(r.status, 200, "request %d" % i)
    # three pipelined in one write
    c.send(b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
                    for i in range(3)))
    for i in range(3):
        r = c.read_response()
        eq(r.status, 200, "pipelined %d" % i)
        eq(r.header("x-echo-target"), "/p%d" % i,
           "pipelined answer %d in order" % i)
    eq(be.accepted, 1, "backend connections")
    eq(len(be.requests), 23, "requests at the backend")


class RecordClient:
    """TLS over memory BIOs, to choose what shares a TCP segment: every
    write() is one TLS record, held until flush() sends all of them in one
    send()."""

    def __init__(self, port, version=None):
        self.sock = socket.create_connection((LOCALHOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_ctx(version=version).wrap_bio(
            self.inc, self.out, server_hostname="localhost")
        self.buf = b""

    def handshake(self):
        """Handshake, but leave our last flight (the client's Finished
        under TLS 1.3) unsent: the next flush() sends it."""
        while True:
            try:
                self.obj.do_handshake()
                return
            except ssl.SSLWantReadError:
                self.flush()
                self._feed()

    def _feed(self):
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError("connection closed")
        self.inc.write(data)

    def write(self, data):
        self.obj.write(data)

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def responses(self, n, within=3.0):
        """n responses with Content-Length: [(status, head, body)]; fails
        if they are not all there within the time (a stall)."""
        got, deadline = [], time.monotonic() + within
        self.sock.settimeout(0.2)
        while len(got) < n:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("latin-1")
                length = 0
                for line in head.split("\r\n")[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                if len(self.buf) >= end + 4 + length:
                    got.append((int(head.split()[1]), head.lower(),
                                self.buf[end + 4:end + 4 + length]))
                    self.buf = self.buf[end + 4 + length:]
                    continue
            try:
                self.buf += self.obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            check(time.monotonic() < deadline,
                  "%d of %d answers within %.0fs: a stall" % (len(got), n,
                                                           within))
            try:
                self._feed()
            except socket.timeout:
                pass
        return got

    def close(self):
        self.sock.close()


@test("records read ahead: a request sent with the client's Finished, a "
      "head in three records, pipelined records and a body in records, "
      "each in one segment, are answered without waiting")
def t_read_ahead():
    be = Backend(echo())
    sp = tls_spillway([be], admin=False)
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        c = RecordClient(sp.tls_port, version)
        c.handshake()
        c.write(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        c.flush()
        r = c.responses(1)
        eq(r[0][0], 200, "%s: request with the Finished" % version)
        for part in (b"GET /split HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            c.write(part)
        c.flush()
        r = c.responses(1)
        check("x-echo-target: /split" in r[0][1],
              "%s: head in three records: %r" % (version, r[0][1]))
        for i in range(3):
            c.write(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        c.flush()
        r = c.responses(3)
        eq([("x-echo-target: /p%d" % i) in r[i][1] for i in range(3)],
           [True] * 3, "%s: pipelined records answered in order" % version)
        body = bytes(range(256)) * 40
        c.write(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                b"\r\n\r\n" % len(body))
        for i in range(0, len(body), 1000):
            c.write(body[i:i + 1000])
        c.flush()
        r = c.responses(1)
        eq(r[0][2], body, "%s: body in %d records" % (
            version, (len(body) + 999) // 1000))
        c.close()
    eq(len(be.requests), 12, "requests at the backend")


@test("large bodies both ways over TLS: 8 MiB up, 16 MiB down to a slow "
      "reader, memory bounded", timeout=90)
def t_large():
    n_up, n_down = 8 << 20, 16 << 20
    be = Backend(respond(200, b"ok"))
    be.route("/down", large(n_down))
    sp = tls_spillway([be], admin=False, proxy={"max_body_size": "0"})
    c = TLSClient(sp.tls_port, timeout=30)
    body = pattern(n_up)
    r = c.exchange("POST", "/up", [("Content-Type", "application/x")], body)
    eq(r.status, 200, "upload status")
    eq(sha256(be.requests[-1].body), sha256(body), "upload digest at the "
       "backend")
    rss0 = sp.rss_kb()
    c.request("GET", "/down")
    r0 = c.reader
    head = r0.read_head(time.monotonic() + 10)
    check(b" 200 " in head.split(b"\r\n")[0], "download status: %r" %
          short(head))
    got, peak, deadline = 0, 0, time.monotonic() + 60
    import hashlib
    h = hashlib.sha256()
    while got < n_down:
        want = min(65536, n_down - got)
        part = r0.read_exact(want, deadline)
        h.update(part)
        got += len(part)
        if (got >> 16) % 16 == 0:
            time.sleep(0.01)        # a slow reader
            peak = max(peak, sp.rss_kb())
    eq(h.hexdigest(), sha256(large_payload(n_down)), "download digest")
    diag("RSS before %d KiB, peak during the slow download %d KiB" %
         (rss0, peak))
    check(peak - rss0 < 4096, "RSS grew by %d KiB during a 16 MiB download "
          "over TLS" % (peak - rss0))


def large_payload(n):
    """What harness.large(n) sends."""
    return pattern(n)


@test("SNI: the certificate that names the host, else the first")
def t_sni():
    c = certs()
    be = Backend()
    sp = tls_spillway([be], admin=False, tls={
        "certificate": [c.site[0], c.other[0]],
        "private_key": [c.site[1], c.other[1]]})
    r = tls_get(sp.tls_port, server_hostname="other.test")
    eq(r.status, 200, "status with SNI other.test")
    eq(r.cert["subjectAltName"], (("DNS", "other.test"),),
       "certificate for other.test")
    r = tls_get(sp.tls_port, server_hostname="localhost")
    eq(org_of(r.cert), "spillway", "certificate for localhost")
    ctx = client_ctx()
    ctx.check_hostname = False
    r = tls_get(sp.tls_port, server_hostname=None, ctx=ctx)
    eq(org_of(r.cert), "spillway", "no SNI: the first certificate")


@test("session resumption: TLS 1.2 by ticket and by cache, TLS 1.3")
def t_resumption():
    be = Backend()
    for tickets in ("yes", "no"):
        sp = tls_spillway([be], admin=False,
                          tls={"session_tickets": tickets})
        for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_ctx(version=ver)
            c1 = TLSClient(sp.tls_port, ctx=ctx)
            eq(c1.exchange("GET", "/").status, 200, "first")
            sess = c1.sock.session
            c1.close()
            c2 = TLSClient(sp.tls_port, ctx=ctx, session=sess)
            eq(c2.exchange("GET", "/").status, 200, "second")
            check(c2.sock.session_reused, "session not resumed (tickets "
                  "%s, %s)" % (tickets, ver.name))
            c2.close()
        sp.stop()


# --------------------------------------------------------------------------
# reload

@test("certificate reload: new handshakes get the new certificate, an "
      "established connection keeps its own")
def t_reload_cert():
    c = certs()
    be = Backend(echo())
    sp = tls_spillway([be])
    old = TLSClient(sp.tls_port)
    eq(old.exchange("GET", "/before").status, 200, "before")
    eq(org_of(old.sock.getpeercert()), "spillway", "first certificate")
    text = sp.read_config().replace(c.site[0], c.site2[0]).replace(
        c.site[1], c.site2[1])
    sp.write_config(text)
    sp.reload()
    check(wait_for(lambda: metrics(sp).value(
        "spillway_config_reloads_total", 0, result="ok") == 1, 5),
        "reload not done: %s" % sp.stderr_tail())
    r = tls_get(sp.tls_port)
    eq(org_of(r.cert), "second", "new handshake, new certificate")
    eq(old.exchange("GET", "/after").status, 200, "old connection after")
    eq(org_of(old.sock.getpeercert()), "spillway", "old connection's own")


@test("a bad certificate or key fails the reload with FILE:LINE and keeps "
      "the running one")
def t_reload_bad():
    c = certs()
    be = Backend()
    sp = tls_spillway([be])
    good = sp.read_config()
    junk = c.path("junk.pem")
    with open(junk, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64\n"
                "-----END CERTIFICATE-----\n")
    cases = [
        ("garbage certificate", good.replace(c.site[0], junk)),
        ("missing certificate", good.replace(c.site[0], c.path("nope.pem"))),
        ("key of another certificate", good.replace(c.site[1], c.other[1])),
        ("bad cipher list", good.replace("[tls]\n",
                                         "[tls]\nciphers = NOPE-NOT-A\n")),
    ]
    for i, (what, text) in enumerate(cases):
        sp.write_config(text)
        r = run_binary(["-t", "-c", sp.config_path])
        eq(r.returncode, 1, "-t exit status for %s" % what)
        err = r.stderr.decode()
        check(err.startswith(sp.config_path + ":"), "-t names FILE:LINE "
              "for %s: %r" % (what, err))
        sp.reload()
        check(wait_for(lambda: metrics(sp).value(
            "spillway_config_reloads_total", 0, result="failed") == i + 1,
            5), "reload of %s did not fail" % what)
        r = tls_get(sp.tls_port)
        eq(r.status, 200, "still serving after %s" % what)
        eq(org_of(r.cert), "spillway", "old certificate after %s" % what)
    check(sp.alive(), "spillway alive")


@test("a listener can move between plain and TLS on reload, same socket")
def t_reload_role():
    c = certs()
    be = Backend()
    sp = tls_spillway([be])
    tp = sp.tls_port
    text = sp.read_config()
    # the TLS port becomes plain; the plain one goes away
    lines = []
    for line in text.splitlines():
        if line.startswith("listen = %s:%d" % (LOCALHOST, sp.port)):
            line = "listen = %s:%d" % (LOCALHOST, tp)
        elif line.startswith("listen = %s:%d" % (LOCALHOST, tp)):
            continue
        lines.append(line)
    text = "\n".join(lines) + "\n"
    text = text.replace("[tls]\n", "[tls]\n; no TLS listener now\n")
    sp.write_config(text)
    sp.reload()
    check(wait_for(lambda: metrics(sp).value(
        "spillway_config_reloads_total", 0, result="ok") == 1, 5),
        "reload failed: %s" % sp.stderr_tail())
    c2 = Client(tp)
    eq(c2.exchange("GET", "/").status, 200, "plain HTTP on the former TLS "
       "port")


# --------------------------------------------------------------------------
# hostile clients

def closed_soon(sock, within):
    """True if the peer closes (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < within:
            d = sock.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


@test("plain HTTP, garbage and a stalled handshake on the TLS port: closed, "
      "counted, others served")
def t_hostile():
    be = Backend()
    sp = tls_spillway([be])
    eq(tls_get(sp.tls_port).status, 200, "a good client first")
    fds0 = sp.nfds()        # with the pooled backend connection
    s = socket.create_connection((LOCALHOST, sp.tls_port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(closed_soon(s, 3), "plain HTTP on the TLS port not closed")
    s.close()
    s = socket.create_connection((LOCALHOST, sp.tls_port))
    s.sendall(os.urandom(2048))
    check(closed_soon(s, 3), "garbage not closed")
    s.close()
    # a ClientHello cut short, and a client that sends nothing
    stalls = []
    for first in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b""):
        s = socket.create_connection((LOCALHOST, sp.tls_port))
        if first:
            s.sendall(first)
        stalls.append(s)
    r = tls_get(sp.tls_port)
    eq(r.status, 200, "a good client meanwhile")
    t0 = time.monotonic()
    for s in stalls:
        check(closed_soon(s, 4), "stalled handshake not closed")
        s.close()
    took = time.monotonic() - t0
    check(took < 3.5, "stalled handshakes closed after %.1fs "
          "(handshake_timeout 1s)" % took)
    counts = tls_counts(sp)
    eq(counts["failed"], 2.0, "failed handshakes")
    eq(counts["timeout"], 2.0, "timed-out handshakes")
    eq(counts["ok"], 2.0, "good handshakes")
    eq(be.count(), 2, "requests at the backend")
    check(wait_for(lambda: sp.nfds() <= fds0, 3), "descriptors: %d before, "
          "%d after" % (fds0, sp.nfds()))


@test("renegotiation attempt: refused, the connection closed and counted")
def t_renegotiation():
    if shutil.which("openssl") is None:
        skip("no openssl command")
    be = Backend(echo())
    sp = tls_spillway([be])
    p = subprocess.Popen(
        ["openssl", "s_client", "-connect", "%s:%d" % (LOCALHOST,
                                                       sp.tls_port),
         "-tls1_2", "-CAfile", certs().ca, "-servername", "localhost"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    register(_Proc(p))
    try:
        p.stdin.write(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        p.stdin.flush()
        check(wait_for(lambda: be.count() == 1, 5), "first request not "
              "proxied")
        time.sleep(0.3)
        p.stdin.write(b"R\n")       # s_client: renegotiate
        p.stdin.flush()
        if not wait_for(lambda: metrics(sp).value(
                "spillway_tls_renegotiations_total", 0) == 1, 5):
            p.kill()
            raise AssertionError("renegotiation not counted; s_client "
                                 "said:\n%s" % p.stdout.read().decode())
        try:
            p.stdin.write(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
            p.stdin.flush()
        except BrokenPipeError:
            pass
        rc = p.wait(5)
        diag("s_client exited with %s" % rc)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    eq(be.count(), 1, "nothing proxied after the renegotiation attempt")
    eq(tls_get(sp.tls_port).status, 200, "others still served")


class _Proc:
    def __init__(self, p):
        self.p = p

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# --------------------------------------------------------------------------
# configuration

@test("-t: [tls] mistakes are FILE:LINE errors")
def t_config_errors():
    c = certs()
    d = tempfile.mkdtemp(prefix="spillway-tls-conf-")
    register(_Dir(d))
    base = "[backend]\nserver = 127.0.0.1:9\n"
    cases = [
        ("[tls]\nlisten = 127.0.0.1:%d\n" % free_port(), 4,
         "needs a certificate"),
        ("[tls]\nlisten = 127.0.0.1:1\ncertificate = %s\ncertificate = %s\n"
         "private_key = %s\n" % (c.site[0], c.other[0], c.site[1]), 7,
         "private_key"),
        ("[tls]\nprotocols = TLSv1.1 TLSv1.3\n", 4, "gap"),
        ("[tls]\nprotocols = SSLv3\n", 4, "unknown protocol"),
        ("[tls]\ncertificate = %s\n" % c.path("missing.pem"), 4,
         "certificate"),
        ("[proxy]\nlisten = 127.0.0.1:4431\n[tls]\nlisten = 127.0.0.1:4431\n"
         "certificate = %s\nprivate_key = %s\n" % c.site, 6,
         "also a plain listener"),
        ("[backend]\ntls = yes\nca_file = %s\n" % c.path("nope.pem"), 5,
         "ca_file"),
    ]
    for i, (text, line, what) in enumerate(cases):
        path = os.path.join(d, "c%d.ini" % i)
        with open(path, "w") as f:
            f.write(base + text)
        r = run_binary(["-t", "-c", path])
        err = r.stderr.decode()
        eq(r.returncode, 1, "exit status of case %d: %r" % (i, err))
        check(("%s:%d:" % (path, line)) in err and what in err,
              "case %d: want %s:%d: ...%s..., got %r" % (i, path, line, what,
                                                        err))
    # valid: TLS only (no plain listener then), key inside the chain file
    path = os.path.join(d, "ok.ini")
    with open(path, "w") as f:
        f.write(base + "[tls]\nlisten = 127.0.0.1:%d\ncertificate = %s\n" %
                (free_port(), c.path("site.pem")))
    r = run_binary(["-t", "-c", path])
    eq(r.returncode, 0, "valid TLS-only file: %r" % r.stderr.decode())


class _Dir:
    def __init__(self, d):
        self.d = d

    def close(self):
        shutil.rmtree(self.d, ignore_errors=True)


@test("TLS only: no plain listener when only [tls] listen is given")
def t_tls_only():
    c = certs()
    be = Backend()
    tp = free_port()
    text = ("[backend]\nserver = %s\n[tls]\nlisten = %s:%d\n"
            "certificate = %s\n" % (be.addr, LOCALHOST, tp,
                                    c.path("site.pem")))
    sp = Spillway(config_text=text, start=False, listen=["%s:%d" %
                                                         (LOCALHOST, tp)])
    sp.start()
    eq(tls_get(tp).status, 200, "TLS request")
    check(not pid_listens_on(sp.pid, 8080), "listening on 8080 as well")


# --------------------------------------------------------------------------
# TLS to backends

@test("backend TLS: verified by CA and name, kept alive, sessions resumed")
def t_backend_tls():
    c = certs()
    be = TLSBackend(*c.site, handler=echo())
    sp = Spillway([be], backend={"tls": "yes", "ca_file": c.ca,
                                 "server_name": "localhost"})
    cl = Client(sp.port)
    for i in range(5):
        eq(cl.exchange("GET", "/b%d" % i).status, 200, "request %d" % i)
    eq(be.handshakes, 1, "backend TLS handshakes (pooled connection)")
    eq(len(be.requests), 5, "requests at the backend")
    # without keep-alive every request is a new connection: resumed
    sp3 = Spillway([be], backend={"tls": "yes", "ca_file": c.ca,
                                  "keepalive": "0"})
    for i in range(4):
        eq(Client(sp3.port).exchange("GET", "/r%d" % i).status, 200,
           "request %d without keep-alive" % i)
    check(be.resumed >= 3, "backend sessions resumed: %d of %d handshakes" %
          (be.resumed, be.handshakes))
    # an IP address as the name: the certificate's IP SAN is checked
    sp2 = Spillway([be], backend={"tls": "yes", "ca_file": c.ca})
    eq(Client(sp2.port).exchange("GET", "/ip").status, 200, "by IP SAN")



@test("backend TLS: active health checks and trial connects go over TLS, "
      "verified; a wrong name fails them")
def t_backend_checks():
    c = certs()
    be = TLSBackend(*c.site, handler=echo(),
                    routes={"/healthz": respond(200)})
    keys = {"tls": "yes", "ca_file": c.ca, "server_name": "localhost",
            "health_check": "GET /healthz", "check_interval": "200ms",
            "check_timeout": "200ms", "check_fall": "1"}
    sp = Spillway([be], backend=keys)
    check(wait_for(lambda: sum(q.path == "/healthz" for q in be.requests)
                   >= 2, 5), "no checks over TLS within 5s")
    check(be.handshakes >= 2, "check handshakes: %d" % be.handshakes)
    eq(be.handshake_errors, 0, "handshake errors")
    check("-> down" not in sp.stderr_text(), "a check failed:\n%s"
          % sp.stderr_tail())
    keys["server_name"] = "wrong.test"
    sp2 = Spillway([be], backend=keys)
    check(wait_for(lambda: "-> down (check failed" in sp2.stderr_text(), 5),
          "a check with a wrong name did not fail:\n%s" % sp2.stderr_tail())
    # without checks, the trial of an ejected server is a handshake too:
    # a certificate that does not match keeps it out
    bad = TLSBackend(*c.other, handler=echo())
    sp3 = Spillway([be, bad], backend={
        "tls": "yes", "ca_file": c.ca, "server_name": "localhost",
        "max_fails": "1", "fail_timeout": "500ms"})
    for i in range(4):
        eq(Client(sp3.port).exchange("GET", "/t%d" % i).status, 200,
           "request %d (the bad server's failures go to the good one)" % i)
    check("%s: up -> ejected" % bad.addr in sp3.stderr_text(),
          "not ejected:\n%s" % sp3.stderr_tail())

    def trial_failed():
        Client(sp3.port).exchange("GET", "/again")
        return "%s: trial -> ejected" % bad.addr in sp3.stderr_text()
    check(wait_for(trial_failed, 5, interval=0.2),
          "the trial handshake did not fail:\n%s" % sp3.stderr_tail())
    eq(len(bad.requests), 0, "requests at the server with the wrong name")

@test("backend TLS: a wrong CA or name is 502, verify = no accepts it")
def t_backend_verify():
    c = certs()
    be = TLSBackend(*c.other)      # names other.test only
    other_ca = Certs()
    register(other_ca)
    cases = [
        ({"ca_file": other_ca.ca, "server_name": "other.test"}, 502),
        ({"ca_file": c.ca, "server_name": "wrong.test"}, 502),
        ({"ca_file": c.ca}, 502),                 # 127.0.0.1 not in SAN
        ({"ca_file": c.ca, "server_name": "other.test"}, 200),
        ({"verify": "no", "server_name": "wrong.test"}, 200),
    ]
    for keys, want in cases:
        b = {"tls": "yes"}
        b.update(keys)
        sp = Spillway([be], backend=b)
        r = Client(sp.port).exchange("GET", "/")
        eq(r.status, want, "status with %r" % keys)
        if want == 502:
            check("verify" in sp.stderr_text() or "certificate" in
                  sp.stderr_text(), "no reason logged: %s" %
                  sp.stderr_tail(5))
        sp.stop()


@test("backend TLS to a plain backend: 502, no hang")
def t_backend_plain():
    be = Backend()
    sp = Spillway([be], backend={"tls": "yes", "verify": "no"})
    t0 = time.monotonic()
    r = Client(sp.port).exchange("GET", "/")
    eq(r.status, 502, "status")
    check(time.monotonic() - t0 < 3, "took %.1fs" % (time.monotonic() - t0))


if __name__ == "__main__":
    try:
        run_main()
    finally:
        if _certs is not None:
            _certs.close()
