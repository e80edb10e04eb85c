package kubelet

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

const (
	ec2ID = "i-0123456789abcdef0"
	cvmID = "ins-abcd1234"
)

func newNodes(t *testing.T) corev1client.NodeInterface {
	t.Helper()
	node := func(name, providerID string) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.NodeSpec{ProviderID: providerID},
			Status: corev1.NodeStatus{
				Conditions: []corev1.NodeCondition{
					{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
					{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: reasonReady},
				},
				NodeInfo: corev1.NodeSystemInfo{BootID: "boot-" + name},
			},
		}
	}
	cs := fake.NewClientset(
		node("eks", "aws:///us-east-1a/"+ec2ID),
		node("tke", "qcloud:///100003/"+cvmID),
		node("other", "aws:///us-east-1a/i-0fedcba9876543210"),
	)
	return cs.CoreV1().Nodes()
}

func event(kind, provider, id string) fakecloud.MachineEvent {
	return fakecloud.MachineEvent{Provider: provider, Region: "r", InstanceID: id, Kind: kind, Time: time.Now()}
}

func state(t *testing.T, nodes corev1client.NodeInterface, name string) (corev1.NodeCondition, string) {
	t.Helper()
	n, err := nodes.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c, n.Status.NodeInfo.BootID
		}
	}
	t.Fatalf("node %s has no Ready condition", name)
	return corev1.NodeCondition{}, ""
}

// A reboot shows on the Node as a kubelet's would: NotReady, then a new
// boot ID, then Ready; other nodes are left alone.
func TestRebootGoesNotReadyAndComesBackWithANewBootID(t *testing.T) {
	for _, tc := range []struct{ node, provider, id string }{
		{"eks", fakecloud.ProviderAWS, ec2ID},
		{"tke", fakecloud.ProviderTencentCloud, cvmID},
	} {
		t.Run(tc.node, func(t *testing.T) {
			nodes := newNodes(t)
			w, err := nodes.Watch(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			s := New(nodes, 10*time.Millisecond, t.Logf)
			defer s.Close()
			s.Observe(event(fakecloud.MachineRebooted, tc.provider, tc.id))
			s.Wait()

			var seen []string
			for len(w.ResultChan()) > 0 || len(seen) < 3 {
				ev := <-w.ResultChan()
				if ev.Type != watch.Modified {
					continue // the fake's watch starts with the existing nodes
				}
				n := ev.Object.(*corev1.Node)
				if n.Name != tc.node {
					t.Fatalf("node %s was written", n.Name)
				}
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady {
						seen = append(seen, string(c.Status)+" "+n.Status.NodeInfo.BootID)
					}
				}
			}
			if len(seen) != 3 {
				t.Fatalf("saw %q, want three status writes", seen)
			}
			before := "boot-" + tc.node
			if seen[0] != "Unknown "+before {
				t.Errorf("first write %q, want Unknown with the old boot ID", seen[0])
			}
			cond, boot := state(t, nodes, tc.node)
			if seen[1] != "False "+boot || seen[2] != "True "+boot || boot == before || boot == "" {
				t.Errorf("writes %q, want False then True with a new boot ID", seen)
			}
			if cond.Reason != reasonReady {
				t.Errorf("reason %q", cond.Reason)
			}
			if n, _ := nodes.Get(context.Background(), tc.node, metav1.GetOptions{}); len(n.Status.Conditions) != 2 {
				t.Errorf("conditions %v: the other conditions must stay", n.Status.Conditions)
			}
		})
	}
}

// A stopped machine stays NotReady with its boot ID; started, it boots.
func TestStopStaysDownAndStartBoots(t *testing.T) {
	nodes := newNodes(t)
	s := New(nodes, 10*time.Millisecond, t.Logf)
	defer s.Close()
	s.Observe(event(fakecloud.MachineStopped, fakecloud.ProviderAWS, ec2ID))
	s.Wait()
	if cond, boot := state(t, nodes, "eks"); cond.Status != corev1.ConditionUnknown || boot != "boot-eks" {
		t.Fatalf("after stop: Ready=%s boot %s, want Unknown and the old boot ID", cond.Status, boot)
	}
	s.Observe(event(fakecloud.MachineStarted, fakecloud.ProviderAWS, ec2ID))
	s.Wait()
	if cond, boot := state(t, nodes, "eks"); cond.Status != corev1.ConditionTrue || boot == "boot-eks" {
		t.Fatalf("after start: Ready=%s boot %s, want True and a new boot ID", cond.Status, boot)
	}
}

// A stop while a reboot is still booting leaves the machine down: the
// older event's remaining steps are dropped.
func TestNewerEventCancelsTheBootOfAnOlderOne(t *testing.T) {
	nodes := newNodes(t)
	s := New(nodes, 50*time.Millisecond, t.Logf)
	defer s.Close()
	s.Observe(event(fakecloud.MachineRebooted, fakecloud.ProviderAWS, ec2ID))
	s.Observe(event(fakecloud.MachineStopped, fakecloud.ProviderAWS, ec2ID))
	s.Wait()
	if cond, boot := state(t, nodes, "eks"); cond.Status != corev1.ConditionUnknown || boot != "boot-eks" {
		t.Fatalf("Ready=%s boot %s, want Unknown and the old boot ID", cond.Status, boot)
	}
}

// Refused calls, dry runs and calls that change no machine are no events.
func TestMachineEventsOnlyForAcceptedCalls(t *testing.T) {
	base := fakecloud.Call{Provider: fakecloud.ProviderAWS, Action: "RebootInstances", InstanceIDs: []string{ec2ID, "i-1"}}
	if got := base.MachineEvents(); len(got) != 2 || got[1].InstanceID != "i-1" || got[0].Kind != fakecloud.MachineRebooted {
		t.Errorf("accepted reboot: %+v", got)
	}
	for name, c := range map[string]fakecloud.Call{
		"refused":  {Provider: "aws", Action: "RebootInstances", InstanceIDs: []string{ec2ID}, Error: "IncorrectInstanceState"},
		"dry run":  {Provider: "aws", Action: "RebootInstances", InstanceIDs: []string{ec2ID}, DryRun: true},
		"describe": {Provider: "tencentcloud", Action: "DescribeInstances", InstanceIDs: []string{cvmID}},
	} {
		if got := c.MachineEvents(); len(got) != 0 {
			t.Errorf("%s: %+v, want none", name, got)
		}
	}
	var calls, events int
	on := fakecloud.ObserveMachines(func(fakecloud.Call) { calls++ }, func(fakecloud.MachineEvent) { events++ })
	on(base)
	on(fakecloud.Call{Action: "DescribeInstances"})
	if calls != 2 || events != 2 {
		t.Errorf("calls %d events %d, want 2 and 2", calls, events)
	}
}
