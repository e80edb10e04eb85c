package plugin

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// accessRule is one permission a run needs, cluster-wide.
type accessRule struct {
	Group, Resource, Subresource, Verb string
	// Why is what it is needed for.
	Why string
}

func (r accessRule) String() string {
	res := r.Resource
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	if r.Group != "" {
		res += "." + r.Group
	}
	return r.Verb + " " + res
}

// drainRules are the permissions --drain needs beyond the action's own,
// as the user: the plugin acts with the user's credentials only.
func drainRules(action string) []accessRule {
	return []accessRule{
		{Group: infraopsv1.GroupName, Resource: "nodes", Subresource: action, Verb: "create", Why: "the action itself"},
		{Resource: "nodes", Verb: "get", Why: "read the node before cordoning it"},
		{Resource: "nodes", Verb: "patch", Why: "cordon and uncordon"},
		{Resource: "nodes", Verb: "list", Why: "wait until it is back"},
		{Resource: "nodes", Verb: "watch", Why: "wait until it is back"},
		{Resource: "pods", Verb: "list", Why: "find the node's pods"},
		{Resource: "pods", Verb: "get", Why: "wait until evicted pods are gone"},
		{Resource: "pods", Subresource: "eviction", Verb: "create", Why: "evict"},
		{Group: "apps", Resource: "daemonsets", Verb: "get", Why: "tell DaemonSet pods, which are left alone"},
	}
}

// drainRBACHelp is the ClusterRole --drain needs, for --help and the
// missing-permission message.
func drainRBACHelp(action string) string {
	var b strings.Builder
	for _, r := range drainRules(action) {
		fmt.Fprintf(&b, "  %-45s %s\n", r.String(), r.Why)
	}
	return strings.TrimRight(b.String(), "\n")
}

// checkAccess asks the API server, with SelfSubjectAccessReviews (which
// every authenticated user may create), whether the user has each rule,
// and refuses the run before anything is cordoned when one is missing:
// a drain that cannot uncordon, or drains a node the action then may not
// act on, is worse than none.
func checkAccess(ctx context.Context, kube kubernetes.Interface, rules []accessRule) error {
	var missing []accessRule
	for _, r := range rules {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: r.Group, Resource: r.Resource, Subresource: r.Subresource, Verb: r.Verb},
		}}
		got, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("checking the permissions --drain needs (%s): %w", r, err)
		}
		if !got.Status.Allowed {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("--drain runs with your own credentials, and they lack (cluster-wide):\n")
	for _, r := range missing {
		fmt.Fprintf(&b, "  %-45s %s\n", r.String(), r.Why)
	}
	b.WriteString("Nothing was cordoned. See 'Permissions' in --help for the rules --drain needs.")
	return fmt.Errorf("%s", b.String())
}
