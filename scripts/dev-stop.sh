#!/usr/bin/env bash
# make dev-stop: stop what `make dev` started (also a detached one,
# DEV_DETACH=1 make dev), by the pid files in .dev/run. Safe to run any time:
# with nothing running it says so and succeeds. Logs stay in .dev/logs.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

step "Stopping make dev"
found=0
# Vault first: its process group holds the plugin processes.
for name in agent vault emulator array blade; do
  if pid="$(running "$name")"; then
    found=1
    stop_proc "$name"
  else
    # A pid file of a process that is gone (or was reused) is just removed.
    rm -f "$DEV_DIR/run/$name.pid" "$DEV_DIR/run/$name.cmd"
  fi
done
rm -f "$DEV_DIR/env"
if [[ "$found" == 1 ]]; then
  ok "stopped (logs kept in .dev/logs)"
else
  ok "nothing was running"
fi
