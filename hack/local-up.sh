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

# The product binaries are `make build`'s (version-stamped, static), built
# once: `make demo` builds them and sets SKIP_BUILD; run alone, this
# script asks make for them (a no-op link when nothing changed).
if [[ -z "${SKIP_BUILD:-}" ]]; then
  log "make build"
  "${MAKE:-make}" --no-print-directory build >&2
fi
for name in k8s-cloud-node-manager fake-cloud kubectl-restart; do
  if [[ ! -x "bin/${name}" ]]; then
    log "bin/${name} is missing (run make build)"
    exit 1
  fi
done

# A built binary, not `go run`: go run does not pass SIGTERM on to its
# child, which would then leave the control plane running.
mkdir -p "${workdir}"
go build -o "${workdir}/local-up" ./hack/local-up
exec "${workdir}/local-up" --workdir "${workdir}" --k8s-bin-dir "${k8s_dir}" "$@"
