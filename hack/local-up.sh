#!/usr/bin/env bash
# The demo behind `make demo`: a loopback Kubernetes control plane, the fake
# cloud and k8s-cloud-node-manager registered as an APIService. Ctrl-C stops
# everything.
#
#   WORKDIR=/tmp/k8s-cloud-node-manager-demo hack/local-up.sh
#   KUBE_VERSION=v1.36.3 hack/local-up.sh   # another control-plane version
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${root}"
workdir=${WORKDIR:-/tmp/k8s-cloud-node-manager-demo}
export WORKDIR="${workdir}"

log() { printf '[local-up.sh] %s\n' "$*" >&2; }

k8s_dir=$(hack/build-k8s-binaries.sh | tail -n 1)

# Rebuild the product binaries from ./cmd when it is there (incremental,
# so cheap when nothing changed) rather than demo a stale bin/; otherwise
# use what `make build` left in bin/.
for name in k8s-cloud-node-manager fake-cloud kubectl-restart; do
  if [[ -d "cmd/${name}" ]]; then
    log "building bin/${name}"
    go build -o "bin/${name}" "./cmd/${name}"
  elif [[ ! -x "bin/${name}" ]]; then
    log "bin/${name} is missing and there is no ./cmd/${name} to build it from (run make build)"
    exit 1
  fi
done

# A built binary, not `go run`: go run does not pass SIGTERM on to its
# child, which would then leave the control plane running.
mkdir -p "${workdir}"
go build -o "${workdir}/local-up" ./hack/local-up
exec "${workdir}/local-up" --workdir "${workdir}" --k8s-bin-dir "${k8s_dir}" "$@"
