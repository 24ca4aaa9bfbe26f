#!/usr/bin/env bash
# Prepares the Docker runtime (DBAAS_RUNTIME=docker), idempotently:
#   1. a Docker Engine: reuses one that answers; else installs Debian's
#      docker.io when dockerd is missing, and starts dockerd in the background
#   2. the way containers reach the host's RabbitMQ and ZooKeeper (they run on
#      the host, listening on 127.0.0.1; see docs/DOCKER.md "Networking"):
#      - ZooKeeper: a socat relay on the docker0 gateway address, port 2181
#        (restarted by a loop when it dies; this script restarts the loop)
#      - RabbitMQ: it listens on every address already; containers log in as
#        a user of this checkout's own (dbaas-docker-<checkout id>, random
#        password), because RabbitMQ lets guest in only from loopback. The user
#        is created only on a broker a dbaas set-up started; on any other
#        broker this script changes nothing and says what to create
#      - with DBAAS_PLATFORM=ha (scripts/platform-ha.sh, whose nodes and servers
#        listen on 127.0.0.1 only): one relay per ZooKeeper server (2281-2283)
#        and per RabbitMQ node (5682-5684) on the gateway address, and the user
#        created on the HA cluster (users are cluster-wide)
#   3. the images, built offline (docker/build-offline.sh) when missing or
#      stale, tagged per checkout (dbaas-worker:checkout-<checkout id>, …)
# and writes the settings the runtime needs to .dbaas/runtime.env:
#   DBAAS_DOCKER_STATUS=ready | "unavailable: <why>", DBAAS_DOCKER_AMQP_URL,
#   DBAAS_DOCKER_ZK_CONNECT, DBAAS_DOCKER_WORKER_IMAGE, DBAAS_DOCKER_DB_IMAGE.
#
#   scripts/setup-docker.sh             set up; exit 1 when Docker cannot be made ready
#   scripts/setup-docker.sh --optional  same, but only warn (exit 0) when it cannot;
#                                       the Docker tests then skip, loudly
#   scripts/setup-docker.sh stop        stop the dockerd and the relay this script started
#   scripts/setup-docker.sh stop-ha-relays
#                                       stop only the relays to the HA platform's ports (2281-2283,
#                                       5682-5684); `dbaas teardown` runs it once no dbaas container is left
#
# Knobs: DBAAS_REQUIRE_DOCKER=1 makes --optional fail like the plain form
# (for CI); DBAAS_DOCKERD_ARGS adds flags to dockerd; DBAAS_SERVICE_TIMEOUT_S;
# DBAAS_DOCKER_HOST_GATEWAY=<IPv4> the host's address on the bridge, when it
# cannot be found from the engine or the docker0 interface.
# Run scripts/setup.sh first (RabbitMQ, ZooKeeper, dist/, FerretDB).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"
mkdir -p "$DBAAS_STATE_DIR"

MODE=required
case "${1:-}" in
  --optional) MODE=optional ;;
  stop) MODE=stop ;;
  stop-ha-relays) MODE=stop-ha-relays ;;
  "") ;;
  *) die "usage: scripts/setup-docker.sh [--optional | stop | stop-ha-relays]" ;;
esac
[[ "${DBAAS_REQUIRE_DOCKER:-}" == 1 && "$MODE" == optional ]] && MODE=required

SERVICE_TIMEOUT_S=${DBAAS_SERVICE_TIMEOUT_S:-90}
DOCKER_STARTED_FILE=$DBAAS_STATE_DIR/docker-started
DOCKERD_LOG=$DBAAS_STATE_DIR/dockerd.log
DOCKERD_PID_FILE=$DBAAS_STATE_DIR/dockerd.pid
RELAY_PID_FILE=$DBAAS_STATE_DIR/zk-relay.pid
RELAY_LOG=$DBAAS_STATE_DIR/zk-relay.log
AMQP_SECRET_FILE=$DBAAS_STATE_DIR/docker-amqp.secret
AMQP_USER=dbaas-docker-$DBAAS_CHECKOUT_ID
# Images of this checkout: another checkout's build never replaces them.
IMAGE_TAG=${DBAAS_IMAGE_TAG:-checkout-$DBAAS_CHECKOUT_ID}
# The name containers use for the host (the engine maps it to its host-gateway
# address; with DBAAS_DOCKER_HOST_GATEWAY the containers are given that address).
HOST_ALIAS=host.docker.internal
[[ -n "${DBAAS_DOCKER_HOST_GATEWAY:-}" ]] && HOST_ALIAS=$DBAAS_DOCKER_HOST_GATEWAY
started=$(now_ms)

# unavailable REASON: records why Docker cannot be used, then fails or warns.
unavailable() { runtime_unavailable DBAAS_DOCKER_STATUS "Docker" "$1"; }

record_docker_started() {
  touch "$DOCKER_STARTED_FILE"
  grep -qx "$1" "$DOCKER_STARTED_FILE" || echo "$1" >>"$DOCKER_STARTED_FILE"
}

pid_alive() { [[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null; }

# The relays: zk-relay (single ZooKeeper, 2181; its pid file keeps its old name) and relay-PORT (the HA platform's).
relay_pid_file() { if [[ "$1" == zk-relay ]]; then echo "$RELAY_PID_FILE"; else echo "$DBAAS_STATE_DIR/$1.pid"; fi; }

# The HA platform (DBAAS_PLATFORM=ha): its ZooKeeper client ports and RabbitMQ AMQP ports (scripts/platform-ha.sh).
HA_ZK_PORTS=(2281 2282 2283)
HA_AMQP_PORTS=(5682 5683 5684)
PLATFORM=${DBAAS_PLATFORM:-single}

engine_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# ------------------------------------------------------------------ stop --

# The HA platform's relays only (relay-PORT), each named on standard output when stopped; the engine and the
# single ZooKeeper's relay stay. What is not running any more is forgotten too.
if [[ "$MODE" == stop-ha-relays ]]; then
  [[ -s "$DOCKER_STARTED_FILE" ]] || exit 0
  kept=$(mktemp)
  while read -r what; do
    if [[ "$what" != relay-* ]]; then
      echo "$what" >>"$kept"
      continue
    fi
    file=$(relay_pid_file "$what")
    pid=$(cat "$file" 2>/dev/null || true)
    if pid_alive "$pid"; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      echo "$what"
    fi
    rm -f "$file"
  done <"$DOCKER_STARTED_FILE"
  mv "$kept" "$DOCKER_STARTED_FILE"
  exit 0
fi

if [[ "$MODE" == stop ]]; then
  if [[ ! -s "$DOCKER_STARTED_FILE" ]]; then
    log "nothing started by scripts/setup-docker.sh is recorded; nothing to stop"
    exit 0
  fi
  while read -r what; do
    [[ "$what" == zk-relay || "$what" == relay-* ]] || continue
    file=$(relay_pid_file "$what")
    pid=$(cat "$file" 2>/dev/null || true)
    if pid_alive "$pid"; then
      log "stopping the relay $what (process group $pid)"
      kill -TERM -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$file"
  done <"$DOCKER_STARTED_FILE"
  if grep -qx dockerd "$DOCKER_STARTED_FILE"; then
    pid=$(cat "$DOCKERD_PID_FILE" 2>/dev/null || true)
    if pid_alive "$pid"; then
      log "stopping dockerd (pid $pid); its containers stop with it"
      kill -TERM "$pid" 2>/dev/null || true
      wait_for 30 "dockerd (pid $pid) to exit" bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DOCKERD_PID_FILE"
  fi
  rm -f "$DOCKER_STARTED_FILE"
  exit 0
fi

# One run at a time (the tests call this too).
if command -v flock >/dev/null 2>&1; then
  exec 8>"$DBAAS_STATE_DIR/setup-docker.lock"
  flock -w 900 8 || die "gave up waiting for .dbaas/setup-docker.lock"
fi

# --------------------------------------------------------- 1. the engine --

step_engine() {
  local t dockerd pid
  t=$(now_ms)
  if command -v docker >/dev/null 2>&1 && engine_answers; then
    log "reusing the Docker Engine that answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null)) ($(elapsed "$t"))"
    return
  fi
  if ! dockerd=$(command -v dockerd || ls /usr/sbin/dockerd 2>/dev/null); then
    command -v apt-get >/dev/null 2>&1 ||
      unavailable "no Docker Engine, and apt-get is missing: install Docker Engine (https://docs.docker.com/engine/install/) and start it"
    (( EUID == 0 )) || command -v sudo >/dev/null 2>&1 || unavailable "installing docker.io needs root (or sudo)"
    log "installing Docker Engine (apt-get install docker.io) …"
    export DEBIAN_FRONTEND=noninteractive
    { as_root apt-get update && as_root apt-get install -y --no-install-recommends docker.io; } >>"$DBAAS_STATE_DIR/apt.log" 2>&1 ||
      unavailable "apt-get install docker.io failed (log $DBAAS_STATE_DIR/apt.log)"
    dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
    # With systemd the package starts the engine by itself.
    if engine_answers; then
      log "Docker Engine installed and started by its package ($(elapsed "$t"))"
      return
    fi
  fi
  (( EUID == 0 )) || unavailable "the Docker Engine does not answer and starting dockerd needs root: start it (sudo systemctl start docker) or add yourself to the docker group"
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if pid_alive "$pid"; then
    log "dockerd (pid $pid) runs but does not answer yet; waiting …"
  else
    log "starting dockerd (log $DOCKERD_LOG) …"
    printf '\n===== %s scripts/setup-docker.sh starts dockerd\n' "$(date -Is)" >>"$DOCKERD_LOG"
    # shellcheck disable=SC2086  # DBAAS_DOCKERD_ARGS is a list of flags
    setsid "$dockerd" ${DBAAS_DOCKERD_ARGS:-} </dev/null >>"$DOCKERD_LOG" 2>&1 8>&- 9>&- &
    pid=$!
    echo "$pid" >"$DOCKERD_PID_FILE"
    record_docker_started dockerd
  fi
  engine_ready() {
    engine_answers && return 0
    pid_alive "$pid" || { tail -n 20 "$DOCKERD_LOG" >&2; unavailable "dockerd exited at start (log $DOCKERD_LOG)"; }
    return 1
  }
  wait_for "$SERVICE_TIMEOUT_S" "the Docker Engine to answer" engine_ready ||
    unavailable "dockerd did not answer within ${SERVICE_TIMEOUT_S} s (log $DOCKERD_LOG)"
  log "Docker Engine $(docker version --format '{{.Server.Version}}') started, pid $pid ($(elapsed "$t"))"
}

# ------------------------------------------- 2. host services for containers --

# find_gateway: sets GW to the host's address on Docker's default bridge (what
# containers reach the host at, and where the ZooKeeper relay listens) and
# GW_FROM to where it came from; fails when no address can be found. In order:
#   1. DBAAS_DOCKER_HOST_GATEWAY, when set (hosts where neither below works)
#   2. the gateway the engine lists for its bridge network
#   3. the IPv4 address of the bridge's interface (docker0): a freshly started
#      dockerd may list the bridge's subnet with no gateway at all
GW="" GW_FROM=""
find_gateway() {
  local ifname
  if [[ -n "${DBAAS_DOCKER_HOST_GATEWAY:-}" ]]; then
    [[ "$DBAAS_DOCKER_HOST_GATEWAY" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] ||
      unavailable "DBAAS_DOCKER_HOST_GATEWAY=$DBAAS_DOCKER_HOST_GATEWAY is not an IPv4 address"
    GW=$DBAAS_DOCKER_HOST_GATEWAY GW_FROM="DBAAS_DOCKER_HOST_GATEWAY"
    return 0
  fi
  GW=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' 2>/dev/null | awk '{print $1}')
  if [[ -n "$GW" ]]; then
    GW_FROM="the gateway of Docker's bridge network"
    return 0
  fi
  ifname=$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null || true)
  [[ -n "$ifname" && "$ifname" != "<no value>" ]] || ifname=docker0
  if command -v ip >/dev/null 2>&1; then
    GW=$(ip -4 -o addr show dev "$ifname" 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
  elif command -v ifconfig >/dev/null 2>&1; then
    GW=$(ifconfig "$ifname" 2>/dev/null | awk '$1 == "inet" { sub(/^addr:/, "", $2); print $2; exit }')
  fi
  if [[ -n "$GW" ]]; then
    GW_FROM="the address of interface $ifname (the engine lists no gateway for its bridge)"
    return 0
  fi
  unavailable "cannot tell the host's address on the Docker bridge: 'docker network inspect bridge' lists no gateway and interface $ifname has no IPv4 address; set DBAAS_DOCKER_HOST_GATEWAY to the host address containers reach (docs/DOCKER.md, Troubleshooting)"
}

# relay NAME GW PORT READY: a socat relay GW:PORT → 127.0.0.1:PORT in a process group of its own,
# restarted by a small loop when socat dies; READY GW PORT tells when it (or what already listens there) answers.
relay() {
  local name=$1 gw=$2 port=$3 ready=$4 pid socat file
  file=$(relay_pid_file "$name")
  if "$ready" "$gw" "$port"; then
    log "$gw:$port answers already"
    return
  fi
  if ! socat=$(command -v socat); then
    command -v apt-get >/dev/null 2>&1 || unavailable "socat is missing (install it: it relays ZooKeeper to containers)"
    log "installing socat …"
    as_root apt-get install -y --no-install-recommends socat >>"$DBAAS_STATE_DIR/apt.log" 2>&1 || unavailable "apt-get install socat failed"
    socat=$(command -v socat)
  fi
  # A relay of ours that is stuck, or bound to an old gateway address.
  pid=$(cat "$file" 2>/dev/null || true)
  if pid_alive "$pid"; then kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; fi
  log "relaying $gw:$port → 127.0.0.1:$port to containers (socat, log $RELAY_LOG)"
  # shellcheck disable=SC2016  # $0 and $@ belong to the inner bash
  setsid bash -c 'while :; do "$0" "$@"; echo "socat exited ($?); restarting" >&2; sleep 1; done' \
    "$socat" "TCP-LISTEN:$port,bind=$gw,reuseaddr,fork" "TCP:127.0.0.1:$port" </dev/null >>"$RELAY_LOG" 2>&1 8>&- 9>&- &
  echo $! >"$file"
  record_docker_started "$name"
  wait_for 10 "the relay on $gw:$port" "$ready" "$gw" "$port" || unavailable "the relay on $gw:$port does not answer (log $RELAY_LOG)"
}

zk_answers() { [[ "$(zk_four_letter "$1" "$2" ruok)" == imok ]]; }
amqp_port_open() { port_open "$1" "$2"; }

step_zk_relay() {
  local t gw=$1 port
  t=$(now_ms)
  if [[ "$PLATFORM" == ha ]]; then
    [[ "$(zk_four_letter 127.0.0.1 "${HA_ZK_PORTS[0]}" ruok)" == imok ]] || unavailable "the HA ZooKeeper ensemble does not answer on 127.0.0.1:${HA_ZK_PORTS[0]} (run scripts/setup.sh with DBAAS_PLATFORM=ha first)"
    for port in "${HA_ZK_PORTS[@]}" "${HA_AMQP_PORTS[@]}"; do
      if (( port < 5000 )); then relay "relay-$port" "$gw" "$port" zk_answers; else relay "relay-$port" "$gw" "$port" amqp_port_open; fi
    done
    log "the HA ZooKeeper servers and RabbitMQ nodes reachable from containers as $HOST_ALIAS:${HA_ZK_PORTS[*]} and :${HA_AMQP_PORTS[*]} ($(elapsed "$t"))"
    return
  fi
  zk_ruok || unavailable "ZooKeeper does not answer on 127.0.0.1:2181 (run scripts/setup.sh first)"
  relay zk-relay "$gw" 2181 zk_answers
  log "ZooKeeper reachable from containers as $HOST_ALIAS:2181 ($(elapsed "$t"))"
}

amqp_login_ok() {
  node -e '
    require("amqplib").connect(process.argv[1], { timeout: 5000 })
      .then((c) => c.close())
      .then(() => process.exit(0), (e) => { console.error(String(e && e.message || e)); process.exit(1); });
  ' "$1" 2>"$DBAAS_STATE_DIR/amqp-docker-check.err"
}

step_amqp_user() {
  local t gw=$1 password ctl
  t=$(now_ms)
  # Hex: rabbitmqctl takes a password that begins with '-' for an option (add_user and change_password
  # both fail), which a base64url one did for one checkout in 64; such an older one is replaced.
  if [[ ! -s "$AMQP_SECRET_FILE" || "$(head -c 1 "$AMQP_SECRET_FILE")" == - ]]; then
    (umask 077 && head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$AMQP_SECRET_FILE")
  fi
  password=$(cat "$AMQP_SECRET_FILE")
  # The broker (or, with DBAAS_PLATFORM=ha, the cluster's nodes) as containers name it; the node rabbitmqctl asks.
  local ports=(5672) node_args=() url port
  if [[ "$PLATFORM" == ha ]]; then ports=("${HA_AMQP_PORTS[@]}") node_args=(-n "dbaas-ha-1@$(hostname -s)"); fi
  AMQP_URL_FOR_CONTAINERS=""
  for port in "${ports[@]}"; do
    url="amqp://$AMQP_USER:$password@$HOST_ALIAS:$port"
    AMQP_URL_FOR_CONTAINERS+="${AMQP_URL_FOR_CONTAINERS:+,}$url"
  done
  # Log in over the gateway address, as a container would.
  if amqp_login_ok "amqp://$AMQP_USER:$password@$gw:${ports[0]}"; then
    log "RabbitMQ lets $AMQP_USER in on $gw:${ports[0]} ($(elapsed "$t"))"
    return
  fi
  local missing
  missing="RabbitMQ on $gw:${ports[0]} refuses $AMQP_USER ($(cat "$DBAAS_STATE_DIR/amqp-docker-check.err"))"
  local create="rabbitmqctl add_user $AMQP_USER \"\$(cat $AMQP_SECRET_FILE)\" && rabbitmqctl set_permissions -p / $AMQP_USER '.*' '.*' '.*'"
  # Credentials are ours to manage only on a broker a dbaas set-up started (the HA platform always is).
  [[ "$PLATFORM" == ha ]] || rabbitmq_started_by_dbaas ||
    unavailable "$missing, and that broker was not started by a dbaas set-up, so its users are left alone: create the user containers log in as ($create), then run this again"
  ctl=$(command -v rabbitmqctl || ls /usr/sbin/rabbitmqctl 2>/dev/null) ||
    unavailable "$missing and rabbitmqctl is missing to create it ($create)"
  log "creating this checkout's RabbitMQ user $AMQP_USER for containers …"
  as_root "$ctl" "${node_args[@]}" -q add_user "$AMQP_USER" "$password" >/dev/null 2>&1 || as_root "$ctl" "${node_args[@]}" -q change_password "$AMQP_USER" "$password" >/dev/null
  as_root "$ctl" "${node_args[@]}" -q set_permissions -p / "$AMQP_USER" '.*' '.*' '.*' >/dev/null
  amqp_login_ok "amqp://$AMQP_USER:$password@$gw:${ports[0]}" ||
    unavailable "RabbitMQ still refuses $AMQP_USER on $gw:${ports[0]}: $(cat "$DBAAS_STATE_DIR/amqp-docker-check.err") (does it listen on every address?)"
  log "RabbitMQ user $AMQP_USER ready ($(elapsed "$t"))"
}

# ------------------------------------------------------------ 3. images --

step_images() {
  local t out
  t=$(now_ms)
  [[ -f "$DBAAS_RUNTIME_ENV" ]] && load_runtime_env
  if ! out=$(DBAAS_IMAGE_TAG=$IMAGE_TAG bash "$DBAAS_ROOT/docker/build-offline.sh" 2>&1); then
    printf '%s\n' "$out" >&2
    unavailable "building the images failed (errors above)"
  fi
  printf '%s\n' "$out"
  :
}

# --------------------------------------------------------------- main --

step_engine
find_gateway
log "containers reach the host at $GW ($GW_FROM)"
step_zk_relay "$GW"
step_amqp_user "$GW"
step_images
set_runtime_env DBAAS_DOCKER_AMQP_URL "$AMQP_URL_FOR_CONTAINERS"
if [[ "$PLATFORM" == ha ]]; then
  zk_for_containers=""
  for port in "${HA_ZK_PORTS[@]}"; do zk_for_containers+="${zk_for_containers:+,}$HOST_ALIAS:$port"; done
  set_runtime_env DBAAS_DOCKER_ZK_CONNECT "$zk_for_containers"
else
  set_runtime_env DBAAS_DOCKER_ZK_CONNECT "$HOST_ALIAS:2181"
fi
set_runtime_env DBAAS_DOCKER_WORKER_IMAGE "dbaas-worker:$IMAGE_TAG"
set_runtime_env DBAAS_DOCKER_DB_IMAGE "dbaas-ferretdb:$IMAGE_TAG"
set_runtime_env DBAAS_DOCKER_STATUS ready
log "Docker runtime ready in $(elapsed "$started") (settings in .dbaas/runtime.env)"
