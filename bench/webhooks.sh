#!/usr/bin/env bash
# Webhook deliveries per second. A release server (SQLite, or PostgreSQL with
# `postgres`) receives N distinct Stripe events on its public receiver, each
# verified with the production secret and stored durably; then `beam webhook`
# delivers the backlog to a local nginx endpoint answering 200, re-signing each
# event and acknowledging it after the 2xx. Reports receipts/s and deliveries/s
# (until nginx has logged all N and the server has every acknowledgement).
#
#   bash bench/webhooks.sh [N] [sqlite|postgres]     (defaults 5000 sqlite)
#
# Needs a release build (cargo build --release -p beam), nginx and python3;
# PostgreSQL at $BEAM_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
n="${1:-5000}"; backend="${2:-sqlite}"
. "$here/origin.sh"
http=$(port); tun=$(port); sink=$(port)
export BEAM_CONFIG=$work/c.toml HOME=$work
chmod 755 "$work"
cat > "$work/sink.conf" <<NGINX
worker_processes 1; daemon off; pid $work/sink.pid; error_log $work/sink.err;
events { worker_connections 1024; }
http { access_log $work/access.log; server { listen 127.0.0.1:$sink; location / { return 200 "ok\n"; } } }
NGINX
nginx -c "$work/sink.conf" & pids+=($!)
db_args=()
if [ "$backend" = postgres ]; then
  pg="${BEAM_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
  db="beam_bench_$$"
  psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
  trap 'cleanup; psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
  db_args=(--database "$pg/$db")
fi
cat > "$work/sources.toml" <<TOML
[[source]]
org = 1
project = "bench"
environment = "prod"
provider = "stripe"
secret_env = "BENCH_STRIPE_SECRET"
TOML
export BENCH_STRIPE_SECRET="whsec_bench_production"
BEAM_BOOTSTRAP_TOKEN=$token "$bin" server --data-dir "$work/d" --http 127.0.0.1:$http \
  --tunnel 127.0.0.1:$tun --no-analytics --webhook-sources "$work/sources.toml" \
  "${db_args[@]}" >"$work/server.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$tun) 2>/dev/null && break; sleep 0.05; done
conn=(--server 127.0.0.1:$tun --insecure)
BEAM_TOKEN=$token "$bin" projects create bench/prod "${conn[@]}" 2>/dev/null
fwd=(webhook --project bench/prod --forward "http://127.0.0.1:$sink/webhooks" --json "${conn[@]}")

# Subscribe, then go offline: the events arrive while the developer is away.
BEAM_TOKEN=$token "$bin" "${fwd[@]}" >/dev/null 2>"$work/sub.err" & sub=$!
for _ in $(seq 100); do grep -q ready "$work/sub.err" 2>/dev/null && break; sleep 0.05; done
kill $sub; wait $sub 2>/dev/null || true

WEBHOOK_SECRET=$BENCH_STRIPE_SECRET python3 "$here/webhook_send.py" "127.0.0.1:$http" \
  /hooks/1/bench/prod/stripe "$n"

: > "$work/access.log"
start=$(date +%s.%N)
BEAM_TOKEN=$token "$bin" "${fwd[@]}" >"$work/deliveries.jsonl" 2>"$work/fwd.err" & pids+=($!)
while [ "$(wc -l < "$work/deliveries.jsonl")" -lt "$n" ]; do sleep 0.02; done
delivered=$(date +%s.%N)
# Acknowledgements are sent in order, so the newest event's is the last one.
newest_acked() {
  BEAM_TOKEN=$token "$bin" webhook list --project bench/prod --limit 1 --json "${conn[@]}" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(1 if r and r[0]["delivered_status"] else 0)'
}
until [ "$(newest_acked)" = 1 ]; do sleep 0.05; done
acked=$(date +%s.%N)
pending=$(BEAM_TOKEN=$token "$bin" webhook list --project bench/prod --limit 200 --json "${conn[@]}" \
  | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["delivered_status"] is None))')
ok=$(grep -c '"status":200' "$work/deliveries.jsonl" || true)
python3 - "$start" "$delivered" "$acked" "$n" "$ok" "$(wc -l < "$work/access.log")" "$pending" "$backend" <<'PY'
import sys
s, d, a, n, ok, hits, pending, backend = sys.argv[1:]
s, d, a, n = float(s), float(d), float(a), int(n)
print("%s: %d events delivered (%s answered 200, nginx saw %s) in %.2f s = %.0f deliveries/s; "
      "all acknowledged on the server after %.2f s = %.0f acknowledged/s; unacknowledged among the newest 200: %s"
      % (backend, n, ok, hits, d - s, n / (d - s), a - s, n / (a - s), pending))
PY
