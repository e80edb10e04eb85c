package node

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
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
	// The machine is what the providerID names, whatever the region: no
	// labels, and a placeholder default region so that a providerID whose
	// zone tells no region (TKE's numeric zone) is still indexed.
	inst, err := providers.Resolve(n.Spec.ProviderID, nil, func(string) string { return "-" })
	if err != nil {
		return nil, nil
	}
	return []string{instanceKey(inst)}, nil
}

// instanceKey is an Instance's MachineIndex key. A project is part of
// the machine's identity where the providerID names one (GCE).
func instanceKey(inst cloud.Instance) string {
	id := inst.ID
	if inst.Project != "" {
		id = inst.Project + "/" + id
	}
	return machineKey(inst.Provider, id)
}
