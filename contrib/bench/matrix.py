#!/usr/bin/env python3
"""
matrix.py: helpers of contrib/bench/matrix.sh (python3 stdlib only).

    matrix.py knee WORK BACKEND FRACTION "USERS..." ROUNDS -> "CAPACITY KNEE"
    matrix.py report WORK OUT_MD OUT_SVG    the tables and the picture
    matrix.py limits ADMIN_PORT             spillway's limit, once a second

knee reads the sweep's loadgen JSONs (WORK/cells/sweep-BACKEND-USERS-ROUND
.json, closed loops straight at the backend), takes for each user count its
best round, and writes WORK/sweep-BACKEND.tsv, "users goodput p50_ms p99_ms
not_2xx" a line. The capacity is the best goodput; the knee the fewest
users that reach FRACTION of it.

The report reads WORK/meta.txt (key=value), WORK/backends.tsv, WORK/cells.tsv
and each cell's loadgen JSON and CSV, or wrk's output (CELL.wrk, the MATRIX
line of matrix.sh's wrk script); see matrix.sh for the columns.
"""

import csv
import html
import json
import os
import re
import statistics
import sys

TARGETS = ["direct", "spillway", "haproxy"]
ALL_TARGETS = TARGETS + ["old"]	# old: SPILLWAY_OLD, before/after
LAG_MS = 5          # median send lag beyond which an open-loop cell is LAG
COLOURS = {"direct": "#7f7f7f", "spillway": "#1f77b4", "haproxy": "#d62728",
           "old": "#9467bd"}
CLIENT_NAMES = {"retry": "closed, retry at once",
                "honour": "closed, honour Retry-After",
                "open": "open loop", "shift": "shift (closed, retry)"}


def knee(work, backend, fraction, users, rounds):
    rows = []
    with open(os.path.join(work, "sweep-%s.tsv" % backend), "w") as out:
        for u in users.split():
            j = None
            for r in range(1, int(rounds) + 1):
                try:
                    with open(os.path.join(work, "cells", "sweep-%s-%s-%d.json"
                                           % (backend, u, r))) as f:
                        jr = json.load(f)
                except (OSError, ValueError):
                    continue
                if j is None or jr["goodput"] > j["goodput"]:
                    j = jr
            if j is None:
                continue
            rows.append((int(u), j["goodput"]))
            out.write("%s %.1f %s %s %d\n" % (
                u, j["goodput"], fnum(j["p50_ms"], "%.3f"),
                fnum(j["p99_ms"], "%.3f"), j["offered"] - j["ok_2xx"]))
    if not rows:
        return
    best = max(g for _, g in rows)
    k = min(u for u, g in rows if g >= fraction * best)
    print("%.1f %d" % (best, k))


def wrk_json(wrk_out, seconds, slo_ms):
    """The MATRIX line of matrix.sh's wrk script, as a loadgen-like dict."""
    d = {}
    for line in open(wrk_out):
        if line.startswith("MATRIX "):
            for kv in line.split()[1:]:
                k, v = kv.split("=")
                d[k] = float(v)
    if not d:
        return None
    dur = float(seconds)
    errors = d["err_connect"] + d["err_read"] + d["err_write"]
    ended = d["ok"] + d["s429"] + d["s503"] + d["s502"] + d["s504"] + \
        d["other"]
    # wrk's latency histogram holds every response, whatever its status;
    # a refusal is fast, so "2xx within the SLO" is at most the responses
    # within it less the refusals and other statuses (an estimate).
    within = max(0.0, min(d["ok"], d["within_slo"] - (ended - d["ok"])))
    return {"mode": "closed", "client": "wrk", "approx": True,
            "duration": dur, "offered": ended + errors + d["err_timeout"],
            "ok_2xx": d["ok"], "ok_2xx_in_window": d["ok"],
            "goodput": d["ok"] / dur, "ok_2xx_slo_in_window": within,
            "goodput_slo": within / dur, "slo_ms": float(slo_ms),
            "s429": d["s429"], "s503": d["s503"], "s502": d["s502"],
            "s504": d["s504"], "other_status": d["other"], "errors": errors,
            "timeouts": d["err_timeout"], "p50_ms": d["p50_us"] / 1000,
            "p99_ms": d["p99_us"] / 1000, "refused_p50_ms": None,
            "retry_after_missing": None, "tally": {}}


# ------------------------------------------------------------------ report

def read_kv(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                d[k] = v
    return d


def fnum(v, spec="%.1f", none="-"):
    return none if v is None else spec % v


def fint(v):
    if v is None:
        return "-"
    if v >= 100:
        return "{:,.0f}".format(v)
    return "%.1f" % v


def pct(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if v < 0.1:
        return "%.2f" % v
    return "%.1f" % v


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def load_cell(work, c):
    base = os.path.join(work, c["prefix"])
    if os.path.exists(base + ".wrk"):
        j = wrk_json(base + ".wrk", c["seconds"], c["slo"])
        if j is None:
            return None
    else:
        try:
            with open(base + ".json") as f:
                j = json.load(f)
        except (OSError, ValueError):
            return None
    dur = j.get("duration") or 1
    ended = sum(j.get(k) or 0 for k in ("ok_2xx", "s429", "s503", "s502",
                                         "s504", "other_status", "errors",
                                         "timeouts"))
    refused = (j.get("s429") or 0) + (j.get("s503") or 0)
    other = ended - (j.get("ok_2xx") or 0) - refused
    r = {
        "offered": (j.get("offered") or 0) / dur,
        "goodput": j.get("ok_2xx_in_window", 0) / dur,
        "slo": j.get("ok_2xx_slo_in_window", 0) / dur,
        "refused_pct": 100.0 * refused / ended if ended else None,
        "refused_s": refused / dur,
        "other_pct": 100.0 * other / ended if ended else None,
        "other_s": other / dur,
        "p50": j.get("p50_ms"), "p99": j.get("p99_ms"),
        "ref_p50": j.get("refused_p50_ms"),
        "ra_missing": j.get("retry_after_missing"),
        "ra_mean": j.get("retry_after_mean") if j.get("retry_after_count")
        else None,
        "approx": bool(j.get("approx")),
        "lag": j.get("send_lag_p50_ms"),
        "tally": j.get("tally") or {},
        "json": j,
    }
    per = []
    if os.path.exists(base + ".csv"):
        with open(base + ".csv") as f:
            per = list(csv.DictReader(f))
    r["per_second"] = per
    return r


def median_run(reps):
    """With REPEATS, a row's figure for a target is its median run (by 2xx
    within the SLO; of an even count, the lower middle one); a row whose
    runs all failed shows the first."""
    ok = sorted((x for x in reps if x[1] is not None),
                key=lambda x: x[1]["slo"])
    return ok[(len(ok) - 1) // 2] if ok else reps[0]


def report(work, out_md, out_svg):
    meta = read_kv(os.path.join(work, "meta.txt"))
    backends = {}
    border = []
    for line in open(os.path.join(work, "backends.tsv")):
        f = line.rstrip("\n").split("\t")
        backends[f[0]] = {"cap": float(f[1]), "knee": int(f[2]),
                          "source": f[3], "desc": f[4],
                          "cap_after": float(f[5]) if len(f) > 5 and f[5]
                          else None}
        border.append(f[0])
    cells = []
    cols = ["backend", "row", "client", "param", "label", "target", "status",
            "seconds", "proxy_cpu", "backend_cpu", "other_load", "limit_med",
            "limit_end", "prefix", "slo", "rep"]
    path = os.path.join(work, "cells.tsv")
    if os.path.exists(path):
        for line in open(path):
            f = line.rstrip("\n").split("\t")
            cells.append(dict(zip(cols, f)))
    rows = {}           # (backend, row) -> {"meta":..., target: result}
    rorder = []
    for c in cells:
        key = (c["backend"], int(c["row"]))
        if key not in rows:
            rows[key] = {"meta": c}
            rorder.append(key)
        res = load_cell(work, c) if c["status"] == "ok" else None
        rows[key].setdefault("reps", {}).setdefault(c["target"], []).append(
            (c, res))
    for key in rorder:
        for t, reps in rows[key].get("reps", {}).items():
            rows[key][t] = median_run(reps)
    nrep = max((len(v) for k in rorder
                for v in rows[k].get("reps", {}).values()), default=1)

    L = []
    emit = L.append
    emit("# spillway benchmark matrix")
    emit("")
    emit("%s; spillway `%s`%s; HAProxy %s, nginx %s; cells of %s s "
         "(shift: %s s); SLO %s ms; loadgen timeout %s s; %s." % (
             meta.get("date", "?"), meta.get("spillway", "?"),
             " (" + meta["spillway_rev"] + ")" if meta.get("spillway_rev")
             else "", meta.get("haproxy", "?"), meta.get("nginx", "?"),
             meta.get("duration", "?"), meta.get("shift_duration", "?"),
             meta.get("slo_ms", "?"), meta.get("timeout", "?"),
             meta.get("machine", "?")))
    emit("Run took %s s. Other load (CPU of processes outside the benchmark, "
         "%% of one CPU) per cell: median %s, max %s." % (
             meta.get("took", "?"),
             fnum(median_of(cells, "other_load"), "%.0f%%"),
             fnum(max_of(cells, "other_load"), "%.0f%%")))
    emit("")
    emit("## Backends (direct, closed-loop sweep)")
    emit("")
    emit("| backend | what | capacity 2xx/s | knee (users) | sweep: users "
         "-> 2xx/s (p99 ms) |")
    emit("|---|---|---:|---:|---|")
    for b in border:
        info = backends[b]
        sw = []
        sp = os.path.join(work, "sweep-%s.tsv" % b)
        if os.path.exists(sp):
            for line in open(sp):
                f = line.split()
                sw.append("%s: %s (%s)" % (f[0], fint(float(f[1])),
                                           fnum(float(f[3]), "%.0f")
                                           if f[3] != "-" else "-"))
        emit("| %s | %s | %s | %d | %s |" % (
            b, info["desc"], fint(info["cap"]), info["knee"],
            ", ".join(sw) if sw else info["source"]))
    emit("")

    # Summary: one line per row.
    emit("## Goodput within the SLO, per row")
    emit("")
    emit("2xx answered within %s ms, per second; ratios of spillway to "
         "HAProxy and to direct; refusals (429 + 503) in %% of responses.%s"
         % (meta.get("slo_ms", "500"),
            " Each figure is the median of %d alternating runs of the cell "
            "(each of them under \"Every cell\" below)." % nrep
            if nrep > 1 else ""))
    emit("")
    emit("| backend | client | load | direct | spillway | haproxy "
         "| spillway/haproxy | spillway/direct | refused % spillway "
         "| refused % haproxy |")
    emit("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    svg_rows = []
    for key in rorder:
        r = rows[key]
        m = r["meta"]
        if m["client"] == "shift":
            continue
        v = {t: (r.get(t) or (None, None))[1] for t in TARGETS}
        slo = {t: v[t]["slo"] if v[t] else None for t in TARGETS}
        approx = any(v[t] and v[t]["approx"] for t in TARGETS)
        emit("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            m["backend"], CLIENT_NAMES.get(m["client"], m["client"]),
            m["label"], *(fint(slo[t]) + ("~" if approx and slo[t] is not None
                                          else "") for t in TARGETS),
            fnum(ratio(slo["spillway"], slo["haproxy"]), "%.2f"),
            fnum(ratio(slo["spillway"], slo["direct"]), "%.2f"),
            pct(v["spillway"]["refused_pct"] if v["spillway"] else None),
            pct(v["haproxy"]["refused_pct"] if v["haproxy"] else None)))
        svg_rows.append((m, slo, backends[m["backend"]]["cap"]))
    emit("")
    olds = [k for k in rorder if rows[k].get("old")
            and rows[k]["meta"]["client"] != "shift"]
    if olds:
        emit("spillway against the build before it (`old`: %s), the same "
             "rows, alternating with the other targets; 2xx within %s ms "
             "per second." % (meta.get("old", "?"), meta.get("slo_ms", "500")))
        emit("")
        emit("| backend | client | load | spillway | old | spillway/old "
             "| refused % spillway | refused % old |")
        emit("|---|---|---|---:|---:|---:|---:|---:|")
        for key in olds:
            r = rows[key]
            m = r["meta"]
            v = {t: (r.get(t) or (None, None))[1] for t in ("spillway", "old")}
            slo = {t: v[t]["slo"] if v[t] else None for t in v}
            emit("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                m["backend"], CLIENT_NAMES.get(m["client"], m["client"]),
                m["label"], fint(slo["spillway"]), fint(slo["old"]),
                fnum(ratio(slo["spillway"], slo["old"]), "%.2f"),
                pct(v["spillway"]["refused_pct"] if v["spillway"] else None),
                pct(v["old"]["refused_pct"] if v["old"] else None)))
        emit("")

    # Shift.
    shift = [k for k in rorder if rows[k]["meta"]["client"] == "shift"]
    for key in shift:
        r = rows[key]
        m = r["meta"]
        b = backends[m["backend"]]
        emit("## Shift: the backend's service time doubles mid-run")
        emit("")
        emit("%s, %s; at half time the backend becomes twice as slow "
             "(capacity %s -> %s 2xx/s, measured direct at the knee). "
             "2xx/s in each half; \"last 2 s\": the end of the second half, "
             "after any re-learning." % (
                 m["backend"], m["label"], fint(b["cap"]),
                 fint(b["cap_after"])))
        emit("")
        emit("| target | 2xx/s 1st half | 2xx/s 2nd half | 2xx/s last 2 s "
             "| within SLO /s (whole run) | refused % | p99 ms |")
        emit("|---|---:|---:|---:|---:|---:|---:|")
        for t in TARGETS + (["old"] if "old" in r else []):
            c, res = r.get(t) or (None, None)
            if res is None:
                emit("| %s | %s |  |  |  |  |  |" % (t, c["status"] if c
                                                     else "not run"))
                continue
            per = res["per_second"]
            n = int(float(c["seconds"]))
            half = n // 2
            ok = {int(p["second"]): int(p["ok_2xx"]) for p in per}
            h1 = [ok.get(s, 0) for s in range(0, half)]
            h2 = [ok.get(s, 0) for s in range(half, n)]
            last = [ok.get(s, 0) for s in range(max(half, n - 2), n)]
            emit("| %s | %s | %s | %s | %s | %s | %s |" % (
                t, fint(avg(h1)), fint(avg(h2)), fint(avg(last)),
                fint(res["slo"]), pct(res["refused_pct"]),
                fnum(res["p99"], "%.1f")))
            emit_per = " ".join(str(ok.get(s, 0)) for s in range(n))
            shift_per = r.setdefault("per_text", [])
            shift_per.append("%s: %s" % (t, emit_per))
        emit("")
        emit("2xx per second: " + "; ".join(r.get("per_text", [])))
        emit("")

    # Detail.
    emit("## Every cell")
    emit("")
    emit("| backend | client | load | target | offered/s | 2xx/s "
         "| 2xx/s in SLO | refused % | other % | p50 ms | p99 ms "
         "| refusal p50 ms | Retry-After mean s | proxy CPU % "
         "| backend CPU % | spillway limit (median, end) | other load % |")
    emit("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
         "---:|---:|---|---:|")
    notes = []
    lagged = []
    for key in rorder:
        r = rows[key]
        m = r["meta"]
        runs = [(t, c, res) for t in ALL_TARGETS
                for c, res in r.get("reps", {}).get(t, [])]
        for t, c, res in runs:
            tl = t if nrep == 1 else "%s #%s" % (t, c.get("rep") or "1")
            if res is None:
                emit("| %s | %s | %s | %s | %s |  |  |  |  |  |  |  |  |  "
                     "|  |  |  |" % (m["backend"], m["client"], m["label"],
                                     tl, c["status"]))
                notes.append("%s %s %s: %s" % (m["backend"], m["label"], tl,
                                               c["status"]))
                continue
            lim = ""
            if t == "spillway" and (c["limit_med"] or c["limit_end"]):
                lim = "%s, %s" % (c["limit_med"] or "-", c["limit_end"] or "-")
            ol = float(c["other_load"]) if c["other_load"] else None
            lag = res["lag"] is not None and res["lag"] > LAG_MS
            emit("| %s | %s | %s | %s | %s%s | %s | %s | %s | %s | %s | %s "
                 "| %s | %s | %s | %s | %s | %s |" % (
                     m["backend"], m["client"], m["label"], tl,
                     fint(res["offered"]), " LAG" if lag else "",
                     fint(res["goodput"]),
                     fint(res["slo"]), pct(res["refused_pct"]),
                     pct(res["other_pct"]), fnum(res["p50"], "%.2f"),
                     fnum(res["p99"], "%.1f"), fnum(res["ref_p50"], "%.3f"),
                     fnum(res["ra_mean"], "%.1f"), c["proxy_cpu"] or "",
                     c["backend_cpu"] or "", lim,
                     ("%.0f" % ol if ol is not None else "") +
                     (" NOISY" if ol is not None and ol >= 20 else "")))
            if res["lag"] is not None and res["lag"] > LAG_MS:
                lagged.append("%s %s %s %s (%.0f ms)" % (
                    m["backend"], m["client"], m["label"], tl, res["lag"]))
            if res["ra_missing"] and t == "spillway":
                notes.append("%s %s %s: %d refusals without Retry-After" % (
                    m["backend"], m["label"], tl, res["ra_missing"]))
    emit("")
    emit("Columns: offered/s, requests sent per second (closed loop: every "
         "retry counts); 2xx/s, 2xx answers that ended within the run, per "
         "second; in SLO, those answered within %s ms; refused %%, 429 and "
         "503 in %% of requests ended; other %%, any other status (the slot "
         "app's 500, 502, 504), connection errors and timeouts; p50/p99 of "
         "the 2xx answers; refusal p50, the median time to a 429/503; "
         "Retry-After mean, over the refusals that carried one; proxy and "
         "backend CPU, %% of one CPU over the cell; spillway's "
         "concurrency limit, its once-a-second samples; other load, CPU used by "
         "processes outside the benchmark (NOISY: 20%% or more). LAG: the "
         "open-loop generator sent half its requests more than %d ms late "
         "(it was short of CPU or of connections): the cell measures the "
         "machine more than the target." % (meta.get("slo_ms", "500"),
                                            LAG_MS))
    if lagged:
        emit("")
        emit("Cells where loadgen fell behind its schedule (median send "
             "lag): " + ", ".join(lagged) + ".")
    if any(rows[k][t][1] and rows[k][t][1]["approx"] for k in rorder
           for t in ALL_TARGETS if t in rows[k]):
        emit("")
        emit("~: measured with wrk, whose latencies cover every response; "
             "2xx within the SLO is estimated as the responses within it "
             "less the non-2xx ones, and p50/p99 are of all responses.")
    tallies = []
    for key in rorder:
        r = rows[key]
        c, res = r.get("spillway") or (None, None)
        if res and res["tally"]:
            t = {k: v for k, v in res["tally"].items()
                 if not k.startswith("2")}
            if t:
                tallies.append("%s, %s %s: %s" % (
                    r["meta"]["backend"], r["meta"]["client"],
                    r["meta"]["label"],
                    ", ".join("%s %d" % kv for kv in sorted(t.items()))))
    if tallies:
        emit("")
        emit("spillway's non-2xx answers by status and `Spillway-Reason`:")
        emit("")
        for t in tallies:
            emit("- " + t)
    extra = open(os.path.join(work, "notes.txt")).read().strip() \
        if os.path.exists(os.path.join(work, "notes.txt")) else ""
    notes += [n for n in extra.splitlines() if n]
    if notes:
        emit("")
        emit("## Notes")
        emit("")
        for n in notes:
            emit("- " + n)
    text = "\n".join(L) + "\n"
    with open(out_md, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    with open(out_svg, "w") as f:
        f.write(svg(svg_rows, meta))


def avg(xs):
    return sum(xs) / len(xs) if xs else None


def median_of(cells, k):
    v = [float(c[k]) for c in cells if c.get(k)]
    return statistics.median(v) if v else None


def max_of(cells, k):
    v = [float(c[k]) for c in cells if c.get(k)]
    return max(v) if v else None


def svg(rows, meta):
    """Grouped horizontal bars: goodput within the SLO per row, in % of the
    backend's capacity, one bar per target."""
    bar, gap, left, width = 9, 12, 330, 520
    top = 70
    h = top + len(rows) * (3 * bar + gap) + 50
    scale_max = 120.0
    x = lambda p: left + min(p, scale_max) / scale_max * width
    o = []
    o.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'font-family="sans-serif" font-size="11">' % (left + width + 170,
                                                           h))
    o.append('<rect width="100%" height="100%" fill="white"/>')
    o.append('<text x="10" y="20" font-size="14" font-weight="bold">'
             'Goodput within the %s ms SLO, %% of the backend\'s capacity'
             '</text>' % html.escape(meta.get("slo_ms", "500")))
    o.append('<text x="10" y="38">%s; %s s per cell</text>' % (
        html.escape(meta.get("date", "")), html.escape(meta.get("duration",
                                                                 "?"))))
    lx = 10
    for t in TARGETS:
        o.append('<rect x="%d" y="48" width="12" height="10" fill="%s"/>'
                 % (lx, COLOURS[t]))
        o.append('<text x="%d" y="57">%s</text>' % (lx + 16, t))
        lx += 90
    for p in range(0, int(scale_max) + 1, 20):
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (
            x(p), top - 4, x(p), h - 40, "#999" if p == 100 else "#e5e5e5"))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%d%%</text>'
                 % (x(p), h - 26, p))
    y = top
    prev = None
    for m, slo, cap in rows:
        if prev is not None and prev != m["backend"]:
            o.append('<line x1="10" y1="%d" x2="%d" y2="%d" stroke="#bbb" '
                     'stroke-dasharray="3,3"/>' % (y - gap / 2,
                                                   left + width + 160,
                                                   y - gap / 2))
        prev = m["backend"]
        label = "%s · %s · %s" % (m["backend"], {
            "retry": "retry", "honour": "honour RA", "open": "open"}.get(
                m["client"], m["client"]), m["label"])
        o.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (
            left - 6, y + 1.5 * bar + 4, html.escape(label)))
        for i, t in enumerate(TARGETS):
            v = slo.get(t)
            yy = y + i * bar
            if v is None:
                o.append('<text x="%d" y="%d" fill="#999" font-size="9">'
                         'not run</text>' % (left + 2, yy + bar - 1))
                continue
            p = 100.0 * v / cap if cap else 0
            o.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s">'
                     '<title>%s: %.1f/s within SLO (%.0f%% of %.1f/s)</title>'
                     '</rect>' % (left, yy, x(p) - left, bar - 1, COLOURS[t],
                                  t, v, p, cap))
            o.append('<text x="%.1f" y="%d" font-size="9">%s%s</text>' % (
                x(p) + 3, yy + bar - 1, fint(v),
                " (%.0f%%, off the scale)" % p if p > scale_max else ""))
        y += 3 * bar + gap
    o.append("</svg>")
    return "\n".join(o) + "\n"


def limits(port):
    """Print the concurrency limit of each of spillway's once-a-second
    samples (the admin listener's /history), read once at a cell's end.
    A sampler polling during the cell took the CPU from the backend in
    spillway's cells only: a process waking twice a second cost the CPU
    app's rows 6-8% of their goodput and doubled their p99, whether it
    forked curl or slept in one python3 loop."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
    c.request("GET", "/history")
    for sample in json.loads(c.getresponse().read().decode())["samples"]:
        print(sample["limiter"]["limit"])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "knee":
        knee(args[0], args[1], float(args[2]), args[3], args[4])
    elif cmd == "report":
        report(*args)
    elif cmd == "limits":
        limits(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
