#!/usr/bin/env python3
"""Paced latency probe: RATE requests/s for SECONDS over one keep-alive connection,
reporting p50/p99/max latency in ms. Open-loop pacing (requests are scheduled on a
fixed clock, so a slow reply delays the next send and shows up in the numbers
instead of hiding, as a closed-loop tool would).

    python3 bench/paced.py ADDR HOST PATH RATE SECONDS
"""
import http.client
import sys
import time

addr, host, path, rate, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
h, p = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(h, int(p), timeout=10)
lat, errors, first_error = [], 0, None
start = time.perf_counter()
n = int(rate * secs)
for i in range(n):
    due = start + i / rate
    now = time.perf_counter()
    if due > now:
        time.sleep(due - now)
    t0 = due
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            errors += 1
            first_error = first_error or f"HTTP {r.status}"
    except Exception as e:
        errors += 1
        first_error = first_error or repr(e)
        conn = http.client.HTTPConnection(h, int(p), timeout=10)
    # Latency from when the request was due: includes any wait for the previous one.
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
print(f"n={len(lat)} errors={errors} p50={q(0.50):.2f} p99={q(0.99):.2f} max={lat[-1]:.2f}"
      + (f" first_error={first_error}" if first_error else ""))
