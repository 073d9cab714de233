#!/usr/bin/env bash
# Restarts the local Docker engine (started by deploy/test.sh, not by an init
# system): SIGTERM, wait for it to exit, start it again, wait until it
# answers. Used by the test that checks the agent relists after a daemon
# restart. Logs go to $DOCKERD_LOG (default /tmp/dockerd.log).
set -euo pipefail
log=${DOCKERD_LOG:-/tmp/dockerd.log}
die() { printf 'dockerd-restart.sh: %s\n' "$*" >&2; exit 1; }

pid=$(pidof dockerd || true)
[ -n "$pid" ] || die "dockerd is not running"
kill -TERM $pid
deadline=$((SECONDS + 60))
while kill -0 $pid 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || die "dockerd did not exit within 60 s"
  sleep 0.1
done
# In its own session: it must outlive the test (and the shell) that restarted it.
setsid nohup dockerd >>"$log" 2>&1 </dev/null &
deadline=$((SECONDS + 60))
until docker info >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || die "dockerd did not come back within 60 s (see $log)"
  sleep 0.1
done
echo "dockerd restarted"
