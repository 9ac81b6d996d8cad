#!/usr/bin/env python3
"""Access log formats: combined (as Apache and nginx write it), json (one
object per line) and syslog:PATH (RFC 3164 datagrams), each parsed back,
hostile bytes in the target and the headers included; the format changes
on a reload; SIGUSR1 reopens a file in any format; bad values are refused
with file:line."""

import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOCALHOST, SPILLWAY_BIN, Backend, Client, Spillway,
                     check, diag, eq, free_port, pid_listens_on, register,
                     respond, run_binary, skip, test, wait_for, run_main)


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="spillway-it-")
        register(self)

    def join(self, name):
        return os.path.join(self.path, name)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


class SyslogSocket:
    """A Unix datagram socket standing in for /dev/log."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        register(self)

    def messages(self, n, timeout=3.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                out.append(self.sock.recv(65536))
            except socket.timeout:
                pass
        return out

    def close(self):
        self.sock.close()


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().split(b"\n")[:-1]
    except FileNotFoundError:
        return []


def lines_settled(path, n, timeout=4.0):
    """The log's lines once it has n (the log is flushed every second)."""
    wait_for(lambda: len(read_lines(path)) >= n, timeout)
    time.sleep(0.1)
    return read_lines(path)


# What a client sends that a log must carry without breaking its line: the
# parser lets '"', '\' and '<' through in the target and HTAB, '"', '\' and
# obs-text (bytes >= 0x80, not UTF-8 here) through in header values.
HOSTILE_TARGET = '/a"b\\c\'<x>?q="1"%00'
HOSTILE_UA = 'evil "agent" \\ \t\x80\xff\xc3\xa9 end'
HOSTILE_REF = 'http://x/"; rm -rf /\\'


def send_requests(sp):
    """Four requests: plain with headers, hostile, backend 404, HTTP/1.0
    without Host. Returns what was sent and answered, in order."""
    c = Client(sp.port)
    sent = []
    r = c.exchange("GET", "/plain?x=1", headers=[
        ("User-Agent", "curl/8.5.0"), ("Referer", "http://example.com/")])
    sent.append(("GET", "/plain?x=1", "1.1", "spillway.test", "curl/8.5.0",
                 "http://example.com/", r))
    r = c.exchange("POST", HOSTILE_TARGET, headers=[
        ("User-Agent", HOSTILE_UA), ("Referer", HOSTILE_REF)], body=b"xyz")
    sent.append(("POST", HOSTILE_TARGET, "1.1", "spillway.test", HOSTILE_UA,
                 HOSTILE_REF, r))
    r = c.exchange("GET", "/missing")
    sent.append(("GET", "/missing", "1.1", "spillway.test", None, None, r))
    c.close()
    c = Client(sp.port)
    r = c.exchange("HEAD", "/old", version="1.0", host=None)
    sent.append(("HEAD", "/old", "1.0", None, None, None, r))
    c.close()
    for s in sent:
        check(s[6].status in (200, 404), "answer %r" % s[6])
    return sent


def backend():
    be = Backend(respond(200, b"hello, world\n"))
    be.route("/missing", respond(404, b"not here"))
    return be


def as_latin1(b):
    return b.decode("latin-1")


COMBINED = re.compile(
    rb'^(\S+) (\S+) (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+|-) '
    rb'"([^"]*)" "([^"]*)"$')


def unescape_combined(b):
    """nginx's default escaping back to bytes: \\xHH."""
    return re.sub(rb"\\x([0-9A-F]{2})",
                  lambda m: bytes([int(m.group(1), 16)]), b)


@test("combined: the Apache/nginx format, parsed back, hostile bytes too")
def combined():
    be = backend()
    tmp = TempDir()
    log = tmp.join("access.log")
    sp = Spillway([be], proxy={"access_log": log,
                               "access_log_format": "combined"})
    sent = send_requests(sp)
    lines = lines_settled(log, len(sent))
    eq(len(lines), len(sent), "lines %r" % lines)
    now = datetime.datetime.now(datetime.timezone.utc)
    for s, ln in zip(sent, lines):
        method, target, ver, host, ua, ref, r = s
        m = COMBINED.match(ln)
        check(m, "not a combined line: %r" % ln)
        diag(as_latin1(ln))
        check(all(0x20 <= x < 0x7f for x in ln),
              "bytes outside printable ASCII in %r" % ln)
        eq(m.group(1), b"127.0.0.1", "client address")
        eq((m.group(2), m.group(3)), (b"-", b"-"), "ident and user")
        when = datetime.datetime.strptime(m.group(4).decode(),
                                          "%d/%b/%Y:%H:%M:%S %z")
        check(abs((now - when).total_seconds()) < 60, "time %r" % when)
        eq(unescape_combined(m.group(5)),
           ("%s %s HTTP/%s" % (method, target, ver)).encode("latin-1"),
           "request line")
        eq(int(m.group(6)), r.status, "status")
        body = len(r.body) if method != "HEAD" else 0
        eq(m.group(7), str(body).encode() if body else b"-",
           "bytes: the body only, '-' for none")
        eq(unescape_combined(m.group(8)),
           ref.encode("latin-1") if ref else b"-", "referer")
        eq(unescape_combined(m.group(9)),
           ua.encode("latin-1") if ua else b"-", "user agent")


@test("combined: goaccess reads every line as it is, hostile ones included")
def combined_goaccess():
    goaccess = shutil.which("goaccess")
    if goaccess is None:
        skip("goaccess not found (apt-get install goaccess; contrib/setup.sh "
             "installs it)")
    be = backend()
    tmp = TempDir()
    log = tmp.join("access.log")
    sp = Spillway([be], proxy={"access_log": log,
                               "access_log_format": "combined"},
                  sections=[("admission", {"rate": "1/m", "burst": 4})])
    sent = send_requests(sp)
    c = Client(sp.port)
    eq(c.exchange("GET", "/refused").status, 429, "past the burst")
    c.close()
    lines = lines_settled(log, len(sent) + 1)
    eq(len(lines), len(sent) + 1, "lines")
    out = tmp.join("report.json")
    r = subprocess.run([goaccess, log, "--log-format=COMBINED",
                        "--no-global-config", "-o", out],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    eq(r.returncode, 0, "goaccess: %r" % r.stderr)
    with open(out) as f:
        g = json.load(f)["general"]
    diag("goaccess: %r" % {k: g.get(k) for k in (
        "total_requests", "valid_requests", "failed_requests", "bandwidth")})
    eq((g["total_requests"], g["valid_requests"], g["failed_requests"]),
       (len(lines), len(lines), 0), "requests goaccess read and failed")
    eq(g["bandwidth"], sum(len(x[6].body) for x in sent
                           if x[0] != "HEAD") +
       int(COMBINED.match(lines[-1]).group(7).replace(b"-", b"0")),
       "bandwidth: the body bytes")


@test("json: one object per line with reason, class, upstream, timings, id")
def json_lines():
    be = backend()
    tmp = TempDir()
    log = tmp.join("access.log")
    sp = Spillway([be], proxy={"access_log": log,
                               "access_log_format": "json"},
                  sections=[("admission", {"rate": "1/m", "burst": 4})])
    sent = send_requests(sp)
    c = Client(sp.port)
    r = c.exchange("GET", "/refused", headers=[("User-Agent", "x\ty")])
    eq(r.status, 429, "fifth request past the burst")
    c.close()
    lines = lines_settled(log, len(sent) + 1)
    eq(len(lines), len(sent) + 1, "lines %r" % lines)
    objs = []
    for ln in lines:
        # strict UTF-8 and strict JSON: either raises on a bad line
        o = json.loads(ln.decode("utf-8"))
        diag(ln.decode("utf-8"))
        objs.append(o)
    ids = set()
    for s, o in zip(sent, objs):
        method, target, ver, host, ua, ref, r = s
        eq(o["method"], method, "method")
        eq(o["path"], target, "path")
        eq(o["protocol"], "HTTP/" + ver, "protocol")
        eq(o["host"], host, "host")
        want_ua = ua.encode("latin-1").decode("utf-8", "replace") \
            if ua else None
        eq(o["user_agent"], want_ua, "user agent (not UTF-8: U+FFFD)")
        eq(o["referer"], ref, "referer")
        eq(o["status"], r.status, "status")
        eq(o["body_bytes"], len(r.body) if method != "HEAD" else 0,
           "body bytes")
        check(o["bytes"] > o["body_bytes"], "bytes count the head too")
        eq(o["upstream"], be.addr, "upstream server")
        eq(o["class"], "default", "class")
        eq(o["reason"], None, "reason")
        eq(o["client"], "127.0.0.1", "client")
        check(isinstance(o["request_time"], float) and
              isinstance(o["upstream_time"], float) and
              0 <= o["upstream_time"] <= o["request_time"] < 10,
              "timings %r" % o)
        datetime.datetime.strptime(o["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        ids.add(o["request_id"])
    o = objs[-1]
    eq((o["status"], o["reason"], o["upstream"], o["upstream_time"]),
       (429, "rate_limited", None, None), "the refused request")
    eq(o["user_agent"], "x\ty", "a tab, escaped and read back")
    check(b"x\\u0009y" in lines[-1] or b"x\\ty" in lines[-1],
          "tab escaped: %r" % lines[-1])
    ids.add(o["request_id"])
    eq(len(ids), len(objs), "request ids unique: %r" % ids)


@test("json: a 408 after a kept-alive request logs nothing of the last one")
def json_timeout_after_keepalive():
    be = backend()
    tmp = TempDir()
    log = tmp.join("access.log")
    sp = Spillway([be], proxy={"access_log": log, "access_log_format": "json",
                               "header_timeout": "1s"})
    c = Client(sp.port)
    eq(c.exchange("GET", "/first", headers=[
        ("User-Agent", "first-agent"), ("Referer", "http://r/")]).status, 200,
       "status")
    c.send(b"GET /never-finished HTTP/1.1\r\nUser-Agent: second")
    eq(c.read_response("GET", timeout=5).status, 408, "header_timeout")
    c.close()
    lines = lines_settled(log, 2)
    eq(len(lines), 2, "lines %r" % lines)
    o = json.loads(lines[1].decode())
    check(o["request_id"] != json.loads(lines[0].decode())["request_id"],
          "the 408 has the request id of the one before: %r" % lines)
    eq((o["status"], o["method"], o["path"], o["host"], o["user_agent"],
        o["referer"]), (408, None, None, None, None, None),
       "the 408's fields: %r" % o)


@test("combined and json: the client a trusted proxy names, not the proxy")
def real_client():
    be = backend()
    tmp = TempDir()
    for fmt in ("combined", "json"):
        log = tmp.join("access-%s.log" % fmt)
        sp = Spillway([be], proxy={"access_log": log,
                                   "access_log_format": fmt,
                                   "trusted_proxies": "127.0.0.1"})
        c = Client(sp.port)
        eq(c.exchange("GET", "/behind-a-proxy", headers=[
            ("X-Forwarded-For", "198.51.100.9, 203.0.113.7")]).status, 200,
           "status")
        c.close()
        lines = lines_settled(log, 1)
        eq(len(lines), 1, "lines %r" % lines)
        if fmt == "combined":
            eq(COMBINED.match(lines[0]).group(1), b"203.0.113.7",
               "combined client")
        else:
            eq(json.loads(lines[0].decode())["client"], "203.0.113.7",
               "json client")
        sp.stop()


SYSLOG = re.compile(rb"^<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
                    rb"spillway\[(\d+)\]: (.*)$", re.S)


@test("syslog:PATH: one RFC 3164 datagram per request, facility, LOG_INFO")
def syslog_socket():
    be = backend()
    tmp = TempDir()
    path = tmp.join("log.sock")
    sock = SyslogSocket(path)
    sp = Spillway([be], proxy={"access_log": "syslog:" + path,
                               "access_log_format": "json",
                               "access_log_facility": "local3"})
    sent = send_requests(sp)
    msgs = sock.messages(len(sent))
    eq(len(msgs), len(sent), "datagrams %r" % msgs)
    for s, msg in zip(sent, msgs):
        m = SYSLOG.match(msg)
        check(m, "not an RFC 3164 message: %r" % msg)
        eq(int(m.group(1)), 19 * 8 + 6, "PRI: local3 (19) and info (6)")
        eq(int(m.group(3)), sp.pid, "pid")
        check(not m.group(4).endswith(b"\n"), "newline in %r" % msg)
        o = json.loads(m.group(4).decode("utf-8"))
        eq((o["method"], o["path"], o["status"]), (s[0], s[1], s[6].status),
           "the message's request")
    # the daemon goes away: lines are lost, said once, and nothing blocks
    sock.close()
    os.unlink(path)
    c = Client(sp.port)
    for i in range(3):
        eq(c.exchange("GET", "/gone%d" % i).status, 200, "status")
    c.close()
    check(wait_for(lambda: "lines lost" in sp.stderr_text(), 2),
          "no warning once the socket is gone: %s" % sp.stderr_tail())
    eq(sp.stderr_text().count("lines lost"), 1, "warned once")
    check(sp.alive(), "spillway died")


@test("syslog:PATH without a listener: start-up fails and says why")
def syslog_missing():
    be = backend()
    tmp = TempDir()
    path = tmp.join("nobody.sock")
    sp = Spillway([be], proxy={"access_log": "syslog:" + path},
                  start=False)
    r = run_binary(["-t", "-c", sp.config_path])
    eq(r.returncode, 0, "-t opens no socket: %r" % r.stderr)
    try:
        sp.start(timeout=3)
        started = True
    except AssertionError:
        started = False
        sp.stopped = True       # the exit is what this test expects
    check(not started, "spillway started with no syslog socket")
    err = sp.stderr_text()
    check("access_log syslog:%s" % path in err and
          "No such file or directory" in err, "message: %r" % err)


@test("syslog:PATH: a reload to a socket nobody listens on is refused, "
      "the file log goes on")
def syslog_reload_missing():
    be = backend()
    tmp = TempDir()
    log = tmp.join("access.log")
    sp = Spillway([be], proxy={"access_log": log})
    sp.reconfigure(proxy={"access_log": "syslog:" + tmp.join("none.sock")})
    sp.reload()
    check(wait_for(lambda: "none.sock" in sp.stderr_text(), 3),
          "no error for the reload: %s" % sp.stderr_tail())
    c = Client(sp.port)
    eq(c.exchange("GET", "/still-in-the-file").status, 200, "status")
    c.close()
    lines = lines_settled(log, 1)
    check(any(b"/still-in-the-file" in x for x in lines),
          "the old log stopped: %r" % lines)


class UnsharedSpillway:
    """spillway in a mount namespace of its own whose /dev is a test
    directory, so that syslog(3) writes to the test's /dev/log socket.
    Needs root and unshare(1); unshare and sh exec, so the pid is
    spillway's."""

    def __init__(self, devdir, config):
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind "$1" /dev && exec "$2" -c "$3"', "sh", devdir,
             SPILLWAY_BIN, config],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        register(self)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stderr.close()


@test("access_log = syslog: syslog(3) messages, facility, pid, one a line")
def syslog_libc():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip("pointing syslog(3) at a test socket needs root and unshare")
    r = subprocess.run(["unshare", "--mount", "true"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        skip("unshare --mount is not allowed here")
    be = backend()
    tmp = TempDir()
    dev = os.path.join(tmp.path, "dev")
    os.mkdir(dev)
    sock = SyslogSocket(os.path.join(dev, "log"))
    port = free_port()
    cfg = tmp.join("spillway.ini")
    with open(cfg, "w") as f:
        f.write("[proxy]\nlisten = %s:%d\naccess_log = syslog\n"
                "access_log_format = combined\naccess_log_facility = daemon\n"
                "[backend]\nserver = %s\n" % (LOCALHOST, port, be.addr))
    sp = UnsharedSpillway(dev, cfg)
    check(wait_for(lambda: sp.proc.poll() is not None or
                   pid_listens_on(sp.proc.pid, port), 5) and
          sp.proc.poll() is None, "spillway did not start")
    c = Client(port)
    eq(c.exchange("GET", "/via-libc", headers=[
        ("User-Agent", 'a "b"')]).status, 200, "status")
    c.close()
    msgs = sock.messages(1)
    eq(len(msgs), 1, "datagrams")
    m = re.match(rb"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d "
                 rb"spillway\[(\d+)\]: (.*)$", msgs[0], re.S)
    check(m, "not a syslog(3) message: %r" % msgs[0])
    eq(int(m.group(1)), 3 * 8 + 6, "PRI: daemon (3) and info (6)")
    eq(int(m.group(2)), sp.proc.pid, "pid")
    check(COMBINED.match(m.group(3).rstrip(b"\n")) and
          b'"GET /via-libc HTTP/1.1" 200 13 "-" "a \\x22b\\x22"' in m.group(3),
          "the combined line: %r" % m.group(3))


@test("a reload changes the format of the same file; SIGUSR1 reopens it")
def reload_and_reopen():
    be = backend()
    tmp = TempDir()
    log = tmp.join("access.log")
    sp = Spillway([be], proxy={"access_log": log})
    c = Client(sp.port)
    eq(c.exchange("GET", "/own-format").status, 200, "status")
    c.close()
    lines = lines_settled(log, 1)
    check(len(lines) == 1 and b"/own-format" in lines[0] and
          not lines[0].startswith(b"{"), "spillway format %r" % lines)
    sp.reconfigure(proxy={"access_log": log, "access_log_format": "json"})
    sp.reload()
    check(wait_for(lambda: "generation 2" in sp.stderr_text(), 3),
          "no reload: %s" % sp.stderr_tail())
    c = Client(sp.port)
    eq(c.exchange("GET", "/json-format").status, 200, "status")
    c.close()
    lines = lines_settled(log, 2)
    eq(json.loads(lines[1].decode())["path"], "/json-format", "json line")
    os.rename(log, log + ".1")
    sp.signal(signal.SIGUSR1)
    check(wait_for(lambda: os.path.exists(log), 2), "not reopened")
    c = Client(sp.port)
    eq(c.exchange("GET", "/after-rotate").status, 200, "status")
    c.close()
    lines = lines_settled(log, 1)
    eq(json.loads(lines[0].decode())["path"], "/after-rotate",
       "json in the new file")
    eq(len(read_lines(log + ".1")), 2, "the old file kept its lines")


@test("-t: bad format, facility or syslog target say file:line and why")
def bad_values():
    tmp = TempDir()
    cases = [
        ("access_log_format = xml", "access_log_format: invalid value 'xml' "
         "(use spillway, combined or json)"),
        ("access_log_facility = kern", "access_log_facility: invalid value "
         "'kern' (use user, daemon or local0 to local7)"),
        ("access_log = syslog:dev/log", "access_log: invalid value "
         "'syslog:dev/log' (use syslog:PATH with the absolute path"),
        ("access_log = syslog:/" + "x" * 110, "at most 103 bytes"),
    ]
    for line, want in cases:
        p = tmp.join("bad.ini")
        with open(p, "w") as f:
            f.write("[proxy]\nlisten = 127.0.0.1:1\n%s\n[backend]\n"
                    "server = 127.0.0.1:2\n" % line)
        r = run_binary(["-t", "-c", p])
        err = r.stderr.decode()
        eq(r.returncode, 1, "-t status for %r" % line)
        check(err.startswith(p + ":3: ") and want in err,
              "%r: message %r" % (line, err))
    p = tmp.join("good.ini")
    with open(p, "w") as f:
        f.write("[proxy]\nlisten = 127.0.0.1:1\naccess_log = syslog\n"
                "access_log_format = combined\naccess_log_facility = daemon\n"
                "[backend]\nserver = 127.0.0.1:2\n")
    r = run_binary(["-t", "-c", p])
    eq(r.returncode, 0, "access_log = syslog accepted: %r" % r.stderr)


if __name__ == "__main__":
    run_main()
