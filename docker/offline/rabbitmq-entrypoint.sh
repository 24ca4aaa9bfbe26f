#!/bin/sh
# docker-entrypoint.sh of dbaas-rabbitmq (docker/build-offline.sh --platform): the
# parts of the official rabbitmq image's interface that docker/compose.ha.yaml and
# docker/stack.yaml use, on this machine's Debian RabbitMQ (3.10):
#   - `docker-entrypoint.sh rabbitmq-server` writes /etc/rabbitmq/rabbitmq.conf from
#     RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS and every /etc/rabbitmq/conf.d/*.conf,
#     then runs the node in the foreground, logging to the console;
#   - anything else is run as given (rabbitmqctl, rabbitmq-diagnostics, sh …).
# `default_queue_type` (RabbitMQ >= 3.13) is left out: 3.10 refuses to boot on a key
# it does not know. dbaas declares its queues quorum in DBAAS_PLATFORM=ha anyway.
# The node runs as root in its container (the official image steps down to the
# rabbitmq user with gosu, which this machine does not have).
set -e
if [ "${1:-}" != rabbitmq-server ]; then exec "$@"; fi
conf=/etc/rabbitmq/rabbitmq.conf
{
  echo "# Written by docker-entrypoint.sh at $(date -u +%FT%TZ); edits are lost at the next start."
  echo "loopback_users.guest = false"
  echo "listeners.tcp.default = 5672"
  if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then echo "default_user = $RABBITMQ_DEFAULT_USER"; fi
  if [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then echo "default_pass = $RABBITMQ_DEFAULT_PASS"; fi
  for f in /etc/rabbitmq/conf.d/*.conf; do
    [ -f "$f" ] || continue
    echo "# from $f"
    sed -e '/^[[:space:]]*default_queue_type[[:space:]]*=/d' "$f"
  done
} >"$conf.tmp"
mv -f "$conf.tmp" "$conf"
chmod 600 "$conf"
if [ -f /var/lib/rabbitmq/.erlang.cookie ]; then chmod 400 /var/lib/rabbitmq/.erlang.cookie; fi
exec rabbitmq-server
