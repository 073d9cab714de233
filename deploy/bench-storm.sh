#!/usr/bin/env bash
# Benchmark: the reconnect storm. A real master under AGENTS connected agents (default 10000) is
# killed with SIGKILL and started again; prints how long until every agent is back (Register,
# both streams, the first event receipt), the attempts and failures on the way, and the
# master's retry hints. Extra arguments go to storm_bench (e.g. --enforce, --json FILE,
# --database-url postgres://…, --master-arg=--max-concurrent-registrations --master-arg=32).
#
#   AGENTS=2000 deploy/bench-storm.sh [storm_bench flags…]
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p dockflare-master -p dockflare-bench --bin dockflare-master --bin storm_bench
exec "$target_dir/release/storm_bench" --agents "${AGENTS:-10000}" "$@"
