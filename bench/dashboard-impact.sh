#!/usr/bin/env bash
# Does serving the dashboard change the tunnel's speed? The same wrk load
# through a beam tunnel, alternating rounds without and with a person
# watching the dashboard: the live tunnel list (SSE) open, and the overview,
# the tunnel's page and its chart series fetched every second.
#
#   bash bench/dashboard-impact.sh [ROUNDS] [SECONDS]     (defaults 3 and 8)
#
# Needs wrk and nginx (Debian: wrk nginx-light), python3 and a release build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
rounds="${1:-3}"; secs="${2:-8}"
. "$here/origin.sh"
start_origin
http=$(port); tun=$(port)
HOME=$work BEAM_CONFIG=$work/c.toml "$bin" server --dev --data-dir "$work/d" \
  --http 127.0.0.1:$http --tunnel 127.0.0.1:$tun > "$work/banner" 2>"$work/log" & pids+=($!)
for _ in $(seq 100); do grep -q '/signin/' "$work/banner" 2>/dev/null && break; sleep 0.1; done
link=$(grep -o '/signin/[A-Za-z0-9_]*' "$work/banner")
HOME=$work BEAM_CONFIG=$work/c.toml "$bin" http 127.0.0.1:$origin --subdomain bench --json > "$work/client.out" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q connected "$work/client.out" 2>/dev/null && break; sleep 0.1; done

# The one-click link works once: sign in once, every round reuses the cookie.
cookie=$(python3 - "$http" "$link" <<'PY'
import http.client, sys
port, link = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port)
c.request("GET", link, headers={"Host": f"localhost:{port}"}); r = c.getresponse(); r.read()
print(r.getheader("Set-Cookie").split(";")[0])
PY
)

viewer() { # a person with the dashboard open, until killed; counts pages in $work/viewed
  exec python3 - "$http" "$cookie" "$work/viewed" <<'PY'
import http.client, sys, threading, time
port, out = int(sys.argv[1]), sys.argv[3]
h = {"Host": f"localhost:{port}", "Cookie": sys.argv[2]}
def live():
    s = http.client.HTTPConnection("127.0.0.1", port)
    s.request("GET", "/events/tunnels", headers=h)
    r = s.getresponse()
    while r.read1(65536):
        pass
threading.Thread(target=live, daemon=True).start()
viewed = 0
while True:
    # A connection per round of pages, as a browser tab that sat idle a second.
    c = http.client.HTTPConnection("127.0.0.1", port)
    for p in ["/", "/tunnels/1", "/api/analytics/tunnels/1/series?period=1h",
              "/api/analytics/series?period=24h&step=5m"]:
        c.request("GET", p, headers=h); r = c.getresponse(); r.read()
        assert r.status == 200, (p, r.status)
        viewed += 1
    c.close()
    open(out, "w").write(str(viewed))
    time.sleep(1)
PY
}

load() {
  wrk -t2 -c50 -d"${secs}s" -H "Host: bench.localhost" "http://127.0.0.1:$http/1k" | awk '/Requests\/sec/ {print $2}'
}

echo "round without-dashboard with-dashboard (req/s)"
for r in $(seq "$rounds"); do
  a=$(load)
  viewer & v=$!
  sleep 1
  b=$(load)
  kill $v 2>/dev/null; wait $v 2>/dev/null || true
  echo "$r $a $b (pages and chart reads during the round: $(cat "$work/viewed" 2>/dev/null || echo 0))"
  rm -f "$work/viewed"
done
