# The modelslice server as a container image. Two stages: the first compiles the addon for
# x86-64 (its kernels pick AVX-512, AVX2 or portable code at run time, so the image runs on
# any x86-64 node), packs the npm tarball with that prebuild, and the second installs the
# tarball as a user would, with no compiler. deploy/kubernetes/ runs it; README "Running in
# containers and Kubernetes" says how.
#
#   docker build -t modelslice .
#   docker run --rm -p 8080:8080 -v "$PWD/runs:/models:ro" modelslice \
#     --checkpoint /models/mlp.safetensors --port 8080 --host 0.0.0.0 --slo-ms 50

FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# npm ci compiles the addon (the install script) and the TypeScript (prepare); then the
# prebuild for this platform goes into prebuilds/ and the tarball carries it.
RUN npm ci \
 && npm run build:prebuild \
 && npm pack --pack-destination /tmp \
 && mv /tmp/modelslice-*.tgz /tmp/modelslice.tgz

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /tmp/modelslice.tgz /tmp/modelslice.tgz
RUN npm init -y > /dev/null \
 && npm install --omit=dev /tmp/modelslice.tgz \
 && rm /tmp/modelslice.tgz \
 && npm cache clean --force
USER node
EXPOSE 8080
# SIGTERM: readiness off, --drain-delay-ms of serving on, then the queue is finished.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/node_modules/modelslice/dist/bin.js", "serve"]
CMD ["--checkpoint", "/models/model.safetensors", "--port", "8080", "--host", "0.0.0.0", "--slo-ms", "100", "--drain-delay-ms", "5000"]
