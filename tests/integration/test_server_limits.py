#!/usr/bin/env python3
"""Per-server concurrency limits (issue 14): each backend server has a
limit of its own, learned or fixed by "server = host:port maxconn=N", the
waiting queue stays shared, and the balancer sends a request to the server
with the most free share of its limit. One of two servers made 4x slower
keeps its slowness to itself: the other keeps its full limit and
throughput."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (admin_spillway, Backend, build_request, check, Client,
                     diag, eq, free_port, LOCALHOST, metrics, respond,
                     run_main, test, wait_for)


def capped(capacity, seconds, body=b"ok", seen=None):
    """Handler: at most capacity requests served at once, each taking
    seconds; more wait their turn (a backend with a capacity, whose
    latency grows past it). seen, a dict, gets "peak": the most requests
    the backend held at once, as the backend counts them (with several
    workers, what all of them sent together)."""
    sem = threading.Semaphore(capacity)
    inner = respond(200, body)
    lock = threading.Lock()
    held = [0]

    def h(req, conn):
        with lock:
            held[0] += 1
            if seen is not None:
                seen["peak"] = max(seen.get("peak", 0), held[0])
        try:
            with sem:
                time.sleep(seconds)
        finally:
            with lock:
                held[0] -= 1
        return inner(req, conn)
    return h


def closed_loop(port, clients, seconds, counts):
    """clients threads each sending requests back to back on a kept-alive
    connection for seconds; counts[status] summed."""
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run():
        c = Client(port, timeout=10)
        while time.monotonic() < stop:
            try:
                r = c.exchange("GET", "/x", timeout=10)
            except Exception as e:       # counted, the loop goes on
                with lock:
                    counts["error"] = counts.get("error", 0) + 1
                diag("client: %r" % e)
                c = Client(port, timeout=10)
                continue
            with lock:
                counts[r.status] = counts.get(r.status, 0) + 1
            if "close" in r.tokens("connection"):
                c = Client(port, timeout=10)
    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    return ts


def server_gauge(m, name, be):
    return m.value(name, None, server=be.addr)


@test("maxconn per server: the slow server's slots never take the fast's",
      timeout=90)
def fixed_maxconn():
    seen_fast, seen_slow = {}, {}
    fast = Backend(capped(100, 0.02, seen=seen_fast))
    slow = Backend(capped(100, 0.08, seen=seen_slow))
    sp = admin_spillway([], backend={
        "server": ["%s maxconn=4" % fast.addr, "%s maxconn=4" % slow.addr]},
        sections=[("limiter", {"queue_size": 100, "latency_budget": "5s"})])
    counts = {}
    ts = closed_loop(sp.port, 12, 4.0, counts)
    peak = {"fast": 0, "slow": 0}
    while any(t.is_alive() for t in ts):
        m = metrics(sp)
        for k, be in (("fast", fast), ("slow", slow)):
            eq(server_gauge(m, "spillway_server_concurrency_limit", be), 4,
               "%s server's limit" % k)
            v = server_gauge(m, "spillway_server_requests_in_flight", be)
            check(v <= 4, "%s server holds %r slots, over its maxconn"
                  % (k, v))
            peak[k] = max(peak[k], v)
        time.sleep(0.1)
    for t in ts:
        t.join()
    nf, ns = fast.count(), slow.count()
    diag("fast %d, slow %d requests (%.2fx); peaks %r; statuses %r"
         % (nf, ns, nf / max(ns, 1), peak, counts))
    eq(set(counts), {200}, "statuses")
    eq(peak["fast"], 4, "the fast server's slots all in use at some time")
    # one limit per server for the whole process, whatever the workers
    eq((seen_fast.get("peak"), seen_slow.get("peak")), (4, 4),
       "most requests each backend held at once")
    # with one shared limit, turn by turn, both would serve alike
    check(nf >= 2.5 * ns, "the fast server served %d, the slow %d: "
          "want about 4x" % (nf, ns))


def learned_run(servers, seconds=6.0, clients=24):
    sp = admin_spillway(servers, sections=[
        ("limiter", {"algorithm": "gradient", "limit": 4, "min_limit": 1,
                     "max_limit": 64, "queue_size": 200,
                     "latency_budget": "5s"})])
    counts = {}
    for t in closed_loop(sp.port, clients, seconds, counts):
        t.join()
    m = metrics(sp)
    limits = {be.addr: server_gauge(m, "spillway_server_concurrency_limit",
                                    be) for be in servers}
    sp.stop()
    return counts, limits


@test("adaptive: one server 4x slower, the other keeps its limit and "
      "throughput", timeout=120)
def learned_limits():
    # control: the fast server alone
    alone = Backend(capped(4, 0.04))
    counts, limits = learned_run([alone])
    n_alone, lim_alone = alone.count(), limits[alone.addr]
    diag("alone: %d requests, limit %r, %r" % (n_alone, lim_alone, counts))
    # the same server beside one 4x slower
    fast = Backend(capped(4, 0.04))
    slow = Backend(capped(4, 0.16))
    counts, limits = learned_run([fast, slow])
    nf, ns = fast.count(), slow.count()
    diag("with a slow one: fast %d requests, limit %r; slow %d, limit %r; "
         "%r" % (nf, limits[fast.addr], ns, limits[slow.addr], counts))
    check(nf >= 0.6 * n_alone, "the fast server served %d beside a slow "
          "one, %d alone" % (nf, n_alone))
    check(limits[fast.addr] >= 0.6 * lim_alone, "the fast server's limit "
          "is %r beside a slow one, %r alone" % (limits[fast.addr],
                                                 lim_alone))
    check(nf >= 2 * ns, "fast %d, slow %d: the slow one's share should "
          "follow its speed" % (nf, ns))

def reload_ok(sp):
    """SIGHUP; wait until the reload is counted as done."""
    before = metrics(sp).value("spillway_config_reloads_total", 0.0,
                               result="ok")
    sp.reload()
    check(wait_for(lambda: metrics(sp).value(
        "spillway_config_reloads_total", 0.0, result="ok") > before, 5),
        "reload not counted; stderr:\n%s" % sp.stderr_tail(10))


@test("reload: maxconn changes in place; a server removed mid-request "
      "finishes its requests and goes", timeout=60)
def reload_limits():
    a = Backend(capped(100, 0.5, b"a"))
    b = Backend(capped(100, 1.0))
    sp = admin_spillway([], backend={
        "server": ["%s maxconn=4" % a.addr, "%s maxconn=3" % b.addr]})
    m = metrics(sp)
    eq(server_gauge(m, "spillway_server_concurrency_limit", a), 4, "a")
    eq(server_gauge(m, "spillway_server_concurrency_limit", b), 3, "b")
    # seven requests fill every slot: four on a, three on b
    clients = []
    for i in range(7):
        c = Client(sp.port, timeout=10)
        c.send(build_request("GET", "/r%d" % i))
        clients.append(c)

    def held():
        m = metrics(sp)
        return (server_gauge(m, "spillway_server_requests_in_flight", a),
                server_gauge(m, "spillway_server_requests_in_flight", b))
    check(wait_for(lambda: held() == (4, 3), 3), "slots in use: %r, want "
          "(4, 3)" % (held(),))
    sp.reconfigure(backend={"server": ["%s maxconn=2" % a.addr]},
                   sections=[("admin", {"listen": "%s:%d" % (
                       LOCALHOST, sp.admin_port)})])
    reload_ok(sp)
    m = metrics(sp)
    eq(server_gauge(m, "spillway_server_concurrency_limit", a), 2,
       "a's maxconn after the reload")
    eq(server_gauge(m, "spillway_server_concurrency_limit", b), None,
       "b after the reload")
    # the requests on b finish there, under the old configuration
    bodies = sorted(c.read_response(timeout=10).body for c in clients)
    eq(bodies, [b"a"] * 4 + [b"ok"] * 3, "bodies")
    eq(b.count(), 3, "b's requests")
    for i in range(5):
        eq(Client(sp.port).exchange("GET", "/n%d" % i).body, b"a",
           "after the reload, a alone")
    check(sp.alive(), "spillway alive")


@test("slow start: a server back from an ejection starts with few of its "
      "slots; the queue waits for the others'", timeout=60)
def slow_start_slots():
    seen = {}
    steady = Backend(capped(100, 0.4, b"s"))
    port = free_port()
    dead = "%s:%d" % (LOCALHOST, port)
    sp = admin_spillway([], backend={
        "server": ["%s maxconn=10" % steady.addr, "%s maxconn=10" % dead],
        "max_fails": "1", "fail_timeout": "1s", "slowstart": "60s"},
        sections=[("limiter", {"queue_size": 100, "latency_budget": "10s",
                               "queue_timeout": "9s"})])
    for i in range(3):
        Client(sp.port, timeout=10).exchange("GET", "/d%d" % i, timeout=10)

    def up():
        return metrics(sp).value("spillway_server_up", server=dead)
    eq(up(), 0, "ejected")
    back = Backend(capped(100, 0.4, b"b", seen=seen), port=port)
    time.sleep(1.1)
    check(wait_for(lambda: (Client(sp.port, timeout=10).exchange(
        "GET", "/t", timeout=10), up())[1] == 1, 5), "not back within 5s")
    # 20 requests at once: 10 slots on the steady server, and on the one
    # in slow start its limit times a weight of about 0.02: 1 slot
    clients = []
    for i in range(20):
        c = Client(sp.port, timeout=15)
        c.send(build_request("GET", "/r%d" % i))
        clients.append(c)
    statuses = [c.read_response(timeout=15).status for c in clients]
    w = metrics(sp).value("spillway_server_weight", server=dead)
    diag("weight %r; the server back held at most %r at once; it served "
         "%d, the steady one %d" % (w, seen.get("peak"), back.count(),
                                    steady.count()))
    eq(statuses, [200] * 20, "statuses")
    check(seen.get("peak", 0) <= 2, "the server in slow start held %r "
          "requests at once (10 slots x weight %r)" % (seen.get("peak"), w))
    check(back.count() >= 1, "the server back took its share")


if __name__ == "__main__":
    run_main()
