package node

import (
	"fmt"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fullNode is a Node as a kubelet writes it: images, addresses, capacity
// and managed fields are most of its size.
func fullNode(i int) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", i/250, i%250),
			UID:         "uid",
			Labels:      map[string]string{"topology.kubernetes.io/region": "us-east-1", "topology.kubernetes.io/zone": "us-east-1a", "kubernetes.io/os": "linux"},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, FieldsV1: &metav1.FieldsV1{Raw: make([]byte, 2048)}},
			},
		},
		Spec: corev1.NodeSpec{ProviderID: fmt.Sprintf("aws:///us-east-1a/i-0%016x", i), PodCIDR: "10.1.0.0/24"},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi")},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
				{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
			},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.1.2"}, {Type: corev1.NodeHostName, Address: "ip-10-0-1-2.ec2.internal"}},
			NodeInfo:  corev1.NodeSystemInfo{BootID: "boot", KernelVersion: "6.1.0", OSImage: "Amazon Linux 2023", ContainerRuntimeVersion: "containerd://1.7.0", KubeletVersion: "v1.37.2"},
		},
	}
	for j := 0; j < 20; j++ {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{
			Names:     []string{fmt.Sprintf("registry.example.com/team/image-%d@sha256:%064d", j, j), fmt.Sprintf("registry.example.com/team/image-%d:v1.2.3", j)},
			SizeBytes: 123456789,
		})
	}
	return n
}

func TestTrimNodeKeepsWhatTheViewReads(t *testing.T) {
	full := fullNode(7)
	obj, err := TrimNode(full)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := obj.(*corev1.Node)
	if trimmed.Status.Images != nil || trimmed.ManagedFields != nil || trimmed.Status.Addresses != nil || len(trimmed.Status.Conditions) != 1 {
		t.Fatalf("not trimmed: %+v", trimmed.Status)
	}
	region := func(string) string { return "" }
	if a, b := toView(full, region), toView(trimmed, region); !equality.Semantic.DeepEqual(a.Status, b.Status) || a.Name != b.Name || a.UID != b.UID || len(b.Labels) != len(a.Labels) {
		t.Fatalf("the view of a trimmed node differs:\n full    %+v\n trimmed %+v", a.Status, b.Status)
	}
	if v := toView(trimmed, region); v.Status.Ready != "True" || v.Status.BootID != "boot" || v.Status.Cloud == nil || v.Status.Cloud.Region != "us-east-1" {
		t.Fatalf("unexpected view %+v", v.Status)
	}
	// Tombstones and other objects pass through.
	if obj, _ := TrimNode("tombstone"); obj != "tombstone" {
		t.Fatal("a non-Node changed")
	}
}

// BenchmarkCacheBytesPerNode prints the heap an informer cache holds per
// Node, untrimmed and trimmed by TrimNode (go test -bench CacheBytes).
func BenchmarkCacheBytesPerNode(b *testing.B) {
	const nodes = 2000
	for _, tc := range []struct {
		name string
		keep func(*corev1.Node) *corev1.Node
	}{
		{"untrimmed", func(n *corev1.Node) *corev1.Node { return n }},
		{"trimmed", func(n *corev1.Node) *corev1.Node { o, _ := TrimNode(n); return o.(*corev1.Node) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var perNode float64
			for i := 0; i < b.N; i++ {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				cache := make([]*corev1.Node, nodes)
				for j := range cache {
					cache[j] = tc.keep(fullNode(j))
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perNode = float64(after.HeapAlloc-before.HeapAlloc) / nodes
				runtime.KeepAlive(cache)
			}
			b.ReportMetric(perNode, "bytes/node")
		})
	}
}
