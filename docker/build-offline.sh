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
#
# An image is rebuilt only when its inputs changed (a hash of them is kept in
# the image's label dbaas.build-hash). Run `npm run build` first.
#
#   docker/build-offline.sh            build what is missing or stale
#   docker/build-offline.sh --proxy    the same, and dbaas-haproxy (needs haproxy: scripts/proxy.sh install)
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
case "${1:-}" in
  "") ;;
  --proxy) WITH_PROXY=1 ;;
  *) die "usage: docker/build-offline.sh [--proxy]" ;;
esac
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
