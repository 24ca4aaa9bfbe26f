# Offline build, step 2 of 2: the compiled project on top of dbaas-app-deps.
# The same layout as docker/Dockerfile's final stages (/app, user node = uid
# 1000, NODE_ENV=production). The context is dist/{common,orchestrator,worker}.
ARG TAG=latest
FROM dbaas-app-deps:${TAG} AS app
COPY dist /app/dist
# common/node-flags.ts's NODE_ENV_VARS: one malloc arena (V8's compiler threads kept 13-18 MiB in arenas of their own).
ENV MALLOC_ARENA_MAX=1

# common/node-flags.ts's V8 flags, as the process runtime and the lifecycle
# manager use: 2 MB semi-spaces, the old generation grown by 20 % after a full GC.
FROM app AS worker
CMD ["node", "--max-semi-space-size=2", "--heap-growing-percent=20", "dist/worker/main.js"]

FROM app AS orchestrator
ENV DBAAS_PORT=80
EXPOSE 80
CMD ["node", "--max-semi-space-size=2", "--heap-growing-percent=20", "dist/orchestrator/main.js"]
