// Package node is the REST storage of infraops.michael.io nodes: a read-only
// view of the core Nodes served from a shared informer, and the actions
// (nodes/{name}/restart, …) that drive the machine behind a node.
package node

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apiserver/pkg/registry/rest"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// REST serves get, list and watch of nodes from the informer cache.
type REST struct {
	lister        corelisters.NodeLister
	informer      cache.SharedIndexInformer
	defaultRegion func(provider string) string
}

var (
	_ rest.Storage              = &REST{}
	_ rest.Scoper               = &REST{}
	_ rest.Getter               = &REST{}
	_ rest.Lister               = &REST{}
	_ rest.TableConvertor       = &REST{}
	_ rest.SingularNameProvider = &REST{}
)

// NewREST returns the nodes storage over a Node informer (trimmed with
// TrimNode). defaultRegion gives the cloud config's default region of a
// provider.
func NewREST(informer cache.SharedIndexInformer, defaultRegion func(provider string) string) *REST {
	return &REST{lister: corelisters.NewNodeLister(informer.GetIndexer()), informer: informer, defaultRegion: defaultRegion}
}

func (r *REST) New() runtime.Object     { return &infraopsv1.Node{} }
func (r *REST) NewList() runtime.Object { return &infraopsv1.NodeList{} }
func (r *REST) Destroy()                {}
func (r *REST) NamespaceScoped() bool   { return false }
func (r *REST) GetSingularName() string { return "node" }

func (r *REST) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	n, err := r.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nodeNotFound(name)
	}
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return toView(n, r.defaultRegion), nil
}

func (r *REST) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	labelSel := labels.Everything()
	fieldSel := fields.Everything()
	if opts != nil {
		if opts.LabelSelector != nil {
			labelSel = opts.LabelSelector
		}
		if opts.FieldSelector != nil {
			fieldSel = opts.FieldSelector
		}
	}
	nodes, err := r.lister.List(labelSel)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	list := &infraopsv1.NodeList{Items: make([]infraopsv1.Node, 0, len(nodes))}
	// The informer's resourceVersion lets a client watch from this list
	// (kubectl get -w) without a second round of ADDED events.
	list.ResourceVersion = r.informer.LastSyncResourceVersion()
	for _, n := range nodes {
		v := toView(n, r.defaultRegion)
		if !fieldSel.Matches(FieldSet(v)) {
			continue
		}
		list.Items = append(list.Items, *v)
	}
	return list, nil
}

// FieldSet is what field selectors on nodes can match. The same names are
// registered as field labels in the scheme (see pkg/apiserver).
func FieldSet(n *infraopsv1.Node) fields.Set {
	s := fields.Set{
		"metadata.name":     n.Name,
		"status.providerID": n.Status.ProviderID,
		"status.ready":      n.Status.Ready,
	}
	if c := n.Status.Cloud; c != nil {
		s["status.cloud.provider"] = c.Provider
		s["status.cloud.region"] = c.Region
		s["status.cloud.zone"] = c.Zone
		s["status.cloud.instanceID"] = c.InstanceID
	}
	return s
}

// FieldLabels are the field selector names FieldSet understands.
var FieldLabels = []string{
	"metadata.name", "status.providerID", "status.ready",
	"status.cloud.provider", "status.cloud.region", "status.cloud.zone", "status.cloud.instanceID",
}

var tableColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the node"},
	{Name: "Provider", Type: "string", Description: "Cloud of the machine behind the node"},
	{Name: "Region", Type: "string", Description: "Cloud region"},
	{Name: "Zone", Type: "string", Description: "Availability zone"},
	{Name: "Instance", Type: "string", Description: "Cloud instance ID"},
	{Name: "Ready", Type: "string", Description: "Status of the node's Ready condition"},
	{Name: "Age", Type: "string", Description: "Time since the node was created"},
	{Name: "Cloud-Error", Type: "string", Priority: 1, Description: "Why the node cannot be acted on"},
}

func (r *REST) ConvertToTable(ctx context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: tableColumns}
	var items []infraopsv1.Node
	switch o := obj.(type) {
	case *infraopsv1.Node:
		items = []infraopsv1.Node{*o}
	case *infraopsv1.NodeList:
		items = o.Items
		table.ResourceVersion = o.ResourceVersion
	default:
		return nil, apierrors.NewInternalError(fmt.Errorf("cannot show %T as a table", obj))
	}
	for i := range items {
		n := &items[i]
		provider, region, zone, instance := "<none>", "<none>", "<none>", "<none>"
		if c := n.Status.Cloud; c != nil {
			provider, region, instance = c.Provider, orNone(c.Region), c.InstanceID
			zone = orNone(c.Zone)
		}
		table.Rows = append(table.Rows, metav1.TableRow{
			Cells: []interface{}{
				n.Name, provider, region, zone, instance, n.Status.Ready,
				translateAge(n.CreationTimestamp), orNone(n.Status.CloudError),
			},
			Object: runtime.RawExtension{Object: n},
		})
	}
	return table, nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func translateAge(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(metav1.Now().Sub(t.Time))
}

// nodeNotFound is the 404 every part of this package answers for a node the
// cluster does not have.
func nodeNotFound(name string) error {
	return apierrors.NewNotFound(infraopsv1.Resource("nodes"), name)
}
