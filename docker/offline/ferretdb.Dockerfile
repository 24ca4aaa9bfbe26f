# Offline twin of the database image: FerretDB (SQLite backend) on top of
# dbaas-base (imported from a root filesystem by docker/build-offline.sh).
# The context holds one file: the FerretDB binary.
ARG TAG=latest
FROM dbaas-base:${TAG}
COPY ferretdb /usr/local/bin/ferretdb
USER 1000:1000
# Docker copies /data/db (owned by uid 1000 in the base) into each new named volume.
VOLUME /data/db
EXPOSE 27017
ENTRYPOINT ["/usr/local/bin/ferretdb", "--handler=sqlite", "--sqlite-url=file:/data/db/", "--state-dir=/data/db", \
            "--listen-addr=:27017", "--debug-addr=-", "--telemetry=disable", "--log-level=warn"]
