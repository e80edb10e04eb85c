package node

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// What the cloud contract adds to the error mapping: a mode or action the
// cloud does not have is the caller's 422 naming what it has, with the lock
// released; an answer that is not the cloud's own is a 502 whose outcome
// is unknown (lock kept); a failure before anything was sent releases it.
func TestCloudContractErrors(t *testing.T) {
	inst := cloud.Instance{Provider: "aws", ID: "i-0123456789abcdef0", Region: "us-east-1"}
	cases := []struct {
		name       string
		err        error
		code       int32
		mention    []string
		didNothing bool
	}{
		{"mode", &cloud.UnsupportedError{Provider: "aws", Action: "restart", Mode: "hard", Modes: []cloud.Mode{"soft"}},
			422, []string{"mode", `"hard"`, "soft"}, true},
		{"action", &cloud.UnsupportedError{Provider: "aws", Action: "stop"}, 422, []string{"aws cannot stop"}, true},
		{"bad answer", cloud.BadAnswer("aws", "a 200 answer without an EC2 request ID", nil), 502, []string{"unknown", "request ID"}, false},
		{"not sent", &cloud.Error{Kind: cloud.ErrUnavailable, NotSent: true, Code: "CredentialError"}, 502, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := cloudError("node-1", "restart", inst, tc.err).(apierrors.APIStatus).Status()
			if s.Code != tc.code {
				t.Fatalf("got %d %s: %s, want %d", s.Code, s.Reason, s.Message, tc.code)
			}
			for _, m := range tc.mention {
				if !strings.Contains(s.Message, m) {
					t.Errorf("message %q does not mention %q", s.Message, m)
				}
			}
			if got := cloudDidNothing(tc.err); got != tc.didNothing {
				t.Errorf("cloudDidNothing = %v, want %v", got, tc.didNothing)
			}
		})
	}
	// The mode error is on the body's field, under the options kind.
	s := cloudError("node-1", "restart", inst, cases[0].err).(apierrors.APIStatus).Status()
	if s.Details == nil || s.Details.Kind != "RestartOptions" || len(s.Details.Causes) != 1 || s.Details.Causes[0].Field != "mode" {
		t.Errorf("details %+v", s.Details)
	}
}

// A region the node does not tell is a 422 on the region label; any other
// resolution error is on the providerID.
func TestUnresolvableNodeFields(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{ProviderID: "qcloud:///100003/ins-3ven36lk"}}
	_, err := Resolve(n, func(string) string { return "" })
	s := unresolvableNode("n", n, err).(apierrors.APIStatus).Status()
	if s.Code != 422 || len(s.Details.Causes) != 1 || s.Details.Causes[0].Field != "metadata.labels[topology.kubernetes.io/region]" {
		t.Fatalf("region: %+v", s.Details)
	}
	n.Spec.ProviderID = "gce://p/z/n"
	_, err = Resolve(n, func(string) string { return "" })
	s = unresolvableNode("n", n, err).(apierrors.APIStatus).Status()
	if s.Code != 422 || s.Details.Causes[0].Field != "spec.providerID" {
		t.Fatalf("providerID: %+v", s.Details)
	}
}
