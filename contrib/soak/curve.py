#!/usr/bin/env python3
"""curve.py SAMPLES.CSV OUT.SVG [TITLE]: the soak's curve, one picture.

Reads soak.sh's samples (second, rss_kb, fds, cpu_ticks, reloads) and
draws two panels over time: spillway's resident memory (MiB) and its open
descriptors, with a tick on the time axis at each reload. Standard
library only; the SVG stands alone."""

import csv
import sys

W, PANEL_H, LEFT, RIGHT, TOP, GAP = 720, 150, 60, 20, 30, 40


def read(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            try:
                rows.append((int(r["second"]), int(r["rss_kb"]),
                             int(r["fds"]), int(r["reloads"])))
            except (KeyError, ValueError):
                continue
    if len(rows) < 2:
        sys.exit("curve.py: %s: fewer than two samples" % path)
    return rows


def panel(out, y0, label, pts, tmax, reload_at):
    vmax = max(v for _, v in pts) * 1.1 or 1
    x = lambda t: LEFT + (W - LEFT - RIGHT) * t / tmax
    y = lambda v: y0 + PANEL_H - PANEL_H * v / vmax
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" '
               'stroke="#999"/>' % (LEFT, y0, W - LEFT - RIGHT, PANEL_H))
    for frac in (0, 0.5, 1):
        v = vmax * frac
        out.append('<text x="%d" y="%.1f" font-size="11" '
                   'text-anchor="end">%s</text>' % (
                       LEFT - 6, y(v) + 4,
                       ("%.1f" % v) if vmax < 100 else "%d" % v))
    out.append('<text x="%d" y="%d" font-size="12">%s</text>' % (
        LEFT, y0 - 6, label))
    for t in reload_at:
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" '
                   'stroke="#ddd"/>' % (x(t), y0 + PANEL_H - 6, x(t),
                                        y0 + PANEL_H))
    out.append('<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" '
               'points="%s"/>' % " ".join("%.1f,%.1f" % (x(t), y(v))
                                          for t, v in pts))


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: curve.py SAMPLES.CSV OUT.SVG [TITLE]")
    rows = read(sys.argv[1])
    title = sys.argv[3] if len(sys.argv) > 3 else "spillway soak"
    tmax = max(r[0] for r in rows) or 1
    reload_at = [rows[i][0] for i in range(1, len(rows))
                 if rows[i][3] > rows[i - 1][3]]
    h = TOP + 2 * PANEL_H + GAP + 40
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif">' % (W, h),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="18" font-size="14">%s</text>' % (
               LEFT, title.replace("&", "&amp;").replace("<", "&lt;"))]
    panel(out, TOP + 10, "resident memory (MiB)",
          [(r[0], r[1] / 1024) for r in rows], tmax, reload_at)
    y1 = TOP + 10 + PANEL_H + GAP
    panel(out, y1, "open descriptors (grey ticks: reloads)",
          [(r[0], r[2]) for r in rows], tmax, reload_at)
    for frac in (0, 0.25, 0.5, 0.75, 1):
        t = tmax * frac
        out.append('<text x="%.1f" y="%d" font-size="11" '
                   'text-anchor="middle">%ds</text>' % (
                       LEFT + (W - LEFT - RIGHT) * frac, y1 + PANEL_H + 16,
                       t))
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
