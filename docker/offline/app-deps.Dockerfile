# Offline build, step 1 of 2: Node.js and the production dependencies on top
# of dbaas-base. docker/build-offline.sh prepares the context:
#   node                 the host's Node.js binary (glibc-linked; its libraries are in dbaas-base), at /nodejs/bin/node
#   app/package.json, app/package-lock.json
#   app/node_modules     production dependencies only (npm prune --omit=dev)
ARG TAG=latest
FROM dbaas-base:${TAG}
# Where the distroless image of docker/Dockerfile has it, so that a health check that names
# /nodejs/bin/node (docker/stack.yaml, compose.ha.yaml, the Dockerfile's) runs in these images too.
COPY node /nodejs/bin/node
ENV PATH=/nodejs/bin:/usr/local/bin:/usr/bin:/bin
COPY app /app
WORKDIR /app
ENV NODE_ENV=production
USER 1000:1000
