#!/usr/bin/env bash
# Stops the services that scripts/setup.sh (and scripts/proxy.sh) started (listed one per line in
# .dbaas/started-services) and removes them from that list.
#   scripts/stop-services.sh              stop every listed service
#   scripts/stop-services.sh zookeeper …  stop only these (if listed)
# Services that setup.sh found already running are never touched. Safe to
# run twice.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

if [[ ! -s "$DBAAS_STARTED_FILE" ]]; then
  log "no services started by scripts/setup.sh are recorded; nothing to stop"
  exit 0
fi

# Not while a setup run is starting services.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$DBAAS_STATE_DIR/setup.lock"
  flock -w 120 9 || die "another setup run holds .dbaas/setup.lock"
fi

mapfile -t listed < <(grep -v '^[[:space:]]*$' "$DBAAS_STARTED_FILE" | sort -u)
if (( $# > 0 )); then wanted=("$@"); else wanted=("${listed[@]}"); fi

is_listed() { printf '%s\n' "${listed[@]}" | grep -qx "$1"; }
is_wanted() { printf '%s\n' "${wanted[@]}" | grep -qx "$1"; }

forget() {
  local tmp
  tmp=$(mktemp "$DBAAS_STARTED_FILE.XXXXXX")
  chmod 644 "$tmp"
  grep -vx "$1" "$DBAAS_STARTED_FILE" >"$tmp" || true
  mv -f "$tmp" "$DBAAS_STARTED_FILE"
}

port_closed() { ! port_open "$@"; }

stop_zookeeper() {
  local t pid
  t=$(now_ms)
  pid=$(cat "$DBAAS_ZK_PID_FILE" 2>/dev/null || true)
  if ! pid_is_zookeeper "$pid"; then
    log "ZooKeeper is not running (no live process in $DBAAS_ZK_PID_FILE)"
  else
    log "stopping ZooKeeper (pid $pid) …"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 15 "ZooKeeper (pid $pid) to exit" bash -c "! kill -0 $pid 2>/dev/null"; then
      warn "ZooKeeper (pid $pid) ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      wait_for 5 "ZooKeeper (pid $pid) to die" bash -c "! kill -0 $pid 2>/dev/null" || true
    fi
    log "ZooKeeper stopped ($(elapsed "$t"))"
  fi
  rm -f "$DBAAS_ZK_PID_FILE"
}

stop_rabbitmq() {
  local t ctl pid_file pid deadline
  t=$(now_ms)
  if ! ctl=$(command -v rabbitmqctl || ls /usr/sbin/rabbitmqctl 2>/dev/null); then
    warn "rabbitmqctl is missing; cannot stop RabbitMQ"
    return
  fi
  # The node writes its OS pid there early during boot; given that file,
  # rabbitmqctl stop also waits for the process to exit.
  pid_file=$(rabbitmq_pid_file)
  pid=$(as_root cat "$pid_file" 2>/dev/null || true)
  rabbitmq_alive() {
    port_open 127.0.0.1 5672 ||
      { [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs beam "/proc/$pid/comm"; }
  }
  if ! rabbitmq_alive; then
    log "RabbitMQ is not running; nothing to stop"
    return
  fi
  log "stopping RabbitMQ (rabbitmqctl stop) …"
  # A node still booting does not answer yet: retry for a while.
  deadline=$(( $(now_ms) + 60000 ))
  until as_root timeout 60 "$ctl" -q stop ${pid:+"$pid_file"} >/dev/null 2>&1; do
    rabbitmq_alive || break
    if (( $(now_ms) >= deadline )); then
      warn "rabbitmqctl stop kept failing for 60 s; RabbitMQ may still be running"
      return
    fi
    sleep 1
  done
  wait_for 30 "RabbitMQ to exit" bash -c "! { : </dev/tcp/127.0.0.1/5672; } 2>/dev/null && ! grep -qs beam /proc/${pid:-0}/comm" || true
  log "RabbitMQ stopped ($(elapsed "$t"))"
}

stop_postgresql() {
  local t bindir data=$DBAAS_PG_DIR/data
  t=$(now_ms)
  if [[ ! -f "$data/postmaster.pid" ]]; then
    log "PostgreSQL is not running (no $data/postmaster.pid)"
    return
  fi
  if ! bindir=$(pg_bindir); then
    warn "pg_ctl is missing; cannot stop PostgreSQL"
    return
  fi
  log "stopping PostgreSQL (pg_ctl stop -m fast) …"
  # The workers' FerretDB lose their connections; their data stays in $data.
  (cd / && as_pg "$bindir/pg_ctl" -D "$data" stop -m fast -w -t 60) >/dev/null 2>&1 ||
    warn "pg_ctl stop failed; PostgreSQL may still be running (log $DBAAS_PG_DIR/postgresql.log)"
  log "PostgreSQL stopped ($(elapsed "$t"))"
}

stop_epmd() {
  # Erlang's port mapper, started along with RabbitMQ; it refuses to stop
  # while some Erlang node is still registered.
  if port_closed 127.0.0.1 4369; then return; fi
  if command -v epmd >/dev/null 2>&1; then
    log "stopping epmd …"
    as_root epmd -kill >/dev/null 2>&1 || warn "epmd -kill failed (an Erlang node still uses it?)"
  fi
}

stop_platform_ha() {
  # The ZooKeeper ensemble and RabbitMQ cluster of DBAAS_PLATFORM=ha (scripts/platform-ha.sh).
  bash "$DBAAS_ROOT/scripts/platform-ha.sh" stop
}

stop_haproxy() {
  # Every proxy `scripts/proxy.sh start` started from this checkout (.dbaas/proxy/<port>/).
  bash "$DBAAS_ROOT/scripts/proxy.sh" stop --all
}

# The proxy first (clients stop reaching the orchestrators), PostgreSQL (the workers' storage), the HA platform's cluster and ensemble, ZooKeeper, then RabbitMQ, then epmd (it must outlive the nodes).
for name in haproxy postgresql platform-ha zookeeper rabbitmq epmd; do
  if ! is_listed "$name" || ! is_wanted "$name"; then continue; fi
  "stop_${name//-/_}"
  forget "$name"
done
for name in "${wanted[@]}"; do
  case "$name" in
    haproxy | postgresql | platform-ha | zookeeper | rabbitmq | epmd) ;;
    *) warn "unknown service '$name' (known: haproxy, postgresql, platform-ha, zookeeper, rabbitmq, epmd)"; forget "$name" ;;
  esac
done
