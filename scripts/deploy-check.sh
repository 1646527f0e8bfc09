#!/usr/bin/env bash
# Checks the deployment files as far as this machine allows (no container
# runtime here can pull images):
#   - deploy/compose.yaml against the Compose specification's JSON schema,
#   - deploy/k8s/*.yaml against the Kubernetes API schemas,
#   - deploy/prometheus/alerts.yaml with promtool (syntax and unit tests),
#   - deploy/haproxy.cfg with haproxy -c, deploy/beam-server.service with
#     systemd-analyze verify (when systemd is installed),
#   - then runs compose.yaml's nodes and balancer as plain processes
#     (deploy/compose_as_processes.py) and a request through them.
# Usage: scripts/deploy-check.sh [BEAM_BIN]   (default: the debug build)
# Needs PostgreSQL at BEAM_TEST_POSTGRES (default 127.0.0.1:5432; scripts/test starts it). Installs
# prometheus (promtool), haproxy and openssl (Debian) and check-jsonschema and
# kubernetes-validate (PyPI, into ~/.cache/beam-deploy-venv) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '== %s\n' "$*" >&2; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v haproxy >/dev/null || need+=(haproxy)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (Debian packages)"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
venv="$HOME/.cache/beam-deploy-venv"
if ! "$venv/bin/python" -c 'import check_jsonschema, kubernetes_validate, ruamel.yaml' 2>/dev/null; then
  say "installing check-jsonschema and kubernetes-validate into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q check-jsonschema kubernetes-validate
fi

say "compose.yaml against the Compose specification"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
say "Kubernetes manifests against the API schemas"
"$venv/bin/kubernetes-validate" --strict deploy/k8s/*.yaml
say "Prometheus alert rules: syntax and unit tests"
promtool check rules deploy/prometheus/alerts.yaml
promtool test rules deploy/prometheus/alerts_test.yaml
say "haproxy.cfg"
LB_HTTP=127.0.0.1:1 LB_TUNNEL=127.0.0.1:2 \
NODE1_HOST=127.0.0.1 NODE1_HTTP=3 NODE1_TUNNEL=4 NODE2_HOST=127.0.0.1 NODE2_HTTP=5 NODE2_TUNNEL=6 \
NODE3_HOST=127.0.0.1 NODE3_HTTP=7 NODE3_TUNNEL=8 haproxy -c -q -f deploy/haproxy.cfg
if command -v systemd-analyze >/dev/null; then
  say "systemd unit"
  # verify wants the binary where ExecStart says; check a copy pointing at ours.
  unit_dir=$(mktemp -d)
  bin="${1:-${CARGO_TARGET_DIR:-target}/debug/beam}"
  sed "s|/usr/local/bin/beam|$(realpath "$bin")|" deploy/beam-server.service > "$unit_dir/beam-server.service"
  systemd-analyze verify "$unit_dir/beam-server.service"
fi
say "compose.yaml's nodes and balancer as processes"
# The same PostgreSQL server the tests use, a throwaway database on it.
admin="${BEAM_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
db="beam_deploy_$$"
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
"$venv/bin/python" deploy/compose_as_processes.py "${1:-${CARGO_TARGET_DIR:-target}/debug/beam}" \
  "${admin%/*}/$db"
