#!/usr/bin/env python3
"""Log generator for bench/logs.sh: waits until GO_FILE exists, then prints RATE JSON
lines per second for SECONDS (in 1 ms batches), each carrying its send time in ns,
then prints a final `done` line and exits.

    python3 bench/logs_gen.py GO_FILE RATE SECONDS
"""
import os
import sys
import time

go, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
while not os.path.exists(go):
    time.sleep(0.01)
out = sys.stdout
per_ms = rate / 1000.0
start = time.perf_counter()
sent = 0
total = int(rate * secs)
while sent < total:
    due = int((time.perf_counter() - start) * 1000 * per_ms) + 1
    n = min(due - sent, total - sent)
    if n <= 0:
        time.sleep(0.0005)
        continue
    now = time.time_ns()
    out.write("".join('{"level":30,"msg":"order %d","t":%d}\n' % (sent + i, now) for i in range(n)))
    out.flush()
    sent += n
out.write('{"level":30,"msg":"done"}\n')
out.flush()
