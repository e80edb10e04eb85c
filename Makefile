# The two set-up commands of the README: `make demo` and `make test`.
SHELL := /usr/bin/env bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
LDFLAGS := -X github.com/michael/k8s-cloud-node-manager/pkg/version.Version=$(VERSION)
BINARIES := k8s-cloud-node-manager fake-cloud kubectl-restart

# Tools built from the Go module proxy into a cache outside the checkout,
# keyed by version (warm: instant). The scripts print the path last.
K8S_BIN_DIR = $(shell hack/build-k8s-binaries.sh | tail -n 1)
HELM_BIN = $(shell hack/build-helm.sh | tail -n 1)

.PHONY: all build test unit-test chart-test e2e-test generate verify demo bench bench-e2e tools clean

all: build

build:
	@mkdir -p bin
	$(foreach b,$(BINARIES),CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/$(b) ./cmd/$(b) &&) true
	install -m 0755 cmd/kubectl-restart/kubectl_complete-restart cmd/kubectl-restart/kubectl_complete-cloudnode bin/
	ln -sf kubectl-restart bin/kubectl-cloudnode

# kube-apiserver, etcd and kubectl at the libraries' Kubernetes version
# (KUBE_VERSION overrides), and helm.
tools:
	hack/build-k8s-binaries.sh
	hack/build-helm.sh

# Everything: generated files fresh, gofmt and vet clean, unit and in-process
# integration tests with the race detector, the chart's lint/template tests,
# then the end-to-end suite against a real kube-apiserver and etcd.
test: verify unit-test chart-test e2e-test

unit-test:
	$(GO) test -race -count=1 ./pkg/... ./cmd/...

chart-test:
	HELM_BIN="$(HELM_BIN)" $(GO) test -count=1 ./test/chart/...

e2e-test: build
	K8S_BIN_DIR="$(K8S_BIN_DIR)" HELM_BIN="$(HELM_BIN)" PRODUCT_BIN_DIR="$(CURDIR)/bin" \
		$(GO) test -count=1 -timeout 40m -v ./test/e2e/...

generate:
	hack/update-codegen.sh
	hack/render-manifests.sh

verify:
	hack/verify-codegen.sh
	hack/verify-manifests.sh
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

demo: build
	hack/local-up.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

# The product behind a real kube-apiserver (the e2e harness): request
# latencies and throughput side by side, then lists, informer sync and
# memory with 5,000 Nodes. Prints figures; asserts nothing.
bench-e2e: build
	K8S_BIN_DIR="$(K8S_BIN_DIR)" $(GO) run ./hack/bench-e2e $(BENCH_ARGS)

clean:
	rm -rf bin
