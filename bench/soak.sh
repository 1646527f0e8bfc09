#!/usr/bin/env bash
# The soak (issue 19): one release `beam server` with `beam http` (HTTP and
# WebSockets) and `beam tcp` through CYCLES reconnect cycles — tunnel
# connections cut from the client's side and the server's side in turn, the
# server restarted every 1,000 — and REQUESTS requests of mixed sizes, one
# WebSocket conversation and one TCP stream per cycle. Samples resident memory,
# open descriptors and live async tasks of all three processes every 50 cycles
# and plots them.
#
#   bash bench/soak.sh [CYCLES] [REQUESTS]        (defaults 10000 and 1000000)
#
# Writes bench/results/soak/{samples.csv,summary.json,flatness.json} and
# bench/results/soak.svg; exits non-zero if any request, WebSocket or TCP stream
# failed once the clients said they were connected. Needs a release build
# (cargo build --release -p beam), nginx, python3 and ss (iproute2); root, for
# `ss -K`. About 30 minutes for the defaults on 2 cores.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
cycles="${1:-10000}"; requests="${2:-1000000}"
out="${SOAK_OUT:-$here/results/soak}"
for tool in nginx ss python3; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is missing (apt-get install nginx-light iproute2 python3)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "soak: no beam at $bin (cargo build --release -p beam, or BEAM_BIN=…)" >&2; exit 1; }
mkdir -p "$out"
status=0
python3 "$here/soak.py" "$bin" "$out" --cycles "$cycles" --requests "$requests" || status=$?
python3 "$here/soak_plot.py" "$out/samples.csv" "${SOAK_SVG:-$here/results/soak.svg}" \
  "$((cycles / 10))" > "$out/flatness.json"
cat "$out/flatness.json"
exit "$status"
