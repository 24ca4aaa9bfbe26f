#!/usr/bin/env bash
# Prepares everything `npm start` and `npm test` need, idempotently:
#   1. npm dependencies and the TypeScript build (dist/)
#   2. RabbitMQ on 127.0.0.1:5672 (guest/guest), or the one DBAAS_AMQP_URL names elsewhere (checked, never started)
#   3. ZooKeeper on 127.0.0.1:2181 (our own config, short ticks), or the one DBAAS_ZK_CONNECT names elsewhere (likewise)
#   4. a MongoDB-compatible server binary (DBAAS_DB_BIN, mongod, or FerretDB)
#   5. PostgreSQL on 127.0.0.1:15433 for the workers' FerretDB (DBAAS_DB_BACKEND=postgresql)
# Services already listening are reused; services this script starts are
# recorded in .dbaas/started-services (scripts/stop-services.sh stops them).
# The results the other scripts need are written to .dbaas/runtime.env.
#
# Environment knobs:
#   SETUP_SKIP_BUILD=1        skip `npm run build`
#   SETUP_SKIP_DOCKER=1       with DBAAS_RUNTIME=docker: skip scripts/setup-docker.sh
#   DBAAS_DB_BIN=/path        database server binary to use
#   DBAAS_DB_BACKEND          postgresql (default) or sqlite: where each worker's FerretDB keeps its data
#   DBAAS_PG_PORT             port of the PostgreSQL server setup.sh starts (15433)
#   DBAAS_PG_URL              use this PostgreSQL server instead (a superuser connection)
#   DBAAS_SERVICE_TIMEOUT_S   how long to wait for a service to start (90)
#   DBAAS_PLATFORM            single (default: steps 2 and 3 as above) or ha: instead, a 3-server ZooKeeper
#                             ensemble and a 3-node RabbitMQ cluster (scripts/platform-ha.sh), whose addresses
#                             go to .dbaas/runtime.env as DBAAS_AMQP_URL and DBAAS_ZK_CONNECT
#
#   scripts/setup.sh --only rabbitmq|zookeeper   only that step (the lifecycle manager restarts a single-mode
#                                                service this way: orchestrator/lifecycle/platform-services.ts)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"
mkdir -p "$DBAAS_STATE_DIR"

SERVICE_TIMEOUT_S=${DBAAS_SERVICE_TIMEOUT_S:-90}
FERRETDB_VERSION=v1.24.2
COMPOSE_HINT="or run the whole stack in containers with: docker compose -f docker/compose.yaml up"
setup_started=$(now_ms)

# One setup at a time on this checkout (start.sh and test.sh both run it).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$DBAAS_STATE_DIR/setup.lock"
  if ! flock -n 9; then
    log "another setup run holds .dbaas/setup.lock; waiting for it …"
    flock -w 900 9 || die "gave up waiting for .dbaas/setup.lock"
  fi
fi

# ---------------------------------------------------------------- helpers --

APT_UPDATED=0
APT_LOG="$DBAAS_STATE_DIR/apt.log"

# apt_install PACKAGE...: installs Debian packages (apt-get update once per run).
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if (( ! APT_UPDATED )); then
    log "apt-get update …"
    as_root apt-get update >>"$APT_LOG" 2>&1 ||
      { tail -n 30 "$APT_LOG" >&2; die "apt-get update failed (full log: $APT_LOG)"; }
    APT_UPDATED=1
  fi
  log "apt-get install $* …"
  as_root apt-get install -y --no-install-recommends "$@" >>"$APT_LOG" 2>&1 ||
    { tail -n 30 "$APT_LOG" >&2; die "apt-get install $* failed (full log: $APT_LOG)"; }
}

# ------------------------------------------------------ 1. npm and build --

# npm_progress LOG: while `npm ci` runs, prints every 5 s how many of the lock
# file's packages are in node_modules (npm itself shows nothing until the end
# when its output is not a terminal).
npm_progress() {
  local t total have
  t=$(now_ms)
  total=$(node -e '
    const l = require("./package-lock.json");
    let n = 0;
    for (const [p, v] of Object.entries(l.packages || {})) {
      if (!/^node_modules\/(@[^/]+\/)?[^/]+$/.test(p)) continue;
      if (v.os && !v.os.includes(process.platform)) continue;
      if (v.cpu && !v.cpu.includes(process.arch)) continue;
      if (v.libc && !v.libc.includes("glibc")) continue;
      n++;
    }
    console.log(n);' 2>/dev/null || echo "?")
  # Stops by itself when the set-up is gone (killed during npm ci).
  while sleep 5 && kill -0 $$ 2>/dev/null; do
    # A package counts once its files are unpacked (npm makes the directories first).
    have=$(( $(find node_modules -mindepth 2 -maxdepth 2 -name package.json ! -path 'node_modules/@*' 2>/dev/null | wc -l) +
      $(find node_modules -mindepth 3 -maxdepth 3 -path 'node_modules/@*/*/package.json' 2>/dev/null | wc -l) ))
    log "npm ci: $have of about $total packages in node_modules ($(elapsed "$t"))"
  done
}

# Dependencies come from package-lock.json, always (`npm ci`). A lock file out
# of step with package.json is an error that says how to fix it, never a
# silent `npm install` that resolves something else.
step_npm() {
  local t stamp=$DBAAS_STATE_DIR/npm-ci.stamp want npm_log=$DBAAS_STATE_DIR/npm-ci.log ticker status
  t=$(now_ms)
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    die "Node.js and npm are missing: install Node.js ≥ 20 with npm (https://nodejs.org/, or apt-get install nodejs npm on Debian ≥ 13)"
  node_at_least 20 0 || die "Node.js $(node --version) is too old: dbaas needs Node.js ≥ 20 (https://nodejs.org/)"
  [[ -f package-lock.json ]] ||
    die "package-lock.json is missing: dependencies are installed from it (npm ci). Restore it (git checkout package-lock.json), or create it with 'npm install' and commit it"
  # The stamp covers what decides node_modules: package.json's dependency fields
  # (not its scripts or version) and the whole lock file.
  want=$({ node -e 'const p = require("./package.json");
    const f = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies", "overrides", "bundleDependencies"];
    console.log(JSON.stringify(f.map((k) => p[k] ?? null)))'; cat package-lock.json; } | sha256sum | cut -c1-32)
  if [[ -f node_modules/.package-lock.json && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    log "reusing node_modules (installed from this package-lock.json) ($(elapsed "$t"))"
    return
  fi
  log "installing npm dependencies from package-lock.json (npm ci; about 15-30 s the first time) …"
  npm_progress &
  ticker=$!
  status=0
  npm ci --no-audit --no-fund 2>&1 | tee "$npm_log" || status=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  if (( status != 0 )); then
    rm -f "$stamp"
    if grep -q -E 'can only install packages when your package.json and package-lock.json|from lock file|Invalid: lock file' "$npm_log"; then
      die "package-lock.json is out of step with package.json (npm ci refused, lines above; log $npm_log). Fix: run 'npm install' (it updates package-lock.json), check that 'npm ci' then succeeds, and commit package-lock.json"
    fi
    die "npm ci failed (lines above; log $npm_log)"
  fi
  echo "$want" >"$stamp"
  log "npm dependencies installed ($(elapsed "$t"))"
}

# True when no source or config file changed since the last successful build.
build_is_current() {
  local stamp=$DBAAS_STATE_DIR/build.stamp
  [[ -f "$stamp" && -d dist ]] || return 1
  [[ -z "$(find . \( -path ./node_modules -o -path ./dist -o -path ./.git -o -path ./.dbaas -o -path ./data \) -prune \
      -o \( -name '*.ts' -o -name 'tsconfig*.json' -o -name 'package*.json' -o -path './orchestrator/dashboard/*' \) -newer "$stamp" -print 2>/dev/null | head -n 1)" ]]
}

step_build() {
  local t out stamp=$DBAAS_STATE_DIR/build.stamp
  t=$(now_ms)
  if [[ "${SETUP_SKIP_BUILD:-}" == 1 ]]; then
    log "skipping the TypeScript build (SETUP_SKIP_BUILD=1)"
    return
  fi
  if build_is_current; then
    log "reusing dist/ (no source changed since the last build) ($(elapsed "$t"))"
    return
  fi
  log "building TypeScript (npm run build) …"
  # Stamp the start time, so that files edited during the build count as changed.
  touch "$stamp.next"
  if ! out=$(npm run -s build 2>&1); then
    rm -f "$stamp.next"
    printf '%s\n' "$out" >&2
    die "the TypeScript build failed (npm run build, errors above)"
  fi
  mv -f "$stamp.next" "$stamp"
  log "built dist/ ($(elapsed "$t"))"
}

# ----------------------------------------------------------- 2. RabbitMQ --

# amqp_guest_ok: logs in as the services will (DBAAS_AMQP_URL, default guest/guest).
amqp_guest_ok() {
  # amqplib is a project dependency, so it is in node_modules by now.
  DBAAS_CHECK_URL=${DBAAS_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672} node -e '
    require("amqplib").connect(process.env.DBAAS_CHECK_URL, { timeout: 5000 })
      .then((c) => c.close())
      .then(() => process.exit(0), (e) => { console.error(String(e && e.message || e)); process.exit(1); });
  ' 2>"$DBAAS_STATE_DIR/amqp-check.err"
}

rabbitmq_log_hint() {
  local node_log
  node_log="$DBAAS_RABBITMQ_DIR/log/rabbit@$(hostname -s).log"
  echo "logs: $node_log, $DBAAS_RABBITMQ_DIR/log/ and $DBAAS_STATE_DIR/rabbitmq-start.log"
  if [[ -r "$node_log" ]]; then
    echo "--- last lines of $node_log:"
    tail -n 20 "$node_log"
  fi
}

# ensure_guest_user RABBITMQCTL: makes sure guest/guest logs in. Only on a
# broker a dbaas set-up started (rabbitmq_started_by_dbaas) is the guest user
# restored; any other broker's users are never touched: it says what is missing.
ensure_guest_user() {
  local ctl=$1
  if amqp_guest_ok; then return 0; fi
  [[ -z "${DBAAS_AMQP_URL:-}" ]] ||
    die "RabbitMQ refuses DBAAS_AMQP_URL ($(cat "$DBAAS_STATE_DIR/amqp-check.err")); check its user and password"
  local missing
  missing="RabbitMQ on 127.0.0.1:5672 refuses guest/guest ($(cat "$DBAAS_STATE_DIR/amqp-check.err"))"
  if ! rabbitmq_started_by_dbaas; then
    die "$missing. That broker was not started by a dbaas set-up, so its users are left alone: point DBAAS_AMQP_URL at a user that may configure, write and read on vhost / (e.g. DBAAS_AMQP_URL=amqp://user:password@127.0.0.1:5672), or let guest log in from loopback (rabbitmqctl add_user guest guest; rabbitmqctl set_permissions -p / guest '.*' '.*' '.*')"
  fi
  [[ -n "$ctl" ]] || die "$missing and rabbitmqctl is missing to restore guest; or set DBAAS_AMQP_URL"
  log "RabbitMQ refused guest/guest ($(cat "$DBAAS_STATE_DIR/amqp-check.err")); restoring the guest user …"
  as_root "$ctl" -q add_vhost / >/dev/null 2>&1 || true
  as_root "$ctl" -q add_user guest guest >/dev/null 2>&1 || as_root "$ctl" -q change_password guest guest >/dev/null
  as_root "$ctl" -q set_user_tags guest administrator >/dev/null
  as_root "$ctl" -q set_permissions -p / guest '.*' '.*' '.*' >/dev/null
  amqp_guest_ok ||
    die "RabbitMQ still refuses guest/guest: $(cat "$DBAAS_STATE_DIR/amqp-check.err") (is guest limited by loopback_users, or is 127.0.0.1 not loopback here?)"
}

# prepare_rabbitmq_dir: creates DBAAS_RABBITMQ_DIR for the rabbitmq user the
# package runs the node as (when that user exists). A checkout that user
# cannot reach gets a directory of its own under /var/lib/rabbitmq.
prepare_rabbitmq_dir() {
  mkdir -p "$DBAAS_RABBITMQ_DIR/mnesia" "$DBAAS_RABBITMQ_DIR/log"
  if ! id -u rabbitmq >/dev/null 2>&1 || (( EUID != 0 )); then return; fi
  chown -R rabbitmq:rabbitmq "$DBAAS_RABBITMQ_DIR"
  if ! su rabbitmq -s /bin/sh -c "test -w '$DBAAS_RABBITMQ_DIR/mnesia'"; then
    local own
    own="/var/lib/rabbitmq/dbaas-$(printf '%s' "$DBAAS_ROOT" | md5sum | cut -c1-12)"
    warn "the rabbitmq user cannot write to $DBAAS_RABBITMQ_DIR; using $own instead"
    DBAAS_RABBITMQ_DIR=$own
    echo "$own" >"$DBAAS_STATE_DIR/rabbitmq-dir"
    mkdir -p "$own/mnesia" "$own/log"
    chown -R rabbitmq:rabbitmq "$own"
  fi
}

# configured_addresses LIST DEFAULT_PORT: the host:port of each comma-separated address of a
# DBAAS_AMQP_URL (amqp://user:password@host:port/vhost) or DBAAS_ZK_CONNECT (host:port, /chroot after
# the last one), one a line; a missing port is DEFAULT_PORT.
configured_addresses() {
  local item hostport items
  IFS=, read -ra items <<<"$1"
  for item in "${items[@]}"; do
    hostport=${item#*://}
    hostport=${hostport##*@}
    hostport=${hostport%%/*}
    hostport=${hostport%%\?*}
    [[ -n "$hostport" ]] || continue
    [[ "$hostport" == *:* ]] || hostport="$hostport:$2"
    echo "$hostport"
  done
}

# elsewhere LIST DEFAULT_PORT: true when a configured address list names anything but this
# machine's default port (127.0.0.1 or localhost), i.e. a server setup.sh must not start.
elsewhere() {
  local a
  while read -r a; do
    [[ "$a" == "127.0.0.1:$2" || "$a" == "localhost:$2" ]] || return 0
  done < <(configured_addresses "$1" "$2")
  return 1
}

# A RabbitMQ that DBAAS_AMQP_URL points at elsewhere is used, never started: it must let the services in.
use_configured_rabbitmq() {
  local t url urls
  t=$(now_ms)
  IFS=, read -ra urls <<<"$DBAAS_AMQP_URL"
  for url in "${urls[@]}"; do
    if DBAAS_AMQP_URL=$url amqp_guest_ok; then
      log "using RabbitMQ at $(configured_addresses "$url" 5672) (DBAAS_AMQP_URL; not started here) ($(elapsed "$t"))"
      return
    fi
  done
  die "RabbitMQ at $(configured_addresses "$DBAAS_AMQP_URL" 5672 | paste -sd, -) (DBAAS_AMQP_URL) does not let the services in: $(cat "$DBAAS_STATE_DIR/amqp-check.err"). It is not started here: start it, or unset DBAAS_AMQP_URL for this machine's own on 127.0.0.1:5672"
}

step_rabbitmq() {
  local t server ctl="" epmd_was_running=0
  if [[ -n "${DBAAS_AMQP_URL:-}" ]] && elsewhere "$DBAAS_AMQP_URL" 5672; then
    use_configured_rabbitmq
    return
  fi
  t=$(now_ms)
  ctl=$(find_cmd rabbitmqctl || true)
  if port_open 127.0.0.1 5672; then
    ensure_guest_user "$ctl"
    log "reusing RabbitMQ already listening on 127.0.0.1:5672 ($(elapsed "$t"))"
    return
  fi

  if ! server=$(find_cmd rabbitmq-server); then
    if ! command -v apt-get >/dev/null 2>&1; then
      die "RabbitMQ is not installed and apt-get is not available. Install RabbitMQ ≥ 3.10 (https://www.rabbitmq.com/docs/download, e.g. 'brew install rabbitmq' or 'dnf install rabbitmq-server') and start it on 127.0.0.1:5672, $COMPOSE_HINT"
    fi
    log "installing RabbitMQ (apt-get install rabbitmq-server) …"
    apt_install rabbitmq-server
    server=$(find_cmd rabbitmq-server) || die "rabbitmq-server is still missing after apt-get install"
    ctl=$(find_cmd rabbitmqctl || true)
    # On a machine with systemd, the package starts the service by itself.
    if port_open 127.0.0.1 5672; then
      ensure_guest_user "$ctl"
      log "reusing RabbitMQ started by its package ($(elapsed "$t"))"
      return
    fi
  fi

  port_open 127.0.0.1 4369 && epmd_was_running=1
  prepare_rabbitmq_dir
  log "starting RabbitMQ ($server -detached, state in ${DBAAS_RABBITMQ_DIR#"$DBAAS_ROOT/"}/) …"
  record_started rabbitmq
  # Erlang's port mapper daemon comes with the node: stop it with the node.
  (( epmd_was_running )) || record_started epmd
  # fd 9 is the setup lock: the daemon must not inherit it. Every durable
  # queue holds file handles while the node recovers it; 1024 is too few.
  (
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    rabbitmq_env
    as_root "$server" -detached
  ) >"$DBAAS_STATE_DIR/rabbitmq-start.log" 2>&1 9>&- ||
    warn "rabbitmq-server -detached exited with an error (see $DBAAS_STATE_DIR/rabbitmq-start.log); waiting for the port anyway"
  if ! wait_for "$SERVICE_TIMEOUT_S" "RabbitMQ to listen on 127.0.0.1:5672" port_open 127.0.0.1 5672; then
    rabbitmq_log_hint >&2
    die "RabbitMQ did not start within ${SERVICE_TIMEOUT_S} s"
  fi
  ensure_guest_user "$ctl"
  log "RabbitMQ started on 127.0.0.1:5672 ($(elapsed "$t"))"
}

# ---------------------------------------------------------- 3. ZooKeeper --

write_zookeeper_config() {
  mkdir -p "$DBAAS_ZK_DIR/data"
  cat >"$DBAAS_ZK_DIR/zoo.cfg" <<EOF
# Written by scripts/setup.sh; rewritten whenever it starts ZooKeeper.
# tickTime=250 so that clients may ask for sessions as short as 500 ms
# (the session timeout is bounded by 2..20 ticks unless set explicitly).
tickTime=250
minSessionTimeout=500
maxSessionTimeout=10000
initLimit=40
syncLimit=20
dataDir=$DBAAS_ZK_DIR/data
clientPort=2181
clientPortAddress=127.0.0.1
# every worker and test connects from 127.0.0.1: no per-address limit
maxClientCnxns=0
# the AdminServer would otherwise listen on port 8080
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,stat
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
  write_zookeeper_log4j "$DBAAS_ZK_DIR"
}

# A ZooKeeper that DBAAS_ZK_CONNECT points at elsewhere is used, never started: one of its servers must answer.
use_configured_zookeeper() {
  local t a
  t=$(now_ms)
  while read -r a; do
    if [[ "$(zk_four_letter "${a%:*}" "${a##*:}" ruok)" == imok || "$(zk_four_letter "${a%:*}" "${a##*:}" srvr)" == *Zookeeper* ]]; then
      log "using ZooKeeper at $a (DBAAS_ZK_CONNECT; not started here) ($(elapsed "$t"))"
      return
    fi
  done < <(configured_addresses "$DBAAS_ZK_CONNECT" 2181)
  die "ZooKeeper at $(configured_addresses "$DBAAS_ZK_CONNECT" 2181 | paste -sd, -) (DBAAS_ZK_CONNECT) does not answer (ruok, srvr). It is not started here: start it, or unset DBAAS_ZK_CONNECT for this machine's own on 127.0.0.1:2181"
}

step_zookeeper() {
  local t java cp pid zk_log=$DBAAS_ZK_DIR/zookeeper.log
  if [[ -n "${DBAAS_ZK_CONNECT:-}" ]] && elsewhere "$DBAAS_ZK_CONNECT" 2181; then
    use_configured_zookeeper
    return
  fi
  t=$(now_ms)
  if port_open 127.0.0.1 2181; then
    if zk_ruok || [[ "$(zk_four_letter 127.0.0.1 2181 srvr)" == *Zookeeper* ]]; then
      log "reusing ZooKeeper already listening on 127.0.0.1:2181 ($(elapsed "$t"))"
      return
    fi
    pid=$(cat "$DBAAS_ZK_PID_FILE" 2>/dev/null || true)
    if pid_is_zookeeper "$pid"; then
      # Ours, still starting.
      wait_for "$SERVICE_TIMEOUT_S" "ZooKeeper (pid $pid) to answer ruok" zk_ruok ||
        die "ZooKeeper (pid $pid) listens on 2181 but does not answer; see $zk_log"
      log "reusing ZooKeeper (pid $pid) on 127.0.0.1:2181 ($(elapsed "$t"))"
      return
    fi
    warn "something listens on 127.0.0.1:2181 but answers neither ruok nor srvr; assuming it is ZooKeeper"
    return
  fi

  if ! cp=$(zookeeper_classpath); then
    if ! command -v apt-get >/dev/null 2>&1; then
      die "ZooKeeper is not installed and apt-get is not available. Install ZooKeeper ≥ 3.6 (https://zookeeper.apache.org/releases.html) and set ZOOKEEPER_HOME to its directory, or start one yourself on 127.0.0.1:2181 (tickTime ≤ 1000 so 2 s sessions are allowed), $COMPOSE_HINT"
    fi
    log "installing ZooKeeper (apt-get install zookeeper) …"
    apt_install zookeeper
    cp=$(zookeeper_classpath) || die "ZooKeeper's jars are still missing after apt-get install zookeeper"
    # A package that started its own server (systemd) is reused.
    if port_open 127.0.0.1 2181 && zk_ruok; then
      warn "reusing the ZooKeeper started by its package: its tickTime may not allow 2 s sessions"
      return
    fi
  fi
  java=$(command -v java) ||
    die "java is missing: install a Java runtime ≥ 11 (apt-get install default-jre-headless), $COMPOSE_HINT"

  # A server of ours that is still running but not listening (yet).
  pid=$(cat "$DBAAS_ZK_PID_FILE" 2>/dev/null || true)
  if pid_is_zookeeper "$pid"; then
    log "ZooKeeper (pid $pid) is running but not listening yet; waiting …"
  else
    write_zookeeper_config
    rm -f "$DBAAS_ZK_PID_FILE"
    log "starting ZooKeeper (config $DBAAS_ZK_DIR/zoo.cfg, log $zk_log) …"
    printf '\n===== %s scripts/setup.sh starts ZooKeeper\n' "$(date -Is)" >>"$zk_log"
    spawn_zookeeper "$java" "$cp" "$DBAAS_ZK_DIR" "$DBAAS_ZK_PID_FILE" "$zk_log" 256m
    record_started zookeeper
    # Wait for the pid file that the wrapper writes.
    wait_for 10 "ZooKeeper's pid file" test -s "$DBAAS_ZK_PID_FILE" || true
    pid=$(cat "$DBAAS_ZK_PID_FILE" 2>/dev/null || true)
  fi

  zk_ready() {
    zk_ruok && return 0
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      echo "--- last lines of $zk_log:" >&2
      tail -n 30 "$zk_log" >&2
      die "ZooKeeper (pid $pid) exited during startup; full log: $zk_log"
    fi
    return 1
  }
  if ! wait_for "$SERVICE_TIMEOUT_S" "ZooKeeper to answer ruok on 127.0.0.1:2181" zk_ready; then
    echo "--- last lines of $zk_log:" >&2
    tail -n 30 "$zk_log" >&2
    die "ZooKeeper did not start within ${SERVICE_TIMEOUT_S} s; full log: $zk_log"
  fi
  log "ZooKeeper started on 127.0.0.1:2181, pid $pid ($(elapsed "$t"))"
}

# --------------------------------------------------- 4. database binary --

find_go() {
  command -v go 2>/dev/null && return 0
  local candidate
  for candidate in /usr/local/go/bin/go "$HOME/go/bin/go" /usr/lib/go/bin/go; do
    if [[ -x "$candidate" ]]; then echo "$candidate"; return 0; fi
  done
  return 1
}

# build_ferretdb OUTPUT: builds FerretDB $FERRETDB_VERSION into OUTPUT.
# `go install …@version` does not work through this machine's proxy, and the
# module's source lacks the generated build/version/version.txt (the binary
# panics at start without it), so: download, copy, add that file, build.
build_ferretdb() {
  local out=$1 go go_version tmp json dir build_log=$DBAAS_STATE_DIR/ferretdb-build.log
  local go_hint="install Go ≥ 1.24 (https://go.dev/dl/), or point DBAAS_DB_BIN at a mongod or ferretdb binary, $COMPOSE_HINT"
  go=$(find_go) || die "building FerretDB needs Go, which is missing: $go_hint"
  go_version=$("$go" env GOVERSION 2>/dev/null || echo unknown)
  if [[ "$go_version" =~ ^go1\.([0-9]+) ]] && (( BASH_REMATCH[1] < 24 )) && [[ "$("$go" env GOTOOLCHAIN)" == local ]]; then
    die "building FerretDB needs Go ≥ 1.24, found $go_version (and GOTOOLCHAIN=local): $go_hint"
  fi
  log "building FerretDB $FERRETDB_VERSION with $go_version (about a minute, once; log $build_log) …"
  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp -d)
  : >"$build_log"
  if ! json=$(cd "$tmp" && "$go" mod init dbaas-ferretdb-build >>"$build_log" 2>&1 &&
      "$go" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" 2>>"$build_log"); then
    rm -rf "$tmp"
    printf '%s\n' "$json" >>"$build_log"
    tail -n 20 "$build_log" >&2
    die "could not download FerretDB $FERRETDB_VERSION from the Go module proxy (log $build_log)"
  fi
  dir=$(printf '%s' "$json" | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).Dir || ""));')
  [[ -n "$dir" && -d "$dir" ]] || { rm -rf "$tmp"; die "go mod download gave no source directory for FerretDB: $json"; }
  # The module cache is read-only: build a writable copy.
  cp -R "$dir" "$tmp/src"
  chmod -R u+w "$tmp/src"
  echo "$FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
  echo "source" >"$tmp/src/build/version/package.txt"
  if ! (cd "$tmp/src" && "$go" build -trimpath -buildvcs=false -o "$out.partial" ./cmd/ferretdb) >>"$build_log" 2>&1; then
    rm -rf "$tmp" "$out.partial"
    tail -n 20 "$build_log" >&2
    die "building FerretDB failed (log $build_log)"
  fi
  rm -rf "$tmp"
  mv -f "$out.partial" "$out"
}

step_db_bin() {
  local t bin="" how="" cached
  t=$(now_ms)
  if [[ -n "${DBAAS_DB_BIN:-}" ]]; then
    if [[ -f "$DBAAS_DB_BIN" && -x "$DBAAS_DB_BIN" ]]; then
      bin=$(realpath -s "$DBAAS_DB_BIN")
      how="reusing DBAAS_DB_BIN"
    else
      warn "DBAAS_DB_BIN=$DBAAS_DB_BIN is not an executable file; looking for a database server instead"
    fi
  fi
  if [[ -z "$bin" ]] && command -v mongod >/dev/null 2>&1; then
    bin=$(realpath -s "$(command -v mongod)")
    how="reusing mongod found on PATH"
  fi
  if [[ -z "$bin" ]]; then
    cached="${XDG_CACHE_HOME:-$HOME/.cache}/dbaas/ferretdb-$FERRETDB_VERSION"
    if [[ -x "$cached" ]] && "$cached" --version >/dev/null 2>&1; then
      how="reusing FerretDB $FERRETDB_VERSION"
    else
      build_ferretdb "$cached"
      "$cached" --version >/dev/null 2>&1 || die "the FerretDB binary just built does not run: $cached --version"
      how="built FerretDB $FERRETDB_VERSION"
    fi
    bin=$cached
  fi
  set_runtime_env DBAAS_DB_BIN "$bin"
  log "$how: DBAAS_DB_BIN=$bin ($(elapsed "$t"))"
}

# ------------------------------------------- 5. PostgreSQL for FerretDB --

# DBAAS_DB_BACKEND=postgresql (the default): every worker's FerretDB keeps its
# data in a database of its own on one PostgreSQL server per checkout, which
# answers lookups by _id and by indexed fields from an index (FerretDB on
# SQLite scans the table for every one; docs/DECISIONS.md). sqlite: no server.
DB_BACKEND=${DBAAS_DB_BACKEND:-postgresql}
PG_PORT=${DBAAS_PG_PORT:-15433}
PSQL=psql

# pg_login_ok URL: a superuser session on that server works (as the orchestrator's will).
pg_login_ok() {
  [[ "$("$PSQL" -X -q -A -t -d "$1" -c 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user' 2>"$DBAAS_STATE_DIR/pg-check.err")" == t ]]
}

# prepare_pg_dir: DBAAS_PG_DIR, owned by the postgres user when we are root. A
# checkout that user cannot reach gets a directory under /var/lib/postgresql.
prepare_pg_dir() {
  mkdir -p "$DBAAS_PG_DIR"
  if (( EUID != 0 )); then return; fi
  id -u postgres >/dev/null 2>&1 ||
    die "PostgreSQL refuses to run as root and there is no postgres user: create one (useradd --system postgres), run as a normal user, or set DBAAS_DB_BACKEND=sqlite"
  chown postgres:postgres "$DBAAS_PG_DIR"
  if ! runuser -u postgres -- test -w "$DBAAS_PG_DIR"; then
    local own
    own="/var/lib/postgresql/dbaas-$DBAAS_CHECKOUT_ID"
    warn "the postgres user cannot write to $DBAAS_PG_DIR; using $own instead"
    DBAAS_PG_DIR=$own
    echo "$own" >"$DBAAS_STATE_DIR/postgresql-dir"
    mkdir -p "$own"
    chown postgres:postgres "$own"
  fi
}

# write_pg_config DATA: our settings, included from postgresql.conf (rewritten every start).
write_pg_config() {
  local data=$1
  {
    echo "# Written by scripts/setup.sh; rewritten whenever it starts PostgreSQL."
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $PG_PORT"
    echo "# no Unix socket: a checkout's path can be longer than a socket path may be"
    echo "unix_socket_directories = ''"
    echo "# a FerretDB connection pool per worker (opened as needed, up to 128 each), several clusters in the tests"
    echo "max_connections = 1000"
    echo "# FerretDB passes a filter's field name as a parameter (_jsonb -> \$1 @> \$2): only"
    echo "# a plan made for the actual values can use an index on _jsonb -> 'field'"
    echo "plan_cache_mode = force_custom_plan"
    echo "# short queries: compiling one takes longer than running it"
    echo "jit = off"
  } >"$data/dbaas.conf"
  grep -qx "include_if_exists = 'dbaas.conf'" "$data/postgresql.conf" ||
    echo "include_if_exists = 'dbaas.conf'" >>"$data/postgresql.conf"
  if (( EUID == 0 )); then chown postgres:postgres "$data/dbaas.conf"; fi
}

step_postgresql() {
  local t bindir data pg_log url version db_bin
  t=$(now_ms)
  case "$DB_BACKEND" in
    sqlite)
      set_runtime_env DBAAS_DB_BACKEND sqlite
      log "DBAAS_DB_BACKEND=sqlite: each worker's FerretDB keeps its data in SQLite files (no PostgreSQL)"
      return ;;
    postgresql) ;;
    *) die "DBAAS_DB_BACKEND=$DB_BACKEND: must be postgresql or sqlite" ;;
  esac
  db_bin=$(sed -n 's/^DBAAS_DB_BIN=//p' "$DBAAS_RUNTIME_ENV")
  if [[ "$(basename "$db_bin")" == mongod* ]]; then
    log "the workers' database server is mongod: no PostgreSQL needed"
    return
  fi
  if ! bindir=$(pg_bindir); then
    if ! command -v apt-get >/dev/null 2>&1; then
      die "PostgreSQL (where each worker's FerretDB keeps its data) is not installed and apt-get is not available. Install PostgreSQL ≥ 13 (https://www.postgresql.org/download/) so that pg_ctl and initdb are on PATH, or set DBAAS_PG_URL to a server where you are a superuser, or DBAAS_DB_BACKEND=sqlite (lookups scan), $COMPOSE_HINT"
    fi
    log "installing PostgreSQL (apt-get install postgresql) …"
    apt_install postgresql
    bindir=$(pg_bindir) || die "PostgreSQL's pg_ctl and initdb are still missing after apt-get install postgresql"
  fi
  PSQL=$bindir/psql
  [[ -x "$PSQL" ]] || PSQL=$(command -v psql) || die "psql is missing (apt-get install postgresql-client)"

  # A server of the user's own.
  if [[ -n "${DBAAS_PG_URL:-}" ]]; then
    pg_login_ok "$DBAAS_PG_URL" ||
      die "DBAAS_PG_URL gives no superuser session ($(cat "$DBAAS_STATE_DIR/pg-check.err")): the process runtime creates and drops a database per worker"
    set_runtime_env DBAAS_DB_BACKEND postgresql
    set_runtime_env DBAAS_PG_URL "$DBAAS_PG_URL"
    log "reusing PostgreSQL at DBAAS_PG_URL ($(elapsed "$t"))"
    return
  fi

  url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  if port_open 127.0.0.1 "$PG_PORT"; then
    pg_login_ok "$url" ||
      die "something listens on 127.0.0.1:$PG_PORT but postgres cannot log in there without a password ($(cat "$DBAAS_STATE_DIR/pg-check.err")): set DBAAS_PG_PORT to a free port, DBAAS_PG_URL to a server where you are a superuser, or DBAAS_DB_BACKEND=sqlite"
    set_runtime_env DBAAS_DB_BACKEND postgresql
    set_runtime_env DBAAS_PG_URL "$url"
    log "reusing PostgreSQL already listening on 127.0.0.1:$PG_PORT ($(elapsed "$t"))"
    return
  fi

  prepare_pg_dir
  data=$DBAAS_PG_DIR/data
  pg_log=$DBAAS_PG_DIR/postgresql.log
  version=$("$bindir/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
  if [[ -f "$data/PG_VERSION" && "$(cat "$data/PG_VERSION")" != "$version" ]]; then
    die "$data holds a PostgreSQL $(cat "$data/PG_VERSION") cluster but the server found is version $version ($bindir): install PostgreSQL $(cat "$data/PG_VERSION"), or remove $DBAAS_PG_DIR (the workers' data in it is lost)"
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "creating a PostgreSQL $version cluster in ${data#"$DBAAS_ROOT/"} (initdb) …"
    rm -rf "$data"
    # cd /: the postgres user may not be allowed into the current directory.
    (cd / && as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C) >"$DBAAS_PG_DIR/initdb.log" 2>&1 ||
      { tail -n 20 "$DBAAS_PG_DIR/initdb.log" >&2; die "initdb failed (log $DBAAS_PG_DIR/initdb.log)"; }
  fi
  # This checkout's server, running on another port (DBAAS_PG_PORT changed).
  local running_pid running_port
  running_pid=$(sed -n 1p "$data/postmaster.pid" 2>/dev/null || true)
  if [[ "$running_pid" =~ ^[0-9]+$ ]] && kill -0 "$running_pid" 2>/dev/null; then
    running_port=$(sed -n 4p "$data/postmaster.pid")
    die "this checkout's PostgreSQL (pid $running_pid) runs on port $running_port, not $PG_PORT: set DBAAS_PG_PORT=$running_port, or stop it first (scripts/stop-services.sh postgresql)"
  fi
  write_pg_config "$data"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT (data in ${data#"$DBAAS_ROOT/"}, log $pg_log) …"
  record_started postgresql
  # setsid: a session of its own, so a Ctrl-C in the terminal (SIGINT: a fast
  # shutdown) does not reach it; 9>&-: the server must not hold the setup lock.
  if ! (cd / && if (( EUID == 0 )); then setsid -w runuser -u postgres -- "$bindir/pg_ctl" -D "$data" -l "$pg_log" -w -t "$SERVICE_TIMEOUT_S" start;
      else setsid -w "$bindir/pg_ctl" -D "$data" -l "$pg_log" -w -t "$SERVICE_TIMEOUT_S" start; fi) >"$DBAAS_PG_DIR/pg_ctl.log" 2>&1 9>&-; then
    echo "--- last lines of $pg_log:" >&2
    tail -n 20 "$pg_log" >&2
    die "PostgreSQL did not start (pg_ctl: $(tail -n 1 "$DBAAS_PG_DIR/pg_ctl.log"))"
  fi
  wait_for "$SERVICE_TIMEOUT_S" "PostgreSQL to accept postgres@127.0.0.1:$PG_PORT" pg_login_ok "$url" ||
    die "PostgreSQL started but does not accept postgres@127.0.0.1:$PG_PORT ($(cat "$DBAAS_STATE_DIR/pg-check.err")); log $pg_log"
  set_runtime_env DBAAS_DB_BACKEND postgresql
  set_runtime_env DBAAS_PG_URL "$url"
  log "PostgreSQL $version started on 127.0.0.1:$PG_PORT ($(elapsed "$t"))"
}

# ------------------------------------------ 2+3 in HA mode: scripts/platform-ha.sh --

# DBAAS_PLATFORM=ha: the packages as in steps 2 and 3, none of their single
# services, then the ensemble and the cluster; the orchestrator gets their
# addresses through .dbaas/runtime.env.
step_platform_ha() {
  local t
  t=$(now_ms)
  if ! find_cmd rabbitmq-server >/dev/null || ! zookeeper_classpath >/dev/null || ! command -v java >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 ||
      die "DBAAS_PLATFORM=ha needs RabbitMQ ≥ 3.10, ZooKeeper ≥ 3.6 and Java installed (apt-get is not available to install them), $COMPOSE_HINT"
    apt_install rabbitmq-server zookeeper default-jre-headless
  fi
  # 9>&-: what it starts must not hold the setup lock.
  bash "$DBAAS_ROOT/scripts/platform-ha.sh" start 9>&-
  set_runtime_env DBAAS_PLATFORM ha
  set_runtime_env DBAAS_AMQP_URL "$(bash "$DBAAS_ROOT/scripts/platform-ha.sh" env | sed -n 's/^DBAAS_AMQP_URL=//p')"
  set_runtime_env DBAAS_ZK_CONNECT "$(bash "$DBAAS_ROOT/scripts/platform-ha.sh" env | sed -n 's/^DBAAS_ZK_CONNECT=//p')"
  log "HA platform ready: DBAAS_PLATFORM=ha in .dbaas/runtime.env ($(elapsed "$t"))"
}

# --------------------------------------------------------------- main --

if [[ "${1:-}" == --only ]]; then
  case "${2:-}" in
    rabbitmq) step_rabbitmq ;;
    zookeeper) step_zookeeper ;;
    *) die "usage: scripts/setup.sh [--only rabbitmq|zookeeper]" ;;
  esac
  exit 0
fi
# DBAAS_PLATFORM=ha with workers in containers: setup-docker.sh relays the HA servers and nodes to containers
# (docs/DOCKER.md). On Swarm it has not been tried: refused rather than half-wired.
if [[ "${DBAAS_PLATFORM:-single}" == ha && "${DBAAS_RUNTIME:-process}" == swarm ]]; then
  die "DBAAS_PLATFORM=ha with DBAAS_RUNTIME=swarm: not supported by npm start yet (not tried); use DBAAS_RUNTIME=process or docker with the HA platform, or docker/stack.yaml (docs/DOCKER.md)"
fi
log "setting up in $DBAAS_ROOT"
step_npm
step_build
case "${DBAAS_PLATFORM:-single}" in
  single)
    # A previous DBAAS_PLATFORM=ha set-up's addresses must not outlive it.
    if grep -q '^DBAAS_PLATFORM=ha$' "$DBAAS_RUNTIME_ENV" 2>/dev/null; then unset_runtime_env DBAAS_PLATFORM DBAAS_AMQP_URL DBAAS_ZK_CONNECT; fi
    step_rabbitmq
    step_zookeeper
    ;;
  ha) step_platform_ha ;;
  *) die "DBAAS_PLATFORM=${DBAAS_PLATFORM}: must be single or ha" ;;
esac
step_db_bin
step_postgresql
# DBAAS_RUNTIME=docker also needs a Docker Engine and the images (9>&-: what it starts must not hold the lock).
if [[ "${DBAAS_RUNTIME:-process}" == docker && "${SETUP_SKIP_DOCKER:-}" != 1 ]]; then
  bash "$DBAAS_ROOT/scripts/setup-docker.sh" 9>&-
fi
# DBAAS_RUNTIME=swarm: the same, and a swarm (a single-node one when the engine is in none).
if [[ "${DBAAS_RUNTIME:-process}" == swarm && "${SETUP_SKIP_DOCKER:-}" != 1 ]]; then
  bash "$DBAAS_ROOT/scripts/setup-swarm.sh" 9>&-
fi
log "setup done in $(elapsed "$setup_started") (settings for the other scripts: .dbaas/runtime.env)"
