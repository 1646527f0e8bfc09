#!/usr/bin/env bash
# Quick cost check of one build, without the full harness: a release beam serving the
# anchors' 1 KiB load (wrk -t2 -c64) through a TLS tunnel, reporting req/s, server and
# client CPU µs per request (utime+stime from /proc), and each process's RSS idle and
# after the load. For A/B runs between builds or client flags (interleave them: the
# machine is shared and runs differ by a few µs).
#
#   cargo build --release -p beam
#   bash bench/cpu.sh [SECONDS] [-- CLIENT_ARGS…]     e.g. bash bench/cpu.sh 8 -- --transport websocket --edge-port 8443
#
# BEAM_BIN picks the binary (default target/release/beam). Needs wrk and nginx.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
secs="${1:-8}"; shift || true; [[ "${1:-}" == -- ]] && shift
[[ -x "$bin" ]] || { echo "build first: cargo build --release -p beam ($bin)" >&2; exit 1; }
. "$here/origin.sh"
start_origin

http=$(port); tun=$(port)
BEAM_BOOTSTRAP_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work "$bin" server --dev --data-dir "$work/data" \
  --http "127.0.0.1:$http" --tunnel "127.0.0.1:$tun" >"$work/server.log" 2>&1 & srv=$!; pids+=($srv)
for _ in $(seq 100); do [[ -s $work/c.toml ]] && break; sleep 0.1; done
BEAM_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work "$bin" http "127.0.0.1:$origin" --subdomain bench \
  --json "$@" >"$work/client.log" 2>&1 & cli=$!; pids+=($cli)
for _ in $(seq 100); do grep -q connected "$work/client.log" 2>/dev/null && break; sleep 0.1; done
grep -q connected "$work/client.log" || { cat "$work/client.log" >&2; exit 1; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
sleep 1
idle="server $(rss $srv) MiB, client $(rss $cli) MiB"
url="http://127.0.0.1:$http/1k"; host="bench.localhost"
wrk -t2 -c64 -d2s -H "Host: $host" "$url" >/dev/null   # warm-up
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
s0=$(ticks $srv); c0=$(ticks $cli)
wrk --latency -t2 -c64 -d"${secs}s" -H "Host: $host" "$url" > "$work/wrk.txt"
s1=$(ticks $srv); c1=$(ticks $cli)
reqs=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
hz=$(getconf CLK_TCK)
us() { awk -v t="$1" -v hz="$hz" -v n="$reqs" 'BEGIN{printf "%.1f", t/hz/n*1e6}'; }
echo "via: $(grep -o '"via":"[^"]*"' "$work/client.log" | head -1)"
echo "req/s: $(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")  p99: $(awk '$1=="99%" {print $2}' "$work/wrk.txt")"
echo "CPU µs/request: server $(us $((s1 - s0))), client $(us $((c1 - c0))), total $(us $((s1 - s0 + c1 - c0)))"
echo "RSS idle: $idle; after load: server $(rss $srv) MiB, client $(rss $cli) MiB"
