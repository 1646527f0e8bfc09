#!/usr/bin/env bash
# Where a tunnel's CPU goes per request: a profiling build of beam (release code with
# symbols) serving the anchors' 1 KiB load (wrk -c64) over TLS, with `perf record` on
# the server and on the client, then each one's hottest symbols, its time by category
# (kernel scheduling, TCP, malloc, h2, HPACK, hyper, TLS, beam, …) and the CPU µs per
# request.
#
#   cargo build --profile profiling -p beam
#   bash bench/profile.sh [SECONDS] [OUT_DIR]      (defaults 10 and /tmp/beam-profile)
#
# Needs perf, wrk and nginx. Writes server.data / client.data, their reports
# (server.txt, client.txt: self time by symbol; *.buckets.txt: by category) and
# summary.txt under OUT_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/profiling/beam}"
secs="${1:-10}"; out="${2:-/tmp/beam-profile}"
[[ -x "$bin" ]] || { echo "build first: cargo build --profile profiling -p beam ($bin)" >&2; exit 1; }
mkdir -p "$out"
. "$here/origin.sh"
start_origin

http=$(port); tun=$(port)
BEAM_BOOTSTRAP_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work "$bin" server --dev --data-dir "$work/data" \
  --http "127.0.0.1:$http" --tunnel "127.0.0.1:$tun" >"$work/server.log" 2>&1 & srv=$!; pids+=($srv)
for _ in $(seq 100); do [[ -s $work/c.toml ]] && break; sleep 0.1; done
BEAM_TOKEN=$token BEAM_CONFIG=$work/c.toml HOME=$work "$bin" http "127.0.0.1:$origin" --subdomain bench \
  --json >"$work/client.log" 2>&1 & cli=$!; pids+=($cli)
for _ in $(seq 100); do grep -q connected "$work/client.log" 2>/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$http/1k"; host="bench.localhost"
wrk -t2 -c64 -d2s -H "Host: $host" "$url" >/dev/null   # warm-up
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
t0=$(( $(ticks $srv) + $(ticks $cli) ))
perf record -F 999 -g --call-graph dwarf,16384 -p "$srv" -o "$out/server.data" -- sleep "$secs" >/dev/null 2>&1 & ps=$!
perf record -F 999 -g --call-graph dwarf,16384 -p "$cli" -o "$out/client.data" -- sleep "$secs" >/dev/null 2>&1 & pc=$!
sleep 0.5
wrk -t2 -c64 -d"$((secs - 1))s" -H "Host: $host" "$url" > "$out/wrk.txt"
wait $ps $pc || true
t1=$(( $(ticks $srv) + $(ticks $cli) ))
reqs=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
hz=$(getconf CLK_TCK)
for side in server client; do
  # `head` closes the pipe early: that is not a failure.
  { perf report -i "$out/$side.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -60 > "$out/$side.txt"; } || true
  python3 "$here/perf_buckets.py" "$out/$side.data" > "$out/$side.buckets.txt" || true
done
{
  echo "requests: $reqs ($(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt") req/s)"
  echo "tunnel CPU (server+client, perf attached): $(( t1 - t0 )) ticks at $hz Hz"
  awk -v t="$(( t1 - t0 ))" -v hz="$hz" -v n="$reqs" 'BEGIN{printf "CPU per request: %.1f µs (perf overhead included)\n", t/hz/n*1e6}'
} | tee "$out/summary.txt"
