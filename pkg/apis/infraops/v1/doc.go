// Package v1 is the infraops.michael.io/v1 API: a read-only view of the
// cluster's Nodes with their cloud identity, and the actions (restart, …)
// that drive the machine behind a Node.
//
// The same Go types are registered for v1 and for the internal version, so
// there is no internal package and no conversion code.
//
// +k8s:deepcopy-gen=package
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.michael.infraops.v1
// +groupName=infraops.michael.io
package v1
