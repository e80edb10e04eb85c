package node

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// Policy decides whether an action may go ahead (pkg/policy). The handler
// asks it once the node is locked and before the cloud call; a dry run
// asks it too, and it answers as it would for the real request without
// taking any budget. Its error is the Status the caller gets.
type Policy interface {
	Admit(ctx context.Context, req PolicyRequest) error
}

// PolicyRequest is one action the policy judges.
type PolicyRequest struct {
	Action string
	// Node is the Node as just read from kube-apiserver.
	Node   *corev1.Node
	User   string
	Mode   string
	Reason string
	DryRun bool
}

// Nodes are the views of every node now, for rules over a group of nodes
// (their labels and readiness).
func (c *Cache) Nodes() []*infraopsv1.Node {
	items, _ := c.snapshot()
	return items
}

// LastAction is the node's status.lastAction as this replica follows it
// (nil when it has none).
func (c *Cache) LastAction(name string) *infraopsv1.LastAction {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.actions[name]
}
