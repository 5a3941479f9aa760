# transcoderd images. One file, two targets that share the build and the runtime:
#
#   docker build -t transcoderd .                         # cpu (the default): x264 on the CPU
#   docker build --target nvenc -t transcoderd:nvenc .    # the same, plus NVIDIA NVENC, NVDEC, CUDA
#   docker build -f Dockerfile.nvenc -t transcoderd:nvenc .   # the same image: nvenc is that file's default
#
#   (umask 077; openssl rand -hex 32 > token) && sudo chown 10001 token   # the API token, for uid 10001
#   docker run -d --name transcoderd -p 8080:8080 \
#     -v "$PWD/token:/run/secrets/transcoderd_token:ro" \
#     -v "$PWD/media:/media:ro" -v transcoderd-data:/var/lib/transcoderd/data \
#     -v transcoderd-out:/var/lib/transcoderd/out transcoderd
#   curl -s -H "Authorization: Bearer $(cat token)" localhost:8080/v1/ladders
#   (nvenc: add --gpus all, with the NVIDIA Container Toolkit)
#
# The API listens on 0.0.0.0 inside the container, so the image reads its token from
# /run/secrets/transcoderd_token (a Docker, Compose or Kubernetes secret, or a bind
# mount readable by uid 10001). Without that file the daemon does not start, and says
# how to create it; -e TRANSCODERD_API_TOKEN_FILE= runs it without a token, for a
# network you trust. Ladders: /etc/transcoderd/profiles is empty, so the built-in
# ones (default, lowlatency, mobile, test) are offered; mount YAML files there to add
# ladders (one named like a built-in replaces it). Every TRANSCODERD_* variable below
# is a flag (see `docker run --rm transcoderd -h`).
#
# Both targets run Debian 12's ffmpeg (5.1, with libx264). It also has h264_nvenc and
# hevc_nvenc, the cuda hwaccel (NVDEC), hwupload_cuda, scale_cuda and yadif_cuda: it
# loads the driver's libraries (libcuda.so.1, libnvidia-encode.so.1, libnvcuvid.so.1)
# at run time, which the toolkit mounts from the host when NVIDIA_DRIVER_CAPABILITIES
# asks for compute and video (utility brings nvidia-smi, which the probe reads). NVENC
# in this ffmpeg needs driver 470.57.02 or newer. It has no scale_npp (that needs a
# non-free build): transcoderd scales with scale_cuda. At start transcoderd probes the
# GPUs with trial encodes and logs what works; GET /v1/capabilities shows it. A GPU
# without NVENC (A100, H100, H200) is reported as "GPU present, no encoder" and decodes
# and scales for x264. The nvenc target only adds the two NVIDIA_* variables, kept out
# of the cpu image so that a host whose default runtime is nvidia hands it no GPU.

# The Go of the build stage: at least go.mod's `go` line (the official image sets
# GOTOOLCHAIN=local, so an older Go refuses to build). deploy's TestImageGoVersion
# checks it.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/transcoderd ./cmd/transcoderd

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# data/ holds the job records, sources with their keys: the daemon's alone.
RUN groupadd --system --gid 10001 transcoderd \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/transcoderd --shell /usr/sbin/nologin transcoderd \
    && mkdir -p /var/lib/transcoderd/out /var/lib/transcoderd/data /media /etc/transcoderd/profiles \
    && chown transcoderd:transcoderd /var/lib/transcoderd /var/lib/transcoderd/out /var/lib/transcoderd/data /media \
    && chmod 0700 /var/lib/transcoderd/data
COPY --from=build /out/transcoderd /usr/local/bin/transcoderd

ENV TRANSCODERD_LISTEN=0.0.0.0:8080 \
    TRANSCODERD_OUTPUT=/var/lib/transcoderd/out \
    TRANSCODERD_DATA=/var/lib/transcoderd/data \
    TRANSCODERD_MEDIA_ROOT=/media \
    TRANSCODERD_PROFILES=/etc/transcoderd/profiles \
    TRANSCODERD_API_TOKEN_FILE=/run/secrets/transcoderd_token \
    TRANSCODERD_LOG_FORMAT=json

# Numeric, so that Kubernetes runAsNonRoot can tell it is not root.
USER 10001:10001
WORKDIR /var/lib/transcoderd
VOLUME ["/var/lib/transcoderd/data", "/var/lib/transcoderd/out"]
EXPOSE 8080
# The first check comes 30 s after the start, when the GPU probe (trial encodes, before
# the API listens) is long done. The binary checks itself: the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["/usr/local/bin/transcoderd", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/transcoderd"]

FROM runtime AS nvenc
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,video,utility

# The default target, last: the runtime as it is.
FROM runtime AS cpu
