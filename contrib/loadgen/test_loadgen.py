#!/usr/bin/env python3
"""
test_loadgen.py: tests of the open-loop load generator against the
integration tests' Backend (tests/integration/harness.py): the schedule,
the counting of statuses, errors and timeouts, latency from the scheduled
send time, Retry-After accounting and response framing; and of its closed
loop (--closed N, --honour-retry-after) and --slo.

    LOADGEN_BIN=path python3 contrib/loadgen/test_loadgen.py [NAME...]

LOADGEN_BIN defaults to contrib/loadgen/loadgen under the repository root.
TAP output; exit status 1 if a test failed.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
TOP_SRCDIR = os.path.abspath(os.environ.get("top_srcdir") or REPO)
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "integration"))

import harness  # noqa: E402
from harness import (Backend, check, chunked, close_delimited,  # noqa: E402
                     delayed, diag, never, respond, test)

LOADGEN_BIN = os.path.abspath(os.environ.get("LOADGEN_BIN") or
                              os.path.join(REPO, "contrib", "loadgen",
                                           "loadgen"))

COLUMNS = ["second", "offered", "ok_2xx", "s429", "s503", "s502", "s504",
           "other_status", "errors", "timeouts", "p50_ms", "p99_ms",
           "refused_p50_ms", "retry_after_missing"]
ENDINGS = ["ok_2xx", "s429", "s503", "s502", "s504", "other_status",
           "errors", "timeouts"]


class Run:
    """One finished loadgen run: rows (per second), summary (JSON)."""

    def __init__(self, rows, summary, stderr, elapsed):
        self.rows = rows
        self.summary = summary
        self.stderr = stderr
        self.elapsed = elapsed

    def __getitem__(self, key):
        return self.summary[key]


def loadgen(backend, *args, timeout=60):
    """Run loadgen against backend with args; return a Run."""
    if not os.access(LOADGEN_BIN, os.X_OK):
        harness.skip("no loadgen binary at %s (set LOADGEN_BIN)"
                     % LOADGEN_BIN)
    tmp = tempfile.mkdtemp(prefix="loadgen-test-")
    csv_path = os.path.join(tmp, "out.csv")
    json_path = os.path.join(tmp, "out.json")
    target = backend if isinstance(backend, str) else \
        "http://%s" % backend.addr
    cmd = [LOADGEN_BIN, "--quiet", "--csv", csv_path, "--json", json_path] \
        + [str(a) for a in args] + [target]
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    elapsed = time.monotonic() - t0
    stderr = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        raise AssertionError("loadgen exited %d: %s" % (p.returncode,
                                                         stderr))
    with open(csv_path) as f:
        reader = csv.DictReader(f)
        check(reader.fieldnames == COLUMNS,
              "CSV columns: %r" % reader.fieldnames)
        rows = list(reader)
    with open(json_path) as f:
        summary = json.load(f)
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)
    run = Run(rows, summary, stderr, elapsed)
    check_consistent(run)
    return run


def check_consistent(run):
    """Rows add up to the summary; every offered request ended once."""
    for key in ["offered"] + ENDINGS + ["retry_after_missing"]:
        s = sum(int(r[key]) for r in run.rows)
        check(s == run[key], "%s: rows sum to %d, summary says %d"
              % (key, s, run[key]))
    ended = sum(run[k] for k in ENDINGS)
    check(ended == run["offered"], "offered %d but %d ended: %r"
          % (run["offered"], ended, run.summary))
    check("warning" not in run.stderr, run.stderr)


def near(value, want, tol, what):
    check(abs(value - want) <= tol, "%s: %r, want %r +- %r"
          % (what, value, want, tol))


@test("schedule: 200/s for 2 s offers 400, evenly spaced", timeout=30)
def test_schedule():
    be = Backend(respond(200, b"ok\n"))
    run = loadgen(be, "--rate", 200, "--duration", 2)
    near(run["offered"], 400, 1, "offered")
    check(run["ok_2xx"] == run["offered"], repr(run.summary))
    check(be.count() == run["offered"], "backend saw %d" % be.count())
    check(run.elapsed < 5, "run took %.1fs" % run.elapsed)
    per_sec = [int(r["offered"]) for r in run.rows[:2]]
    check(per_sec == [200, 200], "offered per second %r" % per_sec)
    times = sorted(r.time for r in be.requests)
    gaps = [b - a for a, b in zip(times, times[1:])]
    gaps.sort()
    median = gaps[len(gaps) // 2]
    near(median, 0.005, 0.001, "median gap between arrivals (s)")
    near((times[-1] - times[0]) / (len(times) - 1), 0.005, 0.0005,
         "mean gap (s)")
    # Evenly spaced: every 100 ms window holds about 20 arrivals. On a
    # busy machine the generator or the test backend may be descheduled
    # for a moment, and what was due then arrives just after (open loop
    # catches up): up to two windows may be off, the total is not.
    t0 = times[0]
    windows = [0] * 19
    for t in times:
        i = int((t - t0) / 0.1)
        if i < len(windows):
            windows[i] += 1
    off = [w for w in windows if not 12 <= w <= 28]
    check(len(off) <= 2 and not any(w > 60 for w in windows),
          "arrivals per 100 ms: %r" % windows)
    if off:
        diag("arrivals per 100 ms (a stall): %r" % windows)


@test("poisson: mean rate kept", timeout=30)
def test_poisson():
    be = Backend(respond(200, b"ok\n"))
    run = loadgen(be, "--rate", 300, "--duration", 2, "--poisson",
                  "--seed", 7)
    near(run["offered"], 600, 90, "offered")
    check(run["ok_2xx"] == run["offered"], repr(run.summary))
    times = sorted(r.time for r in be.requests)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Exponential gaps: many much shorter than the mean, some much longer.
    mean = sum(gaps) / len(gaps)
    short = sum(1 for g in gaps if g < mean / 4)
    check(short > len(gaps) / 10, "short gaps %d of %d" % (short,
                                                           len(gaps)))


@test("statuses: 200, 429, 503, 502, 504, other by path", timeout=30)
def test_statuses():
    be = Backend(respond(404, b"nope\n"))
    be.route("/ok", respond(200, b"ok\n"))
    be.route("/busy", respond(429, b"slow down\n",
                              headers=[("Retry-After", "1")]))
    be.route("/down", respond(503, b"down\n"))
    be.route("/down-ra", respond(503, b"down\n",
                                 headers=[("Retry-After", "2")]))
    be.route("/bad", respond(502, b"bad\n"))
    be.route("/gw", respond(504, b"gw\n"))
    paths = ["/ok", "/busy", "/down", "/down-ra", "/bad", "/gw", "/other"]
    args = ["--rate", 140, "--duration", 1]
    for p in paths:
        args += ["--path", p]
    run = loadgen(be, *args)
    eq = {"offered": 140, "ok_2xx": 20, "s429": 20, "s503": 40,
          "s502": 20, "s504": 20, "other_status": 20, "errors": 0,
          "timeouts": 0, "retry_after_missing": 20}
    for k, v in eq.items():
        check(run[k] == v, "%s: %d, want %d (%r)" % (k, run[k], v,
                                                     run.summary))
    check(run["refused_p50_ms"] is not None and
          run["refused_p50_ms"] < 50, repr(run.summary))


@test("retry-after missing: only refusals without it count", timeout=30)
def test_retry_after():
    be = Backend(respond(503, b"down\n"))
    be.route("/with", respond(429, b"x\n", headers=[("retry-after", "5")]))
    be.route("/without", respond(429, b"x\n"))
    run = loadgen(be, "--rate", 90, "--duration", 1, "--path", "/with",
                  "--path", "/without", "--path", "/503")
    check(run["s429"] == 60 and run["s503"] == 30, repr(run.summary))
    check(run["retry_after_missing"] == 60, repr(run.summary))
    check(run["ok_2xx"] == 0 and run["p50_ms"] is None, repr(run.summary))
    for r in run.rows:
        if int(r["s429"]) + int(r["s503"]):
            check(r["refused_p50_ms"] != "", repr(r))
        check(r["p50_ms"] == "", repr(r))


@test("tally-header: values counted by status", timeout=30)
def test_tally():
    be = Backend(respond(503, b"x\n", headers=[("Retry-After", "1"),
                                               ("Spillway-Reason",
                                                "queue_full")]))
    be.route("/ok", respond(200, b"ok\n"))
    be.route("/rl", respond(429, b"x\n", headers=[("Spillway-Reason",
                                                   "rate_limited")]))
    run = loadgen(be, "--rate", 60, "--duration", 1, "--path", "/ok",
                  "--path", "/rl", "--path", "/full",
                  "--tally-header", "spillway-reason")
    want = {"200 -": 20, "429 rate_limited": 20, "503 queue_full": 20}
    check(run["tally"] == want, repr(run["tally"]))
    check(run["ok_2xx_in_window"] == 20, repr(run.summary))
    near(run["goodput"], 20, 0.01, "goodput")


@test("timeouts: a backend that never answers", timeout=30)
def test_timeouts():
    be = Backend(never())
    run = loadgen(be, "--rate", 50, "--duration", 1, "--timeout", 0.5,
                  "--connections", 8)
    check(run["offered"] == 50, repr(run.summary))
    check(run["timeouts"] == 50, repr(run.summary))
    check(run["ok_2xx"] == 0 and run["errors"] == 0, repr(run.summary))
    check(run["goodput"] == 0, repr(run.summary))
    check(run.elapsed < 1 + 0.5 + 2, "took %.1fs" % run.elapsed)
    # The 8 connections' requests timed out and were closed; the rest
    # timed out waiting for a connection.
    check(run["connections_opened"] >= 8, repr(run.summary))
    check(be.wait_requests(8), "backend saw %d" % be.count())
    check(harness.wait_for(lambda: be.active == 0, 3),
          "backend still has %d connections open" % be.active)


@test("latency: from the scheduled time, 100 ms backend", timeout=30)
def test_latency():
    be = Backend(delayed(0.1, respond(200, b"ok\n")))
    run = loadgen(be, "--rate", 50, "--duration", 2)
    check(run["ok_2xx"] == 100, repr(run.summary))
    near(run["p50_ms"], 105, 15, "p50 ms")
    check(run["p99_ms"] < 200, repr(run.summary))


@test("latency: no coordinated omission on one connection", timeout=30)
def test_coordinated_omission():
    # One connection, 100 ms per request, a request every 50 ms: request i
    # is sent at about (i + 1) * 100 - 100 ms and answered at (i + 1) *
    # 100 ms, but was due at i * 50 ms, so its latency is 100 + 50 i ms.
    be = Backend(delayed(0.1, respond(200, b"ok\n")))
    run = loadgen(be, "--rate", 20, "--duration", 1, "--connections", 1)
    check(run["ok_2xx"] == 20, repr(run.summary))
    near(run["p50_ms"], 100 + 50 * 9, 60, "p50 ms")
    near(run["p99_ms"], 100 + 50 * 19, 100, "p99 ms")
    check(run["send_lag_p99_ms"] > 800, repr(run.summary))


@test("queue wait counts toward the timeout", timeout=30)
def test_wait_timeout():
    be = Backend(delayed(0.2, respond(200, b"ok\n")))
    # One connection serves 5/s, 10/s are offered with a 1 s timeout:
    # request i, due at 100 i ms, waits for the 200 ms of each one before
    # it, so it is answered 200 + 100 i ms late; from i = 8 on, the wait
    # alone eats the timeout.
    run = loadgen(be, "--rate", 10, "--duration", 2, "--connections", 1,
                  "--timeout", 1)
    check(run["ok_2xx"] + run["timeouts"] == 20, repr(run.summary))
    check(5 <= run["ok_2xx"] <= 9, repr(run.summary))
    check(run["p99_ms"] <= 1000, repr(run.summary))
    near(run["p50_ms"], 200 + 100 * 3.5, 120, "p50 ms")


@test("framing: chunked, close-delimited, Connection: close", timeout=30)
def test_framing():
    be = Backend(respond(200, b"plain\n"))
    be.route("/chunked", chunked(["a" * 10, "b" * 3000, "c"],
                                 trailers=[("X-T", "1")], extensions=True))
    be.route("/eof", close_delimited("until close\n" * 100))
    be.route("/close", respond(200, b"bye\n", close=True))
    be.route("/empty", respond(204))
    be.route("/http10", respond(200, b"old\n"))
    run = loadgen(be, "--rate", 100, "--duration", 1, "--path", "/chunked",
                  "--path", "/eof", "--path", "/close", "--path", "/",
                  "--path", "/empty")
    check(run["ok_2xx"] == 100, repr(run.summary))
    check(run["errors"] == 0 and run["timeouts"] == 0, repr(run.summary))
    # /eof and /close each cost a new connection.
    check(run["connections_opened"] >= 40, repr(run.summary))
    check(be.accepted == run["connections_opened"],
          "backend accepted %d" % be.accepted)


@test("errors: connection refused counts as errors", timeout=30)
def test_refused():
    run = loadgen("http://" + harness.dead_server(), "--rate", 50,
                  "--duration", 1, "--timeout", 1)
    check(run["offered"] == 50, repr(run.summary))
    check(run["errors"] == 50, repr(run.summary))
    check(run.elapsed < 4, "took %.1fs" % run.elapsed)


@test("headers: --header is sent, Host defaults to the target", timeout=30)
def test_headers():
    be = Backend(respond(200, b"ok\n"))
    run = loadgen(be, "--rate", 20, "--duration", 0.5, "--header",
                  "X-Client: tester", "-H", "Accept: */*")
    check(run["ok_2xx"] == 10, repr(run.summary))
    req = be.requests[0]
    check(req.header("x-client") == "tester", repr(req))
    check(req.header("accept") == "*/*", repr(req))
    check(req.header("host") == be.addr, repr(req))
    check(req.version == "1.1" and req.method == "GET", repr(req))
    diag("request head: %r" % req.raw_head)


def concurrency(inner):
    """A handler wrapping inner that records the most requests at once."""
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def h(req, conn):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            return inner(req, conn)
        finally:
            with lock:
                state["now"] -= 1
    return h, state


@test("closed: N users, one request out each, the next at once", timeout=30)
def test_closed():
    h, state = concurrency(delayed(0.05, respond(200, b"ok\n")))
    be = Backend(h)
    run = loadgen(be, "--closed", 4, "--duration", 1)
    # 4 users x 1 s / 50 ms: about 80 requests, never more than 4 at once.
    near(run["offered"], 80, 12, "offered")
    check(run["ok_2xx"] == run["offered"], repr(run.summary))
    check(state["max"] == 4, "backend saw %d at once" % state["max"])
    check(run["connections_opened"] == 4, repr(run.summary))
    check(run["mode"] == "closed" and run["users"] == 4, repr(run.summary))
    near(run["p50_ms"], 52, 15, "p50 ms")
    check(run.elapsed < 3, "run took %.1fs" % run.elapsed)
    near(run["goodput"], 80, 12, "goodput")
    check(run["goodput_slo"] == run["goodput"], repr(run.summary))
    check(be.count() == run["offered"], "backend saw %d" % be.count())


@test("closed: a refusal is retried at once, or after Retry-After",
      timeout=30)
def test_closed_retry_after():
    be = Backend(respond(503, b"busy\n", headers=[("Retry-After", "1")]))
    be.route("/ok", respond(200, b"ok\n"))
    run = loadgen(be, "--closed", 3, "--duration", 1.5, "--timeout", 1)
    # Retrying at once: hundreds of refusals per user.
    check(run["s503"] > 300, repr(run.summary))
    check(run["retry_after_missing"] == 0, repr(run.summary))
    check(run["retry_after_min"] == 1 and run["retry_after_max"] == 1,
          repr(run.summary))
    check(run["retry_after_waits"] == 0, repr(run.summary))
    # Honouring it: a request at 0 s and one at 1 s per user; the next
    # would leave at 2 s, after the end: 6 in all, and the run ends at
    # 1.5 s without waiting for the users asleep.
    n0 = be.count()
    run = loadgen(be, "--closed", 3, "--duration", 1.5,
                  "--honour-retry-after")
    check(run["offered"] == 6 and run["s503"] == 6, repr(run.summary))
    check(run["retry_after_waits"] == 6, repr(run.summary))
    check(be.count() - n0 == 6, "backend saw %d" % (be.count() - n0))
    check(run.elapsed < 3, "run took %.1fs" % run.elapsed)
    times = sorted(r.time for r in be.requests[n0:])
    near(times[3] - times[0], 1.0, 0.2, "first to second round (s)")


@test("closed: an HTTP-date Retry-After, and none, with honouring",
      timeout=30)
def test_closed_retry_after_forms():
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                         time.gmtime(time.time() + 3))
    be = Backend(respond(429, b"x\n", headers=[("Retry-After", date)]))
    be.route("/none", respond(503, b"x\n"))
    run = loadgen(be, "--closed", 2, "--duration", 1,
                  "--honour-retry-after")
    check(run["offered"] == 2 and run["s429"] == 2, repr(run.summary))
    check(2 <= run["retry_after_min"] <= 3, repr(run.summary))
    # Without Retry-After there is nothing to honour: retried at once.
    run = loadgen(be, "--closed", 2, "--duration", 0.5,
                  "--honour-retry-after", "--path", "/none")
    check(run["s503"] > 50, repr(run.summary))
    check(run["retry_after_missing"] == run["s503"], repr(run.summary))


@test("closed: errors pause the user, timeouts end the request",
      timeout=30)
def test_closed_errors():
    run = loadgen("http://" + harness.dead_server(), "--closed", 2,
                  "--duration", 0.5, "--timeout", 1)
    # 10 ms pause after each refused connect: about 50 per user.
    check(20 <= run["errors"] <= 110, repr(run.summary))
    check(run["errors"] == run["offered"], repr(run.summary))
    be = Backend(never())
    run = loadgen(be, "--closed", 2, "--duration", 1, "--timeout", 0.3)
    # Each user: a request times out every 0.3 s, the next goes at once.
    near(run["timeouts"], 8, 2, "timeouts")
    check(run.elapsed < 3, "run took %.1fs" % run.elapsed)


@test("slo: 2xx within --slo counted apart, open and closed", timeout=30)
def test_slo():
    be = Backend(delayed(0.1, respond(200, b"ok\n")))
    run = loadgen(be, "--rate", 20, "--duration", 1, "--slo", 50)
    check(run["ok_2xx"] == 20 and run["ok_2xx_slo"] == 0,
          repr(run.summary))
    check(run["goodput_slo"] == 0 and run["slo_ms"] == 50,
          repr(run.summary))
    run = loadgen(be, "--rate", 20, "--duration", 1, "--slo", 300)
    check(run["ok_2xx_slo"] == 20, repr(run.summary))
    near(run["goodput_slo"], run["goodput"], 0.01, "goodput within SLO")
    run = loadgen(be, "--closed", 2, "--duration", 1, "--slo", 50)
    check(run["ok_2xx"] >= 10 and run["ok_2xx_slo"] == 0,
          repr(run.summary))


@test("closed: bad combinations are refused", timeout=30)
def test_closed_usage():
    for args in (["--closed", 2, "--rate", 5], ["--closed", 2, "--poisson"],
                 ["--rate", 5, "--honour-retry-after"], []):
        p = subprocess.run([LOADGEN_BIN, "--quiet", "--duration", "0.1"] +
                           [str(a) for a in args] +
                           ["http://127.0.0.1:9/"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        check(p.returncode == 2, "%r: exit %d %r" % (args, p.returncode,
                                                     p.stderr))


if __name__ == "__main__":
    harness.run_main()
