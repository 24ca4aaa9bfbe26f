#!/usr/bin/env bash
# Prepares the Swarm runtime (DBAAS_RUNTIME=swarm), idempotently: everything
# scripts/setup-docker.sh does (engine, ZooKeeper relay, RabbitMQ user, images),
# then a swarm:
#   - the engine is a manager of an active swarm already: reused as it is
#     (one node or many; see docs/DOCKER.md "A multi-node swarm")
#   - the engine is in no swarm: `docker swarm init` makes it a single-node
#     swarm, advertising 127.0.0.1 (DBAAS_SWARM_ADVERTISE_ADDR overrides; a
#     swarm other machines should join needs an address they reach)
#   - a worker node, or a swarm that is locked or in error: nothing is changed,
#     and the script says what to do
# and writes DBAAS_SWARM_STATUS=ready | "unavailable: <why>" to .dbaas/runtime.env.
#
#   scripts/setup-swarm.sh             set up; exit 1 when no swarm can be used
#   scripts/setup-swarm.sh --optional  same, but only warn (exit 0); the Swarm tests then skip, loudly
#
# DBAAS_REQUIRE_DOCKER=1 makes --optional fail like the plain form (CI).
# A swarm this script made stays (leaving it takes every service down):
# `docker swarm leave --force` undoes it.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

MODE=required
case "${1:-}" in
  --optional) MODE=optional ;;
  "") ;;
  *) die "usage: scripts/setup-swarm.sh [--optional]" ;;
esac
[[ "${DBAAS_REQUIRE_DOCKER:-}" == 1 && "$MODE" == optional ]] && MODE=required
started=$(now_ms)

unavailable() { runtime_unavailable DBAAS_SWARM_STATUS "Docker Swarm" "$1"; }

if [[ "$MODE" == optional ]]; then
  bash "$DBAAS_ROOT/scripts/setup-docker.sh" --optional
else
  bash "$DBAAS_ROOT/scripts/setup-docker.sh"
fi
load_runtime_env
[[ "${DBAAS_DOCKER_STATUS:-}" == ready ]] || unavailable "the Docker Engine is not ready (${DBAAS_DOCKER_STATUS:-no status})"

# One run at a time: two concurrent `swarm init`s would race.
if command -v flock >/dev/null 2>&1; then
  exec 8>"$DBAAS_STATE_DIR/setup-swarm.lock"
  flock -w 300 8 || die "gave up waiting for .dbaas/setup-swarm.lock"
fi

swarm_state() { docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>/dev/null || echo "unknown false"; }

read -r state manager < <(swarm_state)
case "$state" in
  active)
    [[ "$manager" == true ]] ||
      unavailable "this engine is a worker node of a swarm: run dbaas on a manager (DBAAS_DOCKER_HOST=tcp://<manager>:2375), or promote this node (docker node promote)"
    log "reusing the swarm this engine manages ($(docker info --format '{{.Swarm.Nodes}}') node(s), $(elapsed "$started"))"
    ;;
  inactive)
    addr=${DBAAS_SWARM_ADVERTISE_ADDR:-127.0.0.1}
    log "making this engine a single-node swarm (docker swarm init --advertise-addr $addr) …"
    out=$(docker swarm init --advertise-addr "$addr" 2>&1) || {
      # Another set-up may have made it meanwhile.
      read -r state manager < <(swarm_state)
      [[ "$state" == active && "$manager" == true ]] || unavailable "docker swarm init failed: $out"
    }
    log "single-node swarm ready ($(elapsed "$started"))"
    ;;
  locked) unavailable "the swarm is locked: docker swarm unlock" ;;
  *) unavailable "this engine's swarm state is '$state' (docker info); fix or leave it (docker swarm leave --force), then run this again" ;;
esac
set_runtime_env DBAAS_SWARM_STATUS ready
