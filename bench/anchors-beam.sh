#!/usr/bin/env bash
# beam's tunnel benchmark: bench/anchors.sh (the harness, copied from the reference in
# ../shared/bench so a fresh clone has everything) with these columns:
#   direct      no tunnel, the baseline every ratio divides by
#   nginx2      two nginx reverse proxies in series (bench/nginx2.sh): what two L7 hops cost
#   bore, rathole  the peers, installed by `install`
#   beam        tunnel connection over TLS (the default; certificate pinned from the config
#               file that `beam server --dev` writes)
#   beam-plain  the same over plaintext (`--insecure`, allowed on loopback)
#   beam-ws     the tunnel connection inside a WebSocket on the server's HTTPS port
#               (`--transport websocket`): what the carrier for locked-down networks costs
#   beam-noinspect  `beam` with `--no-inspect`: no request capture, the cost of the
#               inspector (on by default in every other beam column) is beam / beam-noinspect
#   beam-before (only with BEAM_BEFORE_BIN=path): another beam binary over TLS, for a
#               before/after comparison in the same run (e.g. a build of an older commit)
# Usage:
#   bash bench/anchors-beam.sh install   # wrk, iperf3, nginx, hyperfine (apt), bore and rathole
#   cargo build --release -p beam
#   bash bench/anchors-beam.sh           # TOOLS, REPEATS, WRK_DURATION, … pass through
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
harness="${ANCHORS_SH:-$here/anchors.sh}"
if [[ "${1:-run}" == install ]]; then
  sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if_needed env SKIP_APT="${SKIP_APT:-0}" ANCHORS_ROOT="${ANCHORS_ROOT:-/tmp/anchors}" \
    PATH="$PATH" bash "$harness" install
  exit
fi
bin="${BEAM_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/beam}"
[[ -x "$bin" ]] || { echo "build beam first: cargo build --release -p beam ($bin)" >&2; exit 1; }

server='env BEAM_BOOTSTRAP_TOKEN=$BENCH_TOKEN BEAM_CONFIG=$BENCH_WORKDIR/config.toml $BEAM_BIN server --dev --data-dir $BENCH_WORKDIR/data --http 127.0.0.1:$BENCH_HTTP_PUBLIC_PORT --tunnel 127.0.0.1:$BENCH_CTRL_PORT --tcp-ports $BENCH_IPERF_PUBLIC_PORT-$BENCH_IPERF_PUBLIC_PORT'
client='env BEAM_TOKEN=$BENCH_TOKEN BEAM_CONFIG=$BENCH_WORKDIR/config.toml $BEAM_BIN http 127.0.0.1:$BENCH_ORIGIN_PORT --subdomain bench'
client2='env BEAM_TOKEN=$BENCH_TOKEN BEAM_CONFIG=$BENCH_WORKDIR/config.toml $BEAM_BIN tcp 127.0.0.1:$BENCH_IPERF_ORIGIN_PORT --remote-port $BENCH_IPERF_PUBLIC_PORT'

export BEAM_BIN="$bin" BEAM_PLAIN_BIN="$bin"
export BEAM_SERVER_CMD="$server" BEAM_PLAIN_SERVER_CMD="${server//\$BEAM_BIN/\$BEAM_PLAIN_BIN}"
export BEAM_CLIENT_CMD="$client" BEAM_PLAIN_CLIENT_CMD="${client//\$BEAM_BIN/\$BEAM_PLAIN_BIN} --insecure"
export BEAM_CLIENT2_CMD="$client2" BEAM_PLAIN_CLIENT2_CMD="${client2//\$BEAM_BIN/\$BEAM_PLAIN_BIN} --insecure"
export BEAM_HOST_HEADER=bench.localhost BEAM_PLAIN_HOST_HEADER=bench.localhost
export BEAM_IPERF=1 BEAM_PLAIN_IPERF=1
# The dev server's HTTPS edge is 127.0.0.1:8443 (columns run one at a time).
export BEAM_WS_BIN="$bin" BEAM_WS_SERVER_CMD="${server//\$BEAM_BIN/\$BEAM_WS_BIN}"
export BEAM_WS_CLIENT_CMD="${client//\$BEAM_BIN/\$BEAM_WS_BIN} --transport websocket --edge-port 8443"
export BEAM_WS_CLIENT2_CMD="${client2//\$BEAM_BIN/\$BEAM_WS_BIN} --transport websocket --edge-port 8443"
export BEAM_WS_HOST_HEADER=bench.localhost BEAM_WS_IPERF=1
# The inspector off (every other beam column runs with it on, the default).
export BEAM_NOINSPECT_BIN="$bin" BEAM_NOINSPECT_SERVER_CMD="${server//\$BEAM_BIN/\$BEAM_NOINSPECT_BIN}"
export BEAM_NOINSPECT_CLIENT_CMD="${client//\$BEAM_BIN/\$BEAM_NOINSPECT_BIN} --no-inspect"
export BEAM_NOINSPECT_CLIENT2_CMD="${client2//\$BEAM_BIN/\$BEAM_NOINSPECT_BIN}"
export BEAM_NOINSPECT_HOST_HEADER=bench.localhost BEAM_NOINSPECT_IPERF=1
# Two nginx hops; HTTP only (no iperf3 forward).
export NGINX2_SERVER_CMD="bash $here/nginx2.sh edge" NGINX2_CLIENT_CMD="bash $here/nginx2.sh client"
export NGINX2_IPERF=0 NGINX2_VERSION_CMD="nginx -v"
tools="direct nginx2 bore rathole"
if [[ -n "${BEAM_BEFORE_BIN:-}" ]]; then
  [[ -x "$BEAM_BEFORE_BIN" ]] || { echo "BEAM_BEFORE_BIN is not executable: $BEAM_BEFORE_BIN" >&2; exit 1; }
  export BEAM_BEFORE_SERVER_CMD="${server//\$BEAM_BIN/\$BEAM_BEFORE_BIN}"
  export BEAM_BEFORE_CLIENT_CMD="${client//\$BEAM_BIN/\$BEAM_BEFORE_BIN}"
  export BEAM_BEFORE_CLIENT2_CMD="${client2//\$BEAM_BIN/\$BEAM_BEFORE_BIN}"
  export BEAM_BEFORE_HOST_HEADER=bench.localhost BEAM_BEFORE_IPERF=1
  tools="$tools beam-before"
fi
export TOOLS="${TOOLS:-$tools beam beam-plain beam-ws}"
exec bash "$harness" run
