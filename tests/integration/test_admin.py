#!/usr/bin/env python3
"""Admin listener: GET /metrics (Prometheus text format 0.0.4, checked by a
parser of its own), the counters moving by exactly what the proxy did,
GET /status (JSON), GET / (a self-contained dashboard page), 404 and 405,
and the admin listener being separate from the proxy's."""

import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (admin, admin_spillway, Backend, check, Client, diag,
                     echo_path, eq, free_port, get, metrics, parse_prometheus,
                     listening_ports, run_binary, run_main, short, Spillway,
                     test, wait_for)


# --------------------------------------------------------------------------
# helpers

def media_type(resp):
    """(type/subtype lowercased, {param: value}) of Content-Type."""
    ct = resp.header("content-type")
    if ct is None:
        return None, {}
    parts = [p.strip() for p in ct.split(";")]
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip().strip('"')
    return parts[0].lower(), params


def version():
    r = run_binary(["-V"])
    m = re.search(r"\b(\d+\.\d+\.\d+\S*)", r.stdout.decode() +
                  r.stderr.decode())
    return m.group(1) if m else None


# name -> (type, required label names, {label: required values})
REQUIRED = {
    "spillway_requests_total": ("counter", {"class", "code"}, {}),
    "spillway_refused_total": ("counter", {"class", "reason"}, {
        "reason": {"rate_limited", "queue_full", "queue_timeout",
                   "overloaded", "upstream_error", "upstream_timeout"}}),
    "spillway_requests_in_flight": ("gauge", set(), {}),
    "spillway_concurrency_limit": ("gauge", set(), {}),
    "spillway_limiter_latency_seconds": ("gauge", set(), {}),
    "spillway_limiter_min_latency_seconds": ("gauge", set(), {}),
    "spillway_limiter_gradient": ("gauge", set(), {}),
    "spillway_queue_length": ("gauge", set(), {}),
    "spillway_queue_wait_seconds": ("histogram", {"class"}, {}),
    "spillway_request_duration_seconds": ("histogram", {"class"}, {}),
    "spillway_served_duration_seconds": ("histogram", {"class"}, {}),
    "spillway_upstream_duration_seconds": ("histogram", {"class"}, {}),
    "spillway_upstream_connections": ("gauge", {"state"}, {
        "state": {"active", "idle"}}),
    "spillway_upstream_connect_failures_total": ("counter", set(), {}),
    "spillway_client_connections": ("gauge", set(), {}),
    "spillway_config_reloads_total": ("counter", {"result"}, {
        "result": {"ok", "failed"}}),
    "spillway_config_generation": ("gauge", set(), {}),
    "spillway_build_info": ("gauge", {"version"}, {}),
    "process_start_time_seconds": ("gauge", set(), {}),
    "process_cpu_seconds_total": ("counter", set(), {}),
    "process_resident_memory_bytes": ("gauge", set(), {}),
    "process_virtual_memory_bytes": ("gauge", set(), {}),
    "process_open_fds": ("gauge", set(), {}),
    "process_max_fds": ("gauge", set(), {}),
}


# --------------------------------------------------------------------------
# 1. format

@test("GET /metrics: valid Prometheus text 0.0.4 with the required families")
def metrics_format():
    be = Backend(echo_path())
    sp = admin_spillway([be])
    c = Client(sp.port)
    for i in range(3):
        eq(c.exchange("GET", "/warm%d" % i).status, 200, "warm-up request")
    # a request is counted when it ends, maybe just after its response
    wait_for(lambda: metrics(sp).sum("spillway_requests_total") >= 3, 2)
    r = admin(sp, "/metrics")
    eq(r.status, 200, "status of GET /metrics (%r)" % r)
    mt, params = media_type(r)
    eq((mt, params.get("version")), ("text/plain", "0.0.4"),
       "Content-Type (%r)" % r.header("content-type"))
    text = r.body.decode("utf-8")
    m = parse_prometheus(text)      # raises on any format problem
    diag("%d families, %d samples, %d bytes" % (len(m.families),
                                                 len(m.samples), len(text)))
    for name, fam in m.families.items():
        check(name.startswith(("spillway_", "process_")),
              "family %s starts with neither spillway_ nor process_" % name)
        check(fam.type is not None, "family %s has no TYPE" % name)
    problems = []
    for name, (typ, labels, values) in sorted(REQUIRED.items()):
        fam = m.families.get(name)
        if fam is None:
            problems.append("%s: missing" % name)
            continue
        if fam.type != typ:
            problems.append("%s: TYPE %s, want %s" % (name, fam.type, typ))
        if not fam.samples:
            problems.append("%s: no samples" % name)
            continue
        for s in fam.samples:
            have = set(s[1]) - {"le"}
            if not labels <= have:
                problems.append("%s: sample %s%r lacks labels %r"
                                % (name, s[0], s[1], labels - have))
                break
        for lname, want in values.items():
            got = set(s[1].get(lname) for s in fam.samples)
            if not want <= got:
                problems.append("%s: no series for %s=%r (has %r)"
                                % (name, lname, sorted(want - got),
                                   sorted(x for x in got if x)))
    check(not problems, "metrics: " + "; ".join(problems))
    v = version()
    eq(m.value("spillway_build_info", version=v), 1.0,
       "spillway_build_info{version=%r}" % v)
    eq(m.value("spillway_config_generation"), 1.0, "config generation")
    eq(m.sum("spillway_config_reloads_total"), 0.0, "reloads at start")
    check(m.value("spillway_concurrency_limit") >= 1,
          "concurrency limit %r" % m.value("spillway_concurrency_limit"))
    eq(m.sum("spillway_requests_total", code="200"), 3.0,
       "requests_total{code=200} after 3 requests")
    eq(m.value("spillway_client_connections"), 1.0,
       "client connections open (one kept alive)")
    # the admin's own requests are not proxy requests
    m2 = metrics(sp)
    eq(m2.sum("spillway_requests_total"), 3.0,
       "requests_total after two scrapes (admin requests counted?)")


# --------------------------------------------------------------------------
# 2. counters move

@test("metrics move by exactly what was done: 200s, 429s, durations")
def metrics_move():
    be = Backend(echo_path())
    sp = admin_spillway([be], sections=[("admission",
                                         {"rate": "5", "burst": "5"})])
    time.sleep(1.1)         # a full bucket, whatever the start-up did
    m0 = metrics(sp)
    n = 20
    statuses = []
    c = Client(sp.port)
    for i in range(n):
        r = c.exchange("GET", "/m%d" % i, timeout=5)
        statuses.append(r.status)
        if "close" in r.tokens("connection"):
            c.close()
            c = Client(sp.port)
    n200, n429 = statuses.count(200), statuses.count(429)
    diag("%d requests: %d x 200, %d x 429" % (n, n200, n429))
    eq(n200 + n429, n, "statuses other than 200 and 429: %r" % statuses)
    check(5 <= n200 <= 7 and n429 >= 13,
          "rate 5/s burst 5: %d passed of %d quick requests" % (n200, n))

    def delta(m, name, **labels):
        return m.sum(name, **labels) - m0.sum(name, **labels)

    # a request is counted when it ends, maybe just after its response
    def settled():
        m = metrics(sp)
        return m if delta(m, "spillway_request_duration_seconds_count") \
            >= n else None
    m1 = wait_for(settled, 2) or metrics(sp)
    eq(delta(m1, "spillway_requests_total", code="200"), n200,
       "requests_total{code=200} increase")
    eq(delta(m1, "spillway_requests_total", code="429"), n429,
       "requests_total{code=429} increase")
    eq(delta(m1, "spillway_requests_total"), n, "requests_total increase")
    eq(delta(m1, "spillway_refused_total", reason="rate_limited"), n429,
       "refused_total{reason=rate_limited} increase")
    eq(delta(m1, "spillway_refused_total"), n429,
       "refused_total increase (all reasons)")
    eq(delta(m1, "spillway_request_duration_seconds_count"), n,
       "request_duration_seconds_count increase")
    eq(delta(m1, "spillway_upstream_duration_seconds_count"), n200,
       "upstream_duration_seconds_count increase (forwarded requests)")
    check(delta(m1, "spillway_request_duration_seconds_sum") > 0,
          "request_duration_seconds_sum did not grow")
    eq(be.count(), n200, "requests at the backend")
    eq(m1.value("spillway_requests_in_flight"), 0.0, "in flight at rest")
    # every series of requests_total names a class; all ours are default
    classes = set(s[1].get("class") for s in
                  m1.find("spillway_requests_total"))
    eq(classes, {"default"}, "classes in requests_total")


# --------------------------------------------------------------------------
# 3. /status

STATUS_KEYS = {
    "version": str, "uptime_seconds": (int, float), "generation": int,
    "reloads": dict, "clients": dict, "limiter": dict, "queue": dict,
    "upstream": dict, "admission": dict, "totals": dict, "classes": list,
    "latency_seconds": dict, "upstream_latency_seconds": dict,
    "queue_wait_seconds": dict,
}
SUBKEYS = {
    "reloads": {"ok", "failed"},
    "clients": {"open", "accepted_total"},
    "limiter": {"algorithm", "limit", "inflight", "min_rtt_seconds",
                "rtt_seconds", "long_rtt_seconds", "gradient"},
    "queue": {"length", "by_priority", "growing", "drain_rate",
              "allowed_wait_seconds", "loop_lag_seconds", "dry_run"},
    "upstream": {"active", "idle", "opened_total", "connect_failures_total"},
    "admission": {"clients", "evictions_total"},
    "totals": {"requests", "responses", "refused", "dry_run", "bytes_out"},
}
REASONS = {"rate_limited", "queue_full", "queue_timeout", "overloaded",
           "upstream_error", "upstream_timeout"}
BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
          5, 10, "+Inf"]


def check_histogram_json(h, what):
    check(isinstance(h, dict) and {"count", "sum", "buckets"} <= set(h),
          "%s: %r" % (what, h))
    b = h["buckets"]
    eq([x[0] for x in b], BOUNDS, "%s bucket bounds" % what)
    counts = [x[1] for x in b]
    check(all(isinstance(x, int) for x in counts) and
          counts == sorted(counts), "%s buckets not cumulative: %r"
          % (what, counts))
    eq(counts[-1], h["count"], "%s +Inf bucket vs count" % what)


def status(sp):
    r = admin(sp, "/status")
    eq(r.status, 200, "GET /status status (%r)" % r)
    eq(media_type(r)[0], "application/json",
       "Content-Type of /status (%r)" % r.header("content-type"))
    try:
        return json.loads(r.body.decode("utf-8"))
    except ValueError as e:
        raise AssertionError("/status is not JSON (%s): %s"
                             % (e, short(r.body)))


@test("GET /status: JSON with the contract's keys, matching totals")
def status_json():
    be = Backend(echo_path())
    sp = admin_spillway([be])
    c = Client(sp.port)
    n = 7
    for i in range(n):
        eq(c.exchange("GET", "/s%d" % i).status, 200, "request %d" % i)
    s0 = status(sp)
    time.sleep(0.3)

    def settled():
        s = status(sp)
        return s if s.get("totals", {}).get("requests") == n else None
    s = wait_for(settled, 2) or status(sp)
    check(isinstance(s, dict), "/status is not an object: %r" % s)
    missing = [k for k in STATUS_KEYS if k not in s]
    check(not missing, "missing keys %r; have %r" % (missing, sorted(s)))
    for k, t in STATUS_KEYS.items():
        check(isinstance(s[k], t), "%s is %r" % (k, s[k]))
    for k, sub in SUBKEYS.items():
        check(sub <= set(s[k]), "%s lacks %r: %r" % (k, sub - set(s[k]),
                                                    s[k]))
    eq(set(s["queue"]["by_priority"]), {"critical", "normal", "sheddable"},
       "queue.by_priority keys")
    eq(set(s["totals"]["responses"]), {"2xx", "3xx", "4xx", "5xx"},
       "totals.responses keys")
    check(REASONS <= set(s["totals"]["refused"]),
          "totals.refused: %r" % s["totals"]["refused"])
    eq(s["version"], version(), "version (spillway -V)")
    eq(s["generation"], 1, "generation")
    eq(s["reloads"], {"ok": 0, "failed": 0}, "reloads")
    eq(s["totals"]["requests"], n, "totals.requests")
    eq(s["totals"]["responses"]["2xx"], n, "totals.responses.2xx")
    check(s["totals"]["bytes_out"] > 0, "bytes_out %r"
          % s["totals"]["bytes_out"])
    check(s["limiter"]["limit"] > 0, "limiter.limit %r"
          % s["limiter"]["limit"])
    eq(s["clients"]["open"], 1, "clients.open (one kept alive)")
    check(s["uptime_seconds"] > s0["uptime_seconds"],
          "uptime did not increase: %r then %r" % (s0["uptime_seconds"],
                                                   s["uptime_seconds"]))
    names = [x.get("name") for x in s["classes"]]
    check("default" in names, "classes: %r" % names)
    d = s["classes"][names.index("default")]
    eq(d.get("requests"), n, "classes[default].requests")
    eq(d.get("responses"), {"200": n}, "classes[default].responses")
    for k in ("latency_seconds", "upstream_latency_seconds",
              "queue_wait_seconds"):
        check_histogram_json(s[k], k)
    eq(s["latency_seconds"]["count"], n, "latency_seconds.count")
    eq(s["upstream_latency_seconds"]["count"], n,
       "upstream_latency_seconds.count")


# --------------------------------------------------------------------------
# 4. dashboard

@test("GET /: a self-contained HTML dashboard with a <canvas")
def dashboard():
    be = Backend(echo_path())
    sp = admin_spillway([be])
    r = admin(sp, "/")
    eq(r.status, 200, "GET / status (%r)" % r)
    eq(media_type(r)[0], "text/html", "Content-Type of / (%r)"
       % r.header("content-type"))
    html = r.body.decode("utf-8", "replace")
    check("<canvas" in html.lower(), "no <canvas in the page (%d bytes)"
          % len(html))
    outside = re.findall(
        r"""(?:\b(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]*"""
        r"""|url\(\s*["']?\s*(?:https?:)?//[^)]*"""
        r"""|@import[^;]*(?:https?:)?//[^;]*)""", html, re.I)
    check(not outside, "outside resources: %r" % outside[:5])
    # scripts that fetch: only from this server (relative /status,
    # /metrics), never an absolute http(s) URL in a fetch/XHR call
    fetches = re.findall(r"""(?:fetch|open)\(\s*["'`](?:https?:)?//[^"'`]*""",
                         html, re.I)
    check(not fetches, "fetches from outside: %r" % fetches)
    diag("dashboard: %d bytes" % len(html))


# --------------------------------------------------------------------------
# 5. 404, 405, separate listener

@test("admin: 404 for unknown paths, 405 for wrong methods, not on the "
      "proxy port")
def admin_errors():
    be = Backend(echo_path())
    sp = admin_spillway([be])
    r = admin(sp, "/nope")
    eq(r.status, 404, "GET /nope (%r)" % r)
    r = admin(sp, "/metrics/extra")
    eq(r.status, 404, "GET /metrics/extra (%r)" % r)
    r = admin(sp, "/metrics", method="POST", body=b"")
    eq(r.status, 405, "POST /metrics (%r)" % r)
    r = admin(sp, "/status", method="DELETE")
    eq(r.status, 405, "DELETE /status (%r)" % r)
    r = admin(sp, "/reload", method="GET")
    eq(r.status, 405, "GET /reload (%r)" % r)
    eq(be.count(), 0, "requests at the backend from admin requests")
    eq(metrics(sp).sum("spillway_config_reloads_total"), 0.0,
       "reloads after GET /reload")
    # the proxy port proxies /metrics to the backend
    r = get(sp.port, "/metrics")
    eq((r.status, r.body), (200, b"GET /metrics"),
       "GET /metrics on the proxy port")
    eq([q.path for q in be.requests], ["/metrics"], "backend saw")
    r = get(sp.port, "/status")
    eq((r.status, r.body), (200, b"GET /status"),
       "GET /status on the proxy port")


@test("no [admin] section: no admin listener")
def no_admin():
    be = Backend(echo_path())
    sp = Spillway([be])
    eq(get(sp.port, "/").status, 200, "a proxied request")
    if not os.path.isdir("/proc/%d" % sp.pid):
        from harness import skip
        skip("no /proc")
    eq(listening_ports(sp.pid), {sp.port}, "listening ports of spillway")


@test("[admin] max_connections: a connection beyond it waits until one "
      "closes; a reload raises the cap at once")
def admin_max_connections():
    be = Backend(echo_path())
    ap = free_port()
    sections = [("admin", {"listen": "127.0.0.1:%d" % ap,
                           "max_connections": 2})]
    sp = Spillway([be], sections=sections)
    check(wait_for(lambda: listening_ports(sp.pid) >= {sp.port, ap}, 5),
          "no admin listener")
    held = [socket.create_connection(("127.0.0.1", ap), 2) for _ in
            range(2)]
    time.sleep(0.2)
    fds = sp.nfds()
    c = socket.create_connection(("127.0.0.1", ap), 2)   # in the backlog
    c.sendall(b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n")
    c.settimeout(0.5)
    try:
        got = c.recv(100)
    except socket.timeout:
        got = None
    eq(got, None, "an answer beyond max_connections")
    eq(sp.nfds(), fds, "descriptors with a third connection waiting")
    held[0].close()
    c.settimeout(3)
    check(c.recv(100).startswith(b"HTTP/1.1 200"), "the waiting connection "
          "served once one closed")
    c.close()
    # at the cap again (held[1] and a new one); a reload to 3 lets one more
    held.append(socket.create_connection(("127.0.0.1", ap), 2))
    time.sleep(0.2)
    sections[0][1]["max_connections"] = 3
    sp.reconfigure(sections=sections)
    sp.reload()
    check(wait_for(lambda: "reloaded " in sp.stderr_text(), 3),
          "no reload")
    eq(get(ap, "/status", timeout=3).status, 200, "a third connection "
       "after the reload")
    for h in held:
        h.close()
    eq(get(sp.port, "/proxied").status, 200, "the proxy meanwhile")


if __name__ == "__main__":
    run_main()
