#!/usr/bin/env bash
# DBAAS_PLATFORM=ha on one machine: a 3-server ZooKeeper ensemble and a 3-node
# RabbitMQ cluster, each with ports, names and data of its own under .dbaas/ha/,
# so that none of them collides with the single-mode services (RabbitMQ 5672,
# ZooKeeper 2181) or with another checkout's.
#
#   scripts/platform-ha.sh start    start whatever is not running (ZooKeeper first, then RabbitMQ), wait until
#                                   the ensemble has a leader and every node runs in one cluster; idempotent
#                                   (also what restarts a killed server or node: it rejoins with its own data)
#   scripts/platform-ha.sh start-one zookeeper|rabbitmq N
#                                   start server or node N (1-3) alone if it is not running and wait until it
#                                   serves in the ensemble or cluster (the lifecycle manager's restart)
#   scripts/platform-ha.sh stop     stop every node and server this script started (RabbitMQ first)
#   scripts/platform-ha.sh status   one line per service: kind, name, address, pid, state (exit 1 if any is down)
#   scripts/platform-ha.sh env      the settings a process needs: DBAAS_PLATFORM, DBAAS_AMQP_URL, DBAAS_ZK_CONNECT
#
# Ports: ZooKeeper clients 2281-2283 (quorum 28881-28883, election 38881-38883);
# RabbitMQ AMQP 5682-5684 (Erlang distribution 25682-25684, names dbaas-ha-N@<host>).
# The RabbitMQ nodes run as the package's rabbitmq user and share its Erlang
# cookie (/var/lib/rabbitmq/.erlang.cookie), which is how they and rabbitmqctl
# authenticate to each other. The ZooKeeper servers run Debian's jars with
# Java, as scripts/setup.sh runs the single server.
#
# Environment knobs: DBAAS_SERVICE_TIMEOUT_S (how long to wait for each step, 120).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

HA_DIR=$DBAAS_STATE_DIR/ha
HA_ENV=$HA_DIR/platform.env
TIMEOUT_S=${DBAAS_SERVICE_TIMEOUT_S:-120}
HA_IDS=(1 2 3)
HOST_SHORT=$(hostname -s)

zk_port() { echo $((2280 + $1)); }
zk_dir() { echo "$HA_DIR/zookeeper/$1"; }
rmq_port() { echo $((5681 + $1)); }
rmq_node() { echo "dbaas-ha-$1@$HOST_SHORT"; }
rmq_dir() {
  if [[ -s "$HA_DIR/rabbitmq-dir" ]]; then echo "$(cat "$HA_DIR/rabbitmq-dir")/$1"; else echo "$HA_DIR/rabbitmq/$1"; fi
}

zk_connect() {
  local i out=()
  for i in "${HA_IDS[@]}"; do out+=("127.0.0.1:$(zk_port "$i")"); done
  (IFS=,; echo "${out[*]}")
}
amqp_urls() {
  local i out=()
  for i in "${HA_IDS[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(rmq_port "$i")"); done
  (IFS=,; echo "${out[*]}")
}

# ---------------------------------------------------------------- ZooKeeper --

zk_pid() { cat "$(zk_dir "$1")/zookeeper.pid" 2>/dev/null || true; }
zk_alive() { pid_is_zookeeper "$(zk_pid "$1")"; }
# Serving: part of a quorum (leader or follower); ruok answers imok even without one.
zk_mode() { zk_four_letter 127.0.0.1 "$(zk_port "$1")" srvr | sed -n 's/^Mode: //p'; }
zk_serving() { [[ "$(zk_mode "$1")" =~ ^(leader|follower)$ ]]; }

write_zk_config() {
  local i=$1 dir j
  dir=$(zk_dir "$i")
  mkdir -p "$dir/data"
  echo "$i" >"$dir/data/myid"
  {
    echo "# Written by scripts/platform-ha.sh; rewritten whenever it starts this server."
    echo "# tickTime=250 as the single server: sessions as short as 500 ms are allowed."
    echo "tickTime=250"
    echo "minSessionTimeout=500"
    echo "maxSessionTimeout=10000"
    echo "initLimit=40"
    echo "syncLimit=8"
    echo "dataDir=$dir/data"
    echo "clientPort=$(zk_port "$i")"
    echo "clientPortAddress=127.0.0.1"
    echo "maxClientCnxns=0"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=ruok,srvr,mntr,stat"
    echo "autopurge.snapRetainCount=3"
    echo "autopurge.purgeInterval=1"
    # A peer that is down refuses at once on loopback; keep connection attempts short anyway.
    echo "cnxTimeout=1000"
    for j in "${HA_IDS[@]}"; do echo "server.$j=127.0.0.1:$((28880 + j)):$((38880 + j))"; done
  } >"$dir/zoo.cfg"
  write_zookeeper_log4j "$dir"
}

start_zk() {
  local i=$1 dir port java cp
  dir=$(zk_dir "$i")
  port=$(zk_port "$i")
  if zk_alive "$i"; then return 0; fi
  if port_open 127.0.0.1 "$port"; then
    die "something that is not this checkout's ZooKeeper server $i listens on 127.0.0.1:$port; stop it first"
  fi
  cp=$(zookeeper_classpath) || die "ZooKeeper's jars are missing: run scripts/setup.sh once (it installs Debian's zookeeper), or set ZOOKEEPER_HOME"
  java=$(command -v java) || die "java is missing: apt-get install default-jre-headless"
  write_zk_config "$i"
  rm -f "$dir/zookeeper.pid"
  log "starting ZooKeeper server $i on 127.0.0.1:$port (data in ${dir#"$DBAAS_ROOT/"}) …"
  printf '\n===== %s scripts/platform-ha.sh starts ZooKeeper server %s\n' "$(date -Is)" "$i" >>"$dir/zookeeper.log"
  spawn_zookeeper "$java" "$cp" "$dir" "$dir/zookeeper.pid" "$dir/zookeeper.log" 192m
  record_started platform-ha
  wait_for 10 "ZooKeeper server $i's pid file" test -s "$dir/zookeeper.pid" || true
}

# ----------------------------------------------------------------- RabbitMQ --

# rmq_pid I: the OS pid of node I: from its pid file, else (the file is written a little
# into the boot, and removed by a second start of the same name that gives up) the
# beam process whose environment names the node.
rmq_pid() {
  local pid dir want
  pid=$(as_root cat "$(rmq_dir "$1")/node.pid" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs beam "/proc/$pid/comm"; then echo "$pid"; return; fi
  want="RABBITMQ_NODENAME=$(rmq_node "$1")"
  for dir in /proc/[0-9]*; do
    [[ "$(cat "$dir/comm" 2>/dev/null)" == beam.smp ]] || continue
    if tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qx "$want"; then echo "${dir#/proc/}"; return; fi
  done
}
rmq_alive() {
  local pid
  pid=$(rmq_pid "$1")
  [[ "$pid" =~ ^[0-9]+$ ]] && grep -qs beam "/proc/$pid/comm"
}
rmq_ctl() {
  local i=$1
  shift
  as_root timeout 60 "$CTL" -n "$(rmq_node "$i")" "$@"
}
rmq_started() { rmq_ctl "$1" -q await_startup >/dev/null 2>&1; }
rmq_running() { as_root timeout 20 "$DIAG" -q -n "$(rmq_node "$1")" check_running >/dev/null 2>&1; }
# The disk nodes of the cluster node i belongs to, one per line.
rmq_members() {
  rmq_ctl "$1" -q cluster_status --formatter json 2>/dev/null |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { try { for (const n of JSON.parse(s).disk_nodes ?? []) console.log(n); } catch {} });'
}
rmq_in_cluster() { rmq_members "$1" | grep -qx "$(rmq_node 1)"; }

prepare_rmq_dir() {
  local i=$1 dir
  dir=$(rmq_dir "$i")
  mkdir -p "$dir/mnesia" "$dir/log"
  if id -u rabbitmq >/dev/null 2>&1 && (( EUID == 0 )); then
    chown -R rabbitmq:rabbitmq "$dir"
    if ! su rabbitmq -s /bin/sh -c "test -w '$dir/mnesia'"; then
      local own
      own="/var/lib/rabbitmq/dbaas-ha-$DBAAS_CHECKOUT_ID"
      warn "the rabbitmq user cannot write to $dir; using $own instead"
      echo "$own" >"$HA_DIR/rabbitmq-dir"
      dir=$(rmq_dir "$i")
      mkdir -p "$dir/mnesia" "$dir/log"
      chown -R rabbitmq:rabbitmq "$own"
    fi
  fi
  {
    echo "# Written by scripts/platform-ha.sh; rewritten whenever it starts this node."
    echo "listeners.tcp.default = 127.0.0.1:$(rmq_port "$i")"
    echo "loopback_users.guest = true"
  } >"$dir/rabbitmq.conf"
  # No plugins: the single node's (if any) would want the same ports.
  echo '[].' >"$dir/enabled_plugins"
  if id -u rabbitmq >/dev/null 2>&1 && (( EUID == 0 )); then chown rabbitmq:rabbitmq "$dir/rabbitmq.conf" "$dir/enabled_plugins"; fi
}

start_rmq() {
  local i=$1 dir port server
  port=$(rmq_port "$i")
  if rmq_alive "$i"; then return 0; fi
  if port_open 127.0.0.1 "$port"; then
    die "something that is not this checkout's RabbitMQ node $i listens on 127.0.0.1:$port; stop it first"
  fi
  server=$(find_cmd rabbitmq-server) || die "rabbitmq-server is missing: run scripts/setup.sh once (it installs Debian's rabbitmq-server)"
  prepare_rmq_dir "$i"
  dir=$(rmq_dir "$i")
  log "starting RabbitMQ node $(rmq_node "$i") on 127.0.0.1:$port (state in ${dir#"$DBAAS_ROOT/"}) …"
  port_open 127.0.0.1 4369 || record_started epmd
  record_started platform-ha
  (
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    export RABBITMQ_NODENAME
    RABBITMQ_NODENAME=$(rmq_node "$i")
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$((port + 20000))
    export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_PID_FILE=$dir/node.pid
    export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
    as_root "$server" -detached
  ) >>"$HA_DIR/rabbitmq-start.log" 2>&1 8>&- 9>&- ||
    warn "rabbitmq-server -detached for node $i exited with an error (see $HA_DIR/rabbitmq-start.log); waiting anyway"
}

# join_rmq I: makes node I (running, fresh or reset) a member of node 1's cluster.
join_rmq() {
  local i=$1
  log "joining $(rmq_node "$i") to $(rmq_node 1)'s cluster …"
  {
    rmq_ctl "$i" -q stop_app && rmq_ctl "$i" -q reset && rmq_ctl "$i" -q join_cluster "$(rmq_node 1)" && rmq_ctl "$i" -q start_app
  } >>"$HA_DIR/rabbitmq-join.log" 2>&1 || die "joining $(rmq_node "$i") to the cluster failed; see $HA_DIR/rabbitmq-join.log"
}

# ---------------------------------------------------------------- commands --

write_env() {
  mkdir -p "$HA_DIR"
  {
    echo "DBAAS_PLATFORM=ha"
    printf 'DBAAS_AMQP_URL=%q\n' "$(amqp_urls)"
    printf 'DBAAS_ZK_CONNECT=%q\n' "$(zk_connect)"
  } >"$HA_ENV.tmp"
  mv -f "$HA_ENV.tmp" "$HA_ENV"
}

zk_ready() {
  zk_serving "$1" && return 0
  zk_alive "$1" || die "ZooKeeper server $1 exited during startup; log $(zk_dir "$1")/zookeeper.log"
  return 1
}

# A node started right after it was killed can find its name still taken (epmd has not seen
# the old one go yet) and give up: one that is neither running nor alive is started again.
rmq_running_or_restart() {
  rmq_running "$1" && return 0
  rmq_alive "$1" || start_rmq "$1"
  return 1
}

# start_one_zk I: server I alone (if not running), until it serves again in the ensemble.
start_one_zk() {
  local i=$1 t
  t=$(now_ms)
  start_zk "$i"
  wait_for "$TIMEOUT_S" "ZooKeeper server $i to serve (leader or follower)" zk_ready "$i" ||
    die "ZooKeeper server $i does not serve; log $(zk_dir "$i")/zookeeper.log"
  log "ZooKeeper server $i serving on 127.0.0.1:$(zk_port "$i") ($(elapsed "$t"))"
}

# start_one_rmq I: node I alone (if not running), until it runs in the cluster and listens.
start_one_rmq() {
  local i=$1 t
  t=$(now_ms)
  start_rmq "$i"
  wait_for "$TIMEOUT_S" "RabbitMQ node $(rmq_node "$i") to run" rmq_running_or_restart "$i" ||
    die "RabbitMQ node $(rmq_node "$i") does not run; logs in $(rmq_dir "$i")/log/"
  (( i == 1 )) || rmq_in_cluster "$i" || join_rmq "$i"
  wait_for "$TIMEOUT_S" "RabbitMQ node $(rmq_node "$i") to run in the cluster" rmq_started "$i" ||
    die "RabbitMQ node $(rmq_node "$i") did not finish starting; logs in $(rmq_dir "$i")/log/"
  wait_for "$TIMEOUT_S" "RabbitMQ node $i to listen on 127.0.0.1:$(rmq_port "$i")" port_open 127.0.0.1 "$(rmq_port "$i")" ||
    die "RabbitMQ node $(rmq_node "$i") does not listen on $(rmq_port "$i")"
  log "RabbitMQ node $(rmq_node "$i") running on 127.0.0.1:$(rmq_port "$i") ($(elapsed "$t"))"
}

# cmd_start_one zookeeper|rabbitmq I: what the lifecycle manager runs to restart one server or node.
cmd_start_one() {
  local kind=${1:-} i=${2:-}
  [[ "$i" =~ ^[123]$ ]] || die "usage: scripts/platform-ha.sh start-one zookeeper|rabbitmq 1|2|3"
  mkdir -p "$HA_DIR"
  exec 8>"$HA_DIR/platform.lock"
  flock -w 600 8 || die "another platform-ha.sh holds $HA_DIR/platform.lock"
  case "$kind" in
    zookeeper) start_one_zk "$i" ;;
    rabbitmq)
      CTL=$(find_cmd rabbitmqctl) || die "rabbitmqctl is missing"
      DIAG=$(find_cmd rabbitmq-diagnostics) || die "rabbitmq-diagnostics is missing"
      start_one_rmq "$i"
      ;;
    *) die "usage: scripts/platform-ha.sh start-one zookeeper|rabbitmq 1|2|3" ;;
  esac
}

cmd_start() {
  local t i
  t=$(now_ms)
  mkdir -p "$HA_DIR"
  CTL=$(find_cmd rabbitmqctl) || die "rabbitmqctl is missing: run scripts/setup.sh once (it installs Debian's rabbitmq-server)"
  DIAG=$(find_cmd rabbitmq-diagnostics) || die "rabbitmq-diagnostics is missing"
  # One start or stop at a time (fd 8; what this starts must not inherit it, hence 8>&- below).
  exec 8>"$HA_DIR/platform.lock"
  flock -w 600 8 || die "another platform-ha.sh holds $HA_DIR/platform.lock"

  # 1. ZooKeeper: every server, then a quorum (a leader and its followers).
  for i in "${HA_IDS[@]}"; do start_zk "$i"; done
  for i in "${HA_IDS[@]}"; do
    wait_for "$TIMEOUT_S" "ZooKeeper server $i to serve (leader or follower) on 127.0.0.1:$(zk_port "$i")" zk_ready "$i" ||
      die "ZooKeeper server $i does not serve; log $(zk_dir "$i")/zookeeper.log"
  done
  log "ZooKeeper ensemble serving on $(zk_connect) ($(elapsed "$t"))"

  # 2. RabbitMQ: every node at once (a node restarted alone rejoins from its own data), then the cluster.
  for i in "${HA_IDS[@]}"; do start_rmq "$i"; done
  for i in "${HA_IDS[@]}"; do
    wait_for "$TIMEOUT_S" "RabbitMQ node $(rmq_node "$i") to run (rabbitmq-diagnostics check_running)" rmq_running_or_restart "$i" ||
      die "RabbitMQ node $(rmq_node "$i") does not run; logs in $(rmq_dir "$i")/log/"
  done
  for i in "${HA_IDS[@]:1}"; do
    rmq_in_cluster "$i" || join_rmq "$i"
  done
  for i in "${HA_IDS[@]}"; do
    wait_for "$TIMEOUT_S" "RabbitMQ node $(rmq_node "$i") to run in the cluster" rmq_started "$i" ||
      die "RabbitMQ node $(rmq_node "$i") did not finish starting; logs in $(rmq_dir "$i")/log/"
    port_open 127.0.0.1 "$(rmq_port "$i")" || wait_for "$TIMEOUT_S" "RabbitMQ node $i to listen on 127.0.0.1:$(rmq_port "$i")" port_open 127.0.0.1 "$(rmq_port "$i")" ||
      die "RabbitMQ node $(rmq_node "$i") does not listen on $(rmq_port "$i")"
  done
  log "RabbitMQ cluster of $(rmq_members 1 | tr '\n' ' ')running on 127.0.0.1:5682-5684 ($(elapsed "$t"))"
  write_env
  log "HA platform ready ($(elapsed "$t")); settings in ${HA_ENV#"$DBAAS_ROOT/"}"
}

stop_zk() {
  local i=$1 pid
  pid=$(zk_pid "$i")
  if pid_is_zookeeper "$pid"; then
    log "stopping ZooKeeper server $i (pid $pid) …"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 15 "ZooKeeper server $i to exit" bash -c "! kill -0 $pid 2>/dev/null"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$(zk_dir "$i")/zookeeper.pid"
}

stop_rmq() {
  local i=$1 pid
  rmq_alive "$i" || return 0
  pid=$(rmq_pid "$i")
  log "stopping RabbitMQ node $(rmq_node "$i") (pid $pid) …"
  if ! as_root timeout 60 "$CTL" -q -n "$(rmq_node "$i")" stop >/dev/null 2>&1; then
    warn "rabbitmqctl stop failed for $(rmq_node "$i"); killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait_for 30 "RabbitMQ node $i to exit" bash -c "! grep -qs beam /proc/$pid/comm" || true
}

cmd_stop() {
  local t i
  t=$(now_ms)
  mkdir -p "$HA_DIR"
  CTL=$(find_cmd rabbitmqctl || echo rabbitmqctl)
  exec 8>"$HA_DIR/platform.lock"
  flock -w 600 8 || die "another platform-ha.sh holds $HA_DIR/platform.lock"
  # RabbitMQ first (its clients lose the broker before ZooKeeper), the last node stopped is node 1,
  # the one the others join: the cluster restarts from it without waiting for a peer.
  for i in 3 2 1; do stop_rmq "$i"; done
  for i in "${HA_IDS[@]}"; do stop_zk "$i"; done
  log "HA platform stopped ($(elapsed "$t"))"
}

cmd_status() {
  local i down=0 state
  CTL=$(find_cmd rabbitmqctl || echo rabbitmqctl)
  DIAG=$(find_cmd rabbitmq-diagnostics || echo rabbitmq-diagnostics)
  for i in "${HA_IDS[@]}"; do
    state=$(zk_mode "$i")
    [[ -n "$state" ]] || { state=down; down=1; }
    printf 'zookeeper\tzk-%s\t127.0.0.1:%s\t%s\t%s\n' "$i" "$(zk_port "$i")" "$(zk_pid "$i")" "$state"
  done
  for i in "${HA_IDS[@]}"; do
    if rmq_running "$i"; then state=running; else state=down; down=1; fi
    printf 'rabbitmq\t%s\t127.0.0.1:%s\t%s\t%s\n' "$(rmq_node "$i")" "$(rmq_port "$i")" "$(rmq_pid "$i")" "$state"
  done
  return "$down"
}

case "${1:-}" in
  start) cmd_start ;;
  start-one) cmd_start_one "${2:-}" "${3:-}" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env)
    echo "DBAAS_PLATFORM=ha"
    echo "DBAAS_AMQP_URL=$(amqp_urls)"
    echo "DBAAS_ZK_CONNECT=$(zk_connect)"
    ;;
  *) die "usage: scripts/platform-ha.sh start|start-one zookeeper|rabbitmq N|stop|status|env" ;;
esac
