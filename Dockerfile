# syntax=docker/dockerfile:1
# gpt2-gateway image: build with dev dependencies, run with production ones only.
#   docker build -t <registry>/gpt2-gateway:$(node -p "require('./package.json').version") .
# Runs as uid/gid 8888, the uid the chart's blobfuse mountOptions give the model volume's files,
# and works with a read-only root filesystem: it writes only under /tmp and /models (volumes in
# the chart; MODEL_REPOSITORY points at /models).

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.web.json ./
COPY scripts/copy-web-assets.mjs ./scripts/
COPY src ./src
COPY web ./web
# npm run build: the server (dist/src) and the playground page (dist/web).
RUN npm run build --silent && npm prune --omit=dev --no-audit --no-fund
# onnxruntime-node ships CPU binaries for every OS and CPU; keep this platform's (~290 MB saved).
RUN find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 -type d ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -type d ! -name "$(node -p 'process.arch')" -exec rm -rf {} +

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    MODEL_REPOSITORY=/models
WORKDIR /app
RUN groupadd --gid 8888 gateway \
 && useradd --uid 8888 --gid 8888 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
 && mkdir /models && chown 8888:8888 /models
# Code and dependencies stay owned by root: the process cannot modify what it runs.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/web ./dist/web
USER 8888:8888
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node directly, not npm start: npm does not forward SIGTERM, and the gateway drains on SIGTERM.
CMD ["node", "dist/src/cli.js", "serve"]
