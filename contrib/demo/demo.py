#!/usr/bin/env python3
"""
demo.py: the Python half of the controlled-failure demo (contrib/demo/
demo.sh runs it): probes, tables, and the report. Standard library only.

    demo.py free PORT...                exit 1 if a port is taken
    demo.py wait URL [SECONDS]          until URL answers 200
    demo.py capacity PORT CONC SECONDS  closed-loop req/s, printed
    demo.py grow PORT [DELAY...]        POST /admin/grow after each delay
    demo.py servers ADMIN_PORT          each backend server's state, limit,
                                        requests, from spillway's /metrics
    demo.py meta DIR KEY=VALUE...       add to DIR/meta.json
    demo.py table DIR RUN               print one run's table
    demo.py report DIR                  summary table, report.html, demo.svg

A run RUN is DIR/RUN.csv (loadgen's per-second CSV) and DIR/RUN.json
(its summary).
"""

import csv
import html
import http.client
import json
import math
import os
import re
import socket
import sys
import threading
import time

RUNS = [("direct", "legacy-app alone"),
        ("spillway", "behind spillway"),
        ("growth", "behind spillway, data growing"),
        ("failover", "two apps: one dies, one slows")]


# ------------------------------------------------------------------ probes

def cmd_free(ports):
    taken = []
    for p in ports:
        s = socket.socket()
        # as the servers bind: a TIME_WAIT left by an earlier run (the
        # dashboard's polling, say) does not make a port taken
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(p)))
        except OSError:
            taken.append(p)
        finally:
            s.close()
    if taken:
        print(" ".join(taken))
        return 1
    return 0


def get_status(host, port, path, timeout=3.0):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def gone(pid):
    """True if process pid has exited (or is a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def cmd_wait(url, seconds="15", pid=None):
    """Wait for url to answer 200; give up early if process pid exits."""
    hostport, _, path = url.partition("//")[2].partition("/")
    host, _, port = hostport.rpartition(":")
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        if pid is not None and gone(int(pid)):
            break
        try:
            if get_status(host, int(port), "/" + path) == 200:
                return 0
        except OSError:
            pass
        time.sleep(0.05)
    print("demo: %s did not answer within %s s" % (url, seconds),
          file=sys.stderr)
    return 1


def cmd_capacity(port, conc, seconds):
    """CONC clients, each sending its next request when the last one is
    answered, for SECONDS after a short warm-up: the app's throughput at
    no more concurrency than it has workers, i.e. its capacity."""
    port, conc, seconds = int(port), int(conc), float(seconds)
    warm = 0.3
    t_start = time.monotonic() + warm
    t_end = t_start + seconds
    counts = [0] * conc
    errors = [0] * conc

    def client(i):
        c = None
        while time.monotonic() < t_end:
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", port,
                                                   timeout=10)
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
                now = time.monotonic()
                if r.status == 200 and t_start <= now < t_end:
                    counts[i] += 1
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                c = None
                time.sleep(0.01)
        if c is not None:
            c.close()

    threads = [threading.Thread(target=client, args=(i,))
               for i in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sum(errors):
        print("demo: %d errors while measuring capacity" % sum(errors),
              file=sys.stderr)
    print("%.1f" % (sum(counts) / seconds))
    return 0 if sum(counts) else 1


def cmd_grow(port, *delays):
    """Data growth at the given times (seconds from now): each doubles
    the orders table, as months of business would."""
    t0 = time.monotonic()
    for d in delays:
        time.sleep(max(0.0, t0 + float(d) - time.monotonic()))
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        c.request("POST", "/admin/grow")
        r = c.getresponse()
        body = r.read().decode(errors="replace").strip()
        c.close()
        print("demo: %.1fs: data growth: %s" % (time.monotonic() - t0,
                                                 body), file=sys.stderr)
    return 0


SERVER_RE = re.compile(r'^(spillway_server_[a-z_]+)\{server="([^"]*)"'
                       r'(?:,state="([a-z]+)")?\} (\S+)$')


def cmd_servers(port):
    """Each backend server as spillway's /metrics shows it now: health
    state, concurrency limit (its own, learned), in flight, tries sent
    and failed."""
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode(errors="replace")
    c.close()
    servers = {}
    for line in body.splitlines():
        m = SERVER_RE.match(line)
        if not m:
            continue
        name, server, state, value = m.groups()
        sv = servers.setdefault(server, {})
        if state is not None:
            if float(value) == 1:
                sv["state"] = state
        else:
            sv[name[len("spillway_server_"):]] = float(value)
    if not servers:
        print("no backend server in /metrics")
        return 1
    print("  %-22s %-8s %6s %9s %9s %8s" % ("server", "state", "limit",
                                          "in flight", "requests", "failed"))
    for server in sorted(servers):
        sv = servers[server]
        num = lambda k: ("%d" % sv[k]) if k in sv else "-"
        print("  %-22s %-8s %6s %9s %9s %8s" % (
            server, sv.get("state", "-"), num("concurrency_limit"),
            num("requests_in_flight"), num("requests_total"),
            num("failures_total")))
    return 0


def cmd_meta(d, *pairs):
    path = os.path.join(d, "meta.json")
    meta = load_meta(d)
    for p in pairs:
        k, _, v = p.partition("=")
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
    with open(path + ".tmp", "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    return 0


def load_meta(d):
    try:
        with open(os.path.join(d, "meta.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


# ------------------------------------------------------------------ tables

def load_run(d, name):
    """(rows, summary) of a run, or None if it did not happen."""
    try:
        with open(os.path.join(d, name + ".csv")) as f:
            rows = [{k: (float(v) if v not in ("", None) else None)
                     for k, v in r.items()} for r in csv.DictReader(f)]
        with open(os.path.join(d, name + ".json")) as f:
            summary = json.load(f)
    except FileNotFoundError:
        return None
    return rows, summary


def capacity_at(meta, t):
    """The app's measured capacity at second t of a run (data growth
    shifts it in the growth run)."""
    caps = meta.get("capacity_steps") or [meta.get("capacity", 0)]
    times = meta.get("growth_at") or []
    k = sum(1 for g in times if t >= g)
    return caps[min(k, len(caps) - 1)]


def phases(meta, name):
    """[(label, from, to, capacity)] of a run: one phase, or one per data
    size in the growth run."""
    dur = float(meta["seconds"])
    if name != "growth" or not meta.get("growth_at"):
        return [("whole run", 0, dur, meta["capacity"])]
    cuts = [0] + [float(g) for g in meta["growth_at"]] + [dur]
    rows = meta.get("rows", 0)
    out = []
    for i in range(len(cuts) - 1):
        out.append(("%.0f-%.0f s, %dk rows" % (cuts[i], cuts[i + 1],
                                               rows * 2 ** i // 1000),
                    cuts[i], cuts[i + 1], capacity_at(meta, cuts[i])))
    return out


def fmt_ms(ms):
    if ms is None:
        return "-"
    return "%.0f ms" % ms if ms >= 10 else "%.1f ms" % ms


def run_line(name, rows, s, meta):
    """The summary figures of a whole run."""
    refused = s["s429"] + s["s503"]
    failed = s["errors"] + s["s502"] + s["s504"] + s["other_status"]
    cap = meta["capacity"]
    if name == "growth":
        cap = sum(capacity_at(meta, i + 0.5)
                  for i in range(int(meta["seconds"]))) / meta["seconds"]
    return {
        "offered": s["offered"] / s["duration"],
        "goodput": s["goodput"],
        "pct": 100.0 * s["goodput"] / cap if cap else 0,
        "p99": s["p99_ms"],
        "refused": refused,
        "refused_pct": 100.0 * refused / s["offered"] if s["offered"] else 0,
        "errors": failed,
        "timeouts": s["timeouts"],
        "capacity": cap,
    }


def phase_lines(name, rows, meta):
    out = []
    for label, a, b, cap in phases(meta, name):
        sel = [r for r in rows if a <= r["second"] < b]
        n = max(1, len(sel))
        ok = sum(r["ok_2xx"] for r in sel)
        p99s = [r["p99_ms"] for r in sel if r["p99_ms"] is not None]
        out.append({"label": label, "capacity": cap,
                    "goodput": ok / n,
                    "pct": 100.0 * ok / n / cap if cap else 0,
                    "p99_worst": max(p99s) if p99s else None})
    return out


HEAD = ("%-32s %9s %16s %16s %15s %7s %9s" %
        ("run", "offered", "goodput", "p99 of 2xx", "refused", "errors",
         "timeouts"))


def table_row(title, ln):
    return ("%-32s %7.0f/s %7.1f/s (%3.0f%%) %16s %7d (%3.0f%%) %7d %9d" %
            (title, ln["offered"], ln["goodput"], ln["pct"],
             fmt_ms(ln["p99"]), ln["refused"], ln["refused_pct"],
             ln["errors"], ln["timeouts"]))


def print_run(d, name, meta, out=sys.stdout):
    run = load_run(d, name)
    if run is None:
        return 1
    rows, s = run
    title = dict(RUNS).get(name, name)
    ln = run_line(name, rows, s, meta)
    print(HEAD, file=out)
    print(table_row(title, ln), file=out)
    if name == "growth":
        for ph in phase_lines(name, rows, meta):
            print("  %-30s capacity %5.0f/s, goodput %6.1f/s (%3.0f%%), "
                  "worst p99 %s" % (ph["label"], ph["capacity"],
                                    ph["goodput"], ph["pct"],
                                    fmt_ms(ph["p99_worst"])), file=out)
    return 0


def cmd_table(d, name):
    return print_run(d, name, load_meta(d))


# ------------------------------------------------------------------ report

COLORS = {"offered": "#888888", "goodput": "#1a9850", "refused": "#f28e2b",
          "failed": "#d73027", "capacity": "#2c7fb8", "p99": "#6a3d9a"}


def svg_panel(x0, y0, w, name, run, meta, ymax, n):
    """One run: requests per second above, p99 of successes below; n
    seconds on the time axis."""
    rows, summary = run
    out = []
    h1, h2, gap = 210, 110, 34
    dur = float(meta["seconds"])
    loaded = [r for r in rows if r["second"] < dur]
    xs = lambda t: x0 + w * t / n                          # noqa: E731
    ys = lambda v: y0 + h1 - h1 * min(v, ymax) / ymax      # noqa: E731
    lo, hi = 1.0, 10000.0
    y2 = y0 + h1 + gap

    def yl(ms):
        ms = min(max(ms, lo), hi)
        return y2 + h2 - h2 * math.log10(ms / lo) / math.log10(hi / lo)

    title = dict(RUNS).get(name, name)
    ln = run_line(name, rows, summary, meta)
    out.append('<text x="%.1f" y="%.1f" class="t">%s</text>'
               % (x0, y0 - 30, html.escape(title)))
    out.append('<text x="%.1f" y="%.1f" class="st">goodput %.0f/s (%.0f%% '
               'of capacity), p99 %s</text>'
               % (x0, y0 - 10, ln["goodput"], ln["pct"],
                  fmt_ms(ln["p99"]).replace("-", "none")))
    out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" '
               'class="after"/>' % (xs(dur), y0, max(0, xs(n) - xs(dur)),
                                   h1))
    for frame_y, frame_h in ((y0, h1), (y2, h2)):
        out.insert(0, '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" '
                   'class="frame"/>' % (x0, frame_y, w, frame_h))
    step = 100 if ymax <= 1000 else 500
    if ymax <= 300:
        step = 50
    v = step
    while v < ymax:
        out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" '
                   'class="grid"/>' % (x0, x0 + w, ys(v), ys(v)))
        out.append('<text x="%.1f" y="%.1f" class="ax" text-anchor="end">'
                   '%d</text>' % (x0 - 4, ys(v) + 4, v))
        v += step
    for ms, lab in ((1, "1 ms"), (10, "10 ms"), (100, "100 ms"),
                    (1000, "1 s"), (10000, "10 s")):
        out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" '
                   'class="grid"/>' % (x0, x0 + w, yl(ms), yl(ms)))
        out.append('<text x="%.1f" y="%.1f" class="ax" text-anchor="end">'
                   '%s</text>' % (x0 - 4, yl(ms) + 4, lab))
    for t in range(0, n + 1, 5):
        out.append('<text x="%.1f" y="%.1f" class="ax" '
                   'text-anchor="middle">%ds</text>'
                   % (xs(t), y2 + h2 + 14, t))
    # capacity: a step line (data growth moves it)
    pts = []
    for t in range(int(dur)):
        c = capacity_at(meta, t + 0.5) if name == "growth" \
            else meta["capacity"]
        pts += [(xs(t), ys(c)), (xs(t + 1), ys(c))]
    out.append(polyline(pts, COLORS["capacity"], 2, dash="6,4"))
    for g in (meta.get("growth_at") or []) if name == "growth" else []:
        out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" '
                   'class="mark"/>' % (xs(g), xs(g), y0, y2 + h2))
        out.append('<text x="%.1f" y="%.1f" class="ax">data x2</text>'
                   % (xs(g) + 3, y0 + 12))

    def series(sel, key_fn, color, width, dash=None):
        p = [(xs(r["second"] + 0.5), ys(key_fn(r))) for r in sel]
        return polyline(p, color, width, dash)

    # Failures are counted when they end (a timeout, --timeout after its
    # request was due): they run on after the load stops.
    out.append(series(loaded, lambda r: r["offered"], COLORS["offered"], 2,
                      "2,3"))
    out.append(series(loaded, lambda r: r["s429"] + r["s503"],
                      COLORS["refused"], 2))
    out.append(series(rows, lambda r: r["timeouts"] + r["errors"] +
                      r["s502"] + r["s504"] + r["other_status"],
                      COLORS["failed"], 2))
    out.append(series(loaded, lambda r: r["ok_2xx"], COLORS["goodput"], 3.5))
    p99 = [(xs(r["second"] + 0.5), yl(r["p99_ms"])) for r in loaded
           if r["p99_ms"] is not None]
    if p99:
        out.append(polyline(p99, COLORS["p99"], 2.5))
        for x, y in p99:
            out.append('<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"/>'
                       % (x, y, COLORS["p99"]))
    out.append('<text x="%.1f" y="%.1f" class="ax">p99 of successes '
               '(log)</text>' % (x0 + 4, y2 - 5))
    return "\n".join(out)


def polyline(pts, color, width, dash=None):
    if not pts:
        return ""
    d = " ".join("%.1f,%.1f" % p for p in pts)
    extra = ' stroke-dasharray="%s"' % dash if dash else ""
    return ('<polyline points="%s" fill="none" stroke="%s" '
            'stroke-width="%s" stroke-linejoin="round"%s/>'
            % (d, color, width, extra))


def make_svg(d, meta, runs):
    pw, gapx, left, top = 380, 70, 70, 100
    names = [n for n, _ in RUNS if runs.get(n)]
    width = left + len(names) * pw + (len(names) - 1) * gapx + 30
    height = 540
    ymax = 0
    for n in names:
        ymax = max([ymax] + [max(r["offered"], r["ok_2xx"], r["timeouts"] +
                                 r["errors"], r["s429"] + r["s503"])
                             for r in runs[n][0]])
    ymax = max(100, math.ceil(ymax * 1.1 / 100) * 100)
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" '
             'height="%d" viewBox="0 0 %d %d" font-family="Helvetica, '
             'Arial, sans-serif">' % (width, height, width, height),
             '<style>.t{font-size:17px;font-weight:bold;fill:#222}'
             '.ax{font-size:11px;fill:#555}.frame{fill:#fbfbfb;'
             'stroke:#bbb}.grid{stroke:#e4e4e4}.mark{stroke:#2c7fb8;'
             'stroke-width:1;stroke-dasharray:3,3}'
             '.after{fill:#eeeeee}.st{font-size:13px;fill:#333}'
             '.lg{font-size:13px;fill:#222}.h{font-size:20px;'
             'font-weight:bold;fill:#111}</style>',
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="%d" y="28" class="h">The same overload (%.0f req/s, '
             '%.1fx capacity), three ways: requests per second, and p99 '
             'latency of successes</text>'
             % (left, meta["rate"], meta["rate"] / meta["capacity"])]
    secs = max(len(runs[n][0]) for n in names)
    for i, n in enumerate(names):
        parts.append(svg_panel(left + i * (pw + gapx), top, pw, n,
                               runs[n], meta, ymax, secs))
    lx, ly = left, height - 22
    for key, label in (("offered", "offered"), ("goodput",
                       "2xx in time (goodput)"),
                       ("refused", "refused fast (429/503)"),
                       ("failed", "timed out / failed"),
                       ("capacity", "app capacity (measured)"),
                       ("p99", "p99 of successes")):
        dash = {"offered": "2,3", "capacity": "6,4"}.get(key)
        parts.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" '
                     'stroke-width="3"%s/>'
                     % (lx, lx + 26, ly - 4, ly - 4, COLORS[key],
                        ' stroke-dasharray="%s"' % dash if dash else ""))
        parts.append('<text x="%d" y="%d" class="lg">%s</text>'
                     % (lx + 32, ly, html.escape(label)))
        lx += 40 + 7.2 * len(label)
    parts.append('<rect x="%d" y="%d" width="26" height="12" '
                 'class="after"/>' % (lx, ly - 10))
    parts.append('<text x="%d" y="%d" class="lg">load over (late '
                 'timeouts still land)</text>' % (lx + 32, ly))
    parts.append("</svg>")
    return "\n".join(parts)


def make_html(meta, runs, svg, tables):
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>spillway: the controlled-failure demo</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2em auto;
  max-width: 1400px; color: #222; padding: 0 1em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>spillway: the controlled-failure demo</h1>
<p>A fragile database-backed app (<code>contrib/legacy-app</code>: {workers}
workers, an unbounded backlog, {rows} orders scanned by every request)
measured at <b>{cap:.0f} req/s</b>, then offered <b>{rate:.0f} req/s</b>
({x:.1f}x) for {secs} s by an open-loop load generator whose clients give
up after {timeout} s: first directly, then through spillway on its default
configuration, then through spillway while the data doubles twice and the
app's capacity falls to {cap_last:.0f} req/s.</p>
<p>Alone, the app queues everything and serves requests whose clients have
left: latency explodes and goodput falls toward zero. Behind spillway it
keeps serving at its capacity, fast, and the rest get an immediate
<code>503</code> with <code>Retry-After</code>; when its capacity drops,
spillway follows it down, erring on the safe side while it re-learns what
the app's latency is (a slower app looks at first like a queueing one).</p>
{svg}
<h2>Results</h2>
<pre>{tables}</pre>
<p>For the live view, run <code>make run</code> (spillway in front of
legacy-app) and open the dashboard at
<a href="http://127.0.0.1:8082/">http://127.0.0.1:8082/</a>; drive it with
<code>contrib/loadgen/loadgen -r {rate:.0f} -d 60
http://127.0.0.1:8080/</code>.</p>
</body></html>
""".format(workers=meta.get("workers"), rows=meta.get("rows"),
           cap=meta["capacity"], rate=meta["rate"],
           x=meta["rate"] / meta["capacity"], secs=meta["seconds"],
           timeout=meta.get("timeout"),
           cap_last=(meta.get("capacity_steps") or [meta["capacity"]])[-1],
           svg=svg, tables=html.escape(tables))


def cmd_report(d):
    meta = load_meta(d)
    runs = {n: load_run(d, n) for n, _ in RUNS}
    runs = {n: r for n, r in runs.items() if r is not None}
    if not runs:
        print("demo: no runs in %s" % d, file=sys.stderr)
        return 1
    lines = [HEAD]
    for n, title in RUNS:
        if n in runs:
            lines.append(table_row(title, run_line(n, runs[n][0],
                                                   runs[n][1], meta)))
    if "growth" in runs:
        lines.append("")
        lines.append("behind spillway, data growing, by data size:")
        for ph in phase_lines("growth", runs["growth"][0], meta):
            lines.append("  %-30s capacity %5.0f/s, goodput %6.1f/s "
                         "(%3.0f%%), worst p99 %s"
                         % (ph["label"], ph["capacity"], ph["goodput"],
                            ph["pct"], fmt_ms(ph["p99_worst"])))
    tables = "\n".join(lines)
    print(tables)
    svg = make_svg(d, meta, runs)
    with open(os.path.join(d, "demo.svg"), "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n")
    with open(os.path.join(d, "report.html"), "w") as f:
        f.write(make_html(meta, runs, svg, tables))
    with open(os.path.join(d, "summary.txt"), "w") as f:
        f.write(tables + "\n")
    return 0


COMMANDS = {"free": cmd_free, "wait": cmd_wait, "capacity": cmd_capacity,
            "grow": cmd_grow, "servers": cmd_servers, "meta": cmd_meta,
            "table": cmd_table,
            "report": cmd_report}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    fn = COMMANDS[argv[1]]
    if fn is cmd_free:
        return fn(argv[2:])
    return fn(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
