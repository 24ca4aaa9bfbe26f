#!/usr/bin/env bash
# `npm run bench`: prepares everything (scripts/setup.sh: dependencies, build,
# RabbitMQ, ZooKeeper, the database binary), then runs the benchmark
# (tools/bench/main.ts) with the runtime settings of .dbaas/runtime.env.
# Extra arguments go to the benchmark, e.g. `npm run bench -- --quick`.
# Run it on an otherwise idle machine: the figures are only as quiet as the cores.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

bash "$DBAAS_ROOT/scripts/setup.sh"
load_runtime_env
# The load ramp (--ramp) is a mode of its own: tools/bench/ramp.ts.
if [[ " $* " == *" --ramp "* ]]; then
  # On the Swarm runtime it needs a swarm (a single-node one when the engine is in none).
  [[ " $* " == *swarm* || " $* " != *" --runtimes "* ]] && bash "$DBAAS_ROOT/scripts/setup-swarm.sh" && load_runtime_env
  log "running the load ramp …"
  exec node dist/tools/bench/ramp-main.js "$@"
fi
log "running the benchmark (a few minutes) …"
exec node dist/tools/bench/main.js "$@"
