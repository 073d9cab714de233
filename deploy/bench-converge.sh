#!/usr/bin/env bash
# Benchmark: restart convergence. A real master against the built-in Cloudflare emulator (in the
# benchmark's process, the public v4 API over HTTP) under AGENTS simulated agents (default 10)
# with CONTAINERS labelled containers each (default 100: 1 000 routes). Prints the first
# convergence and its writes, then kills the master (SIGKILL), restarts it with nothing changed,
# and prints how long until it converged again and what it wrote (ingress PUTs per tunnel, DNS).
# Extra arguments go to converge_bench (e.g. --database-url postgres://…, --json FILE).
#
#   AGENTS=10 CONTAINERS=100 deploy/bench-converge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p dockflare-master -p dockflare-bench --bin dockflare-master --bin converge_bench
exec "$target_dir/release/converge_bench" --agents "${AGENTS:-10}" --containers "${CONTAINERS:-100}" "$@"
