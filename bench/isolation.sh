#!/usr/bin/env bash
# Tunnel isolation under flood: tunnel B is probed at a steady 100 req/s (bench/paced.py)
# alone, then while wrk floods tunnel A on the same server. Run twice: with a
# per-tunnel rate limit (--tunnel-rate-limit, the recommended setting) and without.
#
#   bash bench/isolation.sh [SECONDS] [LIMIT]     (defaults 10 and 500 req/s per tunnel)
#
# Needs wrk and nginx (Debian: wrk nginx-light) and a release build
# (cargo build --release -p beam). Origin: nginx serving a 1 KiB file on loopback.
#
# The load generators (wrk and the probe) run on CPU $LOAD_CPU and beam, its clients
# and nginx on CPU $SUT_CPU (taskset), as if the flood came from another machine:
# on a shared 2-core box the flood generator itself would otherwise take the CPU the
# measured tunnel needs, and the numbers would measure the OS scheduler, not beam.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
secs="${1:-10}"; limit="${2:-500}"
SUT_CPU="${SUT_CPU:-0}"; LOAD_CPU="${LOAD_CPU:-1}"
# Plain commands, not functions: `$sut cmd &` keeps cmd's PID in $! (taskset execs),
# so cleanup can kill it.
sut="taskset -c $SUT_CPU"; load="taskset -c $LOAD_CPU"
. "$here/origin.sh"
start_origin "$sut"

run() { # $1 = extra server flags
  local http tun; http=$(port); tun=$(port)
  # shellcheck disable=SC2086
  BEAM_WORKER_THREADS=1 BEAM_BOOTSTRAP_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work $sut "$bin" server --data-dir "$work/d-$http" \
    --http 127.0.0.1:$http --tunnel 127.0.0.1:$tun --no-analytics $1 >/dev/null 2>&1 & local s=$!
  sleep 0.5
  local cs=()
  for name in flooded measured; do
    BEAM_WORKER_THREADS=1 BEAM_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work $sut "$bin" http 127.0.0.1:$origin --subdomain $name \
      --server 127.0.0.1:$tun --insecure --json > "$work/$name.out" 2>&1 & cs+=($!)
    for _ in $(seq 100); do grep -q connected "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  done
  local alone flooded wrk_out
  alone=$($load python3 "$here/paced.py" 127.0.0.1:$http measured.localhost /1k 100 "$secs")
  $load wrk -t1 -c64 -d"$((secs + 2))s" -H "Host: flooded.localhost" "http://127.0.0.1:$http/1k" > "$work/wrk.out" 2>&1 & local w=$!
  sleep 1
  flooded=$($load python3 "$here/paced.py" 127.0.0.1:$http measured.localhost /1k 100 "$secs")
  wait $w || true
  wrk_out=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")
  kill "${cs[@]}" $s 2>/dev/null; wait "${cs[@]}" $s 2>/dev/null || true
  echo "  B alone:         $alone"
  echo "  B during flood:  $flooded"
  echo "  flood on A:      ${wrk_out} req/s (non-2xx: ${non2xx:-0})"
}

echo "with --tunnel-rate-limit $limit:"; run "--tunnel-rate-limit $limit"
echo "without a per-tunnel limit:"; run ""
