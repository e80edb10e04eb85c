// Package node is the REST storage of infraops.michael.io nodes: a read-only
// view of the core Nodes served from a cache a reflector fills, and the actions
// (nodes/{name}/restart, …) that drive the machine behind a node.
package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apiserver/pkg/registry/rest"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// REST serves get, list and watch of nodes from the Cache.
type REST struct {
	cache            *Cache
	bookmarkInterval time.Duration
	// latestRV, when set, is kube-apiserver's current resourceVersion of
	// Nodes. A list or an initial watch without a resourceVersion asks for
	// the most recent state; the cache may trail kube-apiserver by a few
	// events, so those wait for the cache to reach latestRV, as
	// kube-apiserver's consistent reads from its own watch cache do.
	latestRV func(ctx context.Context) (uint64, error)
}

// WithConsistentReads makes lists and initial watches without a
// resourceVersion wait for the state latestRV names.
func (r *REST) WithConsistentReads(latestRV func(ctx context.Context) (uint64, error)) *REST {
	r.latestRV = latestRV
	return r
}

// waitFor waits until the cache can answer a read of resourceVersion s
// (parsed: rv): without one, the most recent state (kube-apiserver's
// current one, when consistent reads are on); else at least rv.
func (r *REST) waitFor(ctx context.Context, s string, rv uint64) error {
	if s != "" || r.latestRV == nil {
		return r.cache.waitFresh(ctx, rv)
	}
	latest, err := r.latestRV(ctx)
	if err != nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("cannot read the current resourceVersion of Nodes from kube-apiserver: %v", err))
	}
	return r.cache.waitCaughtUp(ctx, latest)
}

var (
	_ rest.Storage              = &REST{}
	_ rest.Scoper               = &REST{}
	_ rest.Getter               = &REST{}
	_ rest.Lister               = &REST{}
	_ rest.TableConvertor       = &REST{}
	_ rest.SingularNameProvider = &REST{}
)

// NewREST returns the nodes storage over a Cache that a reflector on core
// Nodes fills. bookmarkInterval is how often idle watches get a bookmark
// (DefaultBookmarkInterval when 0).
func NewREST(c *Cache, bookmarkInterval time.Duration) *REST {
	if bookmarkInterval <= 0 {
		bookmarkInterval = DefaultBookmarkInterval
	}
	return &REST{cache: c, bookmarkInterval: bookmarkInterval}
}

func (r *REST) New() runtime.Object     { return &infraopsv1.Node{} }
func (r *REST) NewList() runtime.Object { return &infraopsv1.NodeList{} }
func (r *REST) Destroy()                {}
func (r *REST) NamespaceScoped() bool   { return false }
func (r *REST) GetSingularName() string { return "node" }

// Get reads the cache; a resourceVersion other than "" and "0" asks for a
// state at least that new.
func (r *REST) Get(ctx context.Context, name string, opts *metav1.GetOptions) (runtime.Object, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	var rv uint64
	if opts != nil {
		var err error
		if rv, err = parseResourceVersion(opts.ResourceVersion); err != nil {
			return nil, err
		}
	}
	if err := r.cache.waitFresh(ctx, rv); err != nil {
		return nil, err
	}
	v, ok := r.cache.get(name)
	if !ok {
		return nil, nodeNotFound(name)
	}
	return emit(v), nil
}

// List answers the whole selection in one page, at the cache's
// resourceVersion: a watch from it misses nothing. resourceVersionMatch
// NotOlderThan (or none) with a resourceVersion waits for the cache to
// reach it; Exact can be served only for the current state, since the
// cache keeps no old states (410 Gone otherwise, and the client lists
// again without it).
func (r *REST) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	if opts == nil {
		opts = &metainternalversion.ListOptions{}
	}
	if err := validateListOptions(opts, false); err != nil {
		return nil, err
	}
	if opts.Continue != "" {
		return nil, apierrors.NewBadRequest("invalid continue token: this server answers every list in one page and never issues one")
	}
	rv, err := parseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	if err := r.waitFor(ctx, opts.ResourceVersion, rv); err != nil {
		return nil, err
	}
	items, listRV := r.cache.snapshot()
	if opts.ResourceVersionMatch == metav1.ResourceVersionMatchExact && listRV != rv {
		return nil, apierrors.NewResourceExpired(fmt.Sprintf("resource version %d is not the current one (%d): this server keeps only the current state of the nodes", rv, listRV))
	}
	match := matcher(opts.LabelSelector, opts.FieldSelector)
	list := &infraopsv1.NodeList{Items: make([]infraopsv1.Node, 0, len(items))}
	list.ResourceVersion = strconv.FormatUint(listRV, 10)
	for _, v := range items {
		if match == nil || match(v) {
			list.Items = append(list.Items, *v)
		}
	}
	return list, nil
}

// validateListOptions is kube-apiserver's check of list and watch options
// (the generic handler runs it too; it is here for every other caller).
func validateListOptions(opts *metainternalversion.ListOptions, watch bool) error {
	o := *opts
	o.Watch = o.Watch || watch
	if errs := metainternalversionvalidation.ValidateListOptions(&o, true); len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	return nil
}

// parseResourceVersion reads a resourceVersion; "" and "0" are 0.
func parseResourceVersion(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	rv, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version %q: %v", s, err))
	}
	return rv, nil
}

// checkName answers a name no node can have before anything is looked up:
// one that is not a valid path segment ("a%b", ".", "..") is a 400, as
// kube-apiserver answers it; any other name that is not a DNS subdomain
// (what Node names must be) is a 404.
func checkName(name string) error {
	if msgs := path.IsValidPathSegmentName(name); len(msgs) > 0 {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid node name %q: %s", name, strings.Join(msgs, "; ")))
	}
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nodeNotFound(name)
	}
	return nil
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
	{Name: "Last-Action", Type: "string", Description: "The last action taken on the node through this API (status.lastAction.action)"},
	{Name: "Phase", Type: "string", Description: "How far the last action has come: Requested, Completed, Failed or TimedOut"},
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
		action, phase := "<none>", "<none>"
		if la := n.Status.LastAction; la != nil {
			action, phase = la.Action, string(la.Phase)
		}
		table.Rows = append(table.Rows, metav1.TableRow{
			Cells: []interface{}{
				n.Name, provider, region, zone, instance, n.Status.Ready, action, phase,
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
