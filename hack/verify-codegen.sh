#!/usr/bin/env bash
# Fails when the generated files differ from what the generators produce now.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generated=(pkg/apis/infraops/v1/zz_generated.deepcopy.go pkg/apis/infraops/v1/zz_generated.model_name.go pkg/generated/openapi/zz_generated.openapi.go hack/api-violations.list)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "${generated[@]}"; do
  mkdir -p "$tmp/$(dirname "$f")"
  cp "$f" "$tmp/$f"
done
hack/update-codegen.sh
status=0
for f in "${generated[@]}"; do
  if ! diff -u "$tmp/$f" "$f"; then
    echo "$f is stale: run 'make generate' and commit the result" >&2
    status=1
    cp "$tmp/$f" "$f" # leave the tree as it was
  fi
done
exit $status
