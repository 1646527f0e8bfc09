#!/usr/bin/env bash
# Installs the official Stripe and svix Python libraries that the webhook tests'
# local app verifies signatures with, into ~/.cache/beam-webhook-py (once), and
# prints that interpreter's path. The tests find it there, or at
# $BEAM_WEBHOOK_PYTHON, and fail (not skip) without it.
set -euo pipefail
VENV="${BEAM_WEBHOOK_VENV:-$HOME/.cache/beam-webhook-py}"
if ! "$VENV/bin/python3" -c 'import stripe, svix' >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'stripe==16.1.0' 'svix==2.9.1'
fi
echo "$VENV/bin/python3"
