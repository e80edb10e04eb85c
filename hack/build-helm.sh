#!/usr/bin/env bash
# Builds the helm CLI from its Go module into a cache folder outside the
# checkout, only when it is missing, and prints the binary's path as the last
# line of stdout:
#
#   helm=$(hack/build-helm.sh | tail -n 1)
#
# Helm is a build/test tool of this project, never a Go dependency of the
# project module: `go install pkg@version` builds it in module mode from its
# own go.mod, so nothing here touches ./go.mod or ./go.sum.
#
# The version is pinned here and only here (hack/render-manifests.sh, the
# chart tests and the Makefile all go through this script).
set -euo pipefail

HELM_VERSION=v3.22.0

start=${SECONDS}
log() { printf '[build-helm +%3ds] %s\n' "$((SECONDS - start))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The caller's GOFLAGS (CI often sets -mod=vendor or -mod=mod) would break
# `go install pkg@version`; a go.work above the cache must not apply either.
# GOTOOLCHAIN=local: build with the Go that is installed rather than
# silently downloading a newer toolchain because helm's go.mod asks for one.
unset GOFLAGS
export GOWORK=off
export GOTOOLCHAIN=local
export CGO_ENABLED=0

command -v go >/dev/null || die "go is not on PATH"

cache_root="${XDG_CACHE_HOME:-${HOME}/.cache}/k8s-cloud-node-manager"
out="${cache_root}/helm-${HELM_VERSION}"
bin="${out}/helm"

if [[ -x "${bin}" ]]; then
  log "cached: ${bin}"
  echo "${bin}"
  exit 0
fi

mkdir -p "${cache_root}"
# Parallel test packages or engineers asking at once must not build twice
# into the same folder; the second waits and then finds the result.
exec 9>"${out}.lock"
if ! flock -n 9; then
  log "another build of helm ${HELM_VERSION} is running; waiting for it"
  flock 9
fi
if [[ -x "${bin}" ]]; then
  log "built meanwhile by another process: ${bin}"
  echo "${bin}"
  exit 0
fi

staged=$(mktemp -d "${cache_root}/build-helm-${HELM_VERSION}.XXXXXX")
trap 'rm -rf "${staged}"' EXIT

log "building helm ${HELM_VERSION} with $(go env GOVERSION) (cold module cache: ~80 s)"
# Run from the staging folder so no go.mod of the caller's directory is in
# scope. The -X flag stamps the version `helm version` reports (helm's own
# Makefile does the same); without it helm reports v3.x-dev-ish defaults.
(cd "${staged}" && GOBIN="${staged}" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
  "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}") >&2 ||
  die "go install helm.sh/helm/v3/cmd/helm@${HELM_VERSION} failed"

got=$("${staged}/helm" version --short 2>&1) || die "helm version failed: ${got}"
[[ "${got}" == "${HELM_VERSION}"* ]] || die "built helm reports '${got}', want ${HELM_VERSION}"

# One rename, so nobody ever sees a half-written binary at ${bin}.
mkdir -p "${out}"
mv "${staged}/helm" "${bin}.tmp.$$"
mv "${bin}.tmp.$$" "${bin}"
log "done: ${bin}"
echo "${bin}"
