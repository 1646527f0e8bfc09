#!/usr/bin/env python3
"""Seeds a running beam server's store with 1,000 tunnels and 30 days of
analytics, signs in through the --dev one-click link, and measures how long
dashboard pages (and the JSON series behind their charts) take to answer, one
request at a time over a kept-alive connection.

    python3 bench/dashboard.py --base http://127.0.0.1:PORT --link /signin/... \
        (--sqlite PATH | --postgres URL) [--n 200]

Seeded (what 1,000 tunnels busy around the clock leave behind):
  tunnels          1,000 (all "connected", on a node id that is not running)
  request_hours    1,000 x 720 hours  = 720,000 rows
  request_minutes  1,000 x 2,880 min  = 2,880,000 rows (the table keeps 2 days)
  org_hours, org_minutes  the organization's roll-ups of the same
  requests         1,000,000 sampled records over 30 days (20 paths)
Rows are inserted oldest first, as the server writes them.
Prints one line per page: p50, p99 and max in ms.
"""
import argparse
import csv
import http.client
import os
import random
import sqlite3
import statistics
import subprocess
import tempfile
import time
import urllib.parse

TUNNELS = 1000
HOURS = 720
MINUTES = 2880
RECORDS = 1_000_000


def rows(org, now):
    hour = now - now % 3_600_000
    minute = now - now % 60_000
    rnd = random.Random(7)
    tunnels = [
        (i, org, "http", f"bench{i:04d}", "connected", f"http://bench{i:04d}.localhost",
         '{"client":"beam/0.1.0 linux on bench"}', now - 30 * 86_400_000, now - 60_000,
         "bench-node", 1_000_000, 10_000_000, 100_000_000)
        for i in range(1, TUNNELS + 1)
    ]
    # Oldest first, as the server writes them (every flush adds the current
    # minute of every active tunnel), so rows of one period sit together.
    hours = ((t, org, hour - h * 3_600_000, 1000, 3, 10_000, 100_000, 5_000_000)
             for h in reversed(range(HOURS)) for t in range(1, TUNNELS + 1))
    minutes = ((t, org, minute - m * 60_000, 17, 0, 170, 1_700, 85_000)
               for m in reversed(range(MINUTES)) for t in range(1, TUNNELS + 1))
    org_hours = ((org, hour - h * 3_600_000, 1000 * TUNNELS, 3 * TUNNELS, 10_000 * TUNNELS,
                  100_000 * TUNNELS, 5_000_000 * TUNNELS) for h in reversed(range(HOURS)))
    org_minutes = ((org, minute - m * 60_000, 17 * TUNNELS, 0, 170 * TUNNELS, 1_700 * TUNNELS,
                    85_000 * TUNNELS) for m in reversed(range(MINUTES)))
    paths = [f"/api/v1/items/{i}" for i in range(20)]
    stamps = sorted(now - rnd.randint(0, 30 * 86_400_000) for _ in range(RECORDS))
    records = ((rnd.randint(1, TUNNELS), org, ts, "GET", rnd.choice(paths),
                200 if rnd.random() > 0.01 else 502, rnd.randint(200, 50_000), 0, 1000,
                "127.0.0.0/24", "[]") for ts in stamps)
    return tunnels, hours, minutes, org_hours, org_minutes, records


COLS = {
    "tunnels": "id, org_id, kind, name, status, public_url, config, created_at, connected_at, "
               "node_id, requests, bytes_in, bytes_out",
    "request_hours": "tunnel_id, org_id, hour, requests, errors, bytes_in, bytes_out, duration_us",
    "request_minutes": "tunnel_id, org_id, minute, requests, errors, bytes_in, bytes_out, duration_us",
    "org_hours": "org_id, hour, requests, errors, bytes_in, bytes_out, duration_us",
    "org_minutes": "org_id, minute, requests, errors, bytes_in, bytes_out, duration_us",
    "requests": "tunnel_id, org_id, ts, method, path, status, duration_us, bytes_in, bytes_out, "
                "client_net, headers",
}


def seed_sqlite(path):
    db = sqlite3.connect(path, timeout=30)
    org = db.execute(
        "SELECT m.org_id FROM members m JOIN users u ON u.id = m.user_id "
        "WHERE u.email = 'operator@beam.invalid'").fetchone()[0]
    data = rows(org, int(time.time() * 1000))
    for table, it in zip(COLS, data):
        n = len(COLS[table].split(","))
        db.executemany(f"INSERT INTO {table} ({COLS[table]}) VALUES ({','.join('?' * n)})", it)
        db.commit()
    db.execute("ANALYZE")
    db.commit()
    return org


def seed_postgres(url):
    def psql(sql):
        return subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True,
                              text=True).stdout.strip()
    org = int(psql("SELECT m.org_id FROM members m JOIN users u ON u.id = m.user_id "
                   "WHERE u.email = 'operator@beam.invalid'"))
    data = rows(org, int(time.time() * 1000))
    with tempfile.TemporaryDirectory() as d:
        for table, it in zip(COLS, data):
            f = os.path.join(d, table + ".csv")
            with open(f, "w", newline="") as out:
                csv.writer(out).writerows(it)
            psql(f"\\copy {table} ({COLS[table]}) FROM '{f}' WITH (FORMAT csv)")
    psql("SELECT setval(pg_get_serial_sequence('tunnels', 'id'), 2000)")
    psql("ANALYZE")
    return org


def measure(base, link, n):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    host = f"localhost:{u.port}"
    conn.request("GET", link, headers={"Host": host})
    r = conn.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie").split(";")[0]
    assert r.status == 303, r.status
    pages = ["/", "/tunnels", "/tunnels?all=1", "/tunnels/500", "/tunnels/500?period=24h",
             "/tunnels/500?period=7d", "/domains", "/tokens", "/team", "/production", "/account",
             "/api/analytics/series?period=24h&step=5m", "/api/analytics/series?period=7d",
             "/api/analytics/tunnels/500/series?period=1h",
             "/api/analytics/tunnels/500/series?period=7d"]
    print(f"{'page':48} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'bytes':>9}")
    for page in pages:
        times = []
        size = 0
        for i in range(n + 5):
            t = time.perf_counter()
            conn.request("GET", page, headers={"Host": host, "Cookie": cookie})
            r = conn.getresponse()
            body = r.read()
            dt = (time.perf_counter() - t) * 1000
            assert r.status == 200, (page, r.status, body[:200])
            size = len(body)
            if i >= 5:
                times.append(dt)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{page:48} {statistics.median(times):8.1f} {p99:8.1f} {times[-1]:8.1f} {size:9}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--link", required=True)
    ap.add_argument("--sqlite")
    ap.add_argument("--postgres")
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    t = time.time()
    if a.sqlite:
        seed_sqlite(a.sqlite)
    else:
        seed_postgres(a.postgres)
    print(f"seeded in {time.time() - t:.0f} s")
    measure(a.base, a.link, a.n)


if __name__ == "__main__":
    main()
