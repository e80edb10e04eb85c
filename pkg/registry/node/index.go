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

// anyRegion is a default region for machineKeyOf: the region does not name
// a machine (an instance ID is unique within its cloud), so a Node whose
// region its labels or the config would have to tell still claims its
// machine.
func anyRegion(string) string { return "any" }

// machineKeyOf is the machineKey a providerID names; false when it names
// no machine.
func machineKeyOf(providerID string) (string, bool) {
	inst, err := providers.Resolve(providerID, nil, anyRegion)
	if err != nil {
		return "", false
	}
	return machineKey(inst.Provider, inst.ID), true
}
