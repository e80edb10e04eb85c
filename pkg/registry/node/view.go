package node

import (
	corev1 "k8s.io/api/core/v1"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
)

// Resolve turns a core Node into the machine behind it. The error is a
// *cloud.InvalidProviderIDError or wraps cloud.ErrRegionUnknown: the node
// is not one this server can act on.
func Resolve(n *corev1.Node, defaultRegion func(provider string) string) (cloud.Instance, error) {
	return providers.Resolve(n.Spec.ProviderID, n.Labels, defaultRegion)
}

// toView builds the API object shown for a core Node.
func toView(n *corev1.Node, defaultRegion func(provider string) string) *infraopsv1.Node {
	v := &infraopsv1.Node{
		ObjectMeta: *n.ObjectMeta.DeepCopy(),
		Status: infraopsv1.NodeStatus{
			ProviderID: n.Spec.ProviderID,
			Ready:      string(readyStatus(n)),
			BootID:     n.Status.NodeInfo.BootID,
		},
	}
	// The core object's managed fields describe writes to the core Node, not
	// to this read-only view.
	v.ManagedFields = nil
	inst, err := Resolve(n, defaultRegion)
	if err != nil {
		v.Status.CloudError = err.Error()
	} else {
		v.Status.Cloud = &infraopsv1.CloudInstance{
			Provider:   inst.Provider,
			Region:     inst.Region,
			Zone:       inst.Zone,
			InstanceID: inst.ID,
		}
	}
	return v
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// TrimNode is the informer transform: the cache keeps only what the view and
// the actions read, so memory stays small on clusters with thousands of
// nodes (images, addresses, capacity and managed fields are most of a Node).
func TrimNode(obj interface{}) (interface{}, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil // tombstones pass through untouched
	}
	trimmed := &corev1.Node{
		ObjectMeta: n.ObjectMeta,
		Spec:       corev1.NodeSpec{ProviderID: n.Spec.ProviderID},
		Status: corev1.NodeStatus{
			NodeInfo: corev1.NodeSystemInfo{BootID: n.Status.NodeInfo.BootID},
		},
	}
	trimmed.ManagedFields = nil
	trimmed.Annotations = nil
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			trimmed.Status.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return trimmed, nil
}
