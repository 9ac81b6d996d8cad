#!/usr/bin/env python3
"""Fault injection ([class NAME] fault_* keys, issue 14): the configured
shares of delays and aborts are observed over 10,000 requests, a delay
holds no limiter slot and no place in the queue, an abort answers with its
status and says why, faults reach only a listener marked fault_injection,
spillway -t and a reload refuse faults without one, and a reload turns
them on and off."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (access_lines, admin_spillway, Backend,
                     build_request, check, Client, diag, eq, free_port,
                     LOCALHOST, log_fields, metrics, respond, run_binary,
                     run_main, Spillway, test, wait_for)


def marked(port):
    return "%s:%d fault_injection" % (LOCALHOST, port)


def faults(sp, cls, kind):
    return metrics(sp).value("spillway_faults_injected_total", 0.0,
                             **{"class": cls, "kind": kind})


def reload_and_wait(sp, failed=False):
    """SIGHUP; wait until the reload is counted, and say whether it took."""
    m = metrics(sp)
    ok = m.value("spillway_config_reloads_total", 0.0, result="ok")
    bad = m.value("spillway_config_reloads_total", 0.0, result="failed")
    sp.reload()

    def counted():
        m = metrics(sp)
        return (m.value("spillway_config_reloads_total", 0.0,
                        result="failed") > bad) if failed else \
            (m.value("spillway_config_reloads_total", 0.0,
                     result="ok") > ok)
    check(wait_for(counted, 5), "reload (%s) not counted; stderr:\n%s"
          % ("failed" if failed else "ok", sp.stderr_tail(10)))


@test("10,000 requests: abort and delay shares within 2 points", timeout=240)
def shares():
    n, batch = 10000, 100
    be = Backend(respond(200, b"ok"))
    port = free_port()
    sp = admin_spillway([be], listen=[marked(port)], proxy={"access_log":
                                                             "off"},
                        sections=[("class default", {
                            "fault_abort": 503, "fault_abort_percent": 20,
                            "fault_delay": "1ms",
                            "fault_delay_percent": 10})])
    c = Client(sp.port, timeout=30)
    statuses = {}
    aborted = 0
    req = build_request("GET", "/x")
    t0 = time.monotonic()
    for i in range(0, n, batch):
        c.send(req * batch)
        for r in c.read_responses(batch, timeout=60):
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status == 503:
                eq(r.header("spillway-reason"), "fault_abort",
                   "Spillway-Reason of an injected 503")
                aborted += 1
            else:
                eq(r.status, 200, "status of a request not aborted")
    diag("%d requests in %.1fs: %r" % (n, time.monotonic() - t0, statuses))
    delays = faults(sp, "default", "delay")
    aborts = faults(sp, "default", "abort")
    eq(aborts, aborted, "aborts counted in metrics vs seen by the client")
    eq(be.count(), n - aborted, "requests that reached the backend")
    diag("abort share %.2f%% (want 20), delay share %.2f%% (want 10)"
         % (100.0 * aborted / n, 100.0 * delays / n))
    check(abs(100.0 * aborted / n - 20) <= 2, "abort share %.2f%% not within "
          "2 points of 20%%" % (100.0 * aborted / n))
    check(abs(100.0 * delays / n - 10) <= 2, "delay share %.2f%% not within "
          "2 points of 10%%" % (100.0 * delays / n))


@test("a delay waits on a timer, holding no limiter slot and no queue place")
def delay_holds_no_slot():
    be = Backend(respond(200, b"ok"))
    port = free_port()
    sp = admin_spillway([be], listen=[marked(port)], sections=[
        ("limiter", {"algorithm": "fixed", "limit": 1}),
        ("class slow", {"path": "/slow", "fault_delay": "1500ms",
                        "fault_delay_percent": 100})])
    slow = Client(sp.port, timeout=10)
    t0 = time.monotonic()
    slow.send(build_request("GET", "/slow"))
    check(wait_for(lambda: faults(sp, "slow", "delay") == 1, 3),
          "the delay is not counted")
    m = metrics(sp)
    eq(m.value("spillway_requests_in_flight"), 0, "in flight while delayed")
    eq(m.value("spillway_queue_length"), 0, "queue length while delayed")
    # the only slot is free: another request is served during the delay
    fast = Client(sp.port, timeout=5)
    r = fast.exchange("GET", "/fast")
    eq(r.status, 200, "a request of another class during the delay")
    check(be.count() == 1, "only the undelayed request has reached the "
          "backend (%d)" % be.count())
    r = slow.read_response(timeout=10)
    took = time.monotonic() - t0
    eq(r.status, 200, "the delayed request, once its delay is over")
    # libevent's timers run on CLOCK_MONOTONIC_COARSE (a few ms coarse)
    check(took >= 1.49, "the delayed request took %.3fs, less than its "
          "1500ms delay" % took)
    eq(be.count(), 2, "backend requests")


@test("an abort answers its status and body, says why, reaches no backend")
def abort_status_and_body():
    be = Backend(respond(200, b"ok"))
    port = free_port()
    sp = admin_spillway([be], listen=[marked(port)], sections=[
        ("class api", {"path": "/api/", "fault_abort": 500,
                       "fault_abort_percent": 100}),
        ("class slowapi", {"path": "/slowapi/", "fault_abort": 429,
                           "fault_abort_percent": 100,
                           "fault_delay": "200ms",
                           "fault_delay_percent": 100})],
        proxy={"access_log": None})
    alog = sp.path("access.log")
    sp.stop()
    sp.write_config(sp.read_config().replace(
        "[proxy]\n", "[proxy]\naccess_log = %s\n" % alog, 1))
    sp.start()
    c = Client(sp.port)
    r = c.exchange("GET", "/api/x")
    eq(r.status, 500, "injected status")
    eq(r.body, b"500 Internal Server Error\n", "injected body")
    eq(r.header("spillway-reason"), "fault_abort", "Spillway-Reason")
    eq(r.header("retry-after"), None, "Retry-After on an injected abort")
    eq(r.header("connection"), None, "the connection stays open")
    t0 = time.monotonic()
    r = c.exchange("GET", "/slowapi/y", timeout=5)
    eq(r.status, 429, "delayed, then aborted")
    check(time.monotonic() - t0 >= 0.2, "the abort came before its delay")
    r = c.exchange("GET", "/other")
    eq(r.status, 200, "another class on the same connection")
    eq(be.count(), 1, "requests that reached the backend")
    eq(faults(sp, "api", "abort"), 1, "api aborts counted")
    eq(faults(sp, "api", "delay"), 0, "api delays counted")
    eq(faults(sp, "slowapi", "abort"), 1, "slowapi aborts counted")
    eq(faults(sp, "slowapi", "delay"), 1, "slowapi delays counted")
    lines = access_lines(alog, 3)
    got = [log_fields(ln)[:3] for ln in lines]
    eq(got, [(500, "api", "fault_abort"), (429, "slowapi", "fault_abort"),
             (200, "default", "-")], "access log status, class, reason")


@test("a delayed request is logged with its reason")
def delay_logged():
    be = Backend(respond(200, b"ok"))
    port = free_port()
    sp = Spillway([be], listen=[marked(port)], proxy={"access_log": None},
                  sections=[("class default", {"fault_delay": "50ms",
                                               "fault_delay_percent": 100})],
                  start=False)
    alog = sp.path("access.log")
    sp.write_config(sp.read_config().replace(
        "[proxy]\n", "[proxy]\naccess_log = %s\n" % alog, 1))
    sp.start()
    c = Client(sp.port)
    eq(c.exchange("GET", "/d").status, 200, "delayed request")
    st, cls, reason, _ = log_fields(access_lines(alog, 1)[0])
    eq((st, cls, reason), (200, "default", "fault_delay"), "log fields")


@test("faults reach only the listener marked fault_injection")
def only_marked_listener():
    be = Backend(respond(200, b"ok"))
    plain, chaos = free_port(), free_port()
    sp = Spillway([be], listen=["%s:%d" % (LOCALHOST, plain), marked(chaos)],
                  sections=[("class default", {"fault_abort_percent": 100})])
    for i in range(20):
        r = Client(plain).exchange("GET", "/p%d" % i)
        eq(r.status, 200, "a request on the unmarked listener")
    r = Client(chaos).exchange("GET", "/c")
    eq(r.status, 503, "a request on the marked listener")
    eq(be.count(), 20, "backend requests")


@test("spillway -t refuses faults without a marked listener")
def check_refuses():
    port = free_port()
    sp = Spillway(["127.0.0.1:1"], start=False,
                  sections=[("class api", {"path": "/api/",
                                           "fault_delay": "1s",
                                           "fault_delay_percent": 5})])
    r = run_binary(["-t", "-c", sp.config_path])
    eq(r.returncode, 1, "-t status")
    err = r.stderr.decode()
    check("spillway.ini:" in err and "class api: fault injection needs a "
          "listener marked for it (listen = 127.0.0.1:8080 "
          "fault_injection); refused so that it cannot be left on in "
          "production" in err, "-t message: %r" % err)
    # the same file with a marked listener is valid
    sp.write_config(sp.read_config().replace(
        "listen = %s\n" % sp.listen[0],
        "listen = %s\nlisten = %s\n" % (sp.listen[0], marked(port))))
    r = run_binary(["-t", "-c", sp.config_path])
    eq(r.returncode, 0, "-t on a marked file (%r)" % r.stderr)


@test("reload turns faults on and off; a refused reload keeps the old")
def reload_on_off():
    be = Backend(respond(200, b"ok"))
    plain, chaos = free_port(), free_port()
    listen = ["%s:%d" % (LOCALHOST, plain), marked(chaos)]
    sp = admin_spillway([be], listen=listen)
    c = Client(chaos)
    eq(c.exchange("GET", "/a").status, 200, "no faults at first")
    on = [("class default", {"fault_abort": 502,
                             "fault_abort_percent": 100}),
          ("admin", {"listen": "%s:%d" % (LOCALHOST, sp.admin_port)})]
    sp.reconfigure(sections=on)
    reload_and_wait(sp)
    eq(c.exchange("GET", "/b").status, 502, "faults on after a reload "
       "(same kept-alive connection)")
    # the mark removed while faults stay: refused, the old one kept
    sp.reconfigure(sections=on, listen=["%s:%d" % (LOCALHOST, plain),
                                        "%s:%d" % (LOCALHOST, chaos)])
    reload_and_wait(sp, failed=True)
    check("fault injection needs a listener marked for it" in
          sp.stderr_text(), "the refused reload says why: %s"
          % sp.stderr_tail(5))
    eq(c.exchange("GET", "/c").status, 502, "faults still on: the old "
       "configuration is kept")
    sp.reconfigure(sections=[("admin", {"listen": "%s:%d" % (
        LOCALHOST, sp.admin_port)})], listen=listen)
    reload_and_wait(sp)
    eq(c.exchange("GET", "/d").status, 200, "faults off after a reload")
    eq(faults(sp, "default", "abort"), 2, "aborts counted over the reloads")
    eq(be.count(), 2, "backend requests")


if __name__ == "__main__":
    run_main()
