#!/usr/bin/env bash
# kill -9 at the worst moments (issue 19): every experiment, seeded, against a
# release build. Each prints one JSON line; the script exits non-zero if any
# promise was broken (an event lost, a log gap not reported, a tunnel request
# failing while the database was away…).
#
#   bash bench/kill.sh [SEED]           (default 19)
#
#   webhooks-sqlite    1,000 events, >= 50 kills of beam webhook / server / app
#   webhooks-postgres  the same on PostgreSQL, restarted once mid-run
#   logs               40 kills of beam agent (with its app) / beam logs --output
#   store-full         SQLite on a 24 MiB tmpfs filled to the last byte
#   store-postgres     PostgreSQL unreachable for 30 s
#
# ONLY=logs (a space-separated list) runs some. Needs a release build, nginx,
# python3, PostgreSQL at $BEAM_BENCH_POSTGRES (default
# postgres://postgres@127.0.0.1:5432) that this script may restart
# (pg_ctlcluster), and root (tmpfs mount).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
seed="${1:-19}"
pg="${BEAM_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
only="${ONLY:-webhooks-sqlite webhooks-postgres logs store-full store-postgres}"
[ -x "$bin" ] || { echo "kill: no beam at $bin (cargo build --release -p beam, or BEAM_BIN=…)" >&2; exit 1; }
failed=0
run() {
  local name="$1"; shift
  case " $only " in *" $name "*) ;; *) return ;; esac
  echo "== $name" >&2
  if ! "$@"; then echo "== $name: BROKEN" >&2; failed=1; fi
}
pg_restart="pg_ctlcluster $(ls /etc/postgresql 2>/dev/null | head -n1) main restart"
wh_db="beam_kill_wh_$$"
run webhooks-sqlite python3 "$here/kill_webhooks.py" "$bin" --events 1000 --kills 50 --seed "$seed"
case " $only " in *" webhooks-postgres "*)
  psql "$pg/postgres" -qc "CREATE DATABASE $wh_db" >/dev/null
  run webhooks-postgres python3 "$here/kill_webhooks.py" "$bin" --events 1000 --kills 50 --seed "$seed" \
    --postgres "$pg/$wh_db" --restart-postgres "$pg_restart"
  psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $wh_db WITH (FORCE)" >/dev/null
esac
run logs python3 "$here/kill_logs.py" "$bin" --kills 40 --seed "$seed"
run store-full python3 "$here/kill_store.py" "$bin" full
run store-postgres python3 "$here/kill_store.py" "$bin" postgres --outage 30 --postgres "$pg"
exit "$failed"
