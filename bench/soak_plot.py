#!/usr/bin/env python3
"""Plots bench/soak.py's samples.csv as one SVG: resident memory, open
descriptors and live async tasks of the server and both clients against the
reconnect cycle, with the server restarts marked. Also prints the flatness
figures the soak is judged by (each series' drift after warm-up, see
flatness()). Plain SVG, no plotting library.

    python3 bench/soak_plot.py SAMPLES_CSV OUT_SVG [WARMUP_CYCLES]
"""
import csv
import json
import sys

PANELS = [
    ("Resident memory (MiB)", "rss_kib", 1 / 1024),
    ("Open file descriptors", "fds", 1),
    ("Live async tasks", "tasks", 1),
]
PROCS = [("server", "#d9480f"), ("http", "#1971c2"), ("tcp", "#2f9e44")]
W, H, PAD_L, PAD_R, PAD_T, PANEL_H, GAP = 900, 0, 70, 150, 40, 170, 50


def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            r[k] = float(v) if v not in ("", "None") else None
    return rows


def flatness(rows, warmup):
    """For each process and measure after warm-up: min, max, and the drift, the
    mean of the last fifth of the samples against the mean of the first fifth,
    in percent (the soak's target: within 10 %). Samples vary with what the last
    requests were (a 1 MiB body or not), so single samples are not compared.
    The server restarts every 1,000 cycles: its samples within 100 cycles of a
    restart are left out, so each life is compared at the same stage."""
    out = {}
    restarts = [r["cycle"] for a, r in zip(rows, rows[1:]) if r["server_life"] != a["server_life"]]
    for proc, _ in PROCS:
        for _, key, _ in PANELS:
            col = "%s_%s" % (proc, key)
            late = [r for r in rows if r["cycle"] >= warmup and r[col] is not None]
            if proc == "server":
                late = [r for r in late if not any(0 <= r["cycle"] - c < 100 for c in restarts)]
            vals = [r[col] for r in late]
            if len(vals) < 5:
                continue
            k = max(1, len(vals) // 5)
            first, last = sum(vals[:k]) / k, sum(vals[-k:]) / k
            drift = (last - first) / first * 100 if first else 0.0
            out[col] = {"samples": len(vals), "min": min(vals), "max": max(vals),
                        "mean_first_fifth": round(first, 1), "mean_last_fifth": round(last, 1),
                        "drift_pct": round(drift, 1)}
    return out


def svg(rows, title):
    height = PAD_T + len(PANELS) * (PANEL_H + GAP)
    plot_w = W - PAD_L - PAD_R
    xmax = max(r["cycle"] for r in rows) or 1
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, height),
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>' % (PAD_L, title)]
    restarts = [r["cycle"] for a, r in zip(rows, rows[1:]) if r["server_life"] != a["server_life"]]
    for i, (label, key, scale) in enumerate(PANELS):
        top = PAD_T + i * (PANEL_H + GAP) + 10
        vals = [r["%s_%s" % (p, key)] for r in rows for p, _ in PROCS if r["%s_%s" % (p, key)] is not None]
        ymax = max(vals) * scale * 1.15 if vals else 1
        ymax = ymax or 1
        X = lambda c: PAD_L + c / xmax * plot_w
        Y = lambda v: top + PANEL_H - v * scale / ymax * PANEL_H
        parts.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (PAD_L, top - 6, label))
        parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (PAD_L, top, plot_w, PANEL_H))
        for t in range(5):
            v = ymax * t / 4
            y = top + PANEL_H - PANEL_H * t / 4
            parts.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (PAD_L - 6, y + 4, ("%.0f" % v) if ymax >= 10 else ("%.1f" % v)))
            parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' % (PAD_L, PAD_L + plot_w, y, y))
        for c in restarts:
            parts.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#bbb" stroke-dasharray="3,3"/>' % (X(c), X(c), top, top + PANEL_H))
        for j, (proc, color) in enumerate(PROCS):
            pts = [(X(r["cycle"]), Y(r["%s_%s" % (proc, key)])) for r in rows if r["%s_%s" % (proc, key)] is not None]
            if pts:
                parts.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (color, " ".join("%.1f,%.1f" % p for p in pts)))
            parts.append('<text x="%d" y="%d" fill="%s">%s</text>' % (PAD_L + plot_w + 10, top + 16 + 16 * j, color,
                                                                     {"server": "beam server", "http": "beam http", "tcp": "beam tcp"}[proc]))
        for t in range(6):
            c = xmax * t / 5
            parts.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (X(c), top + PANEL_H + 15, c))
    parts.append('<text x="%d" y="%d">reconnect cycle (dashed: server restarts)</text>' % (PAD_L + plot_w / 2 - 110, height - 8))
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    rows = load(sys.argv[1])
    warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    with open(sys.argv[2], "w") as f:
        f.write(svg(rows, "beam soak: %d reconnect cycles, %d requests" % (rows[-1]["cycle"], rows[-1]["requests"])))
    print(json.dumps(flatness(rows, warmup), indent=1))


if __name__ == "__main__":
    main()
