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
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

origin=$(port)
mkdir -p "$work/www"; head -c 1024 /dev/zero | tr '\0' x > "$work/www/1k"
chmod 755 "$work" "$work/www"; chmod 644 "$work/www/1k"  # nginx workers run unprivileged
cat > "$work/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$origin; root $work/www; } }
NGINX
nginx -c "$work/nginx.conf" & pids+=($!)
token="beam_$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 43)"

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
