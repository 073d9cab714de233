#!/usr/bin/env bash
# Benchmark: time from `docker run` of a labelled origin container to the first
# HTTP 200 for its hostname through the local edge, in offline mode (the
# master's built-in Cloudflare emulator, the local edge as the connector).
# That covers the agent seeing the container, the master creating the route
# and pushing the tunnel configuration, and the edge serving it. Each run uses
# a fresh hostname (a new route); prints every run, then min/median/p90/max.
#
#   deploy/bench-first-request.sh               # 10 runs
#   RUNS=30 deploy/bench-first-request.sh
#
# Settings (environment): RUNS (10), RUN_DEADLINE (60, seconds per run).
# Needs a running Docker engine (deploy/test.sh starts one), curl and python3.
# It starts its own master and agent on free ports, scoped by a unique label
# and network, and removes everything it created on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-10}
run_deadline=${RUN_DEADLINE:-60}
unique="fr$$x$RANDOM"
scope="bench.run=$unique"
network="dockflare-bench-$unique"
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'deploy/bench-first-request.sh: %s\n' "$*" >&2; exit 1; }

[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$runs')"
[[ $run_deadline =~ ^[1-9][0-9]*$ ]] || die "RUN_DEADLINE must be a positive number of seconds (got '$run_deadline')"
command -v curl >/dev/null || die "curl is missing"
command -v python3 >/dev/null || die "python3 is missing (used to pick free ports)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run deploy/test.sh once: it installs and starts one)"

work=$(mktemp -d "${TMPDIR:-/tmp}/dockflare-bench.XXXXXX") || die "cannot create a temporary directory"
master_pid="" agent_pid=""
cleanup() {
  log "cleaning up"
  [ -z "$agent_pid" ] || kill "$agent_pid" 2>/dev/null || true
  [ -z "$master_pid" ] || kill "$master_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  docker ps -aq --filter "label=$scope" | xargs -r docker rm -f >/dev/null 2>&1 || true
  if [ -s "$work/agent/agent_id" ]; then
    docker rm -f "dockflare-tunnel-$(head -c 8 "$work/agent/agent_id")" >/dev/null 2>&1 || true
  fi
  docker network rm "$network" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Dies, with the tail of both logs, if the master or the agent has exited.
check_alive() {
  local name pid
  for name in master agent; do
    pid=${name}_pid; pid=${!pid}
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$work/$name.log" >&2 || true
      die "the $name exited (log above)"
    fi
  done
}
# HTTP status of GET / for a Host through the local edge ("000": no answer).
status() { curl -s -o /dev/null --max-time 2 -w '%{http_code}' -H "Host: $1" "http://127.0.0.1:$edge_port/" || true; }

log "building DockFlare (release) and the local images"
cargo build --release -q -p dockflare-master -p dockflare-agent || die "cargo build failed"
deploy/images.sh >/dev/null 2>&1 || die "building the images failed (run deploy/images.sh to see why)"

read -r port emulator_port edge_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("", 0))
print(*(s.getsockname()[1] for s in socks))') || die "cannot pick free ports"

log "starting the master on 127.0.0.1:$port (emulator :$emulator_port, logs in $work)"
target/release/dockflare-master --listen "127.0.0.1:$port" --data-dir "$work/master" \
  --offline-emulator-listen "0.0.0.0:$emulator_port" >"$work/master.log" 2>&1 &
master_pid=$!
deadline=$((SECONDS + 60))
until grep -q 'Master listening' "$work/master.log" 2>/dev/null; do
  check_alive
  [ $SECONDS -lt $deadline ] || die "the master did not start within 60 s"
  sleep 0.1
done

token=$(target/release/dockflare-master --data-dir "$work/master" token create --ttl 10m 2>/dev/null) \
  || die "creating a join token failed"
log "starting the agent (scope $scope, network $network, edge on :$edge_port)"
DOCKFLARE_JOIN_TOKEN=$token target/release/dockflare-agent --master "https://localhost:$port" \
  --data-dir "$work/agent" --mode standalone --cloudflared-image dockflare/local-edge:latest \
  --connector-publish "$edge_port:8080" --scope "$scope" --network "$network" >"$work/agent.log" 2>&1 &
agent_pid=$!

log "waiting for the local edge to answer"
edge_wait=$SECONDS deadline=$((SECONDS + 120))
until [ "$(status "probe.$unique.example.test")" != 000 ]; do
  check_alive
  [ $SECONDS -lt $deadline ] || die "the local edge did not answer on :$edge_port within 120 s"
  sleep 0.1
done
log "the local edge answers (after $((SECONDS - edge_wait)) s)"

rows=() times=()
for i in $(seq 1 "$runs"); do
  name="bench-$unique-$i" host="run$i.$unique.example.test"
  start=$(date +%s%N)
  docker run -d -q --name "$name" --label "$scope" --label dockflare.enable=true \
    --label "dockflare.hostname=$host" --label "dockflare.service=http://$name:80" \
    dockflare-test/origin:latest >/dev/null || die "run $i: docker run failed"
  started=$(date +%s%N)
  deadline=$((start + run_deadline * 1000000000))
  until [ "$(status "$host")" = 200 ]; do
    check_alive
    if [ "$(date +%s%N)" -ge $deadline ]; then
      tail -n 5 "$work/master.log" "$work/agent.log" >&2 || true
      die "run $i: no 200 for $host within $run_deadline s (last: $(status "$host"))"
    fi
    sleep 0.01
  done
  done_at=$(date +%s%N)
  ms=$(((done_at - start) / 1000000))
  rows+=("$i" "$(((started - start) / 1000000))" "$ms") times+=("$ms")
  log "run $i/$runs: first 200 after $ms ms"
  docker rm -f "$name" >/dev/null || die "run $i: docker rm failed"
done

printf '%-5s %15s %15s\n' run "docker run ms" "first 200 ms"
printf '%-5s %15s %15s\n' "${rows[@]}"
printf '%s\n' "${times[@]}" | sort -n | awk '
  { t[NR] = $1 }
  END {
    median = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
    rank = int(0.9 * NR); if (rank < 0.9 * NR) rank++   # nearest-rank p90
    printf "\nfirst 200 over %d runs: min %d ms, median %.0f ms, p90 %d ms, max %d ms\n", NR, t[1], median, t[rank], t[NR]
  }'
