#!/usr/bin/env bash
# `npm test`: prepares everything (scripts/setup.sh), then runs vitest with
# the runtime settings of .dbaas/runtime.env. Services stay running so the
# next run reuses them (scripts/stop-services.sh stops them). Extra
# arguments go to vitest, e.g. `npm test -- --project unit`.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

bash "$DBAAS_ROOT/scripts/setup.sh"
load_runtime_env
log "running the tests (vitest run${*:+ $*}) …"
exec npx vitest run "$@"
