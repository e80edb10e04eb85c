# The two set-up commands of the README: `make demo` and `make test`.
SHELL := /usr/bin/env bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
LDFLAGS := -X github.com/michael/k8s-cloud-node-manager/pkg/version.Version=$(VERSION)
BINARIES := k8s-cloud-node-manager fake-cloud

.PHONY: all build test unit-test e2e-test generate verify demo bench k8s-binaries clean

all: build

build:
	@mkdir -p bin
	$(foreach b,$(BINARIES),CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/$(b) ./cmd/$(b) &&) true

# kube-apiserver, etcd and kubectl of the libraries' Kubernetes version, built
# from the Go module proxy into a cache outside the checkout (warm: seconds).
k8s-binaries:
	hack/build-k8s-binaries.sh

# Everything: generated files fresh, gofmt and vet clean, unit and
# integration tests with the race detector, then the real-cluster e2e suite.
test: verify unit-test

unit-test:
	$(GO) test -race -count=1 ./pkg/... ./cmd/...

e2e-test: build
	K8S_BIN_DIR="$$(hack/build-k8s-binaries.sh | tail -n 1)" PRODUCT_BIN_DIR="$(CURDIR)/bin" \
		$(GO) test -count=1 -timeout 30m -v ./test/...

generate:
	hack/update-codegen.sh

verify:
	hack/verify-codegen.sh
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

demo: build
	hack/local-up.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

clean:
	rm -rf bin
