#!/usr/bin/env bash
# Benchmark: two masters on one PostgreSQL database holding one fleet of AGENTS agents (default
# 10000), spread by their master URL list. Prints how the fleet is shared, each master's memory,
# command latency through the agent's own master and through the other, then kills master A
# (SIGKILL, no restart) and prints how long until its agents are back on master B, the attempts
# and failures on the way, and commands through B to the agents that moved.
#
# The database: DATABASE_URL (an empty database of its own), else a fresh database created on
# the PostgreSQL the test command uses (DOCKFLARE_TEST_POSTGRES_URL, provisioned when missing)
# and dropped afterwards. Extra arguments go to storm_bench (e.g. --enforce, --json FILE).
#
#   AGENTS=2000 deploy/bench-cluster.sh [storm_bench flags…]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p dockflare-master -p dockflare-bench --bin dockflare-master --bin storm_bench
database_url=${DATABASE_URL:-}
if [[ -z $database_url ]]; then
  . deploy/lib.sh
  eval "$(sed -n '/^PG_USER=/,/^# --- Disk/p' deploy/test.sh)"
  ensure_postgres
  admin_url=$DOCKFLARE_TEST_POSTGRES_URL
  name="dockflare_cluster_bench_$$"
  psql -q "$admin_url" -c "CREATE DATABASE $name"
  trap 'psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true' EXIT
  database_url="${admin_url%/*}/$name"
fi
"$target_dir/release/storm_bench" --masters 2 --agents "${AGENTS:-10000}" --database-url "$database_url" "$@"
