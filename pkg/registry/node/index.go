package node

import (
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
)

// MachineClaims tells which Nodes name a machine in spec.providerID, so an
// action on a machine that two Nodes claim is refused. The view's Cache is
// one.
type MachineClaims interface {
	NodesClaiming(provider, machine string) []string
}

// machineKey names a machine by provider and cloud.Instance.Machine, so
// different spellings of one machine's providerID ("aws:///us-east-1a/i-…"
// and "aws:////i-…") meet, and one GCE instance name in two projects does
// not.
func machineKey(provider, machine string) string { return provider + "/" + machine }

// machineKeyOf is the machineKey a providerID names; false when it names
// no machine.
func machineKeyOf(providerID string) (string, bool) {
	provider, id, ok := providers.Machine(providerID)
	return machineKey(provider, id), ok
}
