#!/usr/bin/env bash
# Fails when config/deploy/ is not what hack/render-manifests.sh renders from
# the chart now (a chart change without regenerating, or a hand edit).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT

"${root}/hack/render-manifests.sh" "${tmp}/deploy"

# diff -r also reports files present on one side only (e.g. a stale file
# left in config/deploy/).
if ! diff -ru "${root}/config/deploy" "${tmp}/deploy"; then
  echo >&2
  echo "verify-manifests: config/deploy/ is stale; run hack/render-manifests.sh (make generate)" >&2
  exit 1
fi
echo "verify-manifests: config/deploy/ is up to date" >&2
