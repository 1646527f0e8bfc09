#!/usr/bin/env bash
# Log throughput: an app printing RATE JSON lines/s to stdout under `beam agent`, read
# by one `beam logs --json` on loopback, through a release server on SQLite. Reports
# lines received, drop markers, throughput and the p99 latency per line (app write →
# `beam logs` output).
#
#   bash bench/logs.sh [RATE] [SECONDS] [REPLICAS]   (defaults 100000, 10 and 1)
#
# With REPLICAS > 1, that many agents (`--instance r1`…) share the rate, and the one
# reader gets their lines merged by the server.
#
# Needs a release build (cargo build --release -p beam) and python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
rate="${1:-100000}"; secs="${2:-10}"; replicas="${3:-1}"
. "$here/origin.sh"
http=$(port); tun=$(port)
export BEAM_CONFIG=$work/c.toml HOME=$work
BEAM_BOOTSTRAP_TOKEN=$token "$bin" server --data-dir "$work/d" --http 127.0.0.1:$http \
  --tunnel 127.0.0.1:$tun --no-analytics >"$work/server.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$tun) 2>/dev/null && break; sleep 0.05; done
conn=(--server 127.0.0.1:$tun --insecure)
BEAM_TOKEN=$token "$bin" projects create bench/prod "${conn[@]}" 2>/dev/null
agent_token=$(BEAM_TOKEN=$token "$bin" projects token bench/prod "${conn[@]}" 2>/dev/null)
for r in $(seq "$replicas"); do
  BEAM_TOKEN=$agent_token "$bin" agent --project bench/prod --instance "r$r" "${conn[@]}" -- \
    python3 "$here/logs_gen.py" "$work/go" "$((rate / replicas))" "$secs" >/dev/null 2>"$work/agent$r.err" & pids+=($!)
done
for r in $(seq "$replicas"); do
  for _ in $(seq 100); do grep -q connected "$work/agent$r.err" 2>/dev/null && break; sleep 0.1; done
done
# Through a FIFO, so the reader (which follows forever) is a job cleanup can stop.
mkfifo "$work/lines"
python3 "$here/logs_sink.py" "$replicas" < "$work/lines" > "$work/result" & sink=$!
BEAM_TOKEN=$token "$bin" logs --project bench/prod --json --tail 0 "${conn[@]}" \
  >"$work/lines" 2>"$work/logs.err" & pids+=($!)
sleep 1
touch "$work/go"
wait $sink || true
echo "rate asked: $rate lines/s for $secs s from $replicas agent(s)"
cat "$work/result"
