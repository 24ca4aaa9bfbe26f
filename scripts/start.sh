#!/usr/bin/env bash
# `npm start`: prepares everything (scripts/setup.sh), runs the orchestrator
# in the foreground, and on exit (or Ctrl-C) stops the services that this run
# started, so nothing is left behind. Exits with the orchestrator's status.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

# setup.sh appends to this file the name of every service it starts.
started_log=$(mktemp)
node_pid=""

stop_our_services() {
  if [[ -s "$started_log" ]]; then
    mapfile -t ours < <(sort -u "$started_log")
    : >"$started_log"
    log "stopping the services this run started: ${ours[*]}"
    bash "$DBAAS_ROOT/scripts/stop-services.sh" "${ours[@]}" || warn "stopping the services failed"
  fi
}
trap 'rm -f "$started_log"' EXIT

# Ctrl-C or SIGTERM during setup: undo what setup started so far.
trap 'stop_our_services; exit 130' INT
trap 'stop_our_services; exit 143' TERM
DBAAS_SETUP_STARTED_LOG="$started_log" bash "$DBAAS_ROOT/scripts/setup.sh" || {
  status=$?
  stop_our_services
  exit "$status"
}

load_runtime_env
log "starting the orchestrator on port ${DBAAS_PORT:-80} …"

# Node runs in a process group of its own (set -m), so a Ctrl-C in the
# terminal reaches it once, through us, rather than twice (npm also forwards
# signals to us). A signal repeated within a second is a duplicate.
last_signal="" last_signal_ms=0
# shellcheck disable=SC2329  # called by the traps below
forward() {
  local sig=$1 now
  now=$(now_ms)
  if [[ "$sig" == "$last_signal" ]] && (( now - last_signal_ms < 1000 )); then return; fi
  last_signal=$sig last_signal_ms=$now
  [[ -n "$node_pid" ]] && kill -s "$sig" "$node_pid" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward HUP' HUP

set -m
node --max-semi-space-size=2 dist/orchestrator/main.js &
node_pid=$!
set +m

# `wait` returns early when a trapped signal arrives: wait until node is
# gone, then ask bash for its saved exit status.
while kill -0 "$node_pid" 2>/dev/null; do
  wait "$node_pid" || true
done
if wait "$node_pid"; then status=0; else status=$?; fi
node_pid=""
trap - INT TERM HUP

stop_our_services
exit "$status"
