#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from the Go module proxy, at the
# Kubernetes version matching the project's k8s.io libraries, into a cache
# folder outside the checkout. Prints that folder as the last line of stdout.
#
#   hack/build-k8s-binaries.sh                      # version from go.mod
#   KUBE_VERSION=v1.36.3 hack/build-k8s-binaries.sh # explicit version
#
# `go install k8s.io/kubernetes/cmd/...@vX` cannot work: k8s.io/kubernetes
# replaces its staging modules with ./staging paths. A throwaway module that
# requires k8s.io/kubernetes and maps every staging module to its published
# v0.X.Y release builds fine, and pins the etcd version Kubernetes tests with.
set -euo pipefail

# Everything runs from main, which bash parses whole before running: a
# checkout updated during a ten-minute build must not change the script
# under its feet.
main() {

  start=${SECONDS}
  log() { printf '[build-k8s-binaries +%3ds] %s\n' "$((SECONDS - start))" "$*" >&2; }
  die() { log "ERROR: $*"; exit 1; }

  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

  # The caller's GOFLAGS (CI often sets -mod=mod or -mod=vendor) and any
  # go.work above the cache must not leak into the throwaway module.
  unset GOFLAGS
  export GOWORK=off
  export CGO_ENABLED=0

  command -v go >/dev/null || die "go is not on PATH"

  kube_version=${KUBE_VERSION:-}
  if [[ -z "${kube_version}" ]]; then
    lib_version=$(cd "${root}" && go list -m -f '{{.Version}}' k8s.io/apiserver) ||
      die "cannot read the k8s.io/apiserver version from ${root}/go.mod"
    [[ "${lib_version}" == v0.* ]] || die "unexpected k8s.io/apiserver version ${lib_version}"
    kube_version="v1.${lib_version#v0.}"
  fi
  [[ "${kube_version}" =~ ^v1\.([0-9]+)\.([0-9]+)(-.+)?$ ]] ||
    die "KUBE_VERSION must look like v1.37.2, got ${kube_version}"
  kube_minor=${BASH_REMATCH[1]}
  staging_version="v0.${kube_version#v1.}"

  cache_root="${XDG_CACHE_HOME:-${HOME}/.cache}/k8s-cloud-node-manager"
  out="${cache_root}/k8s-${kube_version}"
  stamp="${out}/stamp"
  binaries=(kube-apiserver etcd kubectl)

  complete() {
    [[ -f "${stamp}" ]] || return 1
    local b
    for b in "${binaries[@]}"; do
      [[ -x "${out}/bin/${b}" ]] || return 1
    done
  }

  if complete; then
    log "cached: ${out}"
    echo "${out}"
    exit 0
  fi

  mkdir -p "${cache_root}"
  # Two test runs or engineers asking at once must not build twice into the
  # same folder; the second one waits and then finds the result.
  exec 9>"${out}.lock"
  if ! flock -n 9; then
    log "another build of ${kube_version} is running; waiting for it"
    flock 9
  fi
  if complete; then
    log "built meanwhile by another process: ${out}"
    echo "${out}"
    exit 0
  fi

  work=$(mktemp -d "${cache_root}/build-${kube_version}.XXXXXX")
  cleanup() { rm -rf "${work}"; }
  trap cleanup EXIT

  log "building Kubernetes ${kube_version} (staging modules ${staging_version}) with $(go env GOVERSION) in ${work}"

  log "fetching k8s.io/kubernetes@${kube_version} go.mod"
  kube_gomod=$(cd "${work}" && go mod download -json "k8s.io/kubernetes@${kube_version}" |
    sed -n 's/^[[:space:]]*"GoMod":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')
  [[ -n "${kube_gomod}" && -f "${kube_gomod}" ]] || die "go mod download did not report a go.mod for k8s.io/kubernetes@${kube_version}"

  mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "${kube_gomod}" | sort -u)
  ((${#staging[@]} > 0)) || die "no staging replace lines found in ${kube_gomod}"
  log "${#staging[@]} staging modules"

  cd "${work}"
  go mod init k8s-binaries-build 2>/dev/null || die "go mod init failed in ${work}"
  edit_args=("-require=k8s.io/kubernetes@${kube_version}")
  for m in "${staging[@]}"; do
    edit_args+=("-replace=${m}=${m}@${staging_version}")
  done
  go mod edit "${edit_args[@]}"

  # Blank imports of main packages only compile under a build tag nobody sets;
  # they are there so `go mod tidy` resolves the commands' dependencies.
  cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  # etcd's own main is this one line; a local copy names the binary "etcd"
  # (go.etcd.io/etcd/server/v3 would come out as "server").
  mkdir -p cmd/etcd
  cat >cmd/etcd/main.go <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF

  log "resolving modules (go mod tidy; slow on a cold module cache)"
  go mod tidy >&2 || die "go mod tidy failed in ${work}"
  etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  log "etcd ${etcd_version}"

  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${kube_version}"
    ldflags+=" -X ${pkg}.gitMajor=1"
    ldflags+=" -X ${pkg}.gitMinor=${kube_minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean"
    ldflags+=" -X ${pkg}.buildDate=${build_date}"
  done

  log "compiling kube-apiserver, kubectl and etcd (cold: several minutes)"
  mkdir -p staged/bin
  go build -trimpath -ldflags "${ldflags}" -o staged/bin/ \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kubectl \
    ./cmd/etcd >&2 || die "go build failed"

  got=$(staged/bin/kube-apiserver --version 2>&1) || die "kube-apiserver --version failed: ${got}"
  [[ "${got}" == "Kubernetes ${kube_version}" ]] || die "kube-apiserver reports '${got}', want 'Kubernetes ${kube_version}'"

  {
    echo "kubernetes=${kube_version}"
    echo "etcd=${etcd_version}"
    echo "go=$(go env GOVERSION)"
    echo "built=${build_date}"
  } >staged/stamp

  # Replace the folder in one rename so nobody sees a half-written one.
  rm -rf "${out}"
  mv staged "${out}"
  log "done: ${out}"
  echo "${out}"
}

main "$@"
