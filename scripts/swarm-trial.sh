#!/usr/bin/env bash
# A two-node Docker Swarm in two containers on this host, for trying dbaas's
# `swarm` runtime across nodes here (docs/DOCKER.md, "A two-node swarm here").
# Opt-in; nothing in `npm test` runs it.
#
#   scripts/swarm-trial.sh up     build the node image, start two nodes, make a swarm, load the images
#   scripts/swarm-trial.sh down   remove the nodes (and every service on them), their volumes, network and image
#
# Each node is Debian's dockerd (docker.io, containerd, runc, iptables and their
# libraries, copied from this host: no registry) in a container on a bridge
# network of its own: node a initialises a swarm advertising its address on
# that network, node b joins it as a worker. Workers' overlay traffic between
# them is real VXLAN between two network namespaces. The host's own engine and
# swarm are not touched: joining the host's swarm would let every other
# service without constraints be placed on the trial node (Swarm spreads tasks
# to the emptiest node), and its manager advertises 127.0.0.1.
#
# `up` writes .dbaas/swarm-trial.env: DBAAS_DOCKER_HOST (node a's API, a
# manager), the DBAAS_DOCKER_* addresses at which containers on the nodes reach
# this host's RabbitMQ and ZooKeeper, and the images, for an orchestrator
# started on this host (`set -a; . .dbaas/swarm-trial.env; set +a; DBAAS_RUNTIME=swarm npm start`).
# Run scripts/setup-docker.sh first (images, the ZooKeeper relay).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$DBAAS_ROOT"

PREFIX=${DBAAS_SWARM_TRIAL_PREFIX:-dbaas-swarm-trial}
SUBNET=${DBAAS_SWARM_TRIAL_SUBNET:-192.168.219.0/24}
IMAGE=dbaas-swarm-node:checkout-$DBAAS_CHECKOUT_ID
TRIAL_ENV=$DBAAS_STATE_DIR/swarm-trial.env
LABEL=dbaas.swarm-trial=$PREFIX

build_node_image() {
  local t work root b libs
  t=$(now_ms)
  work=$(mktemp -d)
  root=$work/rootfs
  mkdir -p "$root"/{etc,tmp,run,var/lib/docker,usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,root}
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  ln -s ../run "$root/var/run"
  chmod 1777 "$root/tmp"
  local bins=(/usr/sbin/dockerd /usr/bin/docker /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc
    /usr/sbin/docker-proxy /usr/bin/docker-init /usr/sbin/xtables-nft-multi /usr/sbin/ip /bin/bash /bin/dash
    /usr/bin/mount /usr/bin/umount /usr/bin/mountpoint /usr/bin/hostname /usr/bin/sleep /usr/bin/cat /usr/bin/ls)
  for b in "${bins[@]}"; do
    [[ -e $b ]] || die "$b is missing (Debian's docker.io, containerd, runc, iptables, iproute2 are needed)"
    cp -L "$b" "$root$b" # /bin, /lib… are links into /usr in the image as on the host
  done
  for b in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do ln -sf xtables-nft-multi "$root/usr/sbin/$b"; done
  ln -sf dash "$root/usr/bin/sh"
  libs=$(for b in "${bins[@]}" /usr/lib/x86_64-linux-gnu/xtables/*.so; do ldd "$b" 2>/dev/null || true; done |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
  for b in $libs; do
    mkdir -p "$root$(dirname "$b")"
    cp -L "$b" "$root$b"
  done
  # iptables loads its matches and targets at run time.
  mkdir -p "$root/usr/lib/x86_64-linux-gnu/xtables"
  cp -a /usr/lib/x86_64-linux-gnu/xtables/. "$root/usr/lib/x86_64-linux-gnu/xtables/"
  printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  install -m 755 docker/swarm-node/node-entry "$root/usr/bin/node-entry"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$work/rootfs.tar" .
  docker import --change 'ENV PATH=/usr/bin:/usr/sbin' --change 'ENTRYPOINT ["/usr/bin/node-entry"]' \
    --change "LABEL $LABEL" "$work/rootfs.tar" "$IMAGE" >/dev/null
  rm -rf "$work"
  log "built $IMAGE from this host's docker.io, containerd, runc and iptables ($(elapsed "$t"))"
}

node_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$PREFIX\").IPAddress}}" "$PREFIX-$1"; }

up() {
  local t n gw a b token worker_image db_image amqp
  t=$(now_ms)
  load_runtime_env
  [[ "${DBAAS_DOCKER_STATUS:-}" == ready ]] || die "run scripts/setup-docker.sh first (DBAAS_DOCKER_STATUS is ${DBAAS_DOCKER_STATUS:-unset})"
  worker_image=$DBAAS_DOCKER_WORKER_IMAGE db_image=$DBAAS_DOCKER_DB_IMAGE
  # Containers on the nodes reach the host at its address on Docker's default bridge (where setup-docker.sh relays ZooKeeper).
  gw=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')
  [[ "$(zk_four_letter "$gw" 2181 ruok)" == imok ]] || die "ZooKeeper does not answer on $gw:2181 (scripts/setup-docker.sh relays it there)"
  build_node_image
  docker network inspect "$PREFIX" >/dev/null 2>&1 || docker network create --driver bridge --subnet "$SUBNET" --label "$LABEL" "$PREFIX" >/dev/null
  for n in a b; do
    # A fresh node: a volume kept from an earlier trial holds that trial's swarm.
    docker rm -f -v "$PREFIX-$n" >/dev/null 2>&1 || true
    docker volume rm "$PREFIX-$n" >/dev/null 2>&1 || true
    # Not --privileged: where the engine itself lacks a capability (CAP_SYS_RESOURCE in some sandboxes) that
    # fails; every other capability, no seccomp/AppArmor profile, /proc and /sys unmasked, every device.
    # --pid=host: the pids the nodes' engines report are this host's (the runtime reads /proc/<pid>/net/tcp
    # for tasks on its manager's node, and the nemesis signals pids).
    docker run -d --name "$PREFIX-$n" --hostname "$PREFIX-$n" --network "$PREFIX" --label "$LABEL" \
      --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm' --pid=host \
      -v "$PREFIX-$n:/var/lib/docker" "$IMAGE" >/dev/null
  done
  for n in a b; do
    wait_for 30 "dockerd in $PREFIX-$n" bash -c "docker exec $PREFIX-$n docker version >/dev/null 2>&1" || die "dockerd did not start in $PREFIX-$n (docker logs $PREFIX-$n)"
  done
  a=$(node_ip a) b=$(node_ip b)
  docker exec "$PREFIX-a" docker swarm init --advertise-addr "$a" >/dev/null
  token=$(docker exec "$PREFIX-a" docker swarm join-token -q worker)
  docker exec "$PREFIX-b" docker swarm join --token "$token" --advertise-addr "$b" "$a:2377" >/dev/null
  for n in a b; do
    docker save "$worker_image" "$db_image" | docker exec -i "$PREFIX-$n" docker load >/dev/null
  done
  amqp=${DBAAS_DOCKER_AMQP_URL/@host.docker.internal:/@$gw:}
  {
    printf 'DBAAS_DOCKER_HOST=%q\n' "tcp://$a:2375"
    printf 'DBAAS_DOCKER_AMQP_URL=%q\n' "$amqp"
    printf 'DBAAS_DOCKER_ZK_CONNECT=%q\n' "$gw:2181"
    printf 'DBAAS_DOCKER_WORKER_IMAGE=%q\n' "$worker_image"
    printf 'DBAAS_DOCKER_DB_IMAGE=%q\n' "$db_image"
  } >"$TRIAL_ENV"
  docker exec "$PREFIX-a" docker node ls
  log "two-node swarm ready: manager $PREFIX-a ($a), worker $PREFIX-b ($b); settings in $TRIAL_ENV ($(elapsed "$t"))"
}

down() {
  local n
  for n in a b; do docker rm -f -v "$PREFIX-$n" >/dev/null 2>&1 || true; done
  for n in a b; do docker volume rm "$PREFIX-$n" >/dev/null 2>&1 || true; done
  docker network rm "$PREFIX" >/dev/null 2>&1 || true
  docker image rm "$IMAGE" >/dev/null 2>&1 || true
  rm -f "$TRIAL_ENV"
  log "two-node swarm removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: scripts/swarm-trial.sh up|down" ;;
esac
