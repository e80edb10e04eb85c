# The two set-up commands of the README: `make demo` and `make test`.
SHELL := /usr/bin/env bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
# Expanded once: the binaries, the image's tag and label and the tests'
# expectations must agree even if HEAD moves during a run.
VERSION := $(VERSION)
LDFLAGS := -X github.com/michael/k8s-cloud-node-manager/pkg/version.Version=$(VERSION)
BINARIES := k8s-cloud-node-manager fake-cloud kubectl-restart

# Tools built from the Go module proxy into a cache outside the checkout,
# keyed by version (warm: instant). The scripts print the path last.
K8S_BIN_DIR = $(shell hack/build-k8s-binaries.sh | tail -n 1)
HELM_BIN = $(shell hack/build-helm.sh | tail -n 1)

.PHONY: all help build image test unit-test chart-test e2e-test image-test generate verify demo bench bench-e2e tools clean

all: build

# This list: every target with the first line of the comment above it.
help:
	@awk '/^# / { if (!doc) doc = substr($$0, 3); next } \
		/^[a-z][a-z0-9-]*:([^=]|$$)/ { split($$0, t, ":"); if (doc != "") printf "  make %-12s %s\n", t[1], doc } \
		{ doc = "" }' $(MAKEFILE_LIST)

# The server, the fake cloud and the kubectl plugin into bin/, version-stamped.
build:
	@mkdir -p bin
	$(foreach b,$(BINARIES),CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/$(b) ./cmd/$(b) &&) true
	install -m 0755 cmd/kubectl-restart/kubectl_complete-restart cmd/kubectl-restart/kubectl_complete-cloudnode bin/
	ln -sf kubectl-restart bin/kubectl-cloudnode

IMAGE ?= ghcr.io/michael/k8s-cloud-node-manager
IMAGE_TAG ?= $(VERSION)
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
IMAGE_ARCHIVE ?= bin/image/k8s-cloud-node-manager.oci.tar
# File and image times: the commit's, so a rebuild of a commit is identical.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
SOURCE_DATE_EPOCH := $(SOURCE_DATE_EPOCH)
image_bin = bin/image/$(subst /,_,$(1))/k8s-cloud-node-manager

# The server's container image for IMAGE_PLATFORMS, one OCI archive with a multi-arch index.
# No container engine and no registry needed (hack/image writes the layout). Push it with
#   skopeo copy --all oci-archive:$(IMAGE_ARCHIVE) docker://REGISTRY/k8s-cloud-node-manager:TAG
# Each platform is one cross-compiling go build sharing the build cache.
image:
	$(foreach p,$(IMAGE_PLATFORMS),CGO_ENABLED=0 GOOS=$(word 1,$(subst /, ,$(p))) GOARCH=$(word 2,$(subst /, ,$(p))) \
		$(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(call image_bin,$(p)) ./cmd/k8s-cloud-node-manager &&) true
	$(GO) run ./hack/image --out $(IMAGE_ARCHIVE) --ref $(IMAGE):$(IMAGE_TAG) --version $(VERSION) \
		--source-date-epoch $(SOURCE_DATE_EPOCH) $(foreach p,$(IMAGE_PLATFORMS),--binary $(p)=$(call image_bin,$(p)))

# Build kube-apiserver, etcd, kubectl (KUBE_VERSION overrides) and helm into ~/.cache.
# At the libraries' Kubernetes version; cached, so warm runs are instant.
tools:
	hack/build-k8s-binaries.sh
	hack/build-helm.sh

# Every test: verify, unit-test, chart-test, e2e-test, then image-test.
# Generated files fresh, gofmt and vet clean, unit and in-process
# integration tests with the race detector, the chart's lint/template tests,
# then the end-to-end suite against a real kube-apiserver and etcd, and the
# image run with podman the way the chart runs it.
test: verify unit-test chart-test e2e-test image-test

# Unit and in-process integration tests, with the race detector.
unit-test:
	$(GO) test -race -count=1 ./pkg/... ./cmd/... ./hack/image/...

# The Helm chart's lint and template tests.
chart-test:
	HELM_BIN="$(HELM_BIN)" $(GO) test -count=1 ./test/chart/...

# The end-to-end suite against a real kube-apiserver, etcd and kubectl (includes the demo's Try list).
e2e-test: build
	K8S_BIN_DIR="$(K8S_BIN_DIR)" HELM_BIN="$(HELM_BIN)" PRODUCT_BIN_DIR="$(CURDIR)/bin" \
		$(GO) test -count=1 -timeout 40m -v ./test/e2e/...

# The image run under podman as the chart runs it; needs podman and runc (.ci/run installs them).
image-test: build image
	K8S_BIN_DIR="$(K8S_BIN_DIR)" HELM_BIN="$(HELM_BIN)" PRODUCT_BIN_DIR="$(CURDIR)/bin" \
		IMAGE_ARCHIVE="$(CURDIR)/$(IMAGE_ARCHIVE)" IMAGE_REF="$(IMAGE):$(IMAGE_TAG)" IMAGE_VERSION="$(VERSION)" \
		$(GO) test -count=1 -timeout 20m -v ./test/image/...

# Regenerate deepcopy, OpenAPI and the plain manifests (commit the output).
generate:
	hack/update-codegen.sh
	hack/render-manifests.sh

# Generated files fresh, gofmt and go vet clean.
verify:
	hack/verify-codegen.sh
	hack/verify-manifests.sh
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# A local control plane with fake clouds and the server, and a list of commands to try; Ctrl-C stops it.
# It runs what `make build` built (SKIP_BUILD: local-up.sh builds nothing more).
demo: build
	SKIP_BUILD=1 hack/local-up.sh

# Benchmarks (figures printed, nothing asserted).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

# Side-by-side figures of the product and kube-apiserver's own calls (hack/bench-e2e); asserts nothing.
# Request latencies and throughput through a real kube-apiserver (the e2e
# harness), then lists, informer sync and memory with 5,000 Nodes.
bench-e2e: build
	K8S_BIN_DIR="$(K8S_BIN_DIR)" $(GO) run ./hack/bench-e2e $(BENCH_ARGS)

# Remove bin/.
clean:
	rm -rf bin
