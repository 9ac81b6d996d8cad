#!/usr/bin/env python3
"""Lifecycle: command line (-t, -V, -h, usage errors), access log and
SIGUSR1, graceful stop on SIGTERM/SIGINT, shutdown_timeout, IPv6 listeners,
sd_notify messages under systemd."""

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
from harness import (LOCALHOST, SPILLWAY_BIN, TOP_SRCDIR, Backend, Client,
                     Spillway, check, delayed, eq, free_port, get,
                     ipv6_available, never, port_bindable, raw, register,
                     respond, run_binary, skip, test, wait_for,
                     run_main)


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="spillway-it-")
        register(self)

    def write(self, name, text):
        p = os.path.join(self.path, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def close(self):
        import shutil
        shutil.rmtree(self.path, ignore_errors=True)


def out_text(cp):
    return (cp.stdout + cp.stderr).decode("utf-8", "replace")


@test("-V prints the version and exits 0")
def version():
    cp = run_binary(["-V"])
    eq(cp.returncode, 0, "exit status; output %r" % out_text(cp))
    first = out_text(cp).strip().splitlines()
    check(first and re.match(r"^spillway \S+", first[0]),
          "version line: %r" % out_text(cp))


@test("-V and --version: spillway, libevent, OpenSSL, inih, features")
def version_contents():
    cp = run_binary(["-V"])
    eq(cp.returncode, 0, "exit status; output %r" % out_text(cp))
    text = cp.stdout.decode("utf-8", "replace")
    eq(cp.stderr, b"", "stderr of -V")
    for pattern in (r"^spillway \d+\.\d+\.\d+$", r"^libevent 2\.\S+$",
                    r"^OpenSSL \d+\.\d+\.\d+", r"^inih \S+$",
                    r"^features: .*\btls\b"):
        check(re.search(pattern, text, re.M), "no line %r in -V output %r"
              % (pattern, text))
    check("unknown" not in text, "a version unknown: %r" % text)
    long = run_binary(["--version"])
    eq(long.returncode, 0, "exit status of --version")
    eq(long.stdout, cp.stdout, "--version against -V")


@test("-h prints usage and exits 0")
def usage():
    cp = run_binary(["-h"])
    eq(cp.returncode, 0, "exit status; output %r" % out_text(cp))
    text = out_text(cp)
    check(re.search(r"usage", text, re.I) and "-c" in text,
          "usage text: %r" % text)


@test("--help prints the usage on stdout, as -h, and exits 0")
def usage_long():
    cp = run_binary(["--help"])
    eq(cp.returncode, 0, "exit status; output %r" % out_text(cp))
    eq(cp.stderr, b"", "stderr of --help")
    text = cp.stdout.decode("utf-8", "replace")
    for opt in ("-c FILE", "-t", "-V, --version", "-h, --help"):
        check(opt in text, "%r not in usage %r" % (opt, text))
    eq(cp.stdout, run_binary(["-h"]).stdout, "--help against -h")


@test("an unknown option exits 2")
def unknown_option():
    cp = run_binary(["-Z"])
    eq(cp.returncode, 2, "exit status for -Z; output %r" % out_text(cp))


def function_names():
    """Names of the functions defined in src/*.c (style(9): at column 0)."""
    names = set()
    src = os.path.join(TOP_SRCDIR, "src")
    for f in os.listdir(src):
        if f.endswith(".c"):
            with open(os.path.join(src, f), encoding="utf-8") as fh:
                names.update(re.findall(r"^([a-z_][a-z0-9_]*)\(", fh.read(),
                                        re.M))
    # the log prefix that is unwelcome here is "module_verb: "; a word
    # like "usage" is a function name and plain English too
    return {n for n in names if "_" in n}


def names_no_function(text, what):
    found = sorted(n for n in function_names()
                   if re.search(r"\b%s\b" % re.escape(n), text))
    check(not found, "%s names internal functions %s: %r"
          % (what, found, text))


@test("usage errors: exit 2, 'spillway: ' message and the usage on stderr")
def usage_errors():
    for args, want in ((["-Z"], "unknown option -Z"),
                       (["--bogus"], "invalid option --bogus"),
                       (["-c"], "option -c needs an argument"),
                       (["-t", "extra"], "unexpected argument 'extra'"),
                       (["-c", "x.ini", "a", "b"], "unexpected argument 'a'")):
        cp = run_binary(args)
        err = cp.stderr.decode("utf-8", "replace")
        eq(cp.returncode, 2, "exit status for %r; stderr %r" % (args, err))
        eq(cp.stdout, b"", "stdout for %r" % args)
        lines = err.splitlines()
        check(lines and lines[0] == "spillway: " + want,
              "first line for %r: %r, want %r" % (args, err, want))
        check(any(ln.startswith("usage: spillway") for ln in lines),
              "no usage for %r: %r" % (args, err))
        names_no_function(err, "usage error for %r" % args)


@test("start-up errors and warnings name no internal function")
def startup_messages():
    d = TempDir()
    hold = socket.socket()
    hold.bind((LOCALHOST, 0))
    hold.listen(1)
    register(hold)
    port = hold.getsockname()[1]
    conf = d.write("busy.ini", VALID % port)
    cp = run_binary(["-c", conf])
    err = cp.stderr.decode("utf-8", "replace")
    eq(cp.returncode, 1, "exit status with the port in use; stderr %r"
       % err)
    check(re.search(r"busy\.ini:2: listen 127\.0\.0\.1:%d: " % port, err),
          "the error names FILE:LINE and the address: %r" % err)
    names_no_function(err, "start-up error")
    # a warning at start-up: the descriptor limit lowers max_connections;
    # then the same port is still in use, so it stops there
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        skip("no prlimit for the descriptor limit warning")
    cp = subprocess.run([prlimit, "--nofile=40:40", SPILLWAY_BIN, "-c",
                         conf], stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=10)
    err = cp.stderr.decode("utf-8", "replace")
    check("open file limit 40" in err, "no descriptor warning: %r" % err)
    names_no_function(err, "start-up warning")


VALID = """\
[proxy]
listen = 127.0.0.1:%d
max_connections = 100
header_timeout = 250ms
idle_timeout = 1m
max_header_size = 16k
max_body_size = 0
shutdown_timeout = 2s
access_log = off

[backend]
server = 127.0.0.1:9
server = 127.0.0.1:10
connect_timeout = 1s
response_timeout = 60s
keepalive = 4
keepalive_timeout = 30s
balance = leastconn
"""


@test("-t on a valid configuration exits 0 and opens no socket")
def check_valid():
    d = TempDir()
    port = free_port()
    # hold the port: -t must not need it (it opens no socket)
    hold = socket.socket()
    hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hold.bind((LOCALHOST, port))
    hold.listen(1)
    try:
        cp = run_binary(["-t", "-c", d.write("ok.ini", VALID % port)])
    finally:
        hold.close()
    eq(cp.returncode, 0, "exit status; output %r" % out_text(cp))
    p2 = free_port()
    cp = run_binary(["-t", "-c", d.write("ok2.ini", VALID % p2)])
    eq(cp.returncode, 0, "exit status; output %r" % out_text(cp))
    check(port_bindable(p2), "listen port not bindable after -t")


INVALID = """\
[proxy]
listen = 127.0.0.1:%d
bogus_key = 1
max_connections = 10
header_timeout = 10 parsecs
idle_timeout = 1m

[backend]
connect_timeout = 1s
"""


@test("-t on a bad configuration: exit 1, FILE:LINE errors, no socket")
def check_invalid():
    d = TempDir()
    port = free_port()
    path = d.write("bad.ini", INVALID % port)
    cp = run_binary(["-t", "-c", path])
    err = cp.stderr.decode("utf-8", "replace")
    eq(cp.returncode, 1, "exit status; stderr %r" % err)
    lines = [m for m in (re.match(r"^(.+?):(\d+): (.+)$", ln)
                         for ln in err.splitlines()) if m]
    check(lines, "no FILE:LINE: lines in stderr: %r" % err)
    for m in lines:
        check(m.group(1) == path or os.path.basename(m.group(1)) ==
              "bad.ini", "file name %r in %r" % (m.group(1), m.group(0)))
    nums = [int(m.group(2)) for m in lines]
    check(3 in nums, "unknown key on line 3 not reported: %r" % err)
    check(5 in nums, "bad duration on line 5 not reported: %r" % err)
    check(len(lines) >= 3, "expected 3 errors (unknown key, bad duration, "
          "no backend server), got: %r" % err)
    check(port_bindable(port), "listen port not bindable after -t")


@test("-t on an unknown section or a missing file exits 1")
def check_invalid_section():
    d = TempDir()
    path = d.write("sec.ini", VALID % free_port() + "\n[nonsense]\nx = 1\n")
    cp = run_binary(["-t", "-c", path])
    err = cp.stderr.decode("utf-8", "replace")
    eq(cp.returncode, 1, "exit status for an unknown section; stderr %r"
       % err)
    line = VALID.count("\n") + 2
    check(re.search(r"^.*sec\.ini:%d: " % line, err, re.M),
          "no error on line %d: %r" % (line, err))
    cp = run_binary(["-t", "-c", os.path.join(d.path, "missing.ini")])
    eq(cp.returncode, 1, "exit status for a missing file; output %r"
       % out_text(cp))


@test("the shipped conf/spillway.ini passes -t")
def shipped_config():
    path = os.path.join(TOP_SRCDIR, "conf", "spillway.ini")
    if not os.path.exists(path):
        skip("no %s" % path)
    cp = run_binary(["-t", "-c", path])
    eq(cp.returncode, 0, "exit status; output %r" % out_text(cp))


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []


@test("access log: one line per request with method, target, status")
def access_log():
    be = Backend(respond(200, b"ok"))
    be.route("/missing", respond(404, b"nope"))
    be.route("/garbage", raw(b"BANANA\r\n\r\n"))
    tmp = TempDir()
    log = os.path.join(tmp.path, "access.log")
    sp = Spillway([be], proxy={"access_log": log})
    c = Client(sp.port)
    eq(c.exchange("GET", "/first?q=1").status, 200, "status")
    eq(c.exchange("POST", "/second", body=b"abc").status, 200, "status")
    eq(c.exchange("GET", "/missing").status, 404, "status")
    eq(get(sp.port, "/garbage").status, 502, "status")
    lines = wait_for(lambda: len(read_lines(log)) >= 4 and read_lines(log),
                     timeout=3)
    check(lines, "access log has %d lines after 3s: %r"
          % (len(read_lines(log)), read_lines(log)))
    time.sleep(0.2)
    lines = read_lines(log)
    eq(len(lines), 4, "access log lines %r" % lines)
    expect = [("GET", "/first?q=1", "200"), ("POST", "/second", "200"),
              ("GET", "/missing", "404"), ("GET", "/garbage", "502")]
    for (method, target, status) in expect:
        match = [ln for ln in lines if target in ln]
        check(len(match) == 1, "no single line for %s: %r" % (target, lines))
        ln = match[0]
        words = re.split(r"[\s\"]+", ln)
        check(method in words, "method %s missing in %r" % (method, ln))
        check(status in words, "status %s missing in %r" % (status, ln))
    ln = [x for x in lines if "/garbage" in x][0]
    check("upstream_error" in ln, "reason missing in the 502 line %r" % ln)


@test("SIGUSR1 reopens the access log")
def access_log_reopen():
    be = Backend(respond(200, b"ok"))
    tmp = TempDir()
    log = os.path.join(tmp.path, "access.log")
    sp = Spillway([be], proxy={"access_log": log})
    eq(get(sp.port, "/before-rotate").status, 200, "status")
    check(wait_for(lambda: any("/before-rotate" in x
                               for x in read_lines(log)), 3),
          "first request not logged: %r" % read_lines(log))
    os.rename(log, log + ".1")
    sp.signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(log), 2)
    eq(get(sp.port, "/after-rotate").status, 200, "status")
    check(wait_for(lambda: any("/after-rotate" in x
                               for x in read_lines(log)), 3),
          "request after SIGUSR1 not in the new file; new: %r, old: %r"
          % (read_lines(log), read_lines(log + ".1")))
    old = read_lines(log + ".1")
    check(any("/before-rotate" in x for x in old) and
          not any("/after-rotate" in x for x in old),
          "old file %r" % old)
    check(sp.alive(), "spillway died")


@test("SIGTERM: in-flight request completes, idle closed, no new, exit 0",
      timeout=30)
def graceful_stop():
    be = Backend(respond(200, b"quick"))
    be.route("/slow", delayed(1.0, respond(200, b"slow but complete")))
    sp = Spillway([be], proxy={"shutdown_timeout": "5s"})
    idle = Client(sp.port)
    eq(idle.exchange("GET", "/warm").status, 200, "warm-up status")
    busy = Client(sp.port)
    busy.request("GET", "/slow")
    check(be.wait_requests(2), "slow request did not reach the backend")
    t0 = time.monotonic()
    sp.signal(signal.SIGTERM)
    check(idle.wait_closed(2), "idle keep-alive connection not closed "
          "within 2s of SIGTERM")
    # spillway has seen the signal: new connections are refused or ignored
    answered = None
    try:
        s = socket.create_connection((LOCALHOST, sp.port), timeout=0.5)
        try:
            s.sendall(b"GET /new HTTP/1.1\r\nHost: a\r\n\r\n")
            s.settimeout(0.5)
            answered = s.recv(100)
        except (socket.timeout, OSError):
            pass
        finally:
            s.close()
    except OSError:
        pass
    check(not answered, "a connection made after SIGTERM was answered: %r"
          % answered)
    r = busy.read_response(timeout=5)
    eq((r.status, r.body), (200, b"slow but complete"),
       "in-flight response")
    check(busy.wait_closed(2), "client connection not closed after the "
          "in-flight response during the stop")
    # the clients hang up too (spillway may linger until they do)
    idle.close()
    busy.close()
    t1 = time.monotonic()
    rc = sp.wait(5)
    took = time.monotonic() - t0
    check(rc is not None, "still running %.1fs after SIGTERM "
          "(shutdown_timeout 5s)" % took)
    eq(rc, 0, "exit status")
    check(time.monotonic() - t1 < 1.0, "exit %.2fs after the last "
          "connection was done" % (time.monotonic() - t1))
    eq([q.target for q in be.requests], ["/warm", "/slow"],
       "requests at the backend")


@test("SIGINT stops an idle spillway promptly with status 0")
def sigint_idle():
    be = Backend()
    sp = Spillway([be])
    eq(get(sp.port, "/").status, 200, "status")
    t0 = time.monotonic()
    sp.signal(signal.SIGINT)
    rc = sp.wait(3)
    check(rc is not None, "still running 3s after SIGINT")
    eq(rc, 0, "exit status")
    check(time.monotonic() - t0 < 1.5, "exit took %.1fs"
          % (time.monotonic() - t0))


@test("shutdown_timeout bounds the stop when a backend never answers")
def shutdown_timeout():
    be = Backend(never())
    sp = Spillway([be], proxy={"shutdown_timeout": "1s"},
                  backend={"response_timeout": "60s"})
    c = Client(sp.port)
    c.request("GET", "/forever")
    check(be.wait_requests(1), "request did not reach the backend")
    t0 = time.monotonic()
    sp.signal(signal.SIGTERM)
    rc = sp.wait(4)
    took = time.monotonic() - t0
    check(rc is not None, "still running %.1fs after SIGTERM with "
          "shutdown_timeout = 1s" % took)
    check(0.5 <= took <= 3.0, "exit %.2fs after SIGTERM; shutdown_timeout "
          "is 1s" % took)
    # the client is not left hanging
    try:
        c.reader._fill(time.monotonic() + 1)
        c.reader.read_to_eof(time.monotonic() + 1)
    except (socket.timeout, OSError) as e:
        raise AssertionError("client connection not closed at exit: %r" % e)


@test("listen on [::1] and 127.0.0.1 together")
def ipv6_listen():
    if not ipv6_available():
        skip("::1 is not available")
    be = Backend(respond(200, b"dual"))
    p4, p6 = free_port(), free_port("::1")
    Spillway([be], listen=["127.0.0.1:%d" % p4, "[::1]:%d" % p6])
    r = get(p6, "/v6", host="::1")
    eq((r.status, r.body), (200, b"dual"), "response over IPv6")
    r = get(p4, "/v4")
    eq((r.status, r.body), (200, b"dual"), "response over IPv4")
    check(be.requests[0].header("x-forwarded-for") in ("::1", "[::1]"),
          "X-Forwarded-For of an IPv6 client: %r"
          % be.requests[0].header("x-forwarded-for"))


@test("under systemd (NOTIFY_SOCKET): READY=1 once listening, "
      "RELOADING=1 and READY=1 around each reload, STOPPING=1")
def sd_notify():
    cp = run_binary(["-V"])
    if not re.search(r"^features: .*\bsystemd\b", out_text(cp), re.M):
        skip("built without libsystemd")
    d = TempDir()
    sock = register(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
    sock.bind(os.path.join(d.path, "notify"))
    sock.settimeout(5)

    def message():
        return dict(ln.split("=", 1) for ln in
                    sock.recv(4096).decode().splitlines())

    os.environ["NOTIFY_SOCKET"] = os.path.join(d.path, "notify")
    try:
        sp = Spillway(["127.0.0.1:9"], start=False).start(wait=False)
    finally:
        del os.environ["NOTIFY_SOCKET"]
    m = message()
    eq(m.get("READY"), "1", "first message %r" % m)
    # ready means listening: a client connects at once
    socket.create_connection((LOCALHOST, sp.port), 1).close()

    for valid in (True, False):
        if not valid:
            sp.write_config("[proxy]\nbogus = 1\n")
        before = time.monotonic()
        sp.reload()
        m = message()
        eq(m.get("RELOADING"), "1", "message at a reload %r" % m)
        usec = int(m.get("MONOTONIC_USEC", "0"))
        check(before * 1e6 - 1000 <= usec <= time.monotonic() * 1e6 + 1000,
              "MONOTONIC_USEC %d not between %d and now" %
              (usec, before * 1e6))
        m = message()
        eq(m.get("READY"), "1", "after a %s reload: %r" %
           ("good" if valid else "failed", m))
    eq(sp.stop(), 0, "exit status")
    m = message()
    eq(m.get("STOPPING"), "1", "message at SIGTERM %r" % m)


if __name__ == "__main__":
    run_main()
