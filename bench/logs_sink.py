#!/usr/bin/env python3
"""Reads `beam logs --json` from stdin until DONES generators said `done` (default 1);
prints lines received, drop markers, throughput and per-line latency (send → print).

    beam logs --json ... | python3 bench/logs_sink.py [DONES]
"""
import json
import sys
import time

need = int(sys.argv[1]) if len(sys.argv) > 1 else 1
lat, dropped, first, last = [], 0, None, None
for raw in sys.stdin:
    now = time.time_ns()
    obj = json.loads(raw)
    if "dropped" in obj:
        dropped += obj["dropped"]
        continue
    if obj.get("message") == "done":
        need -= 1
        if need == 0:
            break
        continue
    t = obj.get("context", {}).get("t")
    if t is None:
        continue
    first = first or now
    last = now
    lat.append((now - t) / 1e6)
lat.sort()
n = len(lat)
q = lambda f: lat[min(n - 1, int(f * n))] if n else float("nan")
span = (last - first) / 1e9 if n > 1 else float("nan")
print(f"lines={n} dropped={dropped} rate={n / span:,.0f}/s p50={q(0.5):.2f}ms p99={q(0.99):.2f}ms max={lat[-1] if n else 0:.2f}ms")
