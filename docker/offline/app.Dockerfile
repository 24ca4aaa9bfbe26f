# Offline build, step 2 of 2: the compiled project on top of dbaas-app-deps.
# The same layout as docker/Dockerfile's final stages (/app, user node = uid
# 1000, NODE_ENV=production). The context is dist/{common,orchestrator,worker}.
ARG TAG=latest
FROM dbaas-app-deps:${TAG} AS app
COPY dist /app/dist

# A small young generation (2 MB semi-spaces, as scripts/start.sh and the
# process runtime use): less resident memory, no measurable cost in throughput.
FROM app AS worker
CMD ["node", "--max-semi-space-size=2", "dist/worker/main.js"]

FROM app AS orchestrator
ENV DBAAS_PORT=80
EXPOSE 80
CMD ["node", "--max-semi-space-size=2", "dist/orchestrator/main.js"]
