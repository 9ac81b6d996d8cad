#!/usr/bin/env python3
"""Real client identity: trusted proxies ([proxy] trusted_proxies,
forwarded_header) and the PROXY protocol (listen = ADDR proxy_protocol).

What a client says about its own address (X-Forwarded-For, X-Real-IP,
Forwarded) never reaches a backend from a peer spillway does not trust;
from a trusted one, the client it names keys the per-client bucket and the
access log. A PROXY header (v1 or v2) on a listener that asks for one
names the client before anything else, before TLS too; malformed,
truncated and slow headers close the connection, and a listener that did
not ask for one answers it 400."""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (access_lines, admin_spillway, Backend, build_request,
                     check, Client, echo_path, eq, free_port, metrics,
                     pid_listens_on, register, respond, run_main, Spillway,
                     test, wait_for, LOCALHOST)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body):
    """A PROXY v2 header: command (0 LOCAL, 1 PROXY), family byte, body."""
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H",
                                                           len(body)) + body


def v2_inet(src, dst, sport, dport, tlvs=b""):
    return v2(1, 0x11, socket.inet_pton(socket.AF_INET, src) +
              socket.inet_pton(socket.AF_INET, dst) +
              struct.pack(">HH", sport, dport) + tlvs)


def v2_inet6(src, dst, sport, dport, tlvs=b""):
    return v2(1, 0x21, socket.inet_pton(socket.AF_INET6, src) +
              socket.inet_pton(socket.AF_INET6, dst) +
              struct.pack(">HH", sport, dport) + tlvs)


def per_s(n):
    return "%d/s" % n


class TmpDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="spillway-it-cid-")
        register(self)

    def join(self, name):
        return os.path.join(self.path, name)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def pp_spillway(be, proxy=None, sections=(), admin=False):
    """spillway with its plain listener and a second one that takes PROXY
    headers: sp.pp_port."""
    pport = free_port()
    keys = {"listen": "%s:%d proxy_protocol" % (LOCALHOST, pport)}
    keys.update(proxy or {})
    if admin:
        sp = admin_spillway([be], proxy=keys, sections=list(sections))
    else:
        sp = Spillway([be], proxy=keys, sections=list(sections))
    check(wait_for(lambda: pid_listens_on(sp.pid, pport), 5),
          "no PROXY listener on port %d" % pport)
    sp.pp_port = pport
    return sp


def pp_request(port, header, target="/", headers=None, timeout=5.0):
    """One request after a PROXY header on a new connection: Response."""
    c = register(Client(port, timeout=timeout))
    c.send(header + build_request("GET", target, headers))
    return c.read_response("GET")


def closed_silently(c, timeout=5.0):
    """The connection is closed with no byte sent back."""
    return c.wait_closed(timeout)


def xff(req):
    return req.headers_named("x-forwarded-for")


# --------------------------------------------------------------------------
# trusted proxies

@test("untrusted peer: forged X-Forwarded-For, X-Real-IP and Forwarded "
      "are replaced, not appended to")
def untrusted_replaced():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], proxy={"trusted_proxies": "10.0.0.0/8"})
    c = register(Client(sp.port))
    r = c.exchange("GET", "/", [("X-Forwarded-For", "6.6.6.6"),
                                ("X-Real-IP", "6.6.6.6"),
                                ("Forwarded", "for=6.6.6.6;proto=https"),
                                ("x-forwarded-for", "7.7.7.7")])
    eq(r.status, 200, "status")
    req = be.requests[0]
    eq(xff(req), ["127.0.0.1"], "X-Forwarded-For at the backend")
    eq(req.headers_named("x-real-ip"), ["127.0.0.1"], "X-Real-IP")
    eq(req.headers_named("forwarded"), ["for=127.0.0.1;proto=http"],
       "Forwarded")
    raw = b"\n".join(b"%s: %s" % (n.encode(), v.encode())
                     for n, v in req.headers)
    check(b"6.6.6.6" not in raw and b"7.7.7.7" not in raw,
          "a forged address reached the backend: %r" % raw)


@test("trusted peer: the rightmost untrusted X-Forwarded-For hop is the "
      "client; the chain is kept and the proxy added")
def trusted_xff():
    be = Backend(respond(200, b"ok"))
    tmp = TmpDir()
    log = tmp.join("access.log")
    sp = Spillway([be], proxy={"trusted_proxies": "127.0.0.1 10.0.0.0/8",
                               "access_log": log})
    c = register(Client(sp.port))
    eq(c.exchange("GET", "/chain", [("X-Forwarded-For",
                                     "6.6.6.6, 203.0.113.5, 10.1.2.3")]
                  ).status, 200, "status")
    req = be.requests[0]
    eq(xff(req), ["6.6.6.6, 203.0.113.5, 10.1.2.3, 127.0.0.1"],
       "X-Forwarded-For")
    eq(req.headers_named("x-real-ip"), ["203.0.113.5"], "X-Real-IP")
    # every hop trusted: the leftmost
    eq(c.exchange("GET", "/all", [("X-Forwarded-For", "10.0.0.9")]).status,
       200, "status")
    eq(be.requests[1].headers_named("x-real-ip"), ["10.0.0.9"],
       "X-Real-IP, all hops trusted")
    lines = access_lines(log, 2)
    check(lines[0].split()[1] == "203.0.113.5" and "/chain" in lines[0],
          "access log client of /chain: %r" % lines[0])
    check(lines[1].split()[1] == "10.0.0.9",
          "access log client of /all: %r" % lines[1])


@test("trusted peer: two clients behind it get separate buckets; an "
      "untrusted peer cannot spoof its way into a fresh one")
def buckets_by_real_client():
    be = Backend(echo_path())
    sp = Spillway([be], proxy={"trusted_proxies": "127.0.0.1"},
                  sections=[("admission", {"client_rate": per_s(1),
                                           "client_burst": 2})])
    c = register(Client(sp.port))

    def st(client_ip, n):
        return [c.exchange("GET", "/%s/%d" % (client_ip, i),
                           [("X-Forwarded-For", client_ip)]).status
                for i in range(n)]
    a = st("203.0.113.1", 4)
    check(a[:2] == [200, 200] and a[3] == 429,
          "client A: want 2 admitted, then 429: %r" % a)
    b = st("203.0.113.2", 2)
    eq(b, [200, 200], "client B behind the same proxy, its own bucket")

    sp2 = Spillway([be], proxy={"trusted_proxies": "10.0.0.0/8"},
                   sections=[("admission", {"client_rate": per_s(1),
                                            "client_burst": 2})])
    c2 = register(Client(sp2.port))
    got = [c2.exchange("GET", "/spoof/%d" % i,
                       [("X-Forwarded-For", "198.51.100.%d" % i),
                        ("Forwarded", "for=198.51.100.%d" % i)]).status
           for i in range(4)]
    check(got[:2] == [200, 200] and got[3] == 429,
          "untrusted peer with a new forged address each time: %r" % got)


@test("forwarded_header = forwarded: the Forwarded for= of a trusted "
      "peer, quoted IPv6 with port; X-Forwarded-For then ignored")
def trusted_forwarded():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be], proxy={"trusted_proxies": "127.0.0.1",
                               "forwarded_header": "forwarded"})
    c = register(Client(sp.port))
    eq(c.exchange("GET", "/", [
        ("Forwarded", 'for="[2001:db8:cafe::17]:4711";proto=https'),
        ("X-Forwarded-For", "6.6.6.6")]).status, 200, "status")
    req = be.requests[0]
    eq(req.headers_named("x-real-ip"), ["2001:db8:cafe::17"], "X-Real-IP")
    eq(req.headers_named("forwarded"),
       ['for="[2001:db8:cafe::17]:4711";proto=https',
        "for=127.0.0.1;proto=http"], "Forwarded kept, the proxy added")
    # unknown: the client is not known; the last trusted hop stands
    eq(c.exchange("GET", "/u", [("Forwarded", "for=unknown")]).status, 200,
       "status")
    eq(be.requests[1].headers_named("x-real-ip"), ["127.0.0.1"],
       "X-Real-IP for=unknown")
    # against RFC 7239's grammar: not used
    eq(c.exchange("GET", "/b", [("Forwarded", "for=[2001:db8::1]")]).status,
       200, "status")
    eq(be.requests[2].headers_named("x-real-ip"), ["127.0.0.1"],
       "X-Real-IP for a malformed Forwarded")


@test("spillway -t: bad trusted_proxies, forwarded_header and listen "
      "options say file:line and why")
def config_errors():
    tmp = TmpDir()
    p = tmp.join("bad.ini")
    with open(p, "w") as f:
        f.write("[proxy]\nlisten = 127.0.0.1:%d proxy_protocl\n"
                "trusted_proxies = 10.1.0.0/8\n"
                "trusted_proxies = 2001:db8::/129\n"
                "forwarded_header = x-real-ip\n"
                "[backend]\nserver = 127.0.0.1:1 proxy_protocol\n"
                % free_port())
    from harness import run_binary
    r = run_binary(["-t", "-c", p])
    err = r.stderr.decode()
    eq(r.returncode, 1, "exit status (%s)" % err)
    for want in ("bad.ini:2: listen: unknown option 'proxy_protocl'",
                 "bad.ini:3: trusted_proxies: 10.1.0.0/8: bits set past "
                 "the /8 prefix",
                 "bad.ini:4: trusted_proxies: 2001:db8::/129: the prefix "
                 "length must be 0 to 128",
                 "bad.ini:5: forwarded_header: invalid value 'x-real-ip'",
                 "bad.ini:7: server: unknown option 'proxy_protocol'"):
        check(want in err, "want %r in:\n%s" % (want, err))


# --------------------------------------------------------------------------
# PROXY protocol

@test("PROXY v1 TCP4 and TCP6: the client named keys buckets, headers and "
      "the access log")
def proxy_v1():
    be = Backend(echo_path())
    tmp = TmpDir()
    log = tmp.join("access.log")
    sp = pp_spillway(be, proxy={"access_log": log}, sections=[
        ("admission", {"client_rate": per_s(1), "client_burst": 1})])
    h4 = b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n"
    r = pp_request(sp.pp_port, h4, "/v1",
                   headers=[("X-Forwarded-For", "6.6.6.6")])
    eq(r.status, 200, "status (%r)" % r)
    # not one byte past the header was taken from the request
    eq((be.requests[0].method, be.requests[0].target), ("GET", "/v1"),
       "request line at the backend")
    eq(xff(be.requests[0]), ["203.0.113.9"], "X-Forwarded-For")
    # the same client again: its bucket is empty
    eq(pp_request(sp.pp_port, h4, "/again").status, 429, "same client")
    # another client through the same balancer: its own bucket
    h6 = b"PROXY TCP6 2001:db8::42 ::1 6000 80\r\n"
    eq(pp_request(sp.pp_port, h6, "/v6").status, 200, "TCP6 client")
    eq(xff(be.requests[1]), ["2001:db8::42"], "X-Forwarded-For TCP6")
    eq(be.requests[1].headers_named("forwarded"),
       ['for="[2001:db8::42]";proto=http'], "Forwarded TCP6")
    # the plain listener is not a PROXY listener: 127.0.0.1's own bucket
    eq(register(Client(sp.port)).exchange("GET", "/plain").status, 200,
       "plain")
    lines = access_lines(log, 4)
    clients = [ln.split()[1] for ln in lines]
    # with several workers each writes its own lines in blocks: the set
    # of clients, not their order across workers
    plain = [c for c in clients if c.startswith("127.0.0.1:")]
    eq(sorted(c for c in clients if c not in plain),
       ["203.0.113.9:5555", "203.0.113.9:5555", "[2001:db8::42]:6000"],
       "access log clients")
    eq(len(plain), 1, "plain: %r" % clients)


@test("PROXY v2: TCP4 with TLVs, TCP6, LOCAL and UNSPEC")
def proxy_v2():
    be = Backend(respond(200, b"ok"))
    sp = pp_spillway(be, admin=True)
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x03\x00\x00\x00"
    eq(pp_request(sp.pp_port, v2_inet("198.51.100.4", "127.0.0.1", 1234, 80,
                                      tlvs), "/tlvs").status, 200,
       "TCP4 + TLVs")
    eq((be.requests[-1].method, be.requests[-1].target), ("GET", "/tlvs"),
       "request line at the backend")
    eq(xff(be.requests[-1]), ["198.51.100.4"], "X-Forwarded-For TCP4")
    eq(pp_request(sp.pp_port, v2_inet6("2001:db8::5", "::1", 1, 2)).status,
       200, "TCP6")
    eq(xff(be.requests[-1]), ["2001:db8::5"], "X-Forwarded-For TCP6")
    # LOCAL (a balancer's health check) and UNSPEC: the connection's own
    eq(pp_request(sp.pp_port, v2(0, 0x00, b"")).status, 200, "LOCAL")
    eq(xff(be.requests[-1]), ["127.0.0.1"], "X-Forwarded-For LOCAL")
    eq(pp_request(sp.pp_port, v2(1, 0x00, b"")).status, 200, "UNSPEC")
    eq(xff(be.requests[-1]), ["127.0.0.1"], "X-Forwarded-For UNSPEC")
    # keep-alive: the header is read once, the next request is HTTP
    c = register(Client(sp.pp_port))
    c.send(v2_inet("198.51.100.6", "127.0.0.1", 1, 2))
    for i in range(3):
        eq(c.exchange("GET", "/k%d" % i).status, 200, "request %d" % i)
        eq(xff(be.requests[-1]), ["198.51.100.6"], "X-Forwarded-For %d" % i)
    m = metrics(sp)
    eq(m.value("spillway_proxy_protocol_headers_total", result="ok"), 5.0,
       "headers read")


@test("PROXY: malformed and truncated headers close the connection "
      "without an answer; nothing reaches the backend")
def proxy_malformed():
    be = Backend(respond(200, b"ok"))
    sp = pp_spillway(be, admin=True)
    bad = [
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\n",      # bare LF
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\rX",     # CR alone
        b"PROXY TCP4 203.0.113.9 127.0.0.1 99999 80\r\n",   # port
        b"PROXY TCP5 203.0.113.9 127.0.0.1 1 80\r\n",
        b"PROXY TCP4 2001:db8::1 127.0.0.1 1 80\r\n",
        b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",           # > 107 bytes
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",               # no header
        v2(2, 0x11, b"\x00" * 12),                          # command 2
        v2(1, 0x21, b"\x00" * 12),                          # short block
        v2(1, 0x11, b"\x00" * 12 + b"\x01\x00\x09ab"),      # TLV overrun
    ]
    for i, h in enumerate(bad):
        c = register(Client(sp.pp_port))
        c.send(h + build_request("GET", "/bad%d" % i))
        check(closed_silently(c), "bad header %d %r: not closed" % (i, h))
    # truncated: every cut of a valid header, then EOF
    for full in (b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n",
                 v2_inet("198.51.100.4", "127.0.0.1", 1234, 80)):
        for cut in (1, 6, len(full) // 2, len(full) - 1):
            s = socket.create_connection((LOCALHOST, sp.pp_port), timeout=5)
            s.sendall(full[:cut])
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            eq(s.recv(100), b"", "truncated at %d of %d" % (cut, len(full)))
            s.close()
    eq(be.count(), 0, "requests at the backend")
    m = metrics(sp)
    eq(m.value("spillway_proxy_protocol_headers_total", result="bad"),
       float(len(bad) + 8), "headers refused")
    # and the proxy still serves
    eq(pp_request(sp.pp_port, b"PROXY UNKNOWN\r\n").status, 200, "after")


@test("PROXY: a slow header is closed at header_timeout, however it "
      "trickles in", timeout=40)
def proxy_slow():
    be = Backend(respond(200, b"ok"))
    sp = pp_spillway(be, proxy={"header_timeout": "1s"}, admin=True)
    c = register(Client(sp.pp_port))
    c.send(b"PROXY TCP4 ")
    t0 = time.monotonic()
    check(closed_silently(c, timeout=10), "silent header: not closed")
    took = time.monotonic() - t0
    check(took >= 0.8, "closed after %.2fs, before header_timeout" % took)
    # a byte every 0.3 s does not keep it open past the timeout
    s = socket.create_connection((LOCALHOST, sp.pp_port), timeout=5)
    register(s)
    header = b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n"
    t0 = time.monotonic()
    closed = False
    for b in header:
        try:
            s.sendall(bytes([b]))
        except OSError:
            closed = True
            break
        time.sleep(0.3)
        if time.monotonic() - t0 > 6:
            break
    if not closed:
        s.settimeout(5)
        try:
            closed = s.recv(100) == b""
        except OSError:
            closed = True
    check(closed and time.monotonic() - t0 < 8,
          "trickled header not closed in time")
    eq(be.count(), 0, "requests at the backend")
    eq(metrics(sp).value("spillway_proxy_protocol_headers_total",
                         result="timeout"), 2.0, "timeouts")


@test("a listener without proxy_protocol answers a PROXY header 400")
def proxy_on_plain_listener():
    be = Backend(respond(200, b"ok"))
    sp = Spillway([be])
    for h in (b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n",
              v2_inet("198.51.100.4", "127.0.0.1", 1234, 80)):
        c = register(Client(sp.port))
        c.send(h + build_request("GET", "/"))
        r = c.read_response("GET")
        eq(r.status, 400, "status for %r" % h[:12])
    eq(be.count(), 0, "requests at the backend")


@test("PROXY from a trusted balancer, X-Forwarded-For from a trusted "
      "proxy behind it")
def proxy_and_trusted():
    be = Backend(respond(200, b"ok"))
    sp = pp_spillway(be, proxy={"trusted_proxies": "10.0.0.0/8"})
    hdr = b"PROXY TCP4 10.0.0.7 127.0.0.1 5555 80\r\n"
    eq(pp_request(sp.pp_port, hdr, headers=[
        ("X-Forwarded-For", "198.51.100.3")]).status, 200, "status")
    eq(be.requests[0].headers_named("x-real-ip"), ["198.51.100.3"],
       "X-Real-IP through a trusted proxy")
    eq(xff(be.requests[0]), ["198.51.100.3, 10.0.0.7"], "X-Forwarded-For")
    hdr = b"PROXY TCP4 203.0.113.50 127.0.0.1 5555 80\r\n"
    eq(pp_request(sp.pp_port, hdr, headers=[
        ("X-Forwarded-For", "198.51.100.3")]).status, 200, "status")
    eq(be.requests[1].headers_named("x-real-ip"), ["203.0.113.50"],
       "X-Real-IP from an untrusted PROXY client")
    eq(xff(be.requests[1]), ["203.0.113.50"], "X-Forwarded-For replaced")


def self_signed(tmp):
    key, crt = tmp.join("k.pem"), tmp.join("c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "1",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    return crt, key


@test("PROXY on a TLS listener: the header comes before the handshake")
def proxy_tls():
    be = Backend(respond(200, b"ok"))
    tmp = TmpDir()
    crt, key = self_signed(tmp)
    tport = free_port()
    sp = Spillway([be], sections=[("tls", {
        "listen": "%s:%d proxy_protocol" % (LOCALHOST, tport),
        "certificate": crt, "private_key": key})])
    check(wait_for(lambda: pid_listens_on(sp.pid, tport), 5),
          "no TLS listener")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for hdr, want in ((b"PROXY TCP4 203.0.113.77 127.0.0.1 4444 443\r\n",
                       "203.0.113.77"),
                      (v2_inet6("2001:db8::77", "::1", 1, 443),
                       "2001:db8::77")):
        raw = socket.create_connection((LOCALHOST, tport), timeout=5)
        register(raw)
        raw.sendall(hdr)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(build_request("GET", "/tls", [("Connection", "close")]))
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        check(data.startswith(b"HTTP/1.1 200"), "response %r" % data[:80])
        req = be.requests[-1]
        eq(xff(req), [want], "X-Forwarded-For over TLS")
        eq(req.headers_named("x-forwarded-proto"), ["https"], "proto")
    # TLS without the header: refused, no handshake
    raw = socket.create_connection((LOCALHOST, tport), timeout=5)
    register(raw)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.close()
        check(False, "a TLS handshake without a PROXY header succeeded")
    except (ssl.SSLError, OSError):
        pass
    eq(be.count(), 2, "requests at the backend")


@test("reload: proxy_protocol switched on for a kept listener")
def proxy_reload():
    be = Backend(respond(200, b"ok"))
    port = free_port()
    sp = Spillway([be], listen=["%s:%d" % (LOCALHOST, port)])
    eq(register(Client(port)).exchange("GET", "/").status, 200, "plain")
    with open(sp.config_path) as f:
        text = f.read()
    with open(sp.config_path, "w") as f:
        f.write(text.replace("listen = %s:%d\n" % (LOCALHOST, port),
                             "listen = %s:%d proxy_protocol\n"
                             % (LOCALHOST, port)))
    sp.proc.send_signal(__import__("signal").SIGHUP)

    def takes_proxy():
        try:
            return pp_request(port, b"PROXY TCP4 203.0.113.1 127.0.0.1 1 "
                              b"80\r\n", timeout=2).status == 200
        except Exception:       # noqa: not yet reloaded
            return False
    check(wait_for(takes_proxy, 5), "PROXY header refused after the reload")
    eq(xff(be.requests[-1]), ["203.0.113.1"], "X-Forwarded-For")


if __name__ == "__main__":
    run_main()
