#!/usr/bin/env bash
# `npm start`: prepares everything (scripts/setup.sh), runs the lifecycle
# manager in the foreground (it runs the orchestrator and supervises it and the
# platform services: orchestrator/lifecycle/), restarts the manager if it dies,
# and on exit (or Ctrl-C) stops the services that this run started, so nothing
# is left behind. Exits with the manager's status (the orchestrator's).
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
# The lifecycle manager (orchestrator/lifecycle/main.js) starts the orchestrator and supervises it and the
# platform services; it restarts those this run started (DBAAS_LIFECYCLE_MANAGED) and only watches the others.
managed=$(sort -u "$started_log" | paste -sd, -)
log "starting the lifecycle manager and the orchestrator on port ${DBAAS_PORT:-80} …"

# Node runs in a process group of its own (set -m), so a Ctrl-C in the
# terminal reaches it once, through us, rather than twice (npm also forwards
# signals to us). A signal repeated within a second is a duplicate.
last_signal="" last_signal_ms=0 stop_asked=0
# shellcheck disable=SC2329  # called by the traps below
forward() {
  local sig=$1 now
  stop_asked=1
  now=$(now_ms)
  if [[ "$sig" == "$last_signal" ]] && (( now - last_signal_ms < 1000 )); then return; fi
  last_signal=$sig last_signal_ms=$now
  [[ -n "$node_pid" ]] && kill -s "$sig" "$node_pid" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward HUP' HUP

# Who restarts the manager: this loop. A manager killed by a signal we did not send is started again
# (it adopts the orchestrator still running); one that exits by itself (the orchestrator could not start,
# or kept failing) ends the run. At most 5 restarts a minute.
restarts=()
while :; do
  set -m
  DBAAS_LIFECYCLE_MANAGED="$managed" node dist/orchestrator/lifecycle/main.js &
  node_pid=$!
  set +m
  # `wait` returns early when a trapped signal arrives: wait until node is
  # gone, then ask bash for its saved exit status.
  while kill -0 "$node_pid" 2>/dev/null; do
    wait "$node_pid" || true
  done
  if wait "$node_pid"; then status=0; else status=$?; fi
  node_pid=""
  (( stop_asked == 0 && status > 128 )) || break
  now=$(date +%s)
  recent=()
  for t in "${restarts[@]}"; do (( now - t < 60 )) && recent+=("$t"); done
  restarts=("${recent[@]}" "$now")
  if (( ${#restarts[@]} > 5 )); then
    warn "the lifecycle manager died 6 times within a minute (last status $status); giving up"
    break
  fi
  warn "the lifecycle manager died (status $status); starting it again (it adopts the running orchestrator)"
  sleep 1
done
trap - INT TERM HUP

stop_our_services
exit "$status"
