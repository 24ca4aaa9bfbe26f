#!/usr/bin/env bash
# `npm run soak`: set up (as npm start does), then the soak run of
# tools/drill/soak.ts. Extra arguments go to it, e.g. `npm run soak -- --minutes 3`.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

bash "$DBAAS_ROOT/scripts/setup.sh"
load_runtime_env
exec node dist/tools/drill/soak.js "$@"
