package node

import (
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
)

// MachineClaims tells which Nodes name a machine in spec.providerID, so an
// action on a machine that two Nodes claim is refused. The view's Cache is
// one.
type MachineClaims interface {
	NodesClaiming(provider, instanceID string) []string
}

// machineKey names a machine by provider and instance ID, so different
// spellings of one machine's providerID ("aws:///us-east-1a/i-…" and
// "aws:////i-…") meet.
func machineKey(provider, instanceID string) string { return provider + "/" + instanceID }

// machineKeyOf is the machineKey a providerID names; false when it names
// no machine.
func machineKeyOf(providerID string) (string, bool) {
	provider, id, ok := providers.Machine(providerID)
	return machineKey(provider, id), ok
}
