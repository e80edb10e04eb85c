// Package kubelet plays the kubelets of the machines a fake cloud runs, so
// that the Nodes behind them behave as real ones do when the cloud
// reboots, stops or starts a machine: the Node goes NotReady, and a
// machine that boots again comes back Ready with a new boot ID. It writes
// only what a kubelet (and the node lifecycle controller, for a node that
// stopped posting) would write: the Ready condition and
// status.nodeInfo.bootID, through the status subresource.
//
// It follows fakecloud.MachineEvents (fakecloud.ObserveMachines) and finds
// the Nodes by spec.providerID. It is for the demo and end-to-end tests;
// cmd/fake-cloud runs it with --kubeconfig.
package kubelet

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/providers"
)

// Reasons and messages of the Ready condition, as the kubelet and the
// node lifecycle controller word them.
const (
	reasonUnknown  = "NodeStatusUnknown"
	messageUnknown = "Kubelet stopped posting node status."
	reasonNotReady = "KubeletNotReady"
	messageBooting = "container runtime status check may not have completed yet"
	reasonReady    = "KubeletReady"
	messageReady   = "kubelet is posting ready status"
)

// writeTimeout bounds one status write, so a stuck kube-apiserver cannot
// hold a simulated machine forever.
const writeTimeout = 10 * time.Second

// Simulator is the kubelets of every machine of a fake cloud.
type Simulator struct {
	nodes corev1client.NodeInterface
	boot  time.Duration
	logf  func(format string, args ...any)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// gen counts the events per machine: a newer event cancels what an
	// older one still had to do (a stop during a reboot's boot leaves the
	// machine down).
	gen map[string]uint64
}

// New returns a simulator writing to nodes. boot is how long a machine
// takes from the cloud's call until its kubelet reports Ready again; the
// new boot ID is posted, NotReady, a fifth of it earlier, as a starting
// kubelet does. logf may be nil.
func New(nodes corev1client.NodeInterface, boot time.Duration, logf func(format string, args ...any)) *Simulator {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Simulator{nodes: nodes, boot: boot, logf: logf, ctx: ctx, cancel: cancel, gen: map[string]uint64{}}
}

// step is one status a kubelet posts, after a wait.
type step struct {
	after   time.Duration
	status  corev1.ConditionStatus
	reason  string
	message string
	newBoot bool
}

// steps is what a machine event looks like from the Node.
func (s *Simulator) steps(kind string) []step {
	down := step{status: corev1.ConditionUnknown, reason: reasonUnknown, message: messageUnknown}
	up := []step{
		{after: s.boot - s.boot/5, status: corev1.ConditionFalse, reason: reasonNotReady, message: messageBooting, newBoot: true},
		{after: s.boot / 5, status: corev1.ConditionTrue, reason: reasonReady, message: messageReady},
	}
	switch kind {
	case fakecloud.MachineRebooted:
		return append([]step{down}, up...)
	case fakecloud.MachineStopped:
		return []step{down}
	case fakecloud.MachineStarted:
		return up
	}
	return nil
}

// Observe takes one machine event; it returns at once and the Node
// follows in the background. Use it as the observer of
// fakecloud.ObserveMachines.
func (s *Simulator) Observe(e fakecloud.MachineEvent) {
	steps := s.steps(e.Kind)
	if len(steps) == 0 {
		return
	}
	key := e.Provider + "/" + e.InstanceID
	s.mu.Lock()
	s.gen[key]++
	gen := s.gen[key]
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, st := range steps {
			if !s.sleep(st.after) || !s.current(key, gen) {
				return
			}
			if err := s.post(e, st); err != nil {
				s.logf("kubelet: %s %s: %v", e.Provider, e.InstanceID, err)
				return
			}
		}
	}()
}

func (s *Simulator) current(key string, gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen[key] == gen
}

func (s *Simulator) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// Wait returns once every event observed so far has played out.
func (s *Simulator) Wait() { s.wg.Wait() }

// Close drops what is still pending and waits for writes in flight.
func (s *Simulator) Close() {
	s.cancel()
	s.wg.Wait()
}

// post writes one step on every Node behind the machine (normally one).
func (s *Simulator) post(e fakecloud.MachineEvent, st step) error {
	ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
	defer cancel()
	names, err := s.nodesOf(ctx, e.Provider, e.InstanceID)
	if err != nil {
		return err
	}
	for _, name := range names {
		bootID := ""
		if st.newBoot {
			bootID = newBootID()
		}
		if err := s.setReady(ctx, name, st, bootID); err != nil {
			return err
		}
		extra := ""
		if bootID != "" {
			extra = ", boot ID " + bootID
		}
		s.logf("kubelet: node %s (%s %s after %s): Ready=%s %s%s", name, e.Provider, e.InstanceID, e.Kind, st.status, st.reason, extra)
	}
	return nil
}

// nodesOf finds the Nodes whose providerID names the machine.
func (s *Simulator) nodesOf(ctx context.Context, provider, instanceID string) ([]string, error) {
	list, err := s.nodes.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	var out []string
	for _, n := range list.Items {
		// The fake clouds' records carry the bare instance ID (a GCE
		// instance's name without its project and zone), so that is what
		// is compared; the fakes' machines have unique IDs.
		inst, err := providers.Resolve(n.Spec.ProviderID, nil, func(string) string { return "-" })
		if err == nil && inst.Provider == provider && inst.ID == instanceID {
			out = append(out, n.Name)
		}
	}
	return out, nil
}

func (s *Simulator) setReady(ctx context.Context, name string, st step, bootID string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := s.nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		cond := corev1.NodeCondition{
			Type: corev1.NodeReady, Status: st.status, Reason: st.reason, Message: st.message,
			LastHeartbeatTime: now, LastTransitionTime: now,
		}
		replaced := false
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type != corev1.NodeReady {
				continue
			}
			if n.Status.Conditions[i].Status == st.status {
				cond.LastTransitionTime = n.Status.Conditions[i].LastTransitionTime
			}
			if st.status == corev1.ConditionUnknown {
				// A node that stopped posting keeps its last heartbeat.
				cond.LastHeartbeatTime = n.Status.Conditions[i].LastHeartbeatTime
			}
			n.Status.Conditions[i] = cond
			replaced = true
		}
		if !replaced {
			n.Status.Conditions = append(n.Status.Conditions, cond)
		}
		if bootID != "" {
			n.Status.NodeInfo.BootID = bootID
		}
		_, err = s.nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// newBootID is shaped like the kernel's random boot_id.
func newBootID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
