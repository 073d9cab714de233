#!/usr/bin/env bash
# Benchmark: the fleet sweep, DockFlare beside the floor (a bare tonic server with the same
# mutual TLS and the same two streams per agent, no storage) in one run, at each size.
# Writes the results as JSON and draws them (PNG); prints the side-by-side table.
#
#   deploy/bench-fleet.sh                     # 100,1000,5000,10000 agents, SQLite
#   AGENTS=1000 DATABASE_URL=postgres://… deploy/bench-fleet.sh
#   OUT=/tmp/fleet deploy/bench-fleet.sh --load-rate 30000   # extra arguments go to fleet_bench
#
# Takes about 6 minutes at the default sizes on a 2-core machine; run it on an otherwise idle one.
set -euo pipefail
cd "$(dirname "$0")/.."
agents=${AGENTS:-100,1000,5000,10000}
out=${OUT:-crates/bench/results}
mkdir -p "$out"
cargo build --release -q -p dockflare-master -p dockflare-bench
database=()
[ -n "${DATABASE_URL:-}" ] && database=(--database-url "$DATABASE_URL")
target/release/fleet_bench --agents "$agents" --events-total "${EVENTS_TOTAL:-200000}" \
  --commands "${COMMANDS:-100}" "${database[@]}" --json "$out/fleet.json" --plot "$out/fleet.png" "$@"
