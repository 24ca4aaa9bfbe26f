#!/usr/bin/env bash
# `npm test`: prepares everything (scripts/setup.sh), then runs vitest with
# the runtime settings of .dbaas/runtime.env. Services stay running so the
# next run reuses them (scripts/stop-services.sh stops them). Extra
# arguments go to vitest, e.g. `npm test -- --project unit`.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

# The service runs on Node.js ≥ 20; the test runner does not: vitest 3 runs on
# vite 7, which needs Node.js ≥ 20.19.
if command -v node >/dev/null 2>&1 && ! node_at_least 20 19; then
  die "the tests need Node.js ≥ 20.19 (vitest 3 runs on vite 7), found $(node --version); the service itself runs on Node.js ≥ 20"
fi
bash "$DBAAS_ROOT/scripts/setup.sh"
# The Docker runtime's tests need an engine and images; without them they are
# skipped with a loud warning (DBAAS_REQUIRE_DOCKER=1: fail instead).
case " $* " in
  *" --project unit "* | *" --project=unit "*) ;;
  *)
    # The Swarm runtime's tests need a swarm too: setup-swarm.sh sets up Docker
    # (setup-docker.sh), then makes the engine a single-node swarm when it is in none.
    bash "$DBAAS_ROOT/scripts/setup-swarm.sh" --optional
    # The dashboard's browser test needs Chromium; without it the test is
    # skipped with a loud warning (DBAAS_REQUIRE_BROWSER=1: fail instead).
    bash "$DBAAS_ROOT/scripts/setup-browser.sh" --optional
    # The one-address test needs HAProxy (Debian's haproxy); without it that test is
    # skipped with a loud warning (DBAAS_REQUIRE_PROXY=1, or CI=true: fail instead).
    bash "$DBAAS_ROOT/scripts/proxy.sh" install --optional
    ;;
esac
# A whole run (no arguments) also type-checks and lints: strict TypeScript and
# the lint rules (floating promises, import cycles, which side may import what)
# are part of the suite, not a separate habit.
if (( $# == 0 )); then
  log "type-checking and linting …"
  npx tsc -p tsconfig.json --noEmit || die "type errors (above): npm run typecheck"
  npx tsc -p tools/tsconfig.json --noEmit || die "type errors in tools/ (above)"
  npx eslint . || die "lint errors (above): npm run lint"
fi
load_runtime_env
log "running the tests (vitest run${*:+ $*}) …"
results="$DBAAS_STATE_DIR/vitest-results.json"
rm -f "$results"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=$?
if (( status != 0 )) && [[ -d "$DBAAS_STATE_DIR/test-logs" ]]; then
  log "the services' logs of this run: $DBAAS_STATE_DIR/test-logs/ (a failed test printed its own lines above)"
fi
# One plain closing line any CI can read: "N passed, N failed, N skipped".
if [[ -f "$results" ]]; then
  node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);' "$results"
fi
exit "$status"
