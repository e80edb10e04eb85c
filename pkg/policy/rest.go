package policy

import (
	"context"
	"fmt"
	"sort"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/rest"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// REST serves budgets.infraops.michael.io: each budget of the policy and
// its use now, read from the slot Leases (so every replica shows the same).
// Without a policy the list is empty.
type REST struct {
	p *Policy
}

var (
	_ rest.Storage              = &REST{}
	_ rest.Scoper               = &REST{}
	_ rest.Getter               = &REST{}
	_ rest.Lister               = &REST{}
	_ rest.TableConvertor       = &REST{}
	_ rest.SingularNameProvider = &REST{}
)

// NewREST returns the budgets' storage; p may be nil (no policy).
func NewREST(p *Policy) *REST { return &REST{p: p} }

func (r *REST) New() runtime.Object     { return &infraopsv1.Budget{} }
func (r *REST) NewList() runtime.Object { return &infraopsv1.BudgetList{} }
func (r *REST) Destroy()                {}
func (r *REST) NamespaceScoped() bool   { return false }
func (r *REST) GetSingularName() string { return "budget" }

func (r *REST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	if r.p != nil {
		for _, b := range r.p.budgets {
			if b.Name == name {
				return r.p.view(ctx, b)
			}
		}
	}
	return nil, apierrors.NewNotFound(infraopsv1.Resource("budgets"), name)
}

func (r *REST) List(ctx context.Context, _ *metainternalversion.ListOptions) (runtime.Object, error) {
	list := &infraopsv1.BudgetList{TypeMeta: metav1.TypeMeta{APIVersion: infraopsv1.SchemeGroupVersion.String(), Kind: "BudgetList"}}
	if r.p == nil {
		list.Items = []infraopsv1.Budget{}
		return list, nil
	}
	for _, b := range r.p.budgets {
		v, err := r.p.view(ctx, b)
		if err != nil {
			return nil, err
		}
		list.Items = append(list.Items, *v)
	}
	return list, nil
}

// view is a budget with its use per group: the groups of the nodes it
// selects now, and any group a slot is still held in.
func (p *Policy) view(ctx context.Context, b *budget) (*infraopsv1.Budget, error) {
	v := &infraopsv1.Budget{
		TypeMeta:   metav1.TypeMeta{APIVersion: infraopsv1.SchemeGroupVersion.String(), Kind: "Budget"},
		ObjectMeta: metav1.ObjectMeta{Name: b.Name},
		Spec: infraopsv1.BudgetSpec{
			Selector: b.Selector, GroupBy: b.GroupBy, Actions: b.Actions, MaxUnderAction: b.MaxUnderAction,
		},
		Status: infraopsv1.BudgetStatus{UnderActionBound: metav1.Duration{Duration: p.bound}},
	}
	if b.MinReady != nil {
		v.Spec.MinReady = b.MinReady.String()
	}
	groups := map[string]bool{}
	if p.d.Nodes != nil {
		for _, n := range p.d.Nodes() {
			if b.selector.Matches(labelsOf(n.Labels)) {
				groups[groupOf(b, n.Labels)] = true
			}
		}
	}
	list, err := p.d.Client.CoordinationV1().Leases(p.d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: BudgetLabel + "=" + b.Name})
	if err != nil {
		return nil, unavailable(b, err)
	}
	for _, l := range list.Items {
		groups[recordOf(&l).Group] = true
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		st := &poolState{byIndex: map[string]*coordinationv1.Lease{}}
		for i := range list.Items {
			l := &list.Items[i]
			if l.Labels[BudgetGroupLabel] == groupHash(g) && p.holds(ctx, l) {
				st.active = append(st.active, l)
			}
		}
		limit, members, err := p.capacity(b, g, st)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		bg := infraopsv1.BudgetGroup{Group: g, Nodes: int32(members), Limit: int32(limit), InUse: int32(len(st.active))}
		for _, l := range st.active {
			rec := recordOf(l)
			h := infraopsv1.BudgetHolder{Node: rec.Node, Action: rec.Action, User: rec.User}
			if l.Spec.AcquireTime != nil {
				h.Since = metav1.NewTime(l.Spec.AcquireTime.Time)
				h.Until = metav1.NewTime(l.Spec.AcquireTime.Add(p.bound))
			}
			bg.Holders = append(bg.Holders, h)
		}
		sort.Slice(bg.Holders, func(i, j int) bool { return bg.Holders[i].Node < bg.Holders[j].Node })
		v.Status.Groups = append(v.Status.Groups, bg)
	}
	return v, nil
}

func (r *REST) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	t := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: "The budget's name in the policy."},
		{Name: "Group", Type: "string", Description: "The groupBy label's value."},
		{Name: "In-Use", Type: "integer", Description: "Nodes of the group under an action now."},
		{Name: "Limit", Type: "integer", Description: "How many may be under an action now."},
		{Name: "Nodes", Type: "integer", Description: "Nodes in the group."},
		{Name: "Rule", Type: "string", Description: "maxUnderAction or minReady."},
		{Name: "Holders", Type: "string", Description: "The nodes under an action that hold the budget."},
	}}
	add := func(b *infraopsv1.Budget) {
		rule := ""
		if b.Spec.MaxUnderAction != nil {
			rule = fmt.Sprintf("maxUnderAction=%d", *b.Spec.MaxUnderAction)
		} else {
			rule = "minReady=" + b.Spec.MinReady
		}
		if len(b.Status.Groups) == 0 {
			t.Rows = append(t.Rows, metav1.TableRow{Cells: []interface{}{b.Name, "<none>", int64(0), int64(0), int64(0), rule, "<none>"}, Object: runtime.RawExtension{Object: b}})
		}
		for _, g := range b.Status.Groups {
			holders := ""
			for i, h := range g.Holders {
				if i > 0 {
					holders += ","
				}
				holders += h.Node
			}
			t.Rows = append(t.Rows, metav1.TableRow{Cells: []interface{}{b.Name, orNone(g.Group), int64(g.InUse), int64(g.Limit), int64(g.Nodes), rule, orNone(holders)}, Object: runtime.RawExtension{Object: b}})
		}
	}
	switch o := obj.(type) {
	case *infraopsv1.Budget:
		add(o)
	case *infraopsv1.BudgetList:
		for i := range o.Items {
			add(&o.Items[i])
		}
	default:
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
	return t, nil
}

func labelsOf(m map[string]string) labels.Set { return labels.Set(m) }
