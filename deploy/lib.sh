# shellcheck shell=bash
# Shared by deploy/test.sh and deploy/run.sh (sourced, not run): logging, root
# commands, apt, and a running Docker engine.

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq || die "apt-get update failed"; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null || die "cannot install $*"
}

# A Docker engine that answers: installs docker.io when dockerd is missing and
# starts dockerd (log: target/dockerd.log) when nothing answers.
DOCKER_DEADLINE=${DOCKER_DEADLINE:-60}
ensure_docker_engine() {
  docker info >/dev/null 2>&1 && return
  command -v dockerd >/dev/null || { log "installing Docker (docker.io)"; apt_install docker.io; }
  command -v docker >/dev/null || die "the docker CLI is missing after installing docker.io"
  local dockerd_log="$PWD/target/dockerd.log" dockerd_pid=""
  if command -v pgrep >/dev/null && pgrep -x dockerd >/dev/null; then
    log "dockerd is running but not answering yet; waiting"
  else
    mkdir -p target || die "cannot create target/"
    log "starting dockerd (log: $dockerd_log)"
    # In its own session, so that it outlives this script.
    as_root setsid nohup dockerd >"$dockerd_log" 2>&1 </dev/null &
    dockerd_pid=$!
  fi
  local deadline=$((SECONDS + DOCKER_DEADLINE))
  until docker info >/dev/null 2>&1; do
    if [ -n "$dockerd_pid" ] && ! kill -0 "$dockerd_pid" 2>/dev/null && ! pgrep -x dockerd >/dev/null; then
      tail -n 20 "$dockerd_log" >&2 || true
      die "dockerd exited during startup (log: $dockerd_log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$dockerd_log" >&2 || true
      die "the Docker engine is not answering after $DOCKER_DEADLINE s (docker info: $(docker info 2>&1 | tail -n 1))"
    fi
    sleep 0.5
  done
}
