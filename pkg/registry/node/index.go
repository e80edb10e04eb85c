package node

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// MachineIndex indexes Nodes by the machine their providerID names
// (provider and instance ID), so different spellings of one machine's
// providerID ("aws:///us-east-1a/i-…" and "aws:////i-…") meet.
const MachineIndex = "machine"

func machineKey(provider, instanceID string) string { return provider + "/" + instanceID }

// MachineIndexFunc is the MachineIndex of Nodes resolved without a default
// region; NewMachineIndexFunc is the server's, which resolves them as the
// actions do.
var MachineIndexFunc = NewMachineIndexFunc(nil)

// NewMachineIndexFunc is the cache.IndexFunc of MachineIndex, resolving
// each Node the way an action resolves it (the cloud's own providerID
// rules, its labels and the config's default region), so a Node an action
// can reach is always indexed. Nodes whose providerID names no machine an
// action could reach are not indexed.
func NewMachineIndexFunc(defaultRegion func(provider string) string) cache.IndexFunc {
	return func(obj interface{}) ([]string, error) {
		n, ok := obj.(*corev1.Node)
		if !ok {
			return nil, nil
		}
		inst, err := Resolve(n, defaultRegion)
		if err != nil {
			return nil, nil
		}
		return []string{machineKey(inst.Provider, inst.ID)}, nil
	}
}
