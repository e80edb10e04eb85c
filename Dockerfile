# syntax=docker/dockerfile:1
# Image of the k8s-cloud-node-manager server, for those who build with a
# registry at hand (the golang image):
#
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.1.0 \
#     -t ghcr.io/michael/k8s-cloud-node-manager:v0.1.0 --push .
#
# `make image` builds the same image without any registry or engine
# (hack/image writes the OCI archive itself). Both put the same files, user
# and entrypoint in the image; test/image builds this file's final stage
# with podman and compares, so keep the two in step.
#
# The build stage runs on the build machine's platform and cross-compiles
# (no emulation for multi-arch builds with buildx).

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
# Set by BuildKit for the platform being built (--platform); declared
# without defaults so the automatic values come through.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=v0.0.0-dev
WORKDIR /src
# Modules first: this layer stays cached while only the code changes.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: a static binary, since the final image has no libc.
# -trimpath: no build-machine paths in the binary (reproducible builds).
# -s -w: no symbol table or DWARF (a third of the size); panics still
# print file:line.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} GOFLAGS=-mod=readonly \
    go build -trimpath \
      -ldflags "-s -w -X github.com/michael/k8s-cloud-node-manager/pkg/version.Version=${VERSION}" \
      -o /out/k8s-cloud-node-manager ./cmd/k8s-cloud-node-manager
# /etc/passwd and /etc/group with the non-root user, and the CA bundle
# (Mozilla's roots from golang.org/x/crypto/x509roots, pinned by go.sum):
# written by the program `make image` uses, so both images have the same.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go run ./hack/image --rootfs /out/rootfs

# Nothing but these files: no shell or package manager to exploit.
FROM scratch
ARG VERSION=v0.0.0-dev
COPY --from=build /out/rootfs/etc/group /etc/group
COPY --from=build /out/rootfs/etc/passwd /etc/passwd
COPY --from=build /out/rootfs/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chmod=0755 /out/k8s-cloud-node-manager /k8s-cloud-node-manager
LABEL org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.source=https://github.com/michael/k8s-cloud-node-manager
# nonroot (65532), the chart's runAsUser and runAsGroup.
USER 65532:65532
EXPOSE 6443
ENTRYPOINT ["/k8s-cloud-node-manager"]
