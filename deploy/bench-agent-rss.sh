#!/usr/bin/env bash
# Benchmark: the agent's memory while idle on a host with N labelled
# containers (default 100), connected to a master. Prints VmRSS and VmHWM.
#
#   deploy/bench-agent-rss.sh [N]
#
# Settings (environment): AGENT_BIN, another agent binary to measure (e.g. an
# older build kept for comparison, or target/release/dockflare-agent; default: the
# agent as its image ships it, static and built with the `agent` profile);
# AGENT_WRAP, a command to run the agent under, e.g. "heaptrack -o /tmp/agent"
# for a heap profile (the figures are then the wrapper's, not the agent's).
#
# Needs a running Docker engine and the test images (deploy/images.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-100}
scope="rss-$$"
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
cleanup() {
  [ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "${master_pid:-}" ] && kill "$master_pid" 2>/dev/null || true
  docker ps -aq --filter "label=bench.scope=$scope" | xargs -r docker rm -f >/dev/null
  # The connector outlives the agent by design.
  if [ -s "$work/agent/agent_id" ]; then
    docker rm -f "dockflare-tunnel-$(head -c 8 "$work/agent/agent_id")" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p dockflare-master -p dockflare-agent
# The agent as deploy/images.sh builds it for its image (the same flags: its build is reused).
triple="$(uname -m)-unknown-linux-gnu"
if [ -z "${AGENT_BIN:-}" ]; then
  RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$PWD=." \
    cargo build -q --profile agent --target "$triple" -p dockflare-agent --bin dockflare-agent
fi
agent_bin=${AGENT_BIN:-target/$triple/agent/dockflare-agent}
read -r -a agent_wrap <<<"${AGENT_WRAP:-}"
docker image inspect dockflare-test/origin:latest >/dev/null 2>&1 || deploy/images.sh

echo "starting $count labelled containers…"
# Eight at a time (the same containers as one at a time, sooner). They are unnamed, so each
# route's service host (appN) is unknown on the connector network: every container carries a
# reachability diagnostic (kept as measured since 2026-11-27).
seq 1 "$count" | xargs -P 8 -I{} docker run -d -q --label "bench.scope=$scope" --label dockflare.enable=true \
  --label "dockflare.hostname=app{}.bench.example.test" --label "dockflare.service=http://app{}:80" \
  dockflare-test/origin:latest >/dev/null

target/release/dockflare-master --listen "127.0.0.1:$port" --data-dir "$work/master" --log-format json \
  2>"$work/master.log" &
master_pid=$!
for _ in $(seq 1 100); do grep -q 'Master listening' "$work/master.log" 2>/dev/null && break; sleep 0.1; done
token=$(target/release/dockflare-master --data-dir "$work/master" token create 2>/dev/null)

DOCKFLARE_JOIN_TOKEN=$token "${agent_wrap[@]}" "$agent_bin" --master "https://localhost:$port" \
  --data-dir "$work/agent" --metrics-listen 127.0.0.1:0 --mode standalone --scope "bench.scope=$scope" --log-format json 2>"$work/agent.log" &
agent_pid=$!
deadline=$((SECONDS + 60))
until grep -q "\"containers\":$count" "$work/agent.log" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "the agent did not list $count containers"; tail "$work/agent.log"; exit 1; }
  sleep 0.2
done
echo "agent listed $count containers; idling 15 s…"
max_rss=0
for _ in $(seq 1 15); do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status")
  [ "$rss" -gt "$max_rss" ] && max_rss=$rss
  sleep 1
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$agent_pid/status")
awk -v n="$count" -v rss="$max_rss" -v hwm="$hwm" 'BEGIN {
  printf "agent idle with %d labelled containers: VmRSS max %.1f MiB, VmHWM (peak) %.1f MiB\n", n, rss / 1024, hwm / 1024 }'
