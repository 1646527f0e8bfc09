#!/usr/bin/env bash
# Cost of request analytics on the hot path: the same wrk load through a beam tunnel
# with analytics on (default) and off (--no-analytics), alternating rounds in one run.
#
#   bash bench/analytics.sh [ROUNDS] [SECONDS]     (defaults 3 and 8)
#
# Needs wrk and nginx (Debian: wrk nginx-light) and a release build
# (cargo build --release -p beam). Origin: nginx serving a 1 KiB file on loopback.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
rounds="${1:-3}"; secs="${2:-8}"
. "$here/origin.sh"
start_origin

run() { # $1 = on|off
  local http tun flag=""; http=$(port); tun=$(port)
  [ "$1" = off ] && flag="--no-analytics"
  BEAM_BOOTSTRAP_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work "$bin" server --data-dir "$work/d-$1-$http" \
    --http 127.0.0.1:$http --tunnel 127.0.0.1:$tun $flag >/dev/null 2>&1 & local s=$!
  sleep 0.5
  BEAM_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work "$bin" http 127.0.0.1:$origin --subdomain bench \
    --server 127.0.0.1:$tun --insecure --json > "$work/client.out" 2>&1 & local c=$!
  for _ in $(seq 100); do grep -q connected "$work/client.out" 2>/dev/null && break; sleep 0.1; done
  local rps
  rps=$(wrk -t2 -c50 -d"${secs}s" -H "Host: bench.localhost" "http://127.0.0.1:$http/1k" | awk '/Requests\/sec/ {print $2}')
  kill $c $s 2>/dev/null; wait $c $s 2>/dev/null || true
  echo "$rps"
}

echo "round analytics=on analytics=off"
for r in $(seq "$rounds"); do
  on=$(run on); off=$(run off)
  echo "$r $on $off"
done
