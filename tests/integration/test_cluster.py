#!/usr/bin/env python3
"""Cluster-wide limits ([cluster] redis): three spillway instances share
one global rate and per-client rates on a real redis-server on loopback;
Redis stopped (or frozen) mid-run fails no request, the local share
(rate / instances) applies within the timeout, and sharing resumes when
Redis is back. Skipped, saying why, when spillway was built without
hiredis or redis-server is not installed."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (admin, admin_spillway, Backend, check, Client, diag, eq,
                     free_port, get, LOCALHOST, metrics, register, respond,
                     run_binary, run_main, skip, test, wait_for)

SECONDS = 10.0          # the measured window of the rate tests
TOLERANCE = 0.05        # of rate * SECONDS


def require_cluster():
    r = run_binary(["-V"])
    feats = r.stdout.decode("utf-8", "replace")
    if "redis" not in feats.split("features:")[-1].split():
        skip("spillway built without hiredis (-V lists no \"redis\"): "
             "apt-get install libhiredis-dev and rebuild")
    if RedisServer.binary() is None:
        skip("redis-server is not installed: apt-get install redis-server")


class RedisServer:
    """redis-server on a free loopback port, in its own temporary
    directory, no persistence; stopped by PID."""

    @staticmethod
    def binary():
        return shutil.which("redis-server") or (
            "/usr/bin/redis-server" if os.access("/usr/bin/redis-server",
                                                 os.X_OK) else None)

    def __init__(self, extra=()):
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="spillway-it-redis-")
        self.port = free_port()
        self.proc = None
        register(self)
        self.start()

    @property
    def addr(self):
        return "%s:%d" % (LOCALHOST, self.port)

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary(), "--port", str(self.port), "--bind", LOCALHOST,
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--daemonize", "no"] + self.extra,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        check(wait_for(self.ping, 5), "redis-server did not answer PING")

    def ping(self):
        try:
            with socket.create_connection((LOCALHOST, self.port), 0.5) as s:
                s.sendall(b"PING\r\n")
                # with requirepass, NOAUTH: up all the same
                return s.recv(64)[:1] in (b"+", b"-")
        except OSError:
            return False

    def command(self, *args):
        """One command; the reply's first line (enough for EXISTS)."""
        req = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in
            (x.encode() for x in args))
        with socket.create_connection((LOCALHOST, self.port), 2) as s:
            s.sendall(req)
            return s.recv(4096).split(b"\r\n")[0].decode()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.log.close()

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)   # if frozen
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Load(threading.Thread):
    """Requests to one port on a keep-alive connection at a fixed pace,
    each header in `headers` in turn; records (send time, status), status
    None for a failed exchange."""

    def __init__(self, port, per_second, until, headers=({},), path="/"):
        super().__init__(daemon=True)
        self.port = port
        self.path = path
        self.gap = 1.0 / per_second
        self.until = until
        self.headers = list(headers)
        self.results = []
        self.errors = []

    def run(self):
        conn = None
        n = 0
        nxt = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= self.until:
                break
            if nxt > now:
                time.sleep(nxt - now)
            nxt += self.gap
            h = self.headers[n % len(self.headers)]
            n += 1
            t = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(LOCALHOST, self.port,
                                                      timeout=5)
                conn.request("GET", self.path, headers=h)
                r = conn.getresponse()
                r.read()
                self.results.append((t, r.status, h.get("X-Client")))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                self.results.append((t, None, h.get("X-Client")))
                self.errors.append(repr(e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


def instances(redis, admission, n=3, cluster=None, classes=()):
    be = register(Backend(respond(200, b"ok")))
    c = {"redis": redis.addr, "timeout": "250ms", "heartbeat": "200ms",
         "prefix": "it:"}
    c.update(cluster or {})
    sps = [admin_spillway([be], sections=[("admission", admission),
                                          ("cluster", c)] + list(classes))
           for _ in range(n)]
    return sps


def cluster_metric(sp, name):
    return metrics(sp).value("spillway_cluster_" + name, 0)


def wait_shared(sps, n, within=5.0):
    """Every instance shares its buckets with n instances."""
    def ok():
        return all(cluster_metric(sp, "up") == 1 and
                   cluster_metric(sp, "instances") == n for sp in sps)
    check(wait_for(ok, within, 0.1), "not all instances up on Redis with "
          "%d instances within %.0fs: %r" % (n, within, [
              (cluster_metric(sp, "up"), cluster_metric(sp, "instances"))
              for sp in sps]))


def run_load(loads):
    for ld in loads:
        ld.start()
    for ld in loads:
        ld.join(SECONDS + 30)
        check(not ld.is_alive(), "a load thread did not finish")


def admitted(loads, t0, t1, client=None):
    return sum(1 for ld in loads for (t, st, c) in ld.results
               if t0 <= t < t1 and st == 200 and
               (client is None or c == client))


def no_failures(loads):
    bad = [(st, c) for ld in loads for (t, st, c) in ld.results
           if st not in (200, 429)]
    errs = [e for ld in loads for e in ld.errors]
    check(not bad, "requests failed: %d, e.g. %r; errors %r" % (
        len(bad), bad[:5], errs[:3]))


def within(got, want, slack, what):
    diag("%s: %d admitted, %d expected (+-%d)" % (what, got, want, slack))
    check(abs(got - want) <= slack, "%s: %d admitted, %d expected "
          "within %d" % (what, got, want, slack))


@test("three instances share one global rate: the sum within 5% over 10s",
      timeout=60)
def global_rate():
    require_cluster()
    redis = RedisServer()
    rate, burst = 60, 6
    sps = instances(redis, {"rate": "%d/s" % rate, "burst": burst})
    wait_shared(sps, 3)
    t0 = time.monotonic() + 0.2
    loads = [Load(sp.port, 45, t0 + SECONDS) for sp in sps]   # 135/s
    run_load(loads)
    no_failures(loads)
    got = admitted(loads, t0 - 1, t0 + SECONDS)
    within(got, burst + rate * SECONDS, TOLERANCE * rate * SECONDS,
           "global rate %d/s on 3 instances" % rate)
    for ld in loads:        # each took a fair part, none was starved
        mine = admitted([ld], t0 - 1, t0 + SECONDS)
        check(mine > rate * SECONDS / 3 / 2, "one instance admitted only "
              "%d" % mine)
    leased = sum(cluster_metric(sp, "lease_tokens_total") for sp in sps)
    check(leased > 0, "no tokens leased from Redis")


@test("per-client rates are shared the same way", timeout=60)
def client_rate():
    require_cluster()
    redis = RedisServer()
    rate, burst = 30, 3
    sps = instances(redis, {"client_rate": "%d/s" % rate,
                            "client_burst": burst,
                            "client_key": "header:X-Client"})
    wait_shared(sps, 3)
    t0 = time.monotonic() + 0.2
    hs = ({"X-Client": "alice"}, {"X-Client": "bob"})
    loads = [Load(sp.port, 40, t0 + SECONDS, hs) for sp in sps]
    run_load(loads)
    no_failures(loads)
    for who in ("alice", "bob"):
        got = admitted(loads, t0 - 1, t0 + SECONDS, who)
        within(got, burst + rate * SECONDS, TOLERANCE * rate * SECONDS,
               "client %s at %d/s on 3 instances" % (who, rate))


def outage(freeze):
    """Redis away for 5s in the middle of a 14s run, stopped or frozen."""
    require_cluster()
    redis = RedisServer()
    rate, burst, n = 60, 6, 3
    sps = instances(redis, {"rate": "%d/s" % rate, "burst": burst})
    wait_shared(sps, n)
    t0 = time.monotonic() + 0.2
    loads = [Load(sp.port, 40, t0 + 14) for sp in sps]     # 120/s
    for ld in loads:
        ld.start()
    time.sleep(max(0, t0 + 4 - time.monotonic()))
    t_down = time.monotonic()
    if freeze:
        redis.proc.send_signal(signal.SIGSTOP)
    else:
        redis.stop()
    # the local share within the timeout (250ms), with room for a busy
    # machine: each instance says it is down
    check(wait_for(lambda: all(cluster_metric(sp, "up") == 0
                               for sp in sps), 2.0, 0.02),
          "an instance still shares on a Redis that is away")
    t_local = time.monotonic()
    diag("local share after %.0f ms" % ((t_local - t_down) * 1000))
    time.sleep(max(0, t_down + 5 - time.monotonic()))
    t_back = time.monotonic()
    if freeze:
        redis.proc.send_signal(signal.SIGCONT)
    else:
        redis.start()
    wait_shared(sps, n, within=4.0)     # back-off at most 1s
    t_up = time.monotonic()
    diag("shared again after %.0f ms" % ((t_up - t_back) * 1000))
    for ld in loads:
        ld.join(30)
    no_failures(loads)
    # while away: each instance its share, rate / 3; together the rate,
    # plus the local buckets' bursts (burst / 3 each)
    a, b = t_local + 0.2, t_back
    got = admitted(loads, a, b)
    within(got, rate * (b - a), 0.1 * rate * (b - a) + burst,
           "Redis away, local shares")
    # back: shared again, the rate (a fresh Redis starts full: a burst)
    a, b = t_up, t0 + 14
    check(b - a > 2, "too little time left after Redis came back (%.1fs)"
          % (b - a))
    got = admitted(loads, a, b)
    within(got, rate * (b - a), 0.05 * rate * (b - a) + burst + 3,
           "Redis back, shared")
    changes = [cluster_metric(sp, "transitions_total") for sp in sps]
    check(all(c >= 3 for c in changes), "up, down, up not counted: %r"
          % changes)
    errors = [cluster_metric(sp, "errors_total") for sp in sps]
    check(all(e >= 1 for e in errors), "errors not counted: %r" % errors)
    for sp in sps:
        log = open(sp.stderr_path, "rb").read().decode("utf-8", "replace")
        downs = log.count(" down (")
        check(downs == 1, "the outage logged %d times, not once:\n%s"
              % (downs, log[-2000:]))


@test("Redis stopped mid-run: no request fails, local share, then shared",
      timeout=60)
def redis_stopped():
    outage(freeze=False)


@test("Redis frozen mid-run (slow): the timeout applies the local share",
      timeout=60)
def redis_frozen():
    outage(freeze=True)


@test("a class's rate is shared the same way", timeout=60)
def class_rate():
    require_cluster()
    redis = RedisServer()
    rate, burst, secs = 30, 3, 8.0
    sps = instances(redis, {}, classes=[("class api", {
        "path": "/api/", "rate": "%d/s" % rate, "burst": burst})])
    wait_shared(sps, 3)
    t0 = time.monotonic() + 0.2
    loads = [Load(sp.port, 25, t0 + secs, path="/api/x") for sp in sps]
    run_load(loads)
    no_failures(loads)
    got = admitted(loads, t0 - 1, t0 + secs)
    within(got, burst + rate * secs, TOLERANCE * rate * secs,
           "class rate %d/s on 3 instances" % rate)
    check(redis.command("EXISTS", "it:c:api") == ":1",
          "no bucket it:c:api in Redis")


def cluster_state(sp):
    r = admin(sp, "/status")
    eq(r.status, 200, "GET /status")
    return json.loads(r.body.decode("utf-8"))["cluster"]["state"]


@test("reload: [cluster] turned on, re-prefixed, a bad one refused, off",
      timeout=60)
def cluster_reload():
    require_cluster()
    redis = RedisServer()
    be = register(Backend(respond(200, b"ok")))
    adm = ("admission", {"rate": "50/s", "burst": 5})
    sp = admin_spillway([be], sections=[adm])
    others = [x for x in sp.spec["sections"] if x[0] != "admission"]
    eq(cluster_state(sp), "off", "cluster state before")

    def with_cluster(c):
        sp.reconfigure(sections=[adm] + ([("cluster", c)] if c else []) +
                       others)
        gen = metrics(sp).value("spillway_config_generation", 0)
        sp.reload()
        return gen

    def reloaded(gen):
        return metrics(sp).value("spillway_config_generation", 0) > gen

    # turned on by a reload, then moved to a new prefix by another
    for prefix in ("one:", "two:"):
        gen = with_cluster({"redis": redis.addr, "prefix": prefix,
                            "heartbeat": "200ms"})
        check(wait_for(lambda: reloaded(gen), 5),
              "reload to prefix %s not taken" % prefix)
        check(wait_for(lambda: cluster_state(sp) == "up", 5),
              "not up on Redis after the reload to prefix %s" % prefix)
        eq(get(sp.port, "/").status, 200,
           "a request while shared under %s" % prefix)
        check(wait_for(lambda: redis.command("EXISTS", prefix + "g") ==
                       ":1", 3), "no %sg bucket in Redis" % prefix)

    gen = with_cluster({"redis": redis.addr, "prefix": "bad prefix"})
    sp.reload()
    time.sleep(0.5)
    check(not reloaded(gen), "a bad [cluster] was taken")
    eq(cluster_state(sp), "up", "state after a refused reload")
    eq(metrics(sp).value("spillway_config_reloads_total", 0,
                         result="failed") >= 1, True, "failure counted")

    gen = with_cluster(None)
    check(wait_for(lambda: reloaded(gen), 5), "reload not taken")
    eq(cluster_state(sp), "off", "state with [cluster] gone")
    eq(get(sp.port, "/").status, 200, "a request with buckets local")


@test("a password: the right one shares, a wrong one stays local", timeout=60)
def password():
    require_cluster()
    redis = RedisServer(["--requirepass", "s3cret"])
    adm = {"rate": "50/s", "burst": 5}
    good = instances(redis, adm, n=1, cluster={"password": "s3cret"})[0]
    bad = instances(redis, adm, n=1, cluster={"password": "wrong"})[0]
    wait_shared([good], 1)
    time.sleep(1.5)         # a few reconnects of the bad one
    eq(cluster_metric(bad, "up"), 0, "shared with a wrong password")
    check(cluster_metric(bad, "errors_total") >= 2, "refusals not counted")
    eq(get(bad.port, "/").status, 200, "a request on the local share")
    log = open(bad.stderr_path, "rb").read().decode("utf-8", "replace")
    eq(log.count("refused the password"), 1, "password refusals logged")


@test("a new client's parallel requests under its burst: none refused "
      "while its first lease is on its way", timeout=40)
def parallel_new_client():
    require_cluster()
    redis = RedisServer()
    sps = instances(redis, {"client_rate": "10/s", "client_burst": 20,
                            "client_key": "header:X-Api-Key"})
    wait_shared(sps, 3)
    sp = sps[0]
    # six at once on a fresh client key: one lease's credit, then the
    # local share (20 / 3 = 6); a 429 here was a refusal for a round trip
    for key in ("p1", "p2", "p3"):
        clients = [Client(sp.port) for _ in range(6)]
        for c in clients:
            c.request("GET", "/", [("X-Api-Key", key)])
        eq([c.read_response().status for c in clients], [200] * 6,
           "statuses of six parallel requests (%s)" % key)


@test("Redis answering wrongly (a key of another type) fails no request",
      timeout=60)
def wrong_answers():
    require_cluster()
    redis = RedisServer()
    eq(redis.command("SET", "it:g", "not a bucket"), "+OK", "SET")
    sp = instances(redis, {"rate": "50/s", "burst": 5}, n=1)[0]
    wait_shared([sp], 1)
    codes = set()
    for _ in range(20):
        codes.add(get(sp.port, "/").status)
        time.sleep(0.02)
    eq(codes, {200}, "statuses under the rate")
    check(wait_for(lambda: cluster_metric(sp, "errors_total") >= 1, 3),
          "wrong answers not counted")
    log = open(sp.stderr_path, "rb").read().decode("utf-8", "replace")
    check("wrong answers" in log, "not logged:\n" + log[-1500:])
    # the key mended: shared, and the bucket in Redis used
    redis.command("DEL", "it:g")
    check(wait_for(lambda: cluster_metric(sp, "up") == 1 and
                   get(sp.port, "/").status == 200 and
                   redis.command("EXISTS", "it:g") == ":1", 5, 0.1),
          "not shared again once the key was mended")


@test("[cluster] keys are checked by spillway -t")
def cluster_config():
    d = tempfile.mkdtemp(prefix="spillway-it-")
    try:
        p = os.path.join(d, "t.ini")
        base = ("[proxy]\nlisten = 127.0.0.1:1\n[backend]\n"
                "server = 127.0.0.1:2\n[cluster]\n")
        cases = [("redis = 127.0.0.1:99999\n", "t.ini:6:"),
                 ("redis = 127.0.0.1:6379\ntimeout = 0\n", "t.ini:7:"),
                 ("prefix = a b\n", "t.ini:6: prefix"),
                 ("instances = 0\n", "t.ini:6:"),
                 ("bogus = 1\n", "t.ini:6:")]
        for text, want in cases:
            with open(p, "w") as f:
                f.write(base + text)
            r = run_binary(["-t", "-c", p])
            err = r.stderr.decode("utf-8", "replace")
            check(r.returncode == 1 and want in err,
                  "%r: want %r, got %d %r" % (text, want, r.returncode, err))
        with open(p, "w") as f:
            f.write(base + "redis = 127.0.0.1:6379\npassword = s3cret\n"
                    "prefix = app1:\ntimeout = 20ms\nheartbeat = 2s\n"
                    "instances = 4\n")
        r = run_binary(["-t", "-c", p])
        feats = run_binary(["-V"]).stdout.decode().split("features:")[-1]
        if "redis" in feats.split():
            check(r.returncode == 0, "valid [cluster] refused: %r"
                  % r.stderr)
        else:
            check(r.returncode == 1 and b"without hiredis" in r.stderr,
                  "a build without hiredis must refuse redis clearly: %r"
                  % r.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run_main()
