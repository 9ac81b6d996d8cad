#!/usr/bin/env python3
"""The dashboard at the admin listener's GET /: one self-contained page
(no outside resources), byte for byte src/dashboard.html as embedded by
tools/embed.py; loaded in headless Chromium it polls GET /status, draws its
charts, and its figures move when load is applied.

Chromium is driven over the DevTools protocol (a minimal WebSocket client
below, standard library only): --dump-dom with --virtual-time-budget is no
use here, since virtual time does not advance while a fetch is in flight
and the page is never "done". The test is skipped when /usr/bin/chromium
(or $CHROMIUM) is missing. A screenshot taken under load is kept for a
human to look at: its path is printed as a TAP diagnostic
($SPILLWAY_SCREENSHOT_DIR chooses the directory, default the temporary
directory)."""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (admin_spillway, Backend, check, delayed, diag, eq, get,
                     register, respond, run_binary, run_main, skip, test,
                     TOP_SRCDIR, wait_for)

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
PAGE_SOURCE = os.path.join(TOP_SRCDIR, "src", "dashboard.html")
EMBED = os.path.join(TOP_SRCDIR, "tools", "embed.py")


# --------------------------------------------------------------------------
# A minimal WebSocket client (RFC 6455), enough for the DevTools protocol

class WebSocket:
    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url, timeout=10.0):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        self.sock.sendall((
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
            % (path, u.hostname, u.port, key)).encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("WebSocket: EOF during the handshake")
            self.buf += data
        i = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:i]).decode("latin-1")
        del self.buf[:i + 4]
        if not head.startswith("HTTP/1.1 101"):
            raise ConnectionError("WebSocket handshake: %s"
                                  % head.splitlines()[0])
        want = base64.b64encode(hashlib.sha1(
            (key + self.GUID).encode()).digest()).decode()
        m = re.search(r"(?im)^sec-websocket-accept:\s*(\S+)", head)
        if not m or m.group(1) != want:
            raise ConnectionError("WebSocket handshake: bad accept key")

    def _frame(self, opcode, payload):
        n = len(payload)
        head = bytearray([0x80 | opcode])
        if n < 126:
            head.append(0x80 | n)
        elif n < 65536:
            head.append(0x80 | 126)
            head += n.to_bytes(2, "big")
        else:
            head.append(0x80 | 127)
            head += n.to_bytes(8, "big")
        mask = os.urandom(4)
        k = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^
                  int.from_bytes(k, "big")).to_bytes(n, "big") if n else b""
        self.sock.sendall(bytes(head) + mask + masked)

    def send(self, text):
        self._frame(0x1, text.encode())

    def _read(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("WebSocket: timed out")
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("WebSocket: connection closed")
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv(self, timeout):
        """One whole text message, or None at timeout."""
        deadline = time.monotonic() + timeout
        parts = []
        try:
            while True:
                b0, b1 = self._read(2, deadline)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(self._read(2, deadline), "big")
                elif n == 127:
                    n = int.from_bytes(self._read(8, deadline), "big")
                mask = self._read(4, deadline) if b1 & 0x80 else None
                data = self._read(n, deadline)
                if mask:
                    k = (mask * (n // 4 + 1))[:n]
                    data = (int.from_bytes(data, "big") ^ int.from_bytes(
                        k, "big")).to_bytes(n, "big")
                if opcode == 0x8:
                    raise ConnectionError("WebSocket: closed by the peer")
                if opcode == 0x9:
                    self._frame(0xA, data)
                    continue
                if opcode == 0xA:
                    continue
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode("utf-8")
        except socket.timeout:
            if parts:
                raise
            return None

    def close(self):
        try:
            self._frame(0x8, b"\x03\xe8")
        except OSError:
            pass
        self.sock.close()


# --------------------------------------------------------------------------
# Headless Chromium and the DevTools protocol

class Chromium:
    """Headless Chromium in its own process group, with a fresh profile,
    and a DevTools session attached to its page."""

    def __init__(self, width=1920, height=1080, timeout=20.0):
        self.tmp = tempfile.mkdtemp(prefix="spillway-it-chromium-")
        self.proc = None
        self.ws = None
        register(self)
        self.log = open(os.path.join(self.tmp, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions",
             "--disable-dev-shm-usage", "--hide-scrollbars",
             "--user-data-dir=" + os.path.join(self.tmp, "profile"),
             "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0",
             "--window-size=%d,%d" % (width, height), "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        portfile = os.path.join(self.tmp, "profile", "DevToolsActivePort")

        def port():
            if self.proc.poll() is not None:
                raise AssertionError("chromium exited with %s:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                with open(portfile) as f:
                    return int(f.readline().strip())
            except (OSError, ValueError):
                return None
        self.port = wait_for(port, timeout)
        check(self.port, "chromium wrote no DevToolsActivePort in %.0fs:\n%s"
              % (timeout, self.log_tail()))

        def page():
            try:
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d/json/list" % self.port,
                        timeout=2) as r:
                    targets = json.load(r)
            except OSError:
                return None
            for t in targets:
                if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                    return t["webSocketDebuggerUrl"]
            return None
        url = wait_for(page, timeout)
        check(url, "chromium shows no page target")
        self.ws = WebSocket(url)
        self.next_id = 0
        self.events = []
        self.errors = []        # console errors and uncaught exceptions
        self.requests = []      # every URL the page asked for
        for m in ("Runtime.enable", "Log.enable", "Page.enable",
                  "Network.enable"):
            self.call(m)
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1,
            "mobile": False})

    def log_tail(self, n=20):
        try:
            with open(os.path.join(self.tmp, "chromium.log"), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def _event(self, msg):
        m, p = msg.get("method"), msg.get("params", {})
        self.events.append(msg)
        if m == "Network.requestWillBeSent":
            self.requests.append(p.get("request", {}).get("url", ""))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: %s %s" % (
                d.get("text"), d.get("exception", {}).get("description", "")))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in (
                "error", "assert"):
            self.errors.append("console.%s: %s" % (p.get("type"), " ".join(
                str(a.get("value", a.get("description", "")))
                for a in p.get("args", []))))
        elif m == "Log.entryAdded" and \
                p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append("log (%s): %s %s" % (
                e.get("source"), e.get("text"), e.get("url", "")))

    def call(self, method, params=None, timeout=10.0):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method,
                                 "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            raw = self.ws.recv(max(0.0, left)) if left > 0 else None
            if raw is None:
                raise AssertionError("DevTools: no answer to %s in %.0fs"
                                     % (method, timeout))
            msg = json.loads(raw)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError("DevTools %s: %s"
                                         % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self._event(msg)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr,
                                           "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise AssertionError("page: %s raised %s" % (
                expr, r["exceptionDetails"].get("exception", {}).get(
                    "description", r["exceptionDetails"].get("text"))))
        return r.get("result", {}).get("value")

    def navigate(self, url, timeout=10.0):
        r = self.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise AssertionError("navigate %s: %s" % (url, r["errorText"]))
        ok = wait_for(lambda: self.eval("document.readyState") == "complete",
                      timeout, interval=0.05)
        check(ok, "page %s not loaded in %.0fs" % (url, timeout))

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", {"format": "png"},
                      timeout=20)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        return path

    def close(self):
        if self.ws is not None:
            try:
                self.ws.close()
            except OSError:
                pass
            self.ws = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            # stragglers of the group (zygote, renderers), if any remain
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc = None
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return []


# --------------------------------------------------------------------------
# helpers

def rate_form(n):
    """A rate of n per second as the binary takes it: "n/s", or n."""
    d = tempfile.mkdtemp(prefix="spillway-it-")
    try:
        p = os.path.join(d, "t.ini")
        with open(p, "w") as f:
            f.write("[proxy]\nlisten = 127.0.0.1:1\n[backend]\n"
                    "server = 127.0.0.1:2\n[admission]\nrate = 1/s\n")
        ok = run_binary(["-t", "-c", p]).returncode == 0
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return "%d/s" % n if ok else "%d" % n


def with_admin(backend, sections=()):
    """spillway in front of backend, with an admin listener; returns
    (spillway, admin port)."""
    sp = admin_spillway([backend], sections)
    return sp, sp.admin_port


def page_source():
    with open(PAGE_SOURCE, "rb") as f:
        return f.read()


def outside_references(page):
    """What in the page could load something from elsewhere: attribute URLs
    other than data: and #fragments, CSS url() other than data:, @import,
    any http(s):// but the SVG namespace, and any request made by script
    other than fetch("status") and fetch("history")."""
    text = page.decode("utf-8", "replace")
    bad = []
    for m in re.finditer(r"""(?i)\b(src|href|action|poster|srcset|"""
                         r"""formaction)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""",
                         text):
        v = m.group(2).strip("\"'").strip()
        if not (v.startswith("data:") or v.startswith("#")):
            bad.append(m.group(0))
    for m in re.finditer(r"(?i)url\(\s*([^)]*)\)", text):
        if not m.group(1).strip("\"' ").startswith("data:"):
            bad.append(m.group(0))
    for m in re.finditer(r"(?i)https?://[^\s\"'<>]*", text):
        if not m.group(0).startswith("http://www.w3.org/"):
            bad.append(m.group(0))
    for m in re.finditer(r"(?i)@import|\bimport\s*\(|XMLHttpRequest|"
                         r"EventSource|WebSocket|importScripts|"
                         r"sendBeacon|"
                         r"\bfetch\s*\((?!\s*[\"'](status|history)[\"'])",
                         text):
        bad.append(m.group(0))
    return bad


# --------------------------------------------------------------------------
# tests

@test("embed.py output compiles and holds the input byte for byte",
      timeout=30)
def embed_round_trip():
    cc = shutil.which(os.environ.get("CC", "cc").split()[0] or "cc")
    if not cc:
        skip("no C compiler")
    d = tempfile.mkdtemp(prefix="spillway-it-embed-")
    try:
        data = (bytes(range(256)) * 2 + b'??= ??/ "q" \\ \\n \x00 7\n\n' +
                "d\u00e9j\u00e0 \u2013 vu\n".encode() + b"x" * 300 +
                page_source())
        for name, blob in (("blob", data), ("empty", b"")):
            src = os.path.join(d, name + ".bin")
            out = os.path.join(d, name + ".c")
            with open(src, "wb") as f:
                f.write(blob)
            r = subprocess.run([sys.executable, EMBED, src, out, name],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20)
            eq(r.returncode, 0, "embed.py status (%s)" % r.stdout)
            with open(out) as f:
                lines = f.read().splitlines()
            long = [i + 1 for i, s in enumerate(lines) if len(s) >= 80]
            check(not long, "lines of 80 or more characters: %s" % long[:5])
            main = os.path.join(d, name + "_main.c")
            with open(main, "w") as f:
                f.write(
                    '#include <stdio.h>\n#include <string.h>\n'
                    'extern const char %(n)s[];\n'
                    'extern const unsigned long %(n)s_len;\n'
                    'int main(void) {\n'
                    '  fwrite(%(n)s, 1, %(n)s_len, stdout);\n'
                    '  return %(n)s[%(n)s_len] != 0;\n}\n' % {"n": name})
            exe = os.path.join(d, name)
            r = subprocess.run(
                [cc, "-std=c11", "-Wall", "-Wextra", "-Wmissing-declarations",
                 "-Wmissing-prototypes", "-Wtrigraphs", "-Werror", "-o", exe,
                 out, main], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, timeout=60)
            eq(r.returncode, 0, "cc status (%s)"
               % r.stdout.decode("utf-8", "replace")[-2000:])
            r = subprocess.run([exe], stdout=subprocess.PIPE, timeout=10)
            eq(r.returncode, 0, "NUL after the data")
            check(r.stdout == blob, "embedded bytes differ from the input "
                  "(%d vs %d bytes)" % (len(r.stdout), len(blob)))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test("GET / on the admin listener: the page, self-contained", timeout=30)
def page_served():
    be = Backend(respond(200, b"hello\n"))
    sp, aport = with_admin(be)
    r = get(aport, "/")
    eq(r.status, 200, "GET / status")
    ct = (r.header("Content-Type") or "").lower()
    check(ct.startswith("text/html"), "Content-Type %r" % ct)
    check(r.body == page_source(), "GET / is not src/dashboard.html byte "
          "for byte (%d vs %d bytes)" % (len(r.body), len(page_source())))
    bad = outside_references(r.body)
    check(not bad, "the page refers to outside resources: %r" % bad)
    for hook in (b'id="offered"', b'id="admitted"', b'id="refused"',
                 b'id="limit"', b'id="inflight"', b'id="queue"',
                 b'id="p50"', b'id="p99"', b"data-samples", b"<canvas"):
        check(hook in r.body, "the page has no %s" % hook.decode())
    s = get(aport, "/status")
    eq(s.status, 200, "GET /status status")
    j = json.loads(s.body)
    for k in ("version", "uptime_seconds", "generation", "limiter", "queue",
              "totals", "latency_seconds", "served_latency_seconds"):
        check(k in j, "/status has no %r" % k)


def load_for(port, seconds, threads=4, pause=0.02):
    """GET / from a few threads for a while; returns {status: count}."""
    stop = threading.Event()
    counts = {}
    lock = threading.Lock()

    def one():
        while not stop.is_set():
            try:
                st = get(port, "/", timeout=3).status
            except Exception:           # noqa: counted, not fatal
                st = "error"
            with lock:
                counts[st] = counts.get(st, 0) + 1
            stop.wait(pause)
    ts = [threading.Thread(target=one, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join(5)
    return counts


def quantile(q, buckets):
    """Like the page's (and Prometheus'): linear inside the bucket."""
    b = [(float("inf") if le == "+Inf" else le, c) for le, c in buckets]
    total = b[-1][1]
    if total <= 0:
        return None
    rank = q * total
    for i, (le, c) in enumerate(b):
        if c >= rank:
            if le == float("inf"):
                return b[i - 1][0]
            lo, below = (b[i - 1][0], b[i - 1][1]) if i else (0, 0)
            return lo + (le - lo) * ((rank - below) / (c - below)) \
                if c > below else le
    return None


@test("GET /history: a sample a second, bounded, the served latency apart",
      timeout=40)
def history_endpoint():
    be = Backend(delayed(0.02, respond(200, b"hello\n")))
    sp, aport = with_admin(be, [("admission", {"rate": rate_form(10),
                                               "burst": 2})])
    counts = load_for(sp.port, 3.0)
    diag("load: %r" % counts)
    check(counts.get(200, 0) > 0 and counts.get(429, 0) > counts[200],
          "mostly refused, some served: %r" % counts)
    time.sleep(1.2)     # a sample taken after the last request ended
    r = get(aport, "/history")
    eq(r.status, 200, "GET /history status")
    eq((r.header("Content-Type") or "").split(";")[0], "application/json",
       "Content-Type")
    h = json.loads(r.body)
    eq((h["period_seconds"], h["capacity"]), (1, 300), "period, capacity")
    smp = h["samples"]
    check(len(smp) >= 4, "%d samples after 4 s" % len(smp))
    check(len(smp) <= h["capacity"], "more samples than the capacity")
    ups = [x["uptime_seconds"] for x in smp]
    check(all(0.5 < b - a < 2.5 for a, b in zip(ups, ups[1:])),
          "about a second apart: %r" % ups)
    check(ups[-1] <= h["uptime_seconds"], "a sample from the future")
    reqs = [x["totals"]["requests"] for x in smp]
    check(reqs == sorted(reqs), "requests went down: %r" % reqs)
    last = smp[-1]
    st = json.loads(get(aport, "/status").body)
    eq(last["totals"]["requests"], st["totals"]["requests"],
       "the last sample's requests against /status")
    eq(last["totals"]["refused"], st["totals"]["refused"], "refused")
    eq(last["served_latency_seconds"]["count"], counts[200],
       "served latency counts the 200s only")
    eq(st["latency_seconds"]["count"], counts[200] + counts[429],
       "every request's latency counts refusals too")
    eq(last["limiter"]["limit"], st["limiter"]["limit"], "limit")
    # the point of it: refusals in microseconds hid the served latency
    served = quantile(0.5, last["served_latency_seconds"]["buckets"])
    every = quantile(0.5, st["latency_seconds"]["buckets"])
    diag("p50 served %.2f ms, every request %.2f ms" % (1000 * served,
                                                         1000 * every))
    check(served >= 0.01, "served p50 %.4f s, the backend takes 20 ms"
          % served)
    check(every < served, "every request's p50 %.4f s not below the "
          "served %.4f s" % (every, served))
    # the same in /metrics, by class
    m = metrics_of(aport)
    eq(m.get('spillway_served_duration_seconds_count{class="default"}'),
       float(counts[200]), "served_duration_seconds_count{class=default}")
    eq(m.get('spillway_request_duration_seconds_count{class="default"}'),
       float(counts[200] + counts[429]),
       "request_duration_seconds_count{class=default}")
    r = get(aport, "/history", method="POST", body=b"")
    eq(r.status, 405, "POST /history")


def metrics_of(aport):
    """{sample name with labels as written: value} of GET /metrics."""
    out = {}
    for ln in get(aport, "/metrics").body.decode().splitlines():
        if ln and not ln.startswith("#"):
            k, _, v = ln.rpartition(" ")
            out[k] = float(v)
    return out


@test("dashboard in headless Chromium: loads, draws, moves under load",
      timeout=55)
def dashboard_live():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        skip("no %s (Debian package chromium)" % CHROMIUM)
    t0 = time.monotonic()
    be = Backend(delayed(0.004, respond(200, b"hello\n")))
    sp, aport = with_admin(be, [("admission", {"rate": rate_form(20),
                                               "burst": 5})])
    br = Chromium()
    diag("chromium up in %.1fs" % (time.monotonic() - t0))
    br.navigate("http://127.0.0.1:%d/" % aport)

    def figures():
        return br.eval("""(function () {
          var v = function (id) {
            var e = document.getElementById(id);
            return e ? {text: e.textContent, value: e.dataset.value} : null;
          };
          var out = {samples: +document.body.dataset.samples,
                     state: document.body.dataset.state, canvases: {}};
          ["offered", "admitted", "refused", "limit", "inflight", "queue",
           "p50", "p99", "refused-rate_limited", "version", "generation"]
            .forEach(function (id) { out[id] = v(id); });
          document.querySelectorAll("canvas").forEach(function (c) {
            var d = c.getContext("2d").getImageData(0, 0, c.width,
                                                    c.height).data;
            var ink = 0, colour = 0;
            for (var i = 0; i < d.length; i += 4) {
              if (d[i + 3] > 0) ink++;
              var mx = Math.max(d[i], d[i + 1], d[i + 2]);
              var mn = Math.min(d[i], d[i + 1], d[i + 2]);
              if (d[i + 3] > 128 && mx - mn > 60) colour++;
            }
            out.canvases[c.id] = {w: c.width, h: c.height, ink: ink,
                                  colour: colour,
                                  points: +(c.dataset.points || 0)};
          });
          return out;
        })()""")

    def num(f, k):
        v = f[k] and f[k]["value"]
        return float(v) if v not in (None, "") else None

    # it loads and draws: samples come in, canvases have a frame and data
    ok = wait_for(lambda: figures()["samples"] >= 3, 6.0, interval=0.2)
    before = figures()
    check(ok, "fewer than 3 polls in 6s: %r\nchromium log:\n%s"
          % (before, br.log_tail()))
    eq(before["state"], "live", "data-state")
    check(before["version"]["text"] not in ("", "\u2013"),
          "no version in the header: %r" % before["version"])
    eq(len(before["canvases"]), 3, "number of canvases")
    for cid, c in before["canvases"].items():
        check(c["w"] > 100 and c["h"] > 50, "canvas %s is %dx%d"
              % (cid, c["w"], c["h"]))
        check(c["ink"] > 1000, "canvas %s is blank: %r" % (cid, c))
        # idle, the latency chart has nothing to show: no request ended
        if cid != "chart-latency":
            check(c["points"] >= 2, "canvas %s shows no points: %r"
                  % (cid, c))
    check(num(before, "limit") is not None and num(before, "limit") > 0,
          "no limit shown: %r" % before["limit"])
    check(num(before, "offered") is not None,
          "no offered rate after 3 polls: %r" % before["offered"])
    diag("idle: offered %s admitted %s refused %s limit %s inflight %s" % (
        before["offered"]["text"], before["admitted"]["text"],
        before["refused"]["text"], before["limit"]["text"],
        before["inflight"]["text"]))

    # load: about 100 requests a second for 4 s against rate 20/s burst 5
    stop = threading.Event()
    counts = {"sent": 0, 200: 0, 429: 0, "other": 0}
    lock = threading.Lock()

    def load():
        while not stop.is_set():
            t = time.monotonic()
            try:
                st = get(sp.port, "/", timeout=3).status
            except Exception:           # noqa: counted, not fatal
                st = "other"
            with lock:
                counts["sent"] += 1
                counts[st if st in counts else "other"] += 1
            stop.wait(max(0.0, 0.04 - (time.monotonic() - t)))
    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    seen = []
    shot = None
    try:
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            time.sleep(0.25)
            f = figures()
            seen.append(f)
            if shot is None and num(f, "refused") and num(f, "admitted") \
                    and f["samples"] >= before["samples"] + 3:
                shot = os.path.join(
                    os.environ.get("SPILLWAY_SCREENSHOT_DIR") or
                    tempfile.gettempdir(),
                    "spillway-dashboard-%d.png" % os.getpid())
                br.screenshot(shot)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    diag("load: %r" % counts)
    if shot:
        diag("screenshot under load: %s" % shot)
    check(counts[200] > 0 and counts[429] > 0,
          "the load was not partly refused: %r" % counts)

    def series(k):
        return [num(f, k) for f in seen]
    offered, admitted, refused = (series("offered"), series("admitted"),
                                  series("refused"))
    diag("offered /s seen: %s" % sorted(set(x for x in offered if x)))
    check(max(x or 0 for x in offered) > 0,
          "offered never above 0 under load: %r" % offered)
    check(max(x or 0 for x in admitted) > 0,
          "admitted never above 0 under load: %r" % admitted)
    check(max(x or 0 for x in refused) > 0,
          "refused never above 0 under load: %r" % refused)
    check(max(num(f, "refused-rate_limited") or 0 for f in seen) > 0,
          "rate_limited never above 0 under load")
    check(len(set(offered + [num(before, "offered")])) >= 3,
          "offered did not move: %r" % offered)
    check(any(num(f, "p50") is not None for f in seen),
          "no p50 under load")
    last = seen[-1]
    check(last["samples"] >= before["samples"] + 3,
          "polling stalled: %d then %d samples"
          % (before["samples"], last["samples"]))
    rb, ra = (before["canvases"]["chart-rates"],
              last["canvases"]["chart-rates"])
    check(ra["colour"] > rb["colour"] + 200,
          "the rates chart did not draw the load: %r then %r" % (rb, ra))
    lb, la = (before["canvases"]["chart-latency"],
              last["canvases"]["chart-latency"])
    check(la["points"] >= 1 and la["colour"] > lb["colour"] + 50,
          "the latency chart did not draw: %r then %r" % (lb, la))
    rows = br.eval("""Array.prototype.map.call(
        document.querySelectorAll('#servers tr'), function (r) {
          return [r.cells[0].textContent, r.cells[1].textContent,
                  r.cells[2].textContent]; })""")
    eq(rows, [[be.addr, "up", "1.00"]], "backend servers table")
    check(not br.errors, "errors in the page: %s" % br.errors)
    base = "http://127.0.0.1:%d/" % aport
    other = sorted(set(u for u in br.requests
                       if u not in (base, base + "status",
                                    base + "history") and
                       not u.startswith("data:")))
    check(not other, "the page loaded outside resources: %s" % other)
    check(br.requests.count(base + "status") >= 3,
          "the page did not poll %sstatus" % base)
    diag("dashboard test took %.1fs" % (time.monotonic() - t0))


@test("dashboard opened after an incident: the last minutes drawn at once",
      timeout=55)
def dashboard_history():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        skip("no %s (Debian package chromium)" % CHROMIUM)
    be = Backend(delayed(0.02, respond(200, b"hello\n")))
    sp, aport = with_admin(be, [("admission", {"rate": rate_form(10),
                                               "burst": 2})])
    br = Chromium()
    counts = load_for(sp.port, 4.0)
    diag("load before the page opened: %r" % counts)
    check(counts.get(200, 0) > 0 and counts.get(429, 0) > counts[200],
          "mostly refused, some served: %r" % counts)
    opened = time.monotonic()
    br.navigate("http://127.0.0.1:%d/" % aport)

    def state():
        return br.eval("""(function () {
          var d = window.spillwayDashboard, now = Date.now();
          var pts = d ? d.ring : [];
          var c = document.getElementById("chart-rates");
          var l = document.getElementById("chart-latency");
          return {history: +(document.body.dataset.history || 0),
                  samples: +(document.body.dataset.samples || 0),
                  rates: +(c.dataset.points || 0),
                  latency: +(l.dataset.points || 0),
                  refusing: pts.filter(function (p) {
                    return p.byReason && p.byReason.rate_limited > 0 &&
                      p.admitted > 0 && p.t < now - 1500; }).length,
                  p50s: pts.map(function (p) { return p.p50; })
                    .filter(function (v) { return v !== null; }),
                  p50peak: document.getElementById("p50-peak")
                    .dataset.value};
        })()""")
    ok = wait_for(lambda: state()["samples"] >= 1, 5.0, interval=0.1)
    st = state()
    took = time.monotonic() - opened
    diag("%.1fs after opening: %r" % (took, {k: v for k, v in st.items()
                                            if k != "p50s"}))
    check(ok, "no poll: %r" % st)
    check(st["history"] >= 4, "history replayed %d points" % st["history"])
    check(st["refusing"] >= 2, "the incident (served and refused each "
          "second) is not in the replayed points: %r" % st)
    check(st["rates"] >= 4 and st["latency"] >= 2,
          "the charts did not draw the history: %r" % st)
    # the latency drawn is the served one: the backend's 20 ms, not the
    # refusals' fraction of a millisecond
    check(st["p50s"] and min(st["p50s"]) >= 0.01,
          "p50 of served requests under 10 ms: %r" % st["p50s"])
    check(float(st["p50peak"] or 0) >= 0.01, "p50 peak %r" % st["p50peak"])
    check(not br.errors, "errors in the page: %s" % br.errors)


if __name__ == "__main__":
    run_main()
