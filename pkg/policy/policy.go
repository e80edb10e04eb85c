// Package policy is the server's safety policy (--policy-config): budgets
// of nodes under an action at once, a minimum of Ready nodes, maintenance
// windows and opt-out markers, applied to every action before the cloud
// call, on every replica alike.
//
// Budgets are held in the Kubernetes API, not in memory: a budget of N for
// a group is N slot Leases in the server's namespace, named by index, taken
// with create-if-absent or, when the node holding one is no longer under
// an action, with an update carrying the resourceVersion read. So two
// replicas taking the last slot at the same instant meet at kube-apiserver
// and one loses, and no count kept by one replica decides alone.
package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// Node markers.
const (
	// ProtectAnnotation: "true" refuses every action on the node.
	ProtectAnnotation = infraopsv1.GroupName + "/protect"
	// KarpenterDoNotDisrupt is honoured when optOuts.karpenterDoNotDisrupt is set.
	KarpenterDoNotDisrupt = "karpenter.sh/do-not-disrupt"
	// ClusterAPIPaused is honoured when optOuts.clusterAPIPaused is set.
	ClusterAPIPaused = "cluster.x-k8s.io/paused"
)

// Labels and annotation of the slot Leases: `kubectl get leases -l
// infraops.michael.io/budget` lists every budget's slots.
const (
	BudgetLabel      = infraopsv1.GroupName + "/budget"
	BudgetGroupLabel = infraopsv1.GroupName + "/budget-group"
	holderAnnotation = infraopsv1.GroupName + "/budget-holder"
)

// Tracker tells whether the action accepted on a node at since (when it
// took its slot) is still under way: from the accepted request until it
// has completed. The policy asks it about the nodes holding a slot; past
// the policy's bound a holder is released whatever it says.
type Tracker interface {
	UnderAction(ctx context.Context, node string, since time.Time) (bool, error)
}

// Deps are what the policy needs of the server.
type Deps struct {
	Client kubernetes.Interface
	// Namespace holds the slot Leases (the server's --lock-namespace).
	Namespace string
	// Identity names this replica in the Leases it writes.
	Identity string
	Tracker  Tracker
	// Nodes lists the nodes (the view's cache), for minReady and the
	// budgets view.
	Nodes    func() []*infraopsv1.Node
	Recorder record.EventRecorder
	// Clock is the clock (tests replace it); nil means the real one.
	Clock clock.PassiveClock
}

// Policy is a compiled policy file. Use Policy.With to give it what it needs.
type Policy struct {
	config  Config
	bound   time.Duration
	optOuts OptOuts
	budgets []*budget
	windows []*window
	d       Deps
}

var _ node.Policy = &Policy{}

// With returns the policy wired to the server.
func (p *Policy) With(d Deps) *Policy {
	q := *p
	if d.Clock == nil {
		d.Clock = clock.RealClock{}
	}
	q.d = d
	return &q
}

// Bound is how long a node counts as under an action at most.
func (p *Policy) Bound() time.Duration { return p.bound }

func (p *Policy) now() time.Time { return p.d.Clock.Now() }

// refusal is a rule's no.
type refusal struct {
	rule, kind string
	err        *apierrors.StatusError
}

// Rule kinds, for the metric and the Status cause.
const (
	kindOptOut = "OptOut"
	kindWindow = "MaintenanceWindow"
	kindBudget = "Budget"
	kindReady  = "MinReady"
)

// Admit applies the policy to one action. Opt-outs and windows first (they
// need no writes), then each budget in the file's order, taking a slot in
// each; a refusal gives back the slots already taken.
func (p *Policy) Admit(ctx context.Context, req node.PolicyRequest) error {
	logger := klog.FromContext(ctx)
	n := req.Node
	if ref := p.optedOut(req); ref != nil {
		return p.refuse(ctx, req, ref)
	}
	if ref := p.checkWindows(req); ref != nil {
		return p.refuse(ctx, req, ref)
	}
	var taken []*slot
	var names []string
	for _, b := range p.budgets {
		if !appliesTo(b.actions, req.Action) || !b.selector.Matches(labels.Set(n.Labels)) {
			continue
		}
		s, desc, ref := p.takeBudget(ctx, b, req)
		if ref != nil {
			p.giveBack(ctx, taken, logger)
			return p.refuse(ctx, req, ref)
		}
		if s != nil {
			taken = append(taken, s)
		}
		if desc != "" {
			names = append(names, desc)
		}
	}
	if !req.DryRun && len(names) > 0 && p.d.Recorder != nil {
		p.d.Recorder.AnnotatedEventf(n, map[string]string{infraopsv1.GroupName + "/user": req.User}, corev1.EventTypeNormal, "PolicyBudgetTaken",
			"%s requested by %s took %s", req.Action, req.User, strings.Join(names, ", "))
	}
	return nil
}

func (p *Policy) optedOut(req node.PolicyRequest) *refusal {
	a := req.Node.Annotations
	why, rule := "", ""
	switch {
	case a[ProtectAnnotation] == "true":
		why, rule = fmt.Sprintf("the node is annotated %s: \"true\"", ProtectAnnotation), "protect"
	case p.optOuts.KarpenterDoNotDisrupt && a[KarpenterDoNotDisrupt] == "true":
		why, rule = fmt.Sprintf("the node is annotated %s: \"true\" (optOuts.karpenterDoNotDisrupt)", KarpenterDoNotDisrupt), "karpenterDoNotDisrupt"
	case p.optOuts.ClusterAPIPaused && hasKey(a, ClusterAPIPaused):
		why, rule = fmt.Sprintf("the node is annotated %s (optOuts.clusterAPIPaused)", ClusterAPIPaused), "clusterAPIPaused"
	}
	if why == "" {
		return nil
	}
	return &refusal{rule: rule, kind: kindOptOut, err: forbidden(req, kindOptOut, rule, why+"; remove the annotation to allow actions", 0)}
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// checkWindows: among the window rules that apply to the node and the
// action, one open schedule allows it; none applying allows it too.
func (p *Policy) checkWindows(req node.PolicyRequest) *refusal {
	now := p.now()
	var applying []string
	var next time.Time
	for _, w := range p.windows {
		if !appliesTo(w.actions, req.Action) || !w.selector.Matches(labels.Set(req.Node.Labels)) {
			continue
		}
		applying = append(applying, w.Name)
		for _, s := range w.schedules {
			open, at := s.Open(now)
			if open {
				return nil
			}
			if !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
	}
	if len(applying) == 0 {
		return nil
	}
	rule := strings.Join(applying, ",")
	msg := fmt.Sprintf("outside the maintenance window %s", quoteAll(applying))
	var retry time.Duration
	if !next.IsZero() {
		retry = next.Sub(now)
		msg += fmt.Sprintf("; the next one opens at %s (in %s)", next.UTC().Format(time.RFC3339), retry.Round(time.Minute))
	}
	return &refusal{rule: applying[0], kind: kindWindow, err: forbidden(req, kindWindow, rule, msg, retry)}
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// forbidden is the Status of a rule that refuses whatever the timing:
// 403 with the rule in the message and in details.causes.
func forbidden(req node.PolicyRequest, kind, rule, msg string, retry time.Duration) *apierrors.StatusError {
	err := apierrors.NewForbidden(infraopsv1.Resource("nodes"), req.Node.Name,
		fmt.Errorf("%s refused by the safety policy (%s %q): %s", req.Action, kind, rule, msg))
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseType("Policy" + kind), Field: rule, Message: msg}}
	if retry > 0 {
		err.ErrStatus.Details.RetryAfterSeconds = retrySeconds(retry)
	}
	return err
}

func retrySeconds(d time.Duration) int32 {
	s := (d + time.Second - 1) / time.Second
	if s < 1 {
		s = 1
	}
	if s > 1<<30 {
		s = 1 << 30
	}
	return int32(s)
}

// refuse records a refusal (metric; for a real request, a Warning Event
// naming the user) and returns its Status; a dry run's message says it
// would be refused.
func (p *Policy) refuse(ctx context.Context, req node.PolicyRequest, r *refusal) error {
	observeRefusal(r.rule, r.kind, req.Action, req.DryRun)
	if req.DryRun {
		r.err.ErrStatus.Message = "dry run: would be refused because " + r.err.ErrStatus.Message
		return r.err
	}
	if p.d.Recorder != nil {
		p.d.Recorder.AnnotatedEventf(req.Node, map[string]string{infraopsv1.GroupName + "/user": req.User}, corev1.EventTypeWarning, "PolicyRefused",
			"%s requested by %s (reason %q) refused: %s", req.Action, req.User, req.Reason, r.err.ErrStatus.Message)
	}
	klog.FromContext(ctx).V(2).Info("The safety policy refused an action", "rule", r.rule, "kind", r.kind)
	return r.err
}

// slot is one taken slot Lease.
type slot struct {
	lease *coordinationv1.Lease
}

// holderRecord is kept on a slot Lease.
type holderRecord struct {
	Node    string `json:"node"`
	NodeUID string `json:"nodeUID,omitempty"`
	Action  string `json:"action"`
	User    string `json:"user"`
	Group   string `json:"group"`
}

// groupOf is the node's group in a budget.
func groupOf(b *budget, labelsOf map[string]string) string {
	if b.GroupBy == "" {
		return ""
	}
	return labelsOf[b.GroupBy]
}

func groupHash(group string) string {
	sum := sha256.Sum256([]byte(group))
	return hex.EncodeToString(sum[:5])
}

func slotName(b *budget, group string, i int) string {
	return fmt.Sprintf("budget-%s-%s-%d", b.Name, groupHash(group), i)
}

// poolState is a group's slots as read now.
type poolState struct {
	byIndex map[string]*coordinationv1.Lease
	// active are the Leases of holders still under an action.
	active []*coordinationv1.Lease
	// selfActive is this node's own active slot, if any.
	selfActive *coordinationv1.Lease
}

func recordOf(l *coordinationv1.Lease) holderRecord {
	var r holderRecord
	_ = json.Unmarshal([]byte(l.Annotations[holderAnnotation]), &r)
	return r
}

// holds reports whether a slot Lease still counts: its holder is under an
// action and the bound has not passed since the slot was taken.
func (p *Policy) holds(ctx context.Context, l *coordinationv1.Lease) bool {
	rec := recordOf(l)
	if rec.Node == "" || l.Spec.AcquireTime == nil {
		return false
	}
	if !p.now().Before(l.Spec.AcquireTime.Add(p.bound)) {
		return false
	}
	under, err := p.d.Tracker.UnderAction(ctx, rec.Node, l.Spec.AcquireTime.Time)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Cannot tell whether a budget holder is still under an action; counting it", "node", rec.Node)
		return true
	}
	return under
}

func (p *Policy) readPool(ctx context.Context, b *budget, group, self string) (*poolState, error) {
	list, err := p.d.Client.CoordinationV1().Leases(p.d.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{BudgetLabel: b.Name, BudgetGroupLabel: groupHash(group)}.String(),
	})
	if err != nil {
		return nil, err
	}
	st := &poolState{byIndex: map[string]*coordinationv1.Lease{}}
	for i := range list.Items {
		l := &list.Items[i]
		st.byIndex[l.Name] = l
		if p.holds(ctx, l) {
			st.active = append(st.active, l)
			if recordOf(l).Node == self {
				st.selfActive = l
			}
		}
	}
	return st, nil
}

// capacity is how many of the group's nodes may be under an action now.
// For minReady: the Ready nodes not under an action, plus the holders,
// less the minimum; so a slot is free exactly when acting on one more
// Ready node leaves the minimum Ready.
func (p *Policy) capacity(b *budget, group string, st *poolState) (limit, members int, err error) {
	if b.MaxUnderAction != nil {
		members = len(p.members(b, group))
		return int(*b.MaxUnderAction), members, nil
	}
	nodes := p.members(b, group)
	holders := map[string]bool{}
	for _, l := range st.active {
		holders[recordOf(l).Node] = true
	}
	ready := 0
	for _, n := range nodes {
		if n.Status.Ready == string(corev1.ConditionTrue) && !holders[n.Name] {
			ready++
		}
	}
	minimum, err := minReadyOf(*b.MinReady, len(nodes))
	if err != nil {
		return 0, len(nodes), err
	}
	return max(0, ready+len(holders)-minimum), len(nodes), nil
}

func (p *Policy) members(b *budget, group string) []*infraopsv1.Node {
	if p.d.Nodes == nil {
		return nil
	}
	var out []*infraopsv1.Node
	for _, n := range p.d.Nodes() {
		if b.selector.Matches(labels.Set(n.Labels)) && groupOf(b, n.Labels) == group {
			out = append(out, n)
		}
	}
	return out
}

func (b *budget) kind() string {
	if b.MinReady != nil {
		return kindReady
	}
	return kindBudget
}

// takeBudget takes a slot of the node's group in b (a dry run only looks).
// It returns the slot taken (nil when the node already held one, or for a
// dry run) and the budget's description for the Event.
func (p *Policy) takeBudget(ctx context.Context, b *budget, req node.PolicyRequest) (*slot, string, *refusal) {
	n := req.Node
	group := groupOf(b, n.Labels)
	st, err := p.readPool(ctx, b, group, n.Name)
	if err != nil {
		return nil, "", &refusal{rule: b.Name, kind: b.kind(), err: unavailable(b, err)}
	}
	limit, members, err := p.capacity(b, group, st)
	if err != nil {
		return nil, "", &refusal{rule: b.Name, kind: b.kind(), err: apierrors.NewInternalError(err)}
	}
	label := b.Name
	if b.GroupBy != "" {
		label = fmt.Sprintf("%s (%s=%s)", b.Name, b.GroupBy, orNone(group))
	}
	if b.MinReady != nil && !nodeReady(n) {
		// Acting on a node that is not Ready leaves as many Ready.
		return nil, "", nil
	}
	if st.selfActive != nil {
		return nil, fmt.Sprintf("budget %s (already held by this node)", label), nil
	}
	full := func() *refusal {
		return &refusal{rule: b.Name, kind: b.kind(), err: p.tooMany(req, b, label, limit, members, st)}
	}
	if len(st.active) >= limit {
		return nil, "", full()
	}
	desc := fmt.Sprintf("budget %s: %d of %d", label, len(st.active)+1, limit)
	if req.DryRun {
		return nil, desc, nil
	}
	activeNames := map[string]bool{}
	for _, l := range st.active {
		activeNames[l.Name] = true
	}
	for i := range limit {
		name := slotName(b, group, i)
		if activeNames[name] {
			continue
		}
		l, err := p.claim(ctx, b, group, name, st.byIndex[name], req)
		if err != nil {
			return nil, "", &refusal{rule: b.Name, kind: b.kind(), err: unavailable(b, err)}
		}
		if l != nil {
			return &slot{lease: l}, desc, nil
		}
	}
	// Every free slot was taken by someone else meanwhile.
	return nil, "", full()
}

// claim takes the slot: created if absent, or taken over with the
// resourceVersion read (seen is the Lease as listed, nil if absent). It
// returns nil, nil when another request won the slot.
func (p *Policy) claim(ctx context.Context, b *budget, group, name string, seen *coordinationv1.Lease, req node.PolicyRequest) (*coordinationv1.Lease, error) {
	rec, _ := json.Marshal(holderRecord{Node: req.Node.Name, NodeUID: string(req.Node.UID), Action: req.Action, User: req.User, Group: group})
	now := metav1.NewMicroTime(p.now())
	want := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: p.d.Namespace,
			Labels: map[string]string{
				BudgetLabel:                    b.Name,
				BudgetGroupLabel:               groupHash(group),
				"app.kubernetes.io/managed-by": "k8s-cloud-node-manager",
			},
			Annotations: map[string]string{holderAnnotation: string(rec)},
			// Gone with the Node (garbage collector), so a deleted node
			// does not hold a slot until the bound.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: req.Node.Name, UID: types.UID(req.Node.UID)}},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(p.d.Identity + "/" + string(uuid.NewUUID())),
			LeaseDurationSeconds: ptr.To(int32(p.bound / time.Second)),
			AcquireTime:          &now,
			RenewTime:            &now,
		},
	}
	if req.Node.UID == "" {
		want.OwnerReferences = nil
	}
	leases := p.d.Client.CoordinationV1().Leases(p.d.Namespace)
	if seen == nil {
		created, err := leases.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil, nil
		}
		return created, err
	}
	want.ResourceVersion = seen.ResourceVersion
	updated, err := leases.Update(ctx, want, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil, nil
	}
	return updated, err
}

// giveBack deletes slots taken by a request another rule then refused;
// the preconditions make sure only the Lease this request wrote goes.
func (p *Policy) giveBack(ctx context.Context, taken []*slot, logger klog.Logger) {
	ctx = context.WithoutCancel(ctx)
	for _, s := range taken {
		err := p.d.Client.CoordinationV1().Leases(p.d.Namespace).Delete(ctx, s.lease.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &s.lease.UID, ResourceVersion: &s.lease.ResourceVersion},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			// It counts until its holder's lock ends, at worst the bound.
			logger.Error(err, "Could not give back a budget slot", "lease", s.lease.Name)
		}
	}
}

// budgetRetryAfter is the Retry-After of a full budget: when a holder's
// action completes is not known in advance, so a client (client-go retries
// a 429 with Retry-After by itself) looks again soon.
const budgetRetryAfter = 10 * time.Second

// tooMany is the 429 of a full budget, naming it and its holders, with a
// Retry-After of budgetRetryAfter, or less when a holder reaches the bound
// sooner.
func (p *Policy) tooMany(req node.PolicyRequest, b *budget, label string, limit, members int, st *poolState) *apierrors.StatusError {
	var holders []string
	retry := budgetRetryAfter
	for _, l := range st.active {
		holders = append(holders, recordOf(l).Node)
		if l.Spec.AcquireTime != nil {
			retry = min(retry, l.Spec.AcquireTime.Add(p.bound).Sub(p.now()))
		}
	}
	sort.Strings(holders)
	var msg string
	if b.MinReady != nil {
		msg = fmt.Sprintf("%s of %s refused by the safety policy (%s %q): it would leave fewer than minReady %s of the %d nodes of %s Ready (nodes under an action count as not Ready",
			req.Action, req.Node.Name, kindReady, b.Name, b.MinReady.String(), members, label)
	} else {
		msg = fmt.Sprintf("%s of %s refused by the safety policy (%s %q): %s allows %d node(s) under an action at once",
			req.Action, req.Node.Name, kindBudget, b.Name, label, limit)
	}
	if len(holders) > 0 {
		msg += fmt.Sprintf("; under an action now: %s", strings.Join(holders, ", "))
	}
	if b.MinReady != nil {
		msg += ")"
	}
	msg += "; see kubectl get budgets." + infraopsv1.GroupName + " " + b.Name
	err := apierrors.NewTooManyRequests(msg, int(retrySeconds(retry)))
	err.ErrStatus.Details.Name = req.Node.Name
	err.ErrStatus.Details.Group = infraopsv1.GroupName
	err.ErrStatus.Details.Kind = "nodes"
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseType("Policy" + b.kind()), Field: b.Name, Message: msg}}
	return err
}

func unavailable(b *budget, err error) *apierrors.StatusError {
	return apierrors.NewServiceUnavailable(fmt.Sprintf("cannot read or take budget %q in kube-apiserver: %v; retry", b.Name, err))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
