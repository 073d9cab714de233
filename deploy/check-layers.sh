#!/usr/bin/env bash
# The dependency rules of ARCHITECTURE.md, checked: a change that breaks one fails the test
# command with the file, the line and the rule.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
rule() { # DESCRIPTION PATTERN PATH...
  local what=$1 pattern=$2
  shift 2
  local hits
  hits=$(grep -rnE --include='*.rs' "$pattern" "$@" | grep -vE '^\S+:[0-9]+:\s*//' || true)
  if [ -n "$hits" ]; then
    printf 'layer rule broken: %s\n%s\n' "$what" "$hits" >&2
    failed=1
  fi
}

rule "the store does not know the reconciler (shared types live in master/src/model)" \
  'crate::reconcile' master/src/store
rule "nothing below the services knows tonic (typed errors; grpc_status.rs maps them)" \
  '\btonic\b' master/src/reconcile master/src/store master/src/model master/src/commands.rs \
  master/src/event_writer.rs master/src/cluster.rs master/src/fanout.rs master/src/liveness.rs \
  master/src/retention.rs master/src/clock.rs
rule "the model is plain types (no store, reconciler, SQL or gRPC)" \
  'crate::(store|reconcile)|\bsqlx\b|\btonic\b' master/src/model
rule "common does no I/O (secret_file aside)" \
  '\b(tokio|sqlx|bollard|reqwest)\b|std::net::Tcp|std::fs::' \
  $(find common/src -name '*.rs' ! -name secret_file.rs)

[ "$failed" = 0 ] && echo "==> layer rules hold"
exit "$failed"
