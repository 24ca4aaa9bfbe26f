# Offline build, step 1 of 2: Node.js and the production dependencies on top
# of dbaas-base. docker/build-offline.sh prepares the context:
#   node                 the host's Node.js binary (glibc-linked; its libraries are in dbaas-base)
#   app/package.json, app/package-lock.json
#   app/node_modules     production dependencies only (npm prune --omit=dev)
ARG TAG=latest
FROM dbaas-base:${TAG}
COPY node /usr/local/bin/node
COPY app /app
WORKDIR /app
ENV NODE_ENV=production
USER 1000:1000
