#!/usr/bin/env bash
# Dashboard pages with 1,000 tunnels and 30 days of analytics in the store:
# starts `beam server --dev` on SQLite or PostgreSQL, seeds the store
# (bench/dashboard.py says what), signs in with the printed one-click link and
# prints p50/p99/max per page, one request at a time.
#
#   bash bench/dashboard.sh sqlite|postgres [REQUESTS_PER_PAGE]   (default 200)
#
# Needs a release build (cargo build --release -p beam), python3, and for
# postgres a server at $BEAM_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres;
# a database beam_bench_dash is created and dropped).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
backend="${1:-sqlite}"; n="${2:-200}"
work=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port); tun=$(port)
admin="${BEAM_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
db=()
if [ "$backend" = postgres ]; then
  psql "$admin" -qc "DROP DATABASE IF EXISTS beam_bench_dash WITH (FORCE)" -c "CREATE DATABASE beam_bench_dash"
  url="${admin%/*}/beam_bench_dash"
  db=(--database "$url")
fi
HOME=$work BEAM_CONFIG=$work/c.toml "$bin" server --dev --data-dir "$work/d" \
  --http 127.0.0.1:$http --tunnel 127.0.0.1:$tun "${db[@]}" > "$work/banner" 2>"$work/log" &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$work"; [ "$backend" = postgres ] && psql "$admin" -qc "DROP DATABASE IF EXISTS beam_bench_dash WITH (FORCE)"; true' EXIT
for _ in $(seq 100); do grep -q '/signin/' "$work/banner" 2>/dev/null && break; sleep 0.1; done
link=$(grep -o '/signin/[A-Za-z0-9_]*' "$work/banner")
echo "== $backend, $(nproc) cores, $(date -u +%F)"
if [ "$backend" = postgres ]; then
  python3 "$here/dashboard.py" --base "http://127.0.0.1:$http" --link "$link" --postgres "$url" --n "$n"
else
  python3 "$here/dashboard.py" --base "http://127.0.0.1:$http" --link "$link" --sqlite "$work/d/beam.db" --n "$n"
fi
