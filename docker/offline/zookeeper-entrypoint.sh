#!/bin/bash
# docker-entrypoint.sh of dbaas-zookeeper (docker/build-offline.sh --platform): the
# official zookeeper image's interface (ZOO_MY_ID, ZOO_SERVERS, ZOO_TICK_TIME,
# ZOO_INIT_LIMIT, ZOO_SYNC_LIMIT, ZOO_MAX_CLIENT_CNXNS, ZOO_ADMINSERVER_ENABLED,
# ZOO_AUTOPURGE_*, ZOO_4LW_COMMANDS_WHITELIST, ZOO_CFG_EXTRA; data in /data and
# /datalog, configuration in /conf) on this machine's Debian ZooKeeper (3.8) and Java.
set -euo pipefail
: "${ZOO_CONF_DIR:=/conf}" "${ZOO_DATA_DIR:=/data}" "${ZOO_DATA_LOG_DIR:=/datalog}"
if [[ "${1:-}" != zkServer.sh ]]; then exec "$@"; fi
mkdir -p "$ZOO_CONF_DIR" "$ZOO_DATA_DIR" "$ZOO_DATA_LOG_DIR"
cfg=$ZOO_CONF_DIR/zoo.cfg
# As the official image: written only when there is none (a mounted zoo.cfg wins).
if [[ ! -f "$cfg" ]]; then
  {
    echo "dataDir=$ZOO_DATA_DIR"
    echo "dataLogDir=$ZOO_DATA_LOG_DIR"
    echo "tickTime=${ZOO_TICK_TIME:-2000}"
    echo "initLimit=${ZOO_INIT_LIMIT:-5}"
    echo "syncLimit=${ZOO_SYNC_LIMIT:-2}"
    echo "autopurge.snapRetainCount=${ZOO_AUTOPURGE_SNAPRETAINCOUNT:-3}"
    echo "autopurge.purgeInterval=${ZOO_AUTOPURGE_PURGEINTERVAL:-0}"
    echo "maxClientCnxns=${ZOO_MAX_CLIENT_CNXNS:-60}"
    echo "standaloneEnabled=${ZOO_STANDALONE_ENABLED:-true}"
    echo "admin.enableServer=${ZOO_ADMINSERVER_ENABLED:-true}"
    for server in ${ZOO_SERVERS:-server.1=localhost:2888:3888;2181}; do echo "$server"; done
    if [[ -n "${ZOO_4LW_COMMANDS_WHITELIST:-}" ]]; then echo "4lw.commands.whitelist=$ZOO_4LW_COMMANDS_WHITELIST"; fi
    for extra in ${ZOO_CFG_EXTRA:-}; do echo "$extra"; done
  } >"$cfg"
fi
[[ -f "$ZOO_DATA_DIR/myid" ]] || echo "${ZOO_MY_ID:-1}" >"$ZOO_DATA_DIR/myid"
# Everything to the console: /etc/zookeeper-log4j/log4j.properties, written at build time by scripts/lib.sh's write_zookeeper_log4j.
exec java -Xms32m "-Xmx${ZOO_HEAP:-256m}" -XX:+UseSerialGC -Dzookeeper.log.dir=/tmp \
  -Dlog4j.configuration=file:/etc/zookeeper-log4j/log4j.properties \
  -cp "$ZOO_CONF_DIR:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar" \
  org.apache.zookeeper.server.quorum.QuorumPeerMain "$cfg"
