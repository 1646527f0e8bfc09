#!/usr/bin/env bash
# Sanitized rows from PostgreSQL or MariaDB to a local NDJSON file: a typical
# 10-column users table of N rows (default 1,000,000) in a throwaway database,
# a release server and agent (policy: 4 fakes, 1 hash, 1 mask, 1 drop, 3 kept),
# and `beam sync --output`. Reports rows/s and the peak RSS of the agent and
# the CLI.
#
#   bash bench/sync.sh [N] [postgres|mysql]
#
# Needs a release build, python3, and PostgreSQL at $BEAM_BENCH_POSTGRES
# (default postgres://postgres@127.0.0.1:5432) or MariaDB at
# $BEAM_BENCH_MYSQL (default mysql://root@127.0.0.1:3306; the `mariadb`
# client and MariaDB's sequence engine make the rows).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
n="${1:-1000000}"
backend="${2:-postgres}"
. "$here/origin.sh"
db="beam_sync_bench_$$"
if [ "$backend" = mysql ]; then
  my="${BEAM_BENCH_MYSQL:-mysql://root@127.0.0.1:3306}"
  my_user="$(echo "$my" | sed -E 's|^[a-z]+://([^:@]*).*|\1|')"
  sql() { mariadb -h 127.0.0.1 -u "$my_user" "$@"; }
  sql -e "CREATE DATABASE $db"
  trap 'cleanup; sql -e "DROP DATABASE IF EXISTS $db"' EXIT
  sql "$db" <<SQL
CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255), name VARCHAR(255), phone VARCHAR(32),
  password_hash VARCHAR(64), plan VARCHAR(8), \`stripeCustomerId\` VARCHAR(64), ssn CHAR(9),
  created_at DATETIME, \`emailVerified\` BOOLEAN) ENGINE=InnoDB;
INSERT INTO users SELECT seq, CONCAT('user', seq, '@example.com'), CONCAT('Name ', seq),
  CONCAT('+1 212 555 ', seq % 10000), CONCAT('argon2id\$', MD5(seq)), IF(seq % 3 = 0, 'pro', 'free'),
  CONCAT('cus_', MD5(seq)), LPAD(seq % 1000000000, 9, '0'), NOW() - INTERVAL seq SECOND, seq % 2 = 0
  FROM seq_1_to_$n;
SQL
  prod_url="$my/$db"
else
  pg="${BEAM_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
  psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
  trap 'cleanup; psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
  psql "$pg/$db" -q <<SQL
CREATE TABLE users (id bigint PRIMARY KEY, email text, name text, phone text, password_hash text,
  plan text, "stripeCustomerId" text, ssn text, created_at timestamptz, "emailVerified" boolean);
INSERT INTO users SELECT i, 'user' || i || '@example.com', 'Name ' || i, '+1 212 555 ' || (i % 10000),
  'argon2id\$' || md5(i::text), CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END, 'cus_' || md5(i::text),
  lpad((i % 1000000000)::text, 9, '0'), now() - (i || ' seconds')::interval, i % 2 = 0
  FROM generate_series(1, $n) AS i;
SQL
  prod_url="$pg/$db"
fi
cat > "$work/policy.toml" <<'TOML'
[tables.users]
columns = { id = "keep", email = "fake:email", name = "fake:name", phone = "fake:phone", password_hash = "drop", plan = "keep", "stripeCustomerId" = "hash", ssn = "mask", created_at = "keep", "emailVerified" = "keep" }
TOML
http=$(port); tun=$(port)
export BEAM_CONFIG=$work/c.toml HOME=$work
BEAM_BOOTSTRAP_TOKEN=$token "$bin" server --data-dir "$work/d" --http 127.0.0.1:$http \
  --tunnel 127.0.0.1:$tun --no-analytics >"$work/server.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$tun) 2>/dev/null && break; sleep 0.05; done
conn=(--server 127.0.0.1:$tun --insecure)
BEAM_TOKEN=$token "$bin" projects create bench/prod "${conn[@]}" 2>/dev/null
agent_token=$(BEAM_TOKEN=$token "$bin" projects token bench/prod "${conn[@]}" 2>/dev/null)
PROD_DB="$prod_url" BEAM_SYNC_KEY=bench-pseudonym-key-0123456789 BEAM_TOKEN=$agent_token \
  "$bin" agent --project bench/prod --listen 127.0.0.1:0 --database-env PROD_DB \
  --sync-policy "$work/policy.toml" "${conn[@]}" 2>"$work/agent.err" & agent=$!; pids+=($agent)
for _ in $(seq 100); do grep -q connected "$work/agent.err" 2>/dev/null && break; sleep 0.1; done
/usr/bin/time -f "cli_peak_rss_kb=%M" env BEAM_TOKEN=$token "$bin" sync --project bench/prod \
  --table users --output "$work/users.ndjson" "${conn[@]}" 2>"$work/sync.err"
grep "beam sync:" "$work/sync.err"
grep cli_peak_rss_kb "$work/sync.err"
echo "agent_peak_rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$agent/status)"
echo "rows_in_file=$(wc -l < "$work/users.ndjson") bytes=$(stat -c %s "$work/users.ndjson")"
head -c 400 "$work/users.ndjson"; echo
