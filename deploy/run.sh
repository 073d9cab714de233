#!/usr/bin/env bash
# DockFlare on this host, in one command: a master (SQLite in ./dockflare-data)
# and a local agent enrolled automatically.
#
# Without Cloudflare settings it runs OFFLINE: the master's built-in
# Cloudflare emulator stands in for the API and the local edge stands in for
# cloudflared, serving your labelled containers on http://localhost:8080.
# With CF_API_TOKEN and CF_ACCOUNT_ID set it is the production single-host
# setup, and the connector is cloudflared.
#
#   deploy/run.sh                  # Ctrl-C stops master and agent
#
# Settings (environment): DOCKFLARE_DATA_DIR (./dockflare-data),
# DOCKFLARE_LISTEN (0.0.0.0:8443), DOCKFLARE_EDGE_PORT (8080),
# CF_API_TOKEN, CF_ACCOUNT_ID, CF_ZONE_ID, CLOUDFLARED_IMAGE.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${DOCKFLARE_DATA_DIR:-$PWD/dockflare-data}
listen=${DOCKFLARE_LISTEN:-0.0.0.0:8443}
port=${listen##*:}
edge_port=${DOCKFLARE_EDGE_PORT:-8080}
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

command -v cargo >/dev/null || die "cargo is missing: install a Rust toolchain first (https://rustup.rs)"
ensure_docker_engine

log "building DockFlare (release)"
cargo build --release -q -p dockflare-master -p dockflare-agent || die "cargo build failed"

offline=1
[ -n "${CF_API_TOKEN:-}" ] && offline=0
if [ $offline = 1 ]; then
  log "building the local images (local edge, test origin)"
  deploy/images.sh >/dev/null || die "building the images failed (see deploy/images.sh)"
fi

mkdir -p "$data"
chmod 700 "$data"
pids=()
# shellcheck disable=SC2317  # called by the trap
stop() {
  log "stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

log "starting the master on $listen (log: $data/master.log)"
target/release/dockflare-master --listen "$listen" --data-dir "$data" >"$data/master.log" 2>&1 &
pids+=($!)
deadline=$((SECONDS + 60))
until grep -q 'Master listening' "$data/master.log" 2>/dev/null; do
  kill -0 "${pids[0]}" 2>/dev/null || { tail -n 20 "$data/master.log" >&2; die "the master exited"; }
  [ $SECONDS -lt $deadline ] || die "the master did not start within 60 s (see $data/master.log)"
  sleep 0.2
done

# One host: containers, not Swarm services (even when this engine is a Swarm node).
agent_args=(--master "https://localhost:$port" --data-dir "$data/agent" --mode "${DOCKFLARE_MODE:-standalone}")
if [ $offline = 1 ]; then
  agent_args+=(--cloudflared-image dockflare/local-edge:latest --connector-publish "$edge_port:8080")
fi
if [ ! -f "$data/agent/agent.pem" ]; then
  DOCKFLARE_JOIN_TOKEN=$(target/release/dockflare-master --data-dir "$data" token create --ttl 10m \
    --description "local agent (deploy/run.sh)" 2>/dev/null) || die "creating a join token failed"
  export DOCKFLARE_JOIN_TOKEN
fi
log "starting the local agent (log: $data/agent.log)"
target/release/dockflare-agent "${agent_args[@]}" >"$data/agent.log" 2>&1 &
pids+=($!)
unset DOCKFLARE_JOIN_TOKEN

cat <<INFO

DockFlare is running.
  master       https://localhost:$port   (admin identity: $data/pki/admin.crt, admin.key)
  logs         $data/master.log, $data/agent.log
INFO
if [ $offline = 1 ]; then
  cat <<INFO
  mode         OFFLINE: the built-in Cloudflare emulator and the local edge
  local edge   http://localhost:$edge_port

Try it:
  docker run -d --name web --label dockflare.enable=true \\
    --label dockflare.hostname=app.example.test --label dockflare.service=http://web:80 \\
    dockflare-test/origin:latest
  curl -H 'Host: app.example.test' http://localhost:$edge_port/

INFO
else
  echo "  mode         Cloudflare account ${CF_ACCOUNT_ID:-?}"
fi
echo "Ctrl-C stops master and agent (the connector keeps running and is adopted next time)."
wait -n "${pids[@]}" || true
die "a DockFlare process exited (see the logs above)"
