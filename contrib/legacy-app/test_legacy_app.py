#!/usr/bin/env python3
"""
test_legacy_app.py: tests of the demo's fragile application: its answers
come from real rows, its backlog has no bound and it serves clients that
have left, data growth slows it down, --fall-over takes it down, and it
stops cleanly.

    LEGACY_APP_BIN=path python3 contrib/legacy-app/test_legacy_app.py [NAME...]

LEGACY_APP_BIN defaults to contrib/legacy-app/legacy-app under the
repository root. TAP output; exit status 1 if a test failed.
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
TOP_SRCDIR = os.path.abspath(os.environ.get("top_srcdir") or REPO)
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "integration"))

import harness  # noqa: E402
from harness import Client, check, diag, eq, get, test, wait_for  # noqa: E402

APP_BIN = os.path.abspath(os.environ.get("LEGACY_APP_BIN") or
                          os.path.join(REPO, "contrib", "legacy-app",
                                       "legacy-app"))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")


class App:
    """One legacy-app process on a free port; stopped by close()."""

    def __init__(self, *args, env=None, expect_rc=0):
        if not os.access(APP_BIN, os.X_OK):
            harness.skip("no legacy-app binary at %s (set LEGACY_APP_BIN)"
                         % APP_BIN)
        self.tmp = tempfile.mkdtemp(prefix="legacy-app-test-")
        self.port = harness.free_port()
        self.err_path = os.path.join(self.tmp, "stderr")
        self.expect_rc = expect_rc
        self.err = open(self.err_path, "w")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [APP_BIN, "--port", str(self.port)] + [str(a) for a in args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.err, env=e)
        harness.register(self)
        if not wait_for(lambda: "listening on" in self.stderr() or
                        self.proc.poll() is not None, timeout=20):
            raise AssertionError("legacy-app did not start: "
                                 + self.stderr())
        check(self.proc.poll() is None, "legacy-app exited: "
              + self.stderr())

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def stats(self):
        r = get(self.port, "/stats")
        eq(r.status, 200, "GET /stats")
        return json.loads(r.body)

    def orders(self, target="/orders"):
        r = get(self.port, target, timeout=20)
        eq(r.status, 200, "GET %s" % target)
        return json.loads(r.body)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signal the process, wait for it; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def close(self):
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("legacy-app ignored SIGTERM")
        self.err.close()
        text = self.stderr()
        if any(m in text for m in SANITIZER_MARKS):
            problems.append("sanitizer report:\n" + text[-3000:])
        if self.proc.returncode != self.expect_rc:
            problems.append("legacy-app exited %s, expected %s:\n%s"
                            % (self.proc.returncode, self.expect_rc,
                               text[-1500:]))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems


def open_orders(db, customer):
    """The same question, asked of the database file directly."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return con.execute(
            "SELECT count(*), coalesce(sum(amount), 0), "
            "coalesce(max(created), 0) FROM orders "
            "WHERE customer = ? AND status = 'open'", (customer,)).fetchone()
    finally:
        con.close()


@test("orders: answers computed from the seeded rows, deterministically",
      timeout=60)
def test_orders():
    tmp = tempfile.mkdtemp(prefix="legacy-app-db-")
    try:
        answers = []
        for run in range(2):
            db = os.path.join(tmp, "orders%d.db" % run)
            app = App("--rows", 3000, "--customers", 50, "--page-us", 0,
                      "--db", db, "-q")
            a = app.orders("/orders?customer=7")
            eq(a["customer"], 7, "customer")
            eq(a["rows"], 3000, "rows")
            check(a["rows_scanned"] >= 2999, "a full scan: %r" % a)
            check(a["pages_read"] > 10, "pages read from storage: %r" % a)
            want = open_orders(db, 7)
            eq((a["open_orders"], a["open_amount"], a["last_order"]),
               want, "the database's own answer")
            check(a["open_orders"] > 0, repr(a))
            answers.append(a["open_amount"])
            # Without ?customer= the customers take turns.
            seen = {app.orders("/")["customer"] for _ in range(3)}
            eq(len(seen), 3, "round robin of customers")
            eq(app.stop(), 0, "exit status on SIGTERM")
            check(os.path.exists(db), "--db is kept")
        eq(answers[0], answers[1], "same seed, same data")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test("http: keep-alive, HEAD, health, stats, 404, 405, HTTP/1.0",
      timeout=30)
def test_http():
    app = App("--rows", 1000, "--page-us", 0, "-q")
    c = harness.register(Client(app.port))
    for target in ("/", "/orders?customer=3", "/healthz"):
        r = c.exchange("GET", target)
        eq(r.status, 200, "GET %s" % target)
        check(r.header("content-length") == str(len(r.body)), repr(r))
    r = c.exchange("HEAD", "/")
    eq(r.status, 200, "HEAD /")
    eq(r.body, b"", "HEAD has no body")
    r = c.exchange("GET", "/nowhere")
    eq(r.status, 404, "unknown path")
    r = c.exchange("POST", "/orders", body=b"x=1")
    eq(r.status, 405, "POST /orders")
    r = c.exchange("GET", "/admin/grow")
    eq(r.status, 405, "GET /admin/grow")
    check(c.is_open(), "keep-alive kept the connection")
    s = app.stats()
    eq(s["workers"], 4, "default workers")
    check(s["served"] >= 3 and s["backlog"] == 0, repr(s))
    c10 = harness.register(Client(app.port))
    c10.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    r = c10.read_response()
    eq(r.status, 200, "HTTP/1.0")
    check(c10.wait_closed(), "HTTP/1.0 without keep-alive is closed")


@test("backlog: unbounded, and requests of clients that left are served",
      timeout=60)
def test_backlog():
    # one worker, about 20 ms a request
    app = App("--workers", 1, "--rows", 2000, "--page-us", 1000,
              "--degrade", 0)
    n = 40
    clients = [Client(app.port) for _ in range(n)]
    for c in clients:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(wait_for(lambda: app.stats()["requests"] >= n + 1, timeout=10),
          "every request accepted: %r" % app.stats())
    s = app.stats()
    check(s["backlog"] >= n // 2, "queued, not refused: %r" % s)
    for c in clients:
        c.close()
    check(wait_for(lambda: app.stats()["served"] >= n, timeout=30),
          "the whole backlog worked off: %r" % app.stats())
    s = app.stats()
    diag("after: %r" % s)
    check(s["served_abandoned"] >= n - 5,
          "work done for clients that had left: %r" % s)
    check(s["max_backlog"] >= n // 2, repr(s))
    check(wait_for(lambda: "for clients already gone" in app.stderr(),
                   timeout=5), "its log says so: " + app.stderr())


@test("growth: doubling the data doubles the work of each request",
      timeout=60)
def test_growth():
    app = App("--workers", 1, "--rows", 4000, "--page-us", 200, "-q")
    before = [app.orders() for _ in range(3)]
    r = get(app.port, "/admin/grow", method="POST", timeout=20)
    eq(r.status, 200, "POST /admin/grow")
    g = json.loads(r.body)
    eq((g["rows"], g["added"]), (8000, 4000), "grown by its own size")
    after = [app.orders() for _ in range(3)]
    eq(after[0]["rows"], 8000, "rows after growth")
    ms0 = min(a["service_ms"] for a in before)
    ms1 = min(a["service_ms"] for a in after)
    pg0 = before[0]["pages_read"]
    pg1 = after[0]["pages_read"]
    diag("service %.1f -> %.1f ms, pages %d -> %d" % (ms0, ms1, pg0, pg1))
    check(pg1 >= 1.8 * pg0, "pages read %d -> %d" % (pg0, pg1))
    check(ms1 >= 1.6 * ms0, "service %.1f -> %.1f ms" % (ms0, ms1))
    r = get(app.port, "/admin/grow?rows=1000", method="POST", timeout=20)
    eq(json.loads(r.body)["rows"], 9000, "?rows=1000")
    app.proc.send_signal(signal.SIGUSR1)
    check(wait_for(lambda: app.stats()["rows"] == 18000, timeout=10),
          "SIGUSR1 doubles: %r" % app.stats())


@test("fall-over: past --fall-over waiting requests it goes down",
      timeout=60)
def test_fall_over():
    app = App("--workers", 1, "--rows", 2000, "--page-us", 1000,
              "--fall-over", 5, expect_rc=3)
    clients = [harness.register(Client(app.port)) for _ in range(10)]
    for c in clients:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    app.proc.wait(timeout=20)
    eq(app.proc.returncode, 3, "exit status")
    check("falls over" in app.stderr(), app.stderr())
    try:
        socket.create_connection((harness.LOCALHOST, app.port), 2).close()
        check(False, "still listening after falling over")
    except ConnectionRefusedError:
        pass
    check(all(c.wait_closed(timeout=5) for c in clients),
          "every client cut off")


@test("stop: SIGTERM with a backlog exits 0, temporary database removed",
      timeout=60)
def test_stop():
    tmpdir = tempfile.mkdtemp(prefix="legacy-app-tmp-")
    try:
        app = App("--workers", 2, "--rows", 2000, "--page-us", 1000,
                  env={"TMPDIR": tmpdir})
        dbs = os.listdir(tmpdir)
        eq(len(dbs), 1, "one temporary database directory")
        clients = [harness.register(Client(app.port)) for _ in range(20)]
        for c in clients:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        check(wait_for(lambda: app.stats()["backlog"] > 5, timeout=10),
              repr(app.stats()))
        t0 = time.monotonic()
        eq(app.stop(), 0, "exit status")
        check(time.monotonic() - t0 < 5, "stopped without working off "
              "the backlog")
        eq(os.listdir(tmpdir), [], "temporary database removed")
        check("stopped: served" in app.stderr(), app.stderr())
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@test("arguments: bad ones print the usage, exit 2", timeout=30)
def test_args():
    if not os.access(APP_BIN, os.X_OK):
        harness.skip("no legacy-app binary at %s" % APP_BIN)
    for args in (["--workers", "0"], ["--rows", "x"], ["--bogus"],
                 ["extra"], ["--degrade", "-1"]):
        p = subprocess.run([APP_BIN] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        eq(p.returncode, 2, "exit status of %r" % args)
        check(p.stderr, "a message for %r" % args)


if __name__ == "__main__":
    harness.run_main()
