package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

func (h *harness) post(action, node, body string) response {
	h.t.Helper()
	return h.do(http.MethodPost, "/apis/infraops.michael.io/v1/nodes/"+node+"/"+action, "alice", body)
}

func (h *harness) lastAction(node string) *infraopsv1.LastAction {
	h.t.Helper()
	r := h.do(http.MethodGet, "/apis/infraops.michael.io/v1/nodes/"+node, "alice", "")
	var v infraopsv1.Node
	if err := json.Unmarshal(r.body, &v); err != nil || r.code != http.StatusOK {
		h.t.Fatalf("get %s: %d %s", node, r.code, r.body)
	}
	return v.Status.LastAction
}

func (h *harness) waitPhase(node string, phase infraopsv1.ActionPhase) *infraopsv1.LastAction {
	h.t.Helper()
	var la *infraopsv1.LastAction
	waitUntil(h.t, node+"'s lastAction "+string(phase), func() bool {
		la = h.lastAction(node)
		return la != nil && la.Phase == phase
	})
	return la
}

func endCooldown(t *testing.T, w *world, node string) {
	t.Helper()
	if err := w.kube.CoordinationV1().Leases("kube-system").Delete(context.Background(), "node-action-"+node, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// kubelet plays the kubelet of a node: its Ready condition and boot ID.
func kubelet(t *testing.T, w *world, node string, ready corev1.ConditionStatus, bootID string) {
	t.Helper()
	n, err := w.kube.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	if bootID != "" {
		n.Status.NodeInfo.BootID = bootID
	}
	if _, err := w.kube.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// stop and start through the server: one cloud call each with the
// cloud's own knobs, and status.lastAction followed from Requested to
// Completed as the Node goes NotReady and Ready again.
func TestStopThenStartFollowedToCompleted(t *testing.T) {
	w := newWorld(t)
	h := w.serve(t, "replica-a")
	r := h.post("stop", "tc-node", `{"mode":"hard","stopCharging":true,"reason":"save money"}`)
	if r.code != http.StatusAccepted {
		t.Fatalf("stop: %d %s", r.code, r.body)
	}
	calls := callsFor(h.cvm.Calls(), cvmID)
	if len(calls) != 1 || calls[0].Action != "StopInstances" || calls[0].Region != "ap-guangzhou" ||
		calls[0].StopType != "HARD" || calls[0].StoppedMode != "STOP_CHARGING" {
		t.Fatalf("want one HARD STOP_CHARGING StopInstances, got %+v", calls)
	}
	var answer infraopsv1.NodeAction
	if err := json.Unmarshal(r.body, &answer); err != nil || answer.Action != "stop" || answer.Mode != "hard" {
		t.Fatalf("answer %s", r.body)
	}
	la := h.waitPhase("tc-node", infraopsv1.ActionRequested)
	if la.Action != "stop" || la.Mode != "hard" || la.User != "alice" || la.Reason != "save money" ||
		la.CloudRequestID != calls[0].RequestID || la.BootIDAtRequest != "boot-1" || la.ReadyAtRequest != "True" || la.RequestedAt.IsZero() {
		t.Fatalf("lastAction %+v", la)
	}
	kubelet(t, w, "tc-node", corev1.ConditionUnknown, "")
	la = h.waitPhase("tc-node", infraopsv1.ActionCompleted)
	if la.Ready != "Unknown" || la.CompletedAt == nil {
		t.Fatalf("completed stop %+v", la)
	}
	// The cooldown ends (as after --action-cooldown): the lock goes.
	endCooldown(t, w, "tc-node")
	// A stopped instance refuses a reboot with CVM's own state error, and
	// that refusal is the node's last action now.
	if r := h.restart("tc-node", ""); r.code != http.StatusConflict || !strings.Contains(string(r.body), "UnsupportedOperation.InstanceStateStopped") {
		t.Fatalf("restart of a stopped machine: %d %s", r.code, r.body)
	}
	if la := h.waitPhase("tc-node", infraopsv1.ActionFailed); la.Action != "restart" || !strings.Contains(la.Message, "InstanceStateStopped") {
		t.Fatalf("refused restart %+v", la)
	}
	if r := h.post("start", "tc-node", `{"reason":"back"}`); r.code != http.StatusAccepted {
		t.Fatalf("start: %d %s", r.code, r.body)
	}
	if c := callsFor(h.cvm.Calls(), cvmID); c[len(c)-1].Action != "StartInstances" {
		t.Fatalf("calls %+v", c)
	}
	if in, _ := h.cvm.Instance(cvmID); in.State != "RUNNING" {
		t.Fatalf("state after start: %s", in.State)
	}
	la = h.waitPhase("tc-node", infraopsv1.ActionRequested)
	if la.Action != "start" || la.ReadyAtRequest != "Unknown" {
		t.Fatalf("lastAction %+v", la)
	}
	kubelet(t, w, "tc-node", corev1.ConditionTrue, "boot-2")
	h.waitPhase("tc-node", infraopsv1.ActionCompleted)
}

// A restart is Completed only once the boot ID changed and the node is
// Ready again: NotReady with the old boot ID, or Ready with it, is not it.
func TestRestartFollowedByBootID(t *testing.T) {
	w := newWorld(t)
	h := w.serve(t, "replica-a")
	if r := h.restart("aws-node", ""); r.code != http.StatusAccepted {
		t.Fatalf("restart: %d %s", r.code, r.body)
	}
	h.waitPhase("aws-node", infraopsv1.ActionRequested)
	kubelet(t, w, "aws-node", corev1.ConditionFalse, "")
	kubelet(t, w, "aws-node", corev1.ConditionTrue, "")
	// Judged on every Node change: still Requested with the old boot ID.
	if la := h.lastAction("aws-node"); la.Phase != infraopsv1.ActionRequested {
		t.Fatalf("completed without a new boot ID: %+v", la)
	}
	kubelet(t, w, "aws-node", corev1.ConditionFalse, "boot-2")
	if la := h.lastAction("aws-node"); la.Phase != infraopsv1.ActionRequested {
		t.Fatalf("completed while NotReady: %+v", la)
	}
	kubelet(t, w, "aws-node", corev1.ConditionTrue, "boot-2")
	la := h.waitPhase("aws-node", infraopsv1.ActionCompleted)
	if la.BootIDAtRequest != "boot-1" || la.BootID != "boot-2" || la.Ready != "True" {
		t.Fatalf("lastAction %+v", la)
	}
}

// A cloud refusal is Failed, with the cloud's error; EC2 stop and start
// are one call each with Force for hard; a dry run leaves no record; two
// replicas show the same lastAction.
func TestStopStartAWSFailedAndTwoReplicas(t *testing.T) {
	w := newWorld(t)
	a, b := w.serve(t, "replica-a"), w.serve(t, "replica-b")
	if r := a.post("stop", "aws-node", `{"dryRun":["All"]}`); r.code != http.StatusOK && r.code != http.StatusAccepted {
		t.Fatalf("dry run: %d %s", r.code, r.body)
	}
	if la := a.lastAction("aws-node"); la != nil {
		t.Fatalf("a dry run left a lastAction: %+v", la)
	}
	if r := a.post("stop", "aws-node", `{"mode":"hard"}`); r.code != http.StatusAccepted {
		t.Fatalf("stop: %d %s", r.code, r.body)
	}
	calls := callsFor(a.ec2.Calls(), awsID)
	if c := calls[len(calls)-1]; c.Action != "StopInstances" || !c.Force || c.DryRun || c.Region != "us-east-1" {
		t.Fatalf("calls %+v", calls)
	}
	a.waitPhase("aws-node", infraopsv1.ActionRequested)
	if la, lb := a.lastAction("aws-node"), b.waitPhase("aws-node", infraopsv1.ActionRequested); !reflect.DeepEqual(la, lb) {
		t.Fatalf("replicas disagree:\n%+v\n%+v", la, lb)
	}

	a.ec2.SetFault(awsBusyID, fakecloud.Fault{Kind: fakecloud.FaultAuth})
	if r := b.post("start", "busy-node", ""); r.code != http.StatusBadGateway {
		t.Fatalf("start refused by the cloud: %d %s", r.code, r.body)
	}
	la := a.waitPhase("busy-node", infraopsv1.ActionFailed)
	if la.Action != "start" || !strings.Contains(la.Message, "UnauthorizedOperation") || la.CompletedAt == nil {
		t.Fatalf("failed lastAction %+v", la)
	}
	if lb := b.waitPhase("busy-node", infraopsv1.ActionFailed); !reflect.DeepEqual(la, lb) {
		t.Fatalf("replicas disagree:\n%+v\n%+v", la, lb)
	}
}
