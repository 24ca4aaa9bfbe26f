#!/usr/bin/env bash
# Builds the project's images with no container registry, from what this
# machine already has: the local Node.js runtime, the compiled project (dist/),
# its node_modules, and a FerretDB binary. The images are equivalent to the
# ones docker/Dockerfile builds from official images on a machine with
# registry access (same paths, user, entry points, labels):
#
#   dbaas-base:latest          glibc, the C++ runtime, /etc/passwd (user node, uid 1000), /tmp
#                              — imported from a root filesystem tarball (docker import)
#   dbaas-app-deps:latest      base + node + production node_modules (an intermediate step)
#   dbaas-worker:latest        app-deps + dist/, runs `node dist/worker/main.js` as node
#   dbaas-orchestrator:latest  same, runs `node dist/orchestrator/main.js`
#   dbaas-ferretdb:latest      base + FerretDB (SQLite backend) on :27017, data in /data/db, as node
#   dbaas-haproxy:latest       only with --proxy: Debian's HAProxy and its libraries, as node, config at
#                              /usr/local/etc/haproxy/haproxy.cfg (the official haproxy image's layout),
#                              for docker/compose.offline.yaml
#   dbaas-rabbitmq:latest      only with --platform: Debian's RabbitMQ 3.10 and Erlang, with an entry point
#                              that takes the official rabbitmq image's settings (docker/offline/rabbitmq-entrypoint.sh)
#   dbaas-zookeeper:latest     only with --platform: Debian's ZooKeeper 3.8 and Java 17, with an entry point
#                              that takes the official zookeeper image's ZOO_* settings (docker/offline/zookeeper-entrypoint.sh)
#                              — for docker/compose.ha.yaml and docker/stack.yaml (DBAAS_RABBITMQ_IMAGE, DBAAS_ZOOKEEPER_IMAGE)
#
# An image is rebuilt only when its inputs changed (a hash of them is kept in
# the image's label dbaas.build-hash). Run `npm run build` first.
#
#   docker/build-offline.sh            build what is missing or stale
#   docker/build-offline.sh --proxy    the same, and dbaas-haproxy (needs haproxy: scripts/proxy.sh install)
#   docker/build-offline.sh --platform the same, and dbaas-rabbitmq and dbaas-zookeeper (needs scripts/setup.sh's packages)
#   DBAAS_FERRETDB_BIN=/path/ferretdb  the FerretDB binary (default: DBAAS_DB_BIN,
#                                      else ~/.cache/dbaas/ferretdb-v1.24.2)
#   DBAAS_IMAGE_FORCE=1                rebuild everything
#   DBAAS_IMAGE_TAG=<tag>              tag the images <tag> instead of latest
#                                      (scripts/setup-docker.sh uses one tag per checkout)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$DBAAS_ROOT"

DOCKER=${DOCKER:-docker}
WITH_PROXY=0
WITH_PLATFORM=0
for arg in "$@"; do
  case "$arg" in
    --proxy) WITH_PROXY=1 ;;
    --platform) WITH_PLATFORM=1 ;;
    *) die "usage: docker/build-offline.sh [--proxy] [--platform]" ;;
  esac
done
TAG=${DBAAS_IMAGE_TAG:-latest}
[[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "DBAAS_IMAGE_TAG=$TAG is not a valid image tag"
BUILD_DIR=$DBAAS_STATE_DIR/docker-build
OFFLINE_DIR=$DBAAS_ROOT/docker/offline
# The legacy builder works offline and with any client/engine pair we meet
# (Debian's engine has no buildx plugin to go with a newer client).
export DOCKER_BUILDKIT=0
started=$(now_ms)

# The files' contents only, not their paths: the same inputs in another
# checkout give the same hash, so its images are retagged, not rebuilt.
hash_files() { sha256sum "$@" | cut -d' ' -f1 | sha256sum | cut -c1-16; }
hash_stdin() { sha256sum | cut -c1-16; }

# docker_build ARGS...: `docker build`, quiet unless it fails.
docker_build() {
  local build_log=$BUILD_DIR/build.log
  "$DOCKER" build "$@" >"$build_log" 2>&1 || { tail -n 30 "$build_log" >&2; die "docker build $* failed (log $build_log)"; }
}

image_hash() { "$DOCKER" image inspect -f '{{index .Config.Labels "dbaas.build-hash"}}' "$1" 2>/dev/null || true; }

# needs_build IMAGE HASH: true when IMAGE is missing or built from other inputs.
# An image of the same name built from the same inputs under another tag (another
# checkout's) is tagged IMAGE instead of being built again.
needs_build() {
  local same
  [[ "${DBAAS_IMAGE_FORCE:-}" == 1 ]] && return 0
  [[ "$(image_hash "$1")" == "$2" ]] && return 1
  same=$("$DOCKER" images -q --filter "reference=${1%%:*}" --filter "label=dbaas.build-hash=$2" 2>/dev/null | head -n 1 || true)
  [[ -n "$same" ]] && "$DOCKER" tag "$same" "$1" >/dev/null 2>&1 && [[ "$(image_hash "$1")" == "$2" ]] && return 1
  return 0
}

# ------------------------------------------------------------------ inputs --

node_bin=$(command -v node) || die "node is missing"
node_bin=$(readlink -f "$node_bin")
[[ -f dist/worker/main.js && -f dist/orchestrator/main.js ]] || die "dist/ is missing: run npm run build first"

ferretdb_bin=${DBAAS_FERRETDB_BIN:-}
if [[ -z "$ferretdb_bin" && -n "${DBAAS_DB_BIN:-}" && "$(basename "$DBAAS_DB_BIN")" == ferretdb* ]]; then ferretdb_bin=$DBAAS_DB_BIN; fi
[[ -n "$ferretdb_bin" ]] || ferretdb_bin="${XDG_CACHE_HOME:-$HOME/.cache}/dbaas/ferretdb-v1.24.2"
[[ -x "$ferretdb_bin" ]] ||
  die "no FerretDB binary at $ferretdb_bin (scripts/setup.sh builds one; or set DBAAS_FERRETDB_BIN). With registry access use DBAAS_DOCKER_DB_IMAGE=mongo:7 instead."

mkdir -p "$BUILD_DIR"

# ------------------------------------------------------------ base image --

# What goes into the base: the C library and the C++ runtime node needs.
base_libs=$(for f in "$node_bin" "$ferretdb_bin"; do ldd "$f" 2>/dev/null || true; done |
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[[ -n "$base_libs" ]] || die "ldd found no shared libraries for $node_bin (a static or non-glibc Node.js is not supported here)"
# shellcheck disable=SC2086  # one path per word
base_hash=$( { hash_files $base_libs "$OFFLINE_DIR/base-etc/"*; echo v1; } | hash_stdin)
if needs_build "dbaas-base:$TAG" "$base_hash"; then
  t=$(now_ms)
  root=$BUILD_DIR/base-rootfs
  rm -rf "$root"
  mkdir -p "$root"/{etc,tmp,app,usr/local/bin,data/db}
  chmod 1777 "$root/tmp"
  for lib in $base_libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp "$OFFLINE_DIR"/base-etc/* "$root/etc/"
  # Numeric owners in the tarball: root for everything but the data directory.
  tar --numeric-owner --owner=0 --group=0 -C "$root" --exclude=./data -cf "$BUILD_DIR/base.tar" .
  tar --numeric-owner --owner=1000 --group=1000 -C "$root" -rf "$BUILD_DIR/base.tar" ./data
  "$DOCKER" import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8' \
    --change "LABEL dbaas.build-hash=$base_hash org.opencontainers.image.title=dbaas-base" \
    --change 'USER 1000:1000' \
    "$BUILD_DIR/base.tar" "dbaas-base:$TAG" >/dev/null
  rm -rf "$root" "$BUILD_DIR/base.tar"
  log "built dbaas-base:$TAG ($(elapsed "$t"))"
else
  log "dbaas-base:$TAG is current"
fi

# -------------------------------------------------------- database image --

db_hash=$( { echo "$base_hash"; hash_files "$ferretdb_bin" "$OFFLINE_DIR/ferretdb.Dockerfile"; } | hash_stdin)
if needs_build "dbaas-ferretdb:$TAG" "$db_hash"; then
  t=$(now_ms)
  ctx=$BUILD_DIR/ferretdb
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -L "$ferretdb_bin" "$ctx/ferretdb"
  docker_build -f "$OFFLINE_DIR/ferretdb.Dockerfile" --build-arg "TAG=$TAG" --label "dbaas.build-hash=$db_hash" -t "dbaas-ferretdb:$TAG" "$ctx"
  rm -rf "$ctx"
  log "built dbaas-ferretdb:$TAG ($(elapsed "$t"))"
else
  log "dbaas-ferretdb:$TAG is current"
fi

# ------------------------------------------------------------ proxy image --

# HAProxy in front of two orchestrator containers (docker/compose.offline.yaml), where compose.yaml
# uses the official haproxy image: Debian's binary and the shared libraries ldd lists for it, in a
# root filesystem of its own (independent of the base, so the service's images never change for it).
if ((WITH_PROXY)); then
  haproxy_bin=$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)
  [[ -x "$haproxy_bin" ]] || die "--proxy needs haproxy on this machine: run scripts/proxy.sh install"
  haproxy_bin=$(readlink -f "$haproxy_bin")
  proxy_libs=$(ldd "$haproxy_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
  # shellcheck disable=SC2086  # one path per word
  proxy_hash=$( { hash_files "$haproxy_bin" $proxy_libs "$OFFLINE_DIR/base-etc/"*; echo v1; } | hash_stdin)
  if needs_build "dbaas-haproxy:$TAG" "$proxy_hash"; then
    t=$(now_ms)
    root=$BUILD_DIR/haproxy-rootfs
    rm -rf "$root"
    mkdir -p "$root"/{etc,tmp,usr/local/sbin,usr/local/etc/haproxy,var/lib/haproxy}
    chmod 1777 "$root/tmp"
    for lib in $proxy_libs; do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
    cp -L "$haproxy_bin" "$root/usr/local/sbin/haproxy"
    cp "$OFFLINE_DIR"/base-etc/* "$root/etc/"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$BUILD_DIR/haproxy.tar" .
    # As the official image: master-worker mode in the foreground. (`docker import` cannot set its
    # STOPSIGNAL, SIGUSR1: compose.offline.yaml sets stop_signal.)
    "$DOCKER" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/bin:/bin LANG=C.UTF-8' \
      --change "LABEL dbaas.build-hash=$proxy_hash org.opencontainers.image.title=dbaas-haproxy" \
      --change 'USER 1000:1000' \
      --change 'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]' \
      "$BUILD_DIR/haproxy.tar" "dbaas-haproxy:$TAG" >/dev/null
    rm -rf "$root" "$BUILD_DIR/haproxy.tar"
    log "built dbaas-haproxy:$TAG ($(elapsed "$t"))"
  else
    log "dbaas-haproxy:$TAG is current"
  fi
fi

# --------------------------------------------------------- platform images --

# rootfs_add ROOT PATH...: files and directories (symbolic links kept) at the same place under ROOT.
rootfs_add() {
  local root=$1 p
  shift
  for p in "$@"; do
    mkdir -p "$root$(dirname "$p")"
    cp -a "$p" "$root$(dirname "$p")/"
  done
}

# rootfs_finish ROOT: the shared libraries of every ELF file under ROOT (as ldd finds them on this
# machine), Debian's merged /usr links, base-etc, /tmp.
rootfs_finish() {
  local root=$1 libs lib
  # (ldd fails on the scripts among them: its status is not the pipeline's.)
  libs=$( { find "$root" -type f \( -perm -u+x -o -name '*.so*' \) -print0 | xargs -0 ldd 2>/dev/null || true; } |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u)
  for lib in $libs; do
    lib=${lib#/usr}
    [[ -e "$root/usr$lib" ]] && continue
    mkdir -p "$root/usr$(dirname "$lib")"
    cp -L "/usr$lib" "$root/usr$lib" 2>/dev/null || cp -L "$lib" "$root/usr$lib"
  done
  mkdir -p "$root/etc" "$root/tmp" "$root/usr/bin" "$root/usr/lib" "$root/usr/lib64"
  chmod 1777 "$root/tmp"
  ln -sfn usr/bin "$root/bin"
  ln -sfn usr/bin "$root/sbin"
  ln -sfn usr/lib "$root/lib"
  ln -sfn usr/lib64 "$root/lib64"
  cp "$OFFLINE_DIR"/base-etc/* "$root/etc/"
}

# tree_digest DIR...: every file under the DIRs with its hash (an image's inputs).
tree_digest() { find "$@" -type f -print0 | sort -z | xargs -0 sha256sum; }

# import_rootfs NAME HASH [--change …]: $BUILD_DIR/NAME-rootfs, finished (rootfs_finish), as the image
# dbaas-NAME:$TAG labelled with HASH, its processes as root.
import_rootfs() {
  local name=$1 hash=$2 root=$BUILD_DIR/$1-rootfs
  shift 2
  rootfs_finish "$root"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$BUILD_DIR/$name.tar" .
  "$DOCKER" import --change "LABEL dbaas.build-hash=$hash org.opencontainers.image.title=dbaas-$name" --change 'USER 0:0' \
    "$@" "$BUILD_DIR/$name.tar" "dbaas-$name:$TAG" >/dev/null
  rm -rf "$root" "$BUILD_DIR/$name.tar"
}

# The shell tools the entry points and RabbitMQ's and Erlang's scripts use.
PLATFORM_TOOLS=(sh dash bash cat sed grep basename dirname readlink expr env mkdir rm mv chmod chown id hostname date timeout sleep ls tr head)
platform_tools() {
  local t
  for t in "${PLATFORM_TOOLS[@]}"; do readlink -f "$(command -v "$t")" || die "$t is missing"; done | sort -u
}
# add_platform_tools ROOT: each tool as ROOT/usr/bin/<its name> (sh as sh, though it is dash here).
add_platform_tools() {
  local t
  for t in "${PLATFORM_TOOLS[@]}"; do cp -L "$(command -v "$t")" "$1/usr/bin/$t"; done
}

if ((WITH_PLATFORM)); then
  rmq_home=$(readlink -f /usr/lib/rabbitmq/lib/rabbitmq_server-*/ 2>/dev/null | head -n 1)
  [[ -d "$rmq_home" && -d /usr/lib/erlang ]] || die "--platform needs Debian's rabbitmq-server and Erlang: run scripts/setup.sh once"
  rmq_hash=$( {
    tree_digest /usr/lib/erlang /usr/lib/rabbitmq
    hash_files "$OFFLINE_DIR/rabbitmq-entrypoint.sh" "$OFFLINE_DIR"/base-etc/*
    platform_tools
    echo v3
  } | hash_stdin)
  if needs_build "dbaas-rabbitmq:$TAG" "$rmq_hash"; then
    t=$(now_ms)
    root=$BUILD_DIR/rabbitmq-rootfs
    rm -rf "$root"
    mkdir -p "$root"/{etc/rabbitmq/conf.d,var/lib/rabbitmq,var/log/rabbitmq,usr/bin,usr/local/bin}
    rootfs_add "$root" /usr/lib/erlang /usr/lib/rabbitmq
    add_platform_tools "$root"
    ln -sfn ../lib/erlang/bin/erl "$root/usr/bin/erl"
    ln -sfn ../lib/erlang/bin/escript "$root/usr/bin/escript"
    cp "$OFFLINE_DIR/rabbitmq-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    import_rootfs rabbitmq "$rmq_hash" \
      --change "ENV PATH=/usr/local/bin:$rmq_home/sbin:/usr/bin:/bin LANG=C.UTF-8 HOME=/var/lib/rabbitmq RABBITMQ_LOGS=- RABBITMQ_CONFIG_FILES=/etc/rabbitmq/conf.d.unused" \
      --change 'EXPOSE 4369 5672 25672' \
      --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
      --change 'CMD ["rabbitmq-server"]'
    log "built dbaas-rabbitmq:$TAG ($(elapsed "$t"))"
  else
    log "dbaas-rabbitmq:$TAG is current"
  fi

  java_home=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
  [[ -f /usr/share/java/zookeeper.jar && -x "$java_home/bin/java" ]] || die "--platform needs Debian's zookeeper and Java: run scripts/setup.sh once"
  zk_hash=$( {
    tree_digest "$java_home" /usr/share/java
    hash_files "$OFFLINE_DIR/zookeeper-entrypoint.sh" "$OFFLINE_DIR/nc" "$OFFLINE_DIR"/base-etc/*
    declare -f write_zookeeper_log4j
    platform_tools
    echo v3
  } | hash_stdin)
  if needs_build "dbaas-zookeeper:$TAG" "$zk_hash"; then
    t=$(now_ms)
    root=$BUILD_DIR/zookeeper-rootfs
    rm -rf "$root"
    mkdir -p "$root"/{conf,data,datalog,usr/bin,usr/local/bin,usr/share/java,"$(dirname "$java_home")"}
    # The JDK's conf/ and some of its files are links into /etc: copied as files (dangling ones, such as src.zip, dropped).
    cp -a "$java_home" "$root$(dirname "$java_home")/"
    while IFS= read -r -d '' link; do
      target=$(readlink -f "${link#"$root"}" || true)
      rm -f "$link"
      if [[ -n "$target" && -e "$target" ]]; then cp -rL "$target" "$link"; fi
    done < <(find "$root$java_home" -type l -print0)
    cp -a /usr/share/java/. "$root/usr/share/java/"
    add_platform_tools "$root"
    ln -sfn "$java_home/bin/java" "$root/usr/local/bin/java"
    cp "$OFFLINE_DIR/zookeeper-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    cp "$OFFLINE_DIR/nc" "$root/usr/local/bin/nc"
    mkdir -p "$root/etc/zookeeper-log4j"
    write_zookeeper_log4j "$root/etc/zookeeper-log4j"
    import_rootfs zookeeper "$zk_hash" \
      --change "ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 JAVA_HOME=$java_home ZOO_CONF_DIR=/conf ZOO_DATA_DIR=/data ZOO_DATA_LOG_DIR=/datalog" \
      --change 'EXPOSE 2181 2888 3888' \
      --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
      --change 'CMD ["zkServer.sh", "start-foreground"]'
    log "built dbaas-zookeeper:$TAG ($(elapsed "$t"))"
  else
    log "dbaas-zookeeper:$TAG is current"
  fi
fi

# ----------------------------------------------------------- app images --

# Two steps, so that a change of dist/ sends only dist/ to the engine:
# dbaas-app-deps (node + production node_modules) changes with package-lock.json
# or Node.js; the worker and orchestrator images add dist/ on top of it.
deps_hash=$( { echo "$base_hash"; hash_files package.json package-lock.json "$node_bin" "$OFFLINE_DIR/app-deps.Dockerfile"; } | hash_stdin)
if needs_build "dbaas-app-deps:$TAG" "$deps_hash"; then
  t=$(now_ms)
  ctx=$BUILD_DIR/app-deps
  rm -rf "$ctx"
  mkdir -p "$ctx/app"
  cp -L "$node_bin" "$ctx/node"
  cp package.json package-lock.json "$ctx/app/"
  cp -a node_modules "$ctx/app/"
  (cd "$ctx/app" && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund >"$BUILD_DIR/prune.log" 2>&1) ||
    die "npm prune --omit=dev failed (log $BUILD_DIR/prune.log)"
  docker_build -f "$OFFLINE_DIR/app-deps.Dockerfile" --build-arg "TAG=$TAG" --label "dbaas.build-hash=$deps_hash" -t "dbaas-app-deps:$TAG" "$ctx"
  rm -rf "$ctx"
  log "built dbaas-app-deps:$TAG ($(elapsed "$t"))"
else
  log "dbaas-app-deps:$TAG is current"
fi

app_hash=$( {
  echo "$deps_hash"
  hash_files "$OFFLINE_DIR/app.Dockerfile"
  find dist/common dist/coordination dist/orchestrator dist/worker -type f ! -name '*.map' -print0 | sort -z | xargs -0 sha256sum
} | hash_stdin)
if needs_build "dbaas-worker:$TAG" "$app_hash" || needs_build "dbaas-orchestrator:$TAG" "$app_hash"; then
  t=$(now_ms)
  ctx=$BUILD_DIR/app
  rm -rf "$ctx"
  mkdir -p "$ctx/dist"
  cp -r dist/common dist/coordination dist/orchestrator dist/worker "$ctx/dist/"
  find "$ctx/dist" -name '*.map' -delete
  for target in worker orchestrator; do
    docker_build -f "$OFFLINE_DIR/app.Dockerfile" --target "$target" --build-arg "TAG=$TAG" --label "dbaas.build-hash=$app_hash" \
      -t "dbaas-$target:$TAG" "$ctx"
  done
  rm -rf "$ctx"
  log "built dbaas-worker:$TAG and dbaas-orchestrator:$TAG ($(elapsed "$t"))"
else
  log "dbaas-worker:$TAG and dbaas-orchestrator:$TAG are current"
fi

# Superseded builds leave untagged images behind. Only those an hour old: another
# checkout's build running now has untagged intermediate images of its own, and
# pruning them made its next step fail with "No such image".
"$DOCKER" image prune -f --filter label=dbaas.build-hash --filter until=1h >/dev/null 2>&1 || true
log "images ready ($(elapsed "$started"))"
