#!/usr/bin/env bash
# The cost of the node-to-node hop: two release beam nodes on one PostgreSQL
# database, a tunnel client on node A, and the anchors' 1 KiB load sent to A
# (same node) and to B (forwarded to A) in the same run, interleaved.
#
#   cargo build --release -p beam
#   bash bench/cluster.sh [REPEATS] [SECONDS]
#
# Rows: p50/p99 of one connection at a time (wrk -t1 -c1: the hop's added
# latency), and req/s with p50/p99 at 64 connections (wrk -t2 -c64). Needs wrk,
# nginx and PostgreSQL on 127.0.0.1:5432 (user postgres). BEAM_BIN picks the binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
repeats="${1:-2}"; secs="${2:-8}"
[[ -x "$bin" ]] || { echo "build first: cargo build --release -p beam ($bin)" >&2; exit 1; }
. "$here/origin.sh"
start_origin
db="beam_bench_$$"
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
trap 'cleanup; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
export BEAM_CLUSTER_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
url="postgres://postgres@127.0.0.1:5432/$db"

node() { # NAME EXTRA_ARGS… → starts a node, sets ${NAME}_http
  local name=$1; shift
  local http=$(port) tun=$(port) nodep=$(port)
  BEAM_BOOTSTRAP_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work "$bin" server --database "$url" \
    --data-dir "$work/data" --http "127.0.0.1:$http" --tunnel "127.0.0.1:$tun" \
    --node-addr "127.0.0.1:$nodep" --public-port 0 "$@" >"$work/$name.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do
    curl -fsS -H 'Host: localhost' "http://127.0.0.1:$http/ready" >/dev/null 2>&1 && break; sleep 0.1
  done
  printf -v "${name}_http" '%s' "$http"
}
node a --dev --https "127.0.0.1:$(port)"   # --dev saves server, token and fingerprint for the client
node b
BEAM_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work "$bin" http "127.0.0.1:$origin" --subdomain bench \
  --json >"$work/client.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q connected "$work/client.log" 2>/dev/null && break; sleep 0.1; done
grep -q connected "$work/client.log" || { cat "$work/client.log" >&2; exit 1; }
host="bench.localhost"
for p in "$a_http" "$b_http"; do   # both must serve the tunnel, or the numbers mean nothing
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" "http://127.0.0.1:$p/1k")
  [[ $code == 200 ]] || { echo "port $p answered $code"; tail -n 5 "$work"/*.log; exit 1; }
done
for p in "$a_http" "$b_http"; do
  wrk -t2 -c64 -d2s -H "Host: $host" "http://127.0.0.1:$p/1k" >/dev/null   # warm-up (and B's link to A)
done
run() { # PORT THREADS CONNS → "req/s p50 p99"
  wrk --latency -t"$2" -c"$3" -d"${secs}s" -H "Host: $host" "http://127.0.0.1:$1/1k" > "$work/wrk.txt"
  if grep -q 'Non-2xx' "$work/wrk.txt"; then
    cat "$work/wrk.txt" >&2
    for q in "$a_http" "$b_http"; do
      curl -fsS -H "Authorization: Bearer $token" -H 'Host: localhost' "http://127.0.0.1:$q/metrics" | grep -E '^beam_(errors|requests)_total' >&2
    done
    exit 1
  fi
  awk '/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {print r, p50, p99}' "$work/wrk.txt"
}
printf '| repeat | path | c1 p50 | c1 p99 | c64 req/s | c64 p50 | c64 p99 |\n|---|---|---|---|---|---|---|\n'
for r in $(seq "$repeats"); do
  for path in same forwarded; do
    p=$a_http; [[ $path == forwarded ]] && p=$b_http
    read -r _ l50 l99 < <(run "$p" 1 1)
    read -r rps t50 t99 < <(run "$p" 2 64)
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$r" "$path" "$l50" "$l99" "$rps" "$t50" "$t99"
  done
done
echo
echo "forwarded requests counted by B: $(curl -fsS -H "Authorization: Bearer $token" -H 'Host: localhost' "http://127.0.0.1:$b_http/metrics" | awk '/^beam_forwarded_requests_total/ {s+=$2} END {print s}')"
