#!/usr/bin/env bash
# Regenerates deepcopy functions and OpenAPI definitions for the API types.
# The generators are pinned as `tool` lines in go.mod, so no install step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

module=$(go list -m)
header=hack/boilerplate.go.txt
apis=./pkg/apis/infraops/v1

go tool deepcopy-gen \
  --go-header-file "$header" \
  --output-file zz_generated.deepcopy.go \
  "$apis"

# The meta/runtime packages are listed so objects of this group can reference
# ObjectMeta, ListMeta, Time, … in the published OpenAPI.
go tool openapi-gen \
  --go-header-file "$header" \
  --output-dir pkg/generated/openapi \
  --output-pkg "$module/pkg/generated/openapi" \
  --output-file zz_generated.openapi.go \
  --output-model-name-file zz_generated.model_name.go \
  --readonly-pkg k8s.io/apimachinery/pkg/apis/meta/v1 \
  --readonly-pkg k8s.io/apimachinery/pkg/runtime \
  --readonly-pkg k8s.io/apimachinery/pkg/version \
  --report-filename hack/api-violations.list \
  k8s.io/apimachinery/pkg/apis/meta/v1 \
  k8s.io/apimachinery/pkg/runtime \
  k8s.io/apimachinery/pkg/version \
  "$apis"
