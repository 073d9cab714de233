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
names=()
stopping=""
# shellcheck disable=SC2317  # called by the traps
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
# shellcheck disable=SC2317
on_signal() { stopping=1; }
trap stop EXIT
trap on_signal INT TERM

# Logs are appended to (a marker line starts each run), never truncated.
master_log="$data/master.log"
agent_log="$data/agent.log"
touch "$master_log" "$agent_log"
master_from=$(($(wc -c <"$master_log") + 1))
since_start() { tail -c +"$master_from" "$master_log"; }
printf '==== %s deploy/run.sh: master starting ====\n' "$(date -u +%FT%TZ)" >>"$master_log"
printf '==== %s deploy/run.sh: agent starting ====\n' "$(date -u +%FT%TZ)" >>"$agent_log"

log "starting the master on $listen (log: $master_log)"
target/release/dockflare-master --listen "$listen" --data-dir "$data" >>"$master_log" 2>&1 &
pids+=($!)
names+=(master)
deadline=$((SECONDS + 60))
until since_start | grep -q 'Master listening'; do
  kill -0 "${pids[0]}" 2>/dev/null || { since_start | tail -n 20 >&2; die "the master exited"; }
  [ $SECONDS -lt $deadline ] || die "the master did not start within 60 s (see $master_log)"
  sleep 0.2
done

# Cloudflare (or the emulator): the master's first verdict on the setup, shown here rather than
# only in the log. It keeps running either way and retries.
cloudflare="no verdict within 45 s (see $master_log)"
cloudflare_ok=0
deadline=$((SECONDS + 45))
while [ $SECONDS -lt $deadline ]; do
  if since_start | grep -q 'Cloudflare token verified\.'; then
    cloudflare="ready (token verified)"; cloudflare_ok=1; break
  fi
  reason=$(since_start | grep -m1 'Cloudflare work is waiting\.' | sed -n 's/.* reason=//p' || true)
  if [ -n "$reason" ]; then cloudflare="NOT READY: $reason"; break; fi
  kill -0 "${pids[0]}" 2>/dev/null || { since_start | tail -n 20 >&2; die "the master exited"; }
  sleep 0.2
done
dashboard=$(since_start | grep -m1 'Dashboard listening' | sed -n 's/.* url=\([^ ]*\).*/\1/p' || true)
emulator=""
if [ $offline = 1 ]; then
  emulator=$(since_start | grep -m1 'running OFFLINE' | sed -n 's/.* emulator=\([^ ]*\).*/\1/p' || true)
  emulator=${emulator%/client/v4}
  emulator=${emulator/127.0.0.1/localhost}
fi

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
log "starting the local agent (log: $agent_log)"
target/release/dockflare-agent "${agent_args[@]}" >>"$agent_log" 2>&1 &
pids+=($!)
names+=(agent)
unset DOCKFLARE_JOIN_TOKEN

if [ $cloudflare_ok = 1 ]; then echo; echo "DockFlare is running."; else echo; echo "DockFlare is running, but Cloudflare is NOT ready (it retries; fix the setup and it catches up):"; fi
cat <<INFO
  master       https://localhost:$port   (admin identity: $data/pki/admin.crt, admin.key)
  cloudflare   $cloudflare
  logs         $master_log, $agent_log
  dashboard    ${dashboard:-off}   (make a user: target/release/dockflare-master --data-dir $data ui set-password --user you --role admin)
INFO
if [ $offline = 1 ]; then
  cat <<INFO
  mode         OFFLINE: the built-in Cloudflare emulator and the local edge
  emulator     $emulator   (its state: $emulator/__emulator/state, with the token in $data/offline-emulator.token)
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
status=0
wait -n "${pids[@]}" || status=$?
if [ -n "$stopping" ]; then
  log "stopped"
  exit 0
fi
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    log "the ${names[$i]} exited (status $status); the last lines of its log:"
    if [ "${names[$i]}" = master ]; then since_start | tail -n 20 >&2; else tail -n 20 "$agent_log" >&2; fi
  fi
done
die "a DockFlare process exited (see above); the other one is stopped"
