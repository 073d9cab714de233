#!/usr/bin/env bash
# The dependency rules of ARCHITECTURE.md, checked: a change that breaks one fails the test
# command with the file, the line and the rule.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
report() { # DESCRIPTION HITS
  if [ -n "$2" ]; then
    printf 'layer rule broken: %s\n%s\n' "$1" "$2" >&2
    failed=1
  fi
}
# Lines matching PATTERN in the Rust files under PATH..., comments aside.
hits() { # PATTERN PATH...
  local pattern=$1
  shift
  grep -rnE --include='*.rs' "$pattern" "$@" | grep -vE '^\S+:[0-9]+:\s*//' || true
}
rule() { # DESCRIPTION PATTERN PATH...
  local what=$1
  shift
  report "$what" "$(hits "$@")"
}
# Like `rule`, over every Rust file under ROOT except those matching ALLOWED (an ERE on the path).
only_in() { # DESCRIPTION PATTERN ROOT ALLOWED
  local what=$1 pattern=$2 root=$3 allowed=$4
  report "$what" "$(hits "$pattern" "$root" | grep -vE "^($allowed)" || true)"
}

# --- master/src: wiring → services → pipelines → reconcile → store / Cloudflare → model -------
only_in "tonic only in the services (the dashboard's writes reuse AdminService's code), the gRPC edge (listener, call limits, admin access, auth, conversions) and wiring" \
  '\btonic\b' master/src \
  'master/src/(admin_service/|agent_service/|listener/|web/actions\.rs|admin_access\.rs|auth\.rs|call_limits\.rs|convert\.rs|grpc_status\.rs|manual_routes\.rs|server\.rs)'
rule "the store does not know the reconciler (shared types live in master/src/model)" \
  'crate::reconcile' master/src/store
rule "the model is plain types (no store, reconciler, SQL or gRPC)" \
  'crate::(store|reconcile|commands|sessions)|\bsqlx\b|\btonic\b|dockflare_cloudflare::client' master/src/model
rule "the reconciler's planners are pure (no store, no Cloudflare client, no command queue, no tokio)" \
  'crate::(store|commands|sessions|fanout)|dockflare_cloudflare::client|\btokio\b|\bsqlx\b' \
  master/src/reconcile/{claims,policy,route_table,serving,swarms,zones,fairness}.rs master/src/reconcile/*/plan.rs
rule "the reconciler does not know the pipelines above it (it talks to agents through reconcile::port)" \
  'crate::(commands|event_writer|cluster|fanout|liveness|sessions|retention)\b' master/src/reconcile
rule "the pipelines and the reconciler do not know the services" \
  'crate::(admin_service|agent_service|server)' master/src/reconcile master/src/store master/src/model \
  master/src/commands.rs master/src/event_writer.rs master/src/cluster.rs master/src/fanout.rs \
  master/src/liveness.rs master/src/retention.rs master/src/access_policy_file.rs master/src/access_policies.rs

cycles=$(python3 deploy/module-cycles.py master/src agent/src common/src crates/*/src) ||
  report "no import circle between the top-level modules of a crate" "$cycles"

# Small modules with one job: a master file over 450 lines (its unit tests aside) is due a split.
long=$(for file in $(find master/src -name '*.rs'); do
  awk -v file="$file" '/^#\[cfg\(test\)\]/ {exit} {n++} END {if (n > 450) print file ": " n " lines before its tests"}' "$file"
done)
report "no file in master/src over 450 lines (tests aside)" "$long"

# --- the other crates -------------------------------------------------------------------------
rule "the Cloudflare API crate knows nothing of DockFlare's master, store, labels or emulator" \
  'dockflare_(master|emulator|testsupport)|crate::(store|reconcile)|\bsqlx\b|\btonic\b' crates/cloudflare/src
rule "the emulator knows the API's types, not the master" \
  'dockflare_(master|testsupport)|\bsqlx\b|\btonic\b' crates/emulator/src
rule "test support drives the binaries, never the master's internals" \
  'dockflare_master' crates/testsupport/src crates/bench/src
rule "the agent does not know the master" \
  'dockflare_master|dockflare_emulator' agent/src
only_in "tonic in the agent only in its connection code (enrollment, session, channel)" \
  '\btonic\b' agent/src 'agent/src/(connection|enroll|session)\.rs'
rule "common does no I/O (secret_file aside)" \
  '\b(tokio|sqlx|bollard|reqwest)\b|std::net::Tcp|std::fs::' \
  $(find common/src -name '*.rs' ! -name secret_file.rs)

# --- Cargo: what each crate may depend on ------------------------------------------------------
deps_of() { sed -n '/^\[dependencies\]/,/^\[/p' "$1"; }
report "the agent does not depend on the master, the emulator or the Cloudflare client" \
  "$(deps_of agent/Cargo.toml | grep -nE '^dockflare-(master|emulator)|^dockflare-cloudflare.*features *= *\[[^]]*client' || true)"
report "test support and the benchmark do not depend on the master crate (they run its binary)" \
  "$( (deps_of crates/testsupport/Cargo.toml; deps_of crates/bench/Cargo.toml) | grep -nE '^dockflare-master' || true)"
report "the Cloudflare API crate and the emulator do not depend on the master" \
  "$( (deps_of crates/cloudflare/Cargo.toml; deps_of crates/emulator/Cargo.toml) | grep -nE '^dockflare-master' || true)"
report "the CLI depends only on the proto crate: not the master, agent, emulator, test support or any other DockFlare crate (test support as a dev-dependency only)" \
  "$(deps_of crates/cli/Cargo.toml | grep -nE '^dockflare-' || true)"
rule "the CLI talks to a master only through the gRPC contract (crate dockflare)" \
  'dockflare_(master|agent|emulator|testsupport|common|cloudflare|observe)\b' crates/cli/src
[ "$failed" = 0 ] && echo "==> layer rules hold"
exit "$failed"
