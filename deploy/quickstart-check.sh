#!/usr/bin/env bash
# Checks the README's quick start end to end, as a newcomer runs it: `deploy/run.sh`
# (offline, embedded defaults), then a labelled origin started with `docker run`, then
# `curl -H 'Host: app.example.test'` through the local edge answers from that origin,
# and an unknown host gets the catch-all's 404. deploy/test.sh runs it last.
#
#   deploy/quickstart-check.sh
#
# It runs deploy/run.sh with a temporary data dir and free ports (so it does not
# touch ./dockflare-data or ports 8443/8080), gives every step a deadline, prints
# the time from `docker run` to the first answer, and removes what it created.
# Needs a running Docker engine, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

command -v curl >/dev/null || die "curl is missing"
command -v python3 >/dev/null || die "python3 is missing (used to pick free ports)"
docker info >/dev/null 2>&1 || die "no Docker engine answers"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d "${TMPDIR:-/tmp}/dockflare-quickstart.XXXXXX") || die "cannot create a temporary directory"
master_port=$(free_port)
edge_port=$(free_port)
origin="quickstart-web-$$"
before=$(docker ps -aq --no-trunc --filter label=dockflare.type=tunnel | sort)
run_pid=""

cleanup() {
  [ -z "$run_pid" ] || { kill "$run_pid" 2>/dev/null || true; wait "$run_pid" 2>/dev/null || true; }
  docker rm -f "$origin" >/dev/null 2>&1 || true
  # The connector this run's agent created (deploy/run.sh leaves it running on purpose).
  comm -13 <(printf '%s\n' "$before") <(docker ps -aq --no-trunc --filter label=dockflare.type=tunnel | sort) |
    xargs -r docker rm -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  printf '\n--- deploy/run.sh output ---\n' >&2; tail -n 40 "$work/run.log" >&2 || true
  printf -- '--- master log ---\n' >&2; tail -n 40 "$work/data/master.log" >&2 || true
  printf -- '--- agent log ---\n' >&2; tail -n 40 "$work/data/agent.log" >&2 || true
  die "$*"
}

log "quick start: deploy/run.sh (master on 127.0.0.1:$master_port, local edge on $edge_port)"
DOCKFLARE_DATA_DIR="$work/data" DOCKFLARE_LISTEN="127.0.0.1:$master_port" DOCKFLARE_EDGE_PORT="$edge_port" \
  deploy/run.sh >"$work/run.log" 2>&1 &
run_pid=$!
deadline=$((SECONDS + 900)) # a cold release build is most of it
until grep -q "DockFlare is running." "$work/run.log" 2>/dev/null; do
  kill -0 "$run_pid" 2>/dev/null || fail "deploy/run.sh exited before DockFlare was running"
  [ $SECONDS -lt $deadline ] || fail "deploy/run.sh did not report 'DockFlare is running.' within 900 s"
  sleep 0.5
done
grep -q "local edge   http://localhost:$edge_port" "$work/run.log" || fail "deploy/run.sh did not say where the local edge listens"

log "quick start: docker run … $origin, then curl -H 'Host: app.example.test' http://localhost:$edge_port/"
started=$(date +%s%N)
docker run -d --name "$origin" --label dockflare.enable=true \
  --label dockflare.hostname=app.example.test --label "dockflare.service=http://$origin:80" \
  dockflare-test/origin:latest >/dev/null || fail "docker run of the origin failed"
deadline=$((SECONDS + 60))
answer=""
until answer=$(curl -fsS -m 2 -H 'Host: app.example.test' "http://localhost:$edge_port/" 2>/dev/null) &&
  [[ $answer == *'"host":"app.example.test"'* ]]; do
  [ $SECONDS -lt $deadline ] || fail "app.example.test was not served through the local edge within 60 s (last answer: '$answer')"
  sleep 0.1
done
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
origin_id=$(docker inspect --format '{{.Id}}' "$origin")
[[ $answer == *"\"origin\":\"${origin_id:0:12}\""* ]] || fail "the answer did not come from $origin: $answer"
other=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H 'Host: unknown.example.test' "http://localhost:$edge_port/")
[ "$other" = 404 ] || fail "an unknown host got HTTP $other, not the catch-all's 404"
log "quick start works: $answer ($elapsed_ms ms after docker run; an unknown host gets 404)"
