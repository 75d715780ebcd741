# syntax=docker/dockerfile:1
# The Skein image: `skein agent`, `skein operator` and the chart's bpffs init container run it
# (charts/skein). Envoy is not in it: the chart runs the upstream envoyproxy/envoy image, at the version
# Skein pins (1.40.0), beside the agent.
#
#   docker build -t ghcr.io/skein-mesh/skein:0.1.0 .
#
# The BPF objects are CO-RE: vmlinux.h is generated from the build machine's kernel BTF
# (/sys/kernel/btf/vmlinux, which build containers see), and libbpf relocates the objects at load time on
# any kernel with BTF.

ARG NODE_VERSION=20.20.2
ARG DEBIAN_RELEASE=bookworm

FROM node:${NODE_VERSION}-${DEBIAN_RELEASE} AS build
# The datapath toolchain, as `node scripts/setup.mjs bpf` installs it; python3, make and g++ for node-gyp.
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev bpftool make g++ python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# No lifecycle scripts: `prepare` would compile before the sources are here.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bpf ./bpf
COPY native ./native
COPY scripts/build-bpf.mjs ./scripts/
# dist/ (tsc), dist/bpf/*.bpf.o (clang) and native/build/Release/skein_bpf.node (node-gyp, against the
# image's own Node headers); then the build-only files go (vmlinux.h, stamps) and the dev dependencies.
RUN npx tsc -p tsconfig.build.json \
 && node scripts/build-bpf.mjs all \
 && rm -rf dist/bpf/include dist/bpf/*.inputs \
 && npm prune --omit=dev

FROM node:${NODE_VERSION}-${DEBIAN_RELEASE}-slim
# libbpf1: the addon links it. iproute2: the agent finds pod interfaces (`ip route get`), checks the
# proxy's listener (`ss`) and sets the L7 redirect's policy route (`ip rule`). The slim image already
# has mount, stat (the bpffs init container) and nsenter.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/native/build/Release/skein_bpf.node ./native/build/Release/
COPY bin ./bin
COPY envoy ./envoy
# Not root by default: the operator needs nothing; the chart runs the agent as root with three
# capabilities (charts/skein/values.yaml, agent.capabilities).
USER 65532:65532
ENTRYPOINT ["node", "/app/bin/skein"]
