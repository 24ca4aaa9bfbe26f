#!/usr/bin/env bash
# Makes Debian's Chromium available for the dashboard's end-to-end test
# (tests/integration/dashboard.test.ts drives it with playwright-core; nothing
# is downloaded by Playwright itself). Idempotent.
#
#   scripts/setup-browser.sh             install chromium, or fail saying why
#   scripts/setup-browser.sh --optional  same, but only warn (exit 0) when it
#                                        cannot: the test then skips loudly
#
# Knobs: DBAAS_CHROMIUM=/path uses that binary instead of /usr/bin/chromium;
# DBAAS_REQUIRE_BROWSER=1 makes --optional fail like the plain form.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"
mkdir -p "$DBAAS_STATE_DIR"

MODE=required
case "${1:-}" in
  "") ;;
  --optional) MODE=optional ;;
  *) die "usage: scripts/setup-browser.sh [--optional]" ;;
esac
[[ "${DBAAS_REQUIRE_BROWSER:-}" == 1 ]] && MODE=required

CHROMIUM=${DBAAS_CHROMIUM:-/usr/bin/chromium}
APT_LOG="$DBAAS_STATE_DIR/apt-browser.log"

give_up() {
  if [[ "$MODE" == optional ]]; then
    warn "$1"
    warn "the dashboard's browser test will be SKIPPED (DBAAS_REQUIRE_BROWSER=1 makes this an error)"
    exit 0
  fi
  die "$1"
}

if [[ -x "$CHROMIUM" ]]; then
  log "reusing Chromium at $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null | head -n 1 || echo 'version unknown'))"
  exit 0
fi
[[ -n "${DBAAS_CHROMIUM:-}" ]] && give_up "DBAAS_CHROMIUM=$CHROMIUM is not an executable"
command -v apt-get >/dev/null 2>&1 ||
  give_up "Chromium is missing and apt-get is not available: install Chromium (or Google Chrome) and set DBAAS_CHROMIUM=/path/to/it"

t=$(now_ms)
export DEBIAN_FRONTEND=noninteractive
log "installing Chromium (apt-get install chromium) for the dashboard test …"
if ! { as_root apt-get update && as_root apt-get install -y --no-install-recommends chromium; } >"$APT_LOG" 2>&1; then
  tail -n 20 "$APT_LOG" >&2
  give_up "apt-get install chromium failed (full log: $APT_LOG)"
fi
[[ -x "$CHROMIUM" ]] || give_up "chromium is installed but $CHROMIUM is missing"
log "Chromium installed ($(elapsed "$t"))"
