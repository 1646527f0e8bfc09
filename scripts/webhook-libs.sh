#!/usr/bin/env bash
# Installs the official webhook libraries that the webhook tests' local apps
# verify signatures with, once, and prints the Python interpreter's path:
# - Python (~/.cache/beam-webhook-py): stripe, svix, slack_sdk, twilio and
#   paddle-python-sdk;
# - Node (~/.cache/beam-webhook-node): @octokit/webhooks-methods (GitHub),
#   @shopify/shopify-api and @linear/sdk (needs node and npm; installed from
#   Debian packages when missing).
# The tests find them there, or at $BEAM_WEBHOOK_PYTHON and $BEAM_WEBHOOK_NODE,
# and fail (not skip) without them.
set -euo pipefail
VENV="${BEAM_WEBHOOK_VENV:-$HOME/.cache/beam-webhook-py}"
PY_LIBS=('stripe==16.1.0' 'svix==2.9.1' 'slack_sdk==3.48.0' 'twilio==9.13.0' 'paddle-python-sdk==1.16.1')
if ! "$VENV/bin/python3" -c 'import stripe, svix, slack_sdk, twilio, paddle_billing' >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "${PY_LIBS[@]}" >&2
fi
NODE_DIR="${BEAM_WEBHOOK_NODE:-$HOME/.cache/beam-webhook-node}"
if [ ! -d "$NODE_DIR/node_modules/@linear/sdk" ] || [ ! -d "$NODE_DIR/node_modules/@shopify/shopify-api" ] \
  || [ ! -d "$NODE_DIR/node_modules/@octokit/webhooks-methods" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && [ -f package.json ] || echo '{"name":"beam-webhook-node","private":true}' >"$NODE_DIR/package.json")
  (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund \
    '@octokit/webhooks-methods@6.0.0' '@shopify/shopify-api@15.0.0' '@linear/sdk@98.0.0' >&2)
fi
echo "$VENV/bin/python3"
