# Shared by the bench scripts (sourced, not run): a work directory cleaned up on
# exit, free ports, a bootstrap token, and an nginx origin serving a 1 KiB file.
#
#   . "$here/origin.sh"; start_origin [PREFIX]   → sets $work, $origin, $token
# PREFIX (e.g. "taskset -c 0") runs nginx under it.

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
token="beam_$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 43)"

start_origin() {
  origin=$(port)
  mkdir -p "$work/www"; head -c 1024 /dev/zero | tr '\0' x > "$work/www/1k"
  chmod 755 "$work" "$work/www"; chmod 644 "$work/www/1k"  # nginx workers run unprivileged
  cat > "$work/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$origin; root $work/www; } }
NGINX
  # Word splitting of $1 is intended: it is a command prefix.
  # shellcheck disable=SC2086
  ${1:-} nginx -c "$work/nginx.conf" & pids+=($!)
}
