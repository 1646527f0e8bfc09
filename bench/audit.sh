#!/usr/bin/env bash
# Does writing the audit log slow the paths it records? wrk against an
# audited API call (a flags read of an environment with no agent: auth, the
# environment lookup, the audit entry, a 503), on SQLite and PostgreSQL.
# Run it with two builds (BEAM_BIN=…) to compare with a build before the audit
# log; with an audit log, it also checks that every answered request has its
# entry (nothing lost, nothing extra) and prints the writer's batch sizes.
#
#   bash bench/audit.sh sqlite|postgres [SECONDS] [CONNECTIONS]   (defaults 10 and 16)
#
# Needs wrk (Debian: wrk), python3, and for postgres a server at
# $BEAM_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres;
# a database beam_bench_audit is created and dropped).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
backend="${1:-sqlite}"; secs="${2:-10}"; conns="${3:-16}"
. "$here/origin.sh"
admin="${BEAM_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
db=(); url=""
if [ "$backend" = postgres ]; then
  psql "$admin" -qc "DROP DATABASE IF EXISTS beam_bench_audit WITH (FORCE)" -c "CREATE DATABASE beam_bench_audit"
  url="${admin%/*}/beam_bench_audit"
  db=(--database "$url")
  trap 'cleanup; psql "$admin" -qc "DROP DATABASE IF EXISTS beam_bench_audit WITH (FORCE)"' EXIT
fi
http=$(port); tun=$(port)
HOME=$work BEAM_CONFIG=$work/c.toml "$bin" server --dev --data-dir "$work/d" \
  --http 127.0.0.1:$http --tunnel 127.0.0.1:$tun "${db[@]}" > "$work/banner" 2>"$work/log" & pids+=($!)
for _ in $(seq 100); do grep -q '/signin/' "$work/banner" 2>/dev/null && break; sleep 0.1; done
link=$(grep -o '/signin/[A-Za-z0-9_]*' "$work/banner")
cookie=$(python3 - "$http" "$link" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("GET", sys.argv[2], headers={"Host": f"localhost:{sys.argv[1]}"})
r = c.getresponse(); r.read()
print(r.getheader("Set-Cookie").split(";")[0])
PY
)
path=/api/projects/shop/production/flags
HOME=$work BEAM_CONFIG=$work/c.toml "$bin" projects create shop/production \
  >/dev/null 2>"$work/create.err" || cat "$work/create.err"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: localhost:$http" -H "Cookie: $cookie" "http://127.0.0.1:$http$path")
echo "== $backend, $(nproc) cores, $(date -u +%F), $($bin --version), GET $path → $code, wrk -c$conns -d${secs}s"
wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Host: localhost:$http" -H "Cookie: $cookie" \
  "http://127.0.0.1:$http$path" | tee "$work/wrk" | grep -E 'Requests/sec|50%|99%|requests in'
served=$(awk '/requests in/ {print $1}' "$work/wrk")
sleep 1  # the writer flushes every 200 ms
count() {
  if [ "$backend" = postgres ]; then psql "$url" -tAc "$1"; else python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" "$work/d/beam.db" "$1"; fi
}
if [ "$(count "SELECT count(*) FROM sqlite_master WHERE name='audit_log'" 2>/dev/null || echo 0)" = 1 ] \
  || { [ "$backend" = postgres ] && [ "$(count "SELECT count(*) FROM pg_tables WHERE tablename='audit_log'")" = 1 ]; }; then
  entries=$(count "SELECT count(*) FROM audit_log WHERE kind = 'flags.read'")
  echo "requests answered: $served; flags.read audit entries: $entries"
else
  echo "requests answered: $served; this build has no audit log"
fi
