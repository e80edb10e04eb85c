# syntax=docker/dockerfile:1
# Image of the k8s-cloud-node-manager server: a static binary on distroless.
#
#   docker build -t ghcr.io/michael/k8s-cloud-node-manager:v0.1.0 --build-arg VERSION=v0.1.0 .
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
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} GOFLAGS=-mod=readonly \
    go build -trimpath \
      -ldflags "-s -w -X github.com/michael/k8s-cloud-node-manager/pkg/version.Version=${VERSION}" \
      -o /out/k8s-cloud-node-manager ./cmd/k8s-cloud-node-manager

# distroless/static: CA certificates (for the cloud APIs), tzdata and
# /etc/passwd, no shell or package manager to exploit.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/k8s-cloud-node-manager /k8s-cloud-node-manager
# The nonroot user of distroless (65532), matching the chart's runAsUser.
USER 65532:65532
EXPOSE 6443
ENTRYPOINT ["/k8s-cloud-node-manager"]
