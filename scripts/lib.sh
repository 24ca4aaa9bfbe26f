# Shared helpers for the dbaas shell scripts. Source it; do not run it.
# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this

DBAAS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DBAAS_STATE_DIR="$DBAAS_ROOT/.dbaas"
DBAAS_STARTED_FILE="$DBAAS_STATE_DIR/started-services"
DBAAS_RUNTIME_ENV="$DBAAS_STATE_DIR/runtime.env"
DBAAS_ZK_DIR="$DBAAS_STATE_DIR/zookeeper"
DBAAS_ZK_PID_FILE="$DBAAS_ZK_DIR/zookeeper.pid"
# The RabbitMQ node our scripts start keeps its state here, not in the
# package's /var/lib/rabbitmq: queues left by another checkout, or by an older
# run killed halfway, must not make this one's broker slow to boot. When the
# rabbitmq user cannot reach the checkout, setup.sh picks a directory of its
# own under /var/lib/rabbitmq and records it in .dbaas/rabbitmq-dir.
DBAAS_RABBITMQ_DIR="$DBAAS_STATE_DIR/rabbitmq"
if [[ -s "$DBAAS_STATE_DIR/rabbitmq-dir" ]]; then
  DBAAS_RABBITMQ_DIR=$(cat "$DBAAS_STATE_DIR/rabbitmq-dir")
fi

# A short name for this checkout (its path), for what several checkouts on one
# machine must not share: the Docker images' tag and the broker user of containers.
DBAAS_CHECKOUT_ID=$(printf '%s' "$DBAAS_ROOT" | md5sum | cut -c1-10)

log() { printf '[dbaas] %s\n' "$*"; }
warn() { printf '[dbaas] WARNING: %s\n' "$*" >&2; }
die() { printf '[dbaas] ERROR: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch, and "1.234 s" since a given start.
now_ms() { date +%s%3N; }
elapsed() {
  local ms=$(( $(now_ms) - $1 ))
  printf '%d.%03d s' $((ms / 1000)) $((ms % 1000))
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
  timeout 2 bash -c ": </dev/tcp/$1/$2" 2>/dev/null
}

# wait_for TIMEOUT_SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.25 s
# until it succeeds (returns 0) or the timeout passes (returns 1).
wait_for() {
  local timeout_s=$1 what=$2
  shift 2
  local deadline=$(( $(now_ms) + timeout_s * 1000 ))
  until "$@"; do
    if (( $(now_ms) >= deadline )); then
      warn "timed out after ${timeout_s} s waiting for $what"
      return 1
    fi
    sleep 0.25
  done
}

# zk_four_letter HOST PORT WORD: sends a ZooKeeper four-letter command and
# prints the answer (empty when nothing answered).
zk_four_letter() {
  timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2 && printf '%s' '$3' >&3 && cat <&3" 2>/dev/null || true
}

zk_ruok() { [[ "$(zk_four_letter 127.0.0.1 2181 ruok)" == imok ]]; }

# as_root COMMAND...: runs COMMAND as root (directly, or through sudo).
as_root() {
  if (( EUID == 0 )); then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "'$*' needs root and sudo is not installed"
  fi
}

# Service bookkeeping: .dbaas/started-services holds one name per line
# (rabbitmq, epmd, zookeeper) for every service that our scripts started.
record_started() {
  local name=$1
  mkdir -p "$DBAAS_STATE_DIR"
  touch "$DBAAS_STARTED_FILE"
  grep -qx "$name" "$DBAAS_STARTED_FILE" || echo "$name" >>"$DBAAS_STARTED_FILE"
  # start.sh passes a file of its own to learn what this run started.
  if [[ -n "${DBAAS_SETUP_STARTED_LOG:-}" ]]; then
    echo "$name" >>"$DBAAS_SETUP_STARTED_LOG"
  fi
}

# find_cmd NAME [EXTRA_PATH...]: prints the command's path (also looking in
# sbin directories, which are not on a normal user's PATH).
find_cmd() {
  local name=$1 candidate
  shift
  if command -v "$name" 2>/dev/null; then return 0; fi
  for candidate in "$@" "/usr/sbin/$name" "/usr/local/sbin/$name" "/sbin/$name"; do
    if [[ -x "$candidate" ]]; then echo "$candidate"; return 0; fi
  done
  return 1
}

# Prints the Java class path of an installed ZooKeeper server, or fails.
zookeeper_classpath() {
  local java_dir=/usr/share/java
  if [[ -f $java_dir/zookeeper.jar ]]; then
    # Debian's layout; zookeeper.jar's manifest lists its other jars.
    local cp=$java_dir/zookeeper.jar jar
    for jar in slf4j-log4j12.jar log4j-1.2.jar; do
      [[ -f $java_dir/$jar ]] && cp+=":$java_dir/$jar"
    done
    echo "$cp"
  elif [[ -n "${ZOOKEEPER_HOME:-}" && -d "$ZOOKEEPER_HOME/lib" ]]; then
    # An Apache release tarball.
    echo "$ZOOKEEPER_HOME/lib/*"
  else
    return 1
  fi
}

# write_zookeeper_log4j DIR: ZooKeeper's log4j settings (everything to the console, i.e. its log file).
write_zookeeper_log4j() {
  cat >"$1/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
EOF
}

# spawn_zookeeper JAVA CLASSPATH DIR PID_FILE LOG MAX_HEAP: starts a ZooKeeper server on
# DIR/zoo.cfg (and DIR/log4j.properties) in the background. setsid: its own session, so a
# Ctrl-C in the terminal does not reach it; the wrapper writes the pid of the process that
# then becomes java. The lock descriptors (8, 9) are not inherited.
spawn_zookeeper() {
  local java=$1 cp=$2 dir=$3 pid_file=$4 zk_log=$5 heap=$6
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pid_file" \
    "$java" -Xms32m "-Xmx$heap" -XX:+UseSerialGC \
    -Dzookeeper.log.dir="$dir" \
    -Dlog4j.configuration="file:$dir/log4j.properties" \
    -cp "$dir:$cp" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
    </dev/null >>"$zk_log" 2>&1 8>&- 9>&- &
}

# pid_is_zookeeper PID: the process exists and is a ZooKeeper server.
pid_is_zookeeper() {
  local pid=$1
  [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'org.apache.zookeeper.server'
}

# runtime_unavailable STATUS_VAR WHAT REASON: records in .dbaas/runtime.env why a
# container runtime (WHAT: "Docker", "Docker Swarm") cannot be used; with
# MODE=optional warns that its tests will be skipped and exits 0, else fails.
runtime_unavailable() {
  set_runtime_env "$1" "unavailable: $3"
  if [[ "${MODE:-}" == optional ]]; then
    warn "================================================================"
    warn "$2 is NOT available: $3"
    warn "the $2 runtime's tests will be SKIPPED (DBAAS_REQUIRE_DOCKER=1 makes this an error)"
    warn "================================================================"
    exit 0
  fi
  die "$2 is not available: $3"
}

# set_runtime_env KEY VALUE: sets one KEY=VALUE line of .dbaas/runtime.env,
# keeping the other lines.
set_runtime_env() {
  local key=$1 value=$2 tmp
  tmp=$(mktemp "$DBAAS_RUNTIME_ENV.XXXXXX")
  chmod 644 "$tmp"
  {
    [[ -f "$DBAAS_RUNTIME_ENV" ]] && grep -v "^$key=" "$DBAAS_RUNTIME_ENV" || true
    printf '%s=%q\n' "$key" "$value"
  } >"$tmp"
  mv -f "$tmp" "$DBAAS_RUNTIME_ENV"
}

# unset_runtime_env KEY...: removes these keys' lines from .dbaas/runtime.env (if any).
unset_runtime_env() {
  local key tmp
  [[ -f "$DBAAS_RUNTIME_ENV" ]] || return 0
  for key in "$@"; do
    grep -q "^$key=" "$DBAAS_RUNTIME_ENV" || continue
    tmp=$(mktemp "$DBAAS_RUNTIME_ENV.XXXXXX")
    chmod 644 "$tmp"
    grep -v "^$key=" "$DBAAS_RUNTIME_ENV" >"$tmp" || true
    mv -f "$tmp" "$DBAAS_RUNTIME_ENV"
  done
}

# load_runtime_env: exports every KEY=VALUE line of .dbaas/runtime.env.
load_runtime_env() {
  [[ -f "$DBAAS_RUNTIME_ENV" ]] || die "$DBAAS_RUNTIME_ENV is missing; run scripts/setup.sh"
  set -a
  # shellcheck disable=SC1090
  . "$DBAAS_RUNTIME_ENV"
  set +a
}

# rabbitmq_env: exports the variables that point the RabbitMQ node our
# scripts start at DBAAS_RABBITMQ_DIR (mnesia/ for its data, log/ for logs).
# The package's wrapper runs the node as the rabbitmq user and keeps the
# environment, so that user must own the directory.
rabbitmq_env() {
  export RABBITMQ_MNESIA_BASE="$DBAAS_RABBITMQ_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$DBAAS_RABBITMQ_DIR/log"
}

# rabbitmq_pid_file: where the node started by our scripts writes its OS pid.
rabbitmq_pid_file() {
  echo "$DBAAS_RABBITMQ_DIR/mnesia/rabbit@$(hostname -s).pid"
}

# rabbitmq_started_by_dbaas: true when a RabbitMQ node on this machine keeps its
# state where a dbaas set-up puts it (<checkout>/.dbaas/rabbitmq or
# /var/lib/rabbitmq/dbaas-*), i.e. a dbaas set-up started the broker. Only on
# such a broker do our scripts manage users; any other broker's credentials are
# never changed (they say what is missing instead). Reading another user's
# process environment needs root: as another user this is always false.
rabbitmq_started_by_dbaas() {
  local dir base
  for dir in /proc/[0-9]*; do
    [[ "$(cat "$dir/comm" 2>/dev/null)" == beam.smp ]] || continue
    base=$(tr '\0' '\n' <"$dir/environ" 2>/dev/null | sed -n 's/^RABBITMQ_MNESIA_BASE=//p')
    case "$base" in
      */.dbaas/rabbitmq/mnesia | /var/lib/rabbitmq/dbaas-*/mnesia) return 0 ;;
    esac
  done
  return 1
}

# node_at_least MAJOR MINOR: true when this Node.js is at least MAJOR.MINOR.
node_at_least() {
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > +process.argv[1] || (a === +process.argv[1] && b >= +process.argv[2]) ? 0 : 1)' "$1" "$2"
}

# PostgreSQL, the storage of every worker's FerretDB when DBAAS_DB_BACKEND=postgresql
# (the default): one server per checkout, its data in .dbaas/postgresql/data, on
# 127.0.0.1:DBAAS_PG_PORT (15433), one database per worker. When the postgres user
# cannot reach the checkout, setup.sh picks a directory of its own under
# /var/lib/postgresql and records it in .dbaas/postgresql-dir.
DBAAS_PG_DIR="$DBAAS_STATE_DIR/postgresql"
if [[ -s "$DBAAS_STATE_DIR/postgresql-dir" ]]; then
  DBAAS_PG_DIR=$(cat "$DBAAS_STATE_DIR/postgresql-dir")
fi

# pg_bindir: prints the directory of the newest PostgreSQL server binaries
# (Debian: /usr/lib/postgresql/<version>/bin), or fails.
pg_bindir() {
  local dir
  dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k4 -V | tail -n 1)
  if [[ -n "$dir" && -x "$dir/pg_ctl" && -x "$dir/initdb" ]]; then echo "$dir"; return 0; fi
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return 0; fi
  if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/pg_ctl" ]]; then pg_config --bindir; return 0; fi
  return 1
}

# as_pg COMMAND...: runs a PostgreSQL server command as the user that owns its
# data: the postgres user when we are root (the server refuses to run as root).
as_pg() {
  if (( EUID == 0 )); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
