#!/usr/bin/env bash
# One address for clients in front of several orchestrators: HAProxy (Debian's
# `haproxy` package, installed when missing) on one port, balancing over the
# orchestrators' ports, with GET /readyz health checks. Idempotent.
#
#   npm run proxy -- start --port 8000 --backends 8080,8081   start (or reload with new backends)
#   npm run proxy -- status [--port 8000]                      each orchestrator: UP or DOWN, and why
#   npm run proxy -- stop [--port 8000 | --all]                stop it (graceful: open requests finish)
#   npm run proxy -- install [--optional]                      only install haproxy (npm test does this)
#
# --backends takes ports (127.0.0.1 is meant), host:port pairs or http:// URLs,
# comma-separated; --host the listen address (default 0.0.0.0). Defaults come
# from DBAAS_PROXY_PORT (8000), DBAAS_PROXY_HOST and DBAAS_PROXY_BACKENDS.
# State (haproxy.cfg, pid file, admin socket, log) lives in .dbaas/proxy/<port>/,
# or in DBAAS_PROXY_STATE_DIR/<port>/. A proxy started here is recorded in
# .dbaas/started-services, so scripts/stop-services.sh stops it too.
#
# Routing: every orchestrator serves the whole API, so every orchestrator whose
# /readyz answers 200 takes requests, round robin. When none does (no master for
# a moment during a failover: readiness is the cluster's, so it fails on every
# orchestrator at once), requests go to every orchestrator that is alive
# (/healthz) rather than being refused by the proxy: dbaas then answers with its
# own error codes, or waits for the new master as it does without a proxy.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

usage() {
  cat >&2 <<'EOF'
usage: scripts/proxy.sh start  [--port P] [--host H] --backends B1,B2,…
       scripts/proxy.sh status [--port P]
       scripts/proxy.sh stop   [--port P | --all]
       scripts/proxy.sh install [--optional]
  B: a port, host:port, or http://host:port (comma-separated); defaults: DBAAS_PROXY_PORT (8000),
  DBAAS_PROXY_HOST (0.0.0.0), DBAAS_PROXY_BACKENDS
EOF
  exit 2
}

PROXY_ROOT=${DBAAS_PROXY_STATE_DIR:-$DBAAS_STATE_DIR/proxy}
CMD=${1:-}
[[ -n "$CMD" ]] || usage
shift
PORT=${DBAAS_PROXY_PORT:-8000}
HOST=${DBAAS_PROXY_HOST:-0.0.0.0}
BACKENDS=${DBAAS_PROXY_BACKENDS:-}
ALL=0
OPTIONAL=0
while (($# > 0)); do
  case "$1" in
    --port) PORT=${2:-}; shift 2 || usage ;;
    --host) HOST=${2:-}; shift 2 || usage ;;
    --backends) BACKENDS=${2:-}; shift 2 || usage ;;
    --all) ALL=1; shift ;;
    --optional) OPTIONAL=1; shift ;;
    -h | --help) usage ;;
    *) warn "unknown argument: $1"; usage ;;
  esac
done
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then die "--port must be a TCP port, got '$PORT'"; fi
STATE=$PROXY_ROOT/$PORT
CFG=$STATE/haproxy.cfg
PID_FILE=$STATE/haproxy.pid
SOCK=$STATE/admin.sock
LOG=$STATE/haproxy.log

find_haproxy() {
  command -v haproxy 2>/dev/null && return 0
  [[ -x /usr/sbin/haproxy ]] && { echo /usr/sbin/haproxy; return 0; }
  return 1
}

# install_haproxy: Debian's package, once; says what to do where apt-get is missing.
# With --optional (npm test) it only warns when it cannot, unless DBAAS_REQUIRE_PROXY=1 or CI=true.
install_haproxy() {
  local t apt_log=$DBAAS_STATE_DIR/apt-proxy.log
  if find_haproxy >/dev/null; then return 0; fi
  give_up() {
    if ((OPTIONAL)) && [[ "${DBAAS_REQUIRE_PROXY:-}" != 1 && "${CI:-}" != true ]]; then
      warn "$1"
      warn "the HAProxy test will be SKIPPED (DBAAS_REQUIRE_PROXY=1 makes this an error)"
      exit 0
    fi
    die "$1"
  }
  command -v apt-get >/dev/null 2>&1 ||
    give_up "HAProxy is not installed and apt-get is not available: install HAProxy ≥ 2.2 (e.g. 'brew install haproxy' or 'dnf install haproxy'), or point clients at several orchestrator URLs instead (comma-separated)"
  t=$(now_ms)
  mkdir -p "$DBAAS_STATE_DIR"
  log "installing HAProxy (apt-get install haproxy) …"
  export DEBIAN_FRONTEND=noninteractive
  if ! { as_root apt-get update && as_root apt-get install -y --no-install-recommends haproxy; } >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    give_up "apt-get install haproxy failed (full log: $apt_log)"
  fi
  find_haproxy >/dev/null || give_up "haproxy is still missing after apt-get install haproxy"
  log "HAProxy installed ($(elapsed "$t"))"
}

# running_pid: the pid of this port's haproxy when it runs, else nothing.
running_pid() {
  local pid
  pid=$(head -n 1 "$PID_FILE" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == haproxy ]] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CFG" && echo "$pid"
}

# server_lines: one `server` line per backend.
server_lines() {
  local i=0 b hostport
  IFS=',' read -r -a list <<<"$BACKENDS"
  for b in "${list[@]}"; do
    b=${b// /}
    [[ -n "$b" ]] || continue
    hostport=${b#http://}
    hostport=${hostport%%/*}
    [[ "$hostport" =~ ^[0-9]+$ ]] && hostport="127.0.0.1:$hostport"
    [[ "$hostport" =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] || die "backend '$b' is not a port, host:port or http://host:port"
    i=$((i + 1))
    printf '    server o%d %s check\n' "$i" "$hostport"
  done
  ((i > 0)) || die "no backends: pass --backends with the orchestrators' ports (e.g. --backends 8080,8081) or set DBAAS_PROXY_BACKENDS"
}

write_config() {
  local servers tmp
  servers=$(server_lines)
  tmp=$(mktemp "$CFG.XXXXXX")
  cat >"$tmp" <<EOF
# Written by scripts/proxy.sh start (rewritten at every start): one address in
# front of the dbaas orchestrators of one namespace.
global
    maxconn 4096
    stats socket $SOCK mode 600 level admin

defaults
    mode http
    option forwardfor
    timeout connect 1s
    # A client's whole request must arrive within the orchestrator's own limits (10 s headers, 30 s request).
    timeout http-request 30s
    timeout client 35s
    # Admin actions forwarded to the leader may take up to 60 s (verify); reads and writes answer within 5-9 s.
    timeout server 75s
    timeout http-keep-alive 5s
    timeout queue 5s
    timeout check 2s
    # A connection refused (an orchestrator stopped) is tried again on another one: nothing was sent yet.
    retries 3
    option redispatch 1
    default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2

frontend dbaas
    bind $HOST:$PORT
    # Every ready orchestrator; when none is ready (the cluster has no master for a moment), every live one.
    use_backend ready if { nbsrv(ready) gt 0 }
    default_backend live

backend ready
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host dbaas-proxy
    http-check expect status 200
$servers

backend live
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host dbaas-proxy
    http-check expect status 200
$servers
EOF
  mv -f "$tmp" "$CFG"
}

# admin COMMAND: sends a command to the admin socket and prints the answer.
admin() {
  node -e '
    const s = require("node:net").connect(process.argv[1]);
    let out = "";
    s.setTimeout(3000, () => { console.error("no answer on " + process.argv[1]); process.exit(1); });
    s.on("error", (e) => { console.error(e.message); process.exit(1); });
    s.on("data", (d) => (out += d)).on("end", () => process.stdout.write(out));
    s.end(process.argv[2] + "\n");' "$SOCK" "$1"
}

cmd_start() {
  local bin pid old t
  t=$(now_ms)
  install_haproxy
  bin=$(find_haproxy)
  mkdir -p "$STATE"
  local before=""
  [[ -f "$CFG" ]] && before=$(cat "$CFG")
  write_config
  "$bin" -c -q -f "$CFG" >"$STATE/check.log" 2>&1 || { cat "$STATE/check.log" >&2; die "haproxy refused the generated $CFG (above)"; }
  old=$(running_pid || true)
  if [[ -n "$old" ]]; then
    if [[ "$before" == "$(cat "$CFG")" ]]; then
      log "HAProxy already runs on $HOST:$PORT (pid $old, config $CFG)"
      return
    fi
    # New backends: a new process takes the port over; the old one finishes its open requests (-sf).
    log "reloading HAProxy on $HOST:$PORT with backends $BACKENDS (pid $old hands over) …"
    printf '\n===== %s reload\n' "$(date -Is)" >>"$LOG"
    "$bin" -D -f "$CFG" -p "$PID_FILE" -sf "$old" </dev/null >>"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; die "haproxy did not reload (log $LOG)"; }
  else
    port_open 127.0.0.1 "$PORT" && die "something else listens on port $PORT: pick another with --port (or DBAAS_PROXY_PORT)"
    log "starting HAProxy on $HOST:$PORT in front of $BACKENDS (config $CFG) …"
    printf '\n===== %s start\n' "$(date -Is)" >>"$LOG"
    rm -f "$PID_FILE"
    "$bin" -D -f "$CFG" -p "$PID_FILE" </dev/null >>"$LOG" 2>&1 || { tail -n 20 "$LOG" >&2; die "haproxy did not start (log $LOG)"; }
    # Recorded for scripts/stop-services.sh (a proxy with a state directory of its own, a test's, is not).
    [[ -n "${DBAAS_PROXY_STATE_DIR:-}" ]] || record_started haproxy
  fi
  wait_for 10 "HAProxy's pid file" running_pid >/dev/null || die "haproxy started but its pid file $PID_FILE names no running haproxy (log $LOG)"
  pid=$(running_pid)
  log "HAProxy serves http://127.0.0.1:$PORT (pid $pid; orchestrators with GET /readyz 200 take requests) ($(elapsed "$t"))"
}

cmd_status() {
  local pid
  pid=$(running_pid || true)
  if [[ -z "$pid" ]]; then
    log "no HAProxy of ours runs on port $PORT"
    return 3
  fi
  log "HAProxy pid $pid on port $PORT (config $CFG)"
  # pxname,svname,…: print backend, server, address, status and the last check's result.
  # shellcheck disable=SC2016  # JavaScript, not shell
  admin 'show stat' | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const [head, ...rows] = s.trim().split("\n");
      const cols = head.replace(/^# /, "").split(",");
      const at = (r, c) => r.split(",")[cols.indexOf(c)];
      for (const r of rows) {
        if (["FRONTEND", "BACKEND"].includes(at(r, "svname"))) continue;
        console.log(`${at(r, "pxname").padEnd(6)} ${at(r, "svname").padEnd(4)} ${(at(r, "addr") || "").padEnd(22)} ${at(r, "status").padEnd(8)} ${at(r, "check_status")} ${at(r, "check_code") || ""}`.trimEnd());
      }
    });'
}

# stop_one: stops this port's haproxy (SIGUSR1: stop listening, let open requests finish; then SIGTERM).
stop_one() {
  local pid
  pid=$(running_pid || true)
  if [[ -z "$pid" ]]; then
    log "no HAProxy of ours runs on port $PORT"
  else
    log "stopping HAProxy on port $PORT (pid $pid) …"
    kill -USR1 "$pid" 2>/dev/null || true
    if ! wait_for 10 "HAProxy (pid $pid) to finish its requests" bash -c "! kill -0 $pid 2>/dev/null"; then
      kill -TERM "$pid" 2>/dev/null || true
      wait_for 5 "HAProxy (pid $pid) to exit" bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PID_FILE" "$SOCK"
}

cmd_stop() {
  if ((ALL)); then
    local dir
    for dir in "$PROXY_ROOT"/*/; do
      [[ -d "$dir" ]] || continue
      PORT=$(basename "$dir")
      [[ "$PORT" =~ ^[0-9]+$ ]] || continue
      STATE=$PROXY_ROOT/$PORT CFG=$STATE/haproxy.cfg PID_FILE=$STATE/haproxy.pid SOCK=$STATE/admin.sock
      stop_one
    done
  else
    stop_one
  fi
}

case "$CMD" in
  start) cmd_start ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  install) install_haproxy ;;
  *) usage ;;
esac
