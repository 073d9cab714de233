#!/usr/bin/env bash
# Checks the units with `systemd-analyze verify`, against the binaries of this checkout (the
# units name /usr/local/bin/…, where an install puts them; here they point at target/).
#
#   deploy/systemd/verify.sh [BINARY_DIR]      (default: target/debug)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin_dir=$(realpath "${1:-target/debug}")
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/dockflare-units.XXXXXX")
trap 'rm -rf "$work"' EXIT
for unit in dockflare-master dockflare-agent; do
  [ -x "$bin_dir/$unit" ] || { echo "$bin_dir/$unit is missing: build the workspace first" >&2; exit 1; }
  sed "s|/usr/local/bin/$unit|$bin_dir/$unit|" "deploy/systemd/$unit.service" >"$work/$unit.service"
done
# Without a running systemd (a container), verify still parses and checks every directive; it
# prints what it cannot check about the running system, which is not a finding about the units.
output=$(systemd-analyze verify --man=no "$work"/dockflare-master.service "$work"/dockflare-agent.service 2>&1) || status=$?
filtered=$(printf '%s\n' "$output" | grep -vE 'Failed to (connect to|create) .*bus|System has not been booted with systemd|Falling back|^$' || true)
if [ "${status:-0}" != 0 ] || [ -n "$filtered" ]; then
  printf '%s\n' "$output" >&2
  echo "systemd-analyze verify found problems in deploy/systemd/*.service" >&2
  exit 1
fi
echo "==> systemd units verified"
