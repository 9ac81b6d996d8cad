#!/usr/bin/env python3
"""What Prometheus and Grafana read: GET /metrics passes `promtool check
metrics` under traffic of every kind; the process_* family matches what
/proc says of the process; contrib/prometheus/spillway-rules.yml passes
`promtool check rules` and its unit tests (`promtool test rules`); every
query of contrib/grafana/spillway.json parses as PromQL and names only
metrics spillway exports. promtool is in Debian's prometheus package
(contrib/setup.sh installs it); without it the promtool tests are skipped
and say so."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TOP_SRCDIR, Backend, Client, admin, admin_spillway,
                     check, diag, eq, raw, register, respond, skip, test,
                     wait_for, run_main)

PROMTOOL = shutil.which("promtool")
RULES = os.path.join(TOP_SRCDIR, "contrib", "prometheus", "spillway-rules.yml")
RULE_TESTS = os.path.join(TOP_SRCDIR, "contrib", "prometheus",
                          "spillway-rules.test.yml")
GRAFANA = os.path.join(TOP_SRCDIR, "contrib", "grafana", "spillway.json")


def need_promtool():
    if PROMTOOL is None:
        skip("promtool not found: apt-get install prometheus "
             "(contrib/setup.sh installs it)")


def promtool(*args, stdin=None):
    return subprocess.run([PROMTOOL] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="spillway-it-")
        register(self)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def busy_spillway():
    """spillway with two classes, answers of every kind counted."""
    be = Backend(respond(200, b"ok\n"))
    be.route("/api/missing", respond(404, b"no\n"))
    be.route("/api/broken", raw(b"NOT HTTP\r\n\r\n"))
    sp = admin_spillway([be], [
        ("class api", {"path": "/api/", "rate": "600/m", "burst": 3})])
    c = Client(sp.port)
    for t in ("/", "/api/a", "/api/missing", "/api/broken", "/"):
        c.exchange("GET", t)
        if t == "/api/broken":
            c.close()
            c = Client(sp.port)
    statuses = [c.exchange("GET", "/api/x%d" % i).status for i in range(6)]
    check(429 in statuses, "no 429 in %r" % statuses)
    c.close()
    return sp


def metrics_text(sp):
    r = admin(sp, "/metrics")
    eq(r.status, 200, "GET /metrics")
    return r.body


def exported_names(text):
    names = set()
    for ln in text.decode().splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", ln)
        if m:
            names.add(m.group(1))
    return names


@test("promtool check metrics: GET /metrics clean under every kind of answer")
def check_metrics():
    need_promtool()
    sp = busy_spillway()
    text = metrics_text(sp)
    r = promtool("check", "metrics", stdin=text)
    out = (r.stdout + r.stderr).decode()
    eq((r.returncode, out.strip()), (0, ""), "promtool check metrics")
    for fam in ("process_cpu_seconds_total", "process_open_fds",
                "spillway_served_duration_seconds"):
        check(fam in exported_names(text), "no %s" % fam)
    check(b'spillway_served_duration_seconds_bucket{class="api",le="+Inf"}'
          in text, "no class label on the served latency")


@test("before any request: every configured class's series, at zero")
def classes_from_start():
    be = Backend(respond(200, b"ok\n"))
    sp = admin_spillway([be], [("class api", {"path": "/api/"})])
    text = metrics_text(sp)
    for cls in ("api", "default"):
        for fam in ("request_duration", "served_duration",
                    "upstream_duration"):
            want = ('spillway_%s_seconds_count{class="%s"} 0\n'
                    % (fam, cls)).encode()
            check(want in text, "no %r" % want)
        want = ('spillway_refused_total{class="%s",reason="overloaded"} 0\n'
                % cls).encode()
        check(want in text, "no %r" % want)
    check(b"spillway_request_duration_seconds_count 0" not in text,
          "an unlabelled series beside the classes'")
    if PROMTOOL is not None:
        r = promtool("check", "metrics", stdin=text)
        eq((r.returncode, (r.stdout + r.stderr).decode().strip()), (0, ""),
           "promtool check metrics")


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


@test("process_* agree with /proc: start time, CPU, memory, descriptors")
def process_metrics():
    sp = busy_spillway()
    vals = {}
    for ln in metrics_text(sp).decode().splitlines():
        if ln.startswith("process_"):
            k, v = ln.split()
            vals[k] = float(v)
    diag("%r" % vals)
    eq(sorted(vals), sorted(["process_cpu_seconds_total", "process_open_fds",
                             "process_max_fds", "process_start_time_seconds",
                             "process_resident_memory_bytes",
                             "process_virtual_memory_bytes"]), "family")
    tck = os.sysconf("SC_CLK_TCK")
    st = proc_stat(sp.pid)
    with open("/proc/stat") as f:
        btime = int(re.search(r"^btime (\d+)$", f.read(), re.M).group(1))
    eq(vals["process_start_time_seconds"], btime + int(st[19]) / tck,
       "start time: btime + starttime / CLK_TCK")
    check(abs(vals["process_start_time_seconds"] - time.time()) < 120,
          "started %.0f s from now?" % (vals["process_start_time_seconds"] -
                                       time.time()))
    cpu = (int(st[11]) + int(st[12])) / tck
    check(0 <= cpu - vals["process_cpu_seconds_total"] < 1,
          "cpu %.2f vs /proc %.2f" % (vals["process_cpu_seconds_total"], cpu))
    check(abs(vals["process_virtual_memory_bytes"] - int(st[20])) < 64 << 20,
          "vsize %r vs %s" % (vals["process_virtual_memory_bytes"], st[20]))
    rss = sp.rss_kb() * 1024
    check(rss / 2 < vals["process_resident_memory_bytes"] < rss * 2,
          "rss %r vs VmRSS %d" % (vals["process_resident_memory_bytes"], rss))
    # the admin connection of the request itself is open while it counts
    n = sp.nfds()
    check(abs(vals["process_open_fds"] - n) <= 2,
          "open fds %r vs /proc/pid/fd %d" % (vals["process_open_fds"], n))
    with open("/proc/%d/limits" % sp.pid) as f:
        soft = int(re.search(r"^Max open files\s+(\d+)", f.read(),
                             re.M).group(1))
    eq(vals["process_max_fds"], float(soft), "max fds: the soft limit")


@test("spillway-rules.yml: promtool check rules and its unit tests pass")
def rules():
    need_promtool()
    r = promtool("check", "rules", RULES)
    out = (r.stdout + r.stderr).decode()
    eq(r.returncode, 0, "promtool check rules: %s" % out)
    check("SUCCESS" in out, out)
    r = promtool("test", "rules", RULE_TESTS)
    out = (r.stdout + r.stderr).decode()
    eq(r.returncode, 0, "promtool test rules: %s" % out)
    # the rules name metrics spillway exports, the per-server gauge too
    sp = busy_spillway()
    names = exported_names(metrics_text(sp))
    with open(RULES) as f:
        text = f.read()
    used = set(re.findall(r"\b((?:spillway|process)_[a-z_]+)\b", text))
    missing = sorted(n for n in used - names
                     if not re.sub(r"_(bucket|count|sum)$", "", n) in names)
    check(not missing, "the rules use metrics not exported: %r" % missing)
    check("spillway_server_up" in used, "no ejection alert")


def grafana_queries(d):
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title"), t["expr"]))
            walk(p.get("panels", []))
    walk(d["panels"])
    for a in d.get("annotations", {}).get("list", []):
        if "expr" in a:
            out.append(("annotation " + a["name"], a["expr"]))
    return out


@test("grafana/spillway.json: panels for each topic, every query parses "
      "and names exported metrics")
def grafana():
    with open(GRAFANA) as f:
        d = json.load(f)
    eq(d.get("uid"), "spillway", "uid")
    titles = " | ".join(p["title"] for p in d["panels"]).lower()
    for topic in ("goodput", "refusals by reason", "queue", "limit",
                  "latency by class", "cpu", "memory", "descriptors"):
        check(topic in titles, "no panel for %r in %s" % (topic, titles))
    ids = [p["id"] for p in d["panels"]]
    eq(len(ids), len(set(ids)), "panel ids distinct")
    qs = grafana_queries(d)
    check(len(qs) >= 15, "%d queries" % len(qs))
    sp = busy_spillway()
    names = exported_names(metrics_text(sp))
    missing = set()
    for title, q in qs:
        for n in re.findall(r"\b((?:spillway|process)_[a-z_]+)\b", q):
            base = re.sub(r"_(bucket|count|sum)$", "", n)
            if n not in names and base not in names:
                missing.add((title, n))
    check(not missing, "queries name metrics not exported: %r" % missing)
    need_promtool()
    # each query as a recording rule: promtool parses its PromQL
    tmp = TempDir()
    lines = ["groups:", "  - name: grafana", "    rules:"]
    for i, (title, q) in enumerate(qs):
        q = (q.replace("$__rate_interval", "1m").replace("$__range", "1h")
             .replace("$instance", ".*").replace("$job", ".*"))
        lines.append("      - record: grafana:query%d" % i)
        lines.append("        expr: %s" % json.dumps(q))
    path = os.path.join(tmp.path, "grafana-rules.yml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = promtool("check", "rules", path)
    out = (r.stdout + r.stderr).decode()
    eq(r.returncode, 0, "the dashboard's queries: %s" % out)


if __name__ == "__main__":
    run_main()
