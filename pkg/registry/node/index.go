package node

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// MachineIndex indexes Nodes by the machine their providerID names
// (provider and instance ID), so different spellings of one machine's
// providerID ("aws:///us-east-1a/i-…" and "aws:////i-…") meet.
const MachineIndex = "machine"

func machineKey(provider, instanceID string) string { return provider + "/" + instanceID }

// MachineIndexFunc is the cache.IndexFunc of MachineIndex; Nodes whose
// providerID names no machine are not indexed.
func MachineIndexFunc(obj interface{}) ([]string, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return nil, nil
	}
	pid, err := cloud.ParseProviderID(n.Spec.ProviderID)
	if err != nil {
		return nil, nil
	}
	return []string{machineKey(pid.Provider, pid.InstanceID)}, nil
}
