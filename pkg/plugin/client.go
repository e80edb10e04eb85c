package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func init() {
	utilruntime.Must(infraopsv1.AddToScheme(scheme))
}

// groupClient talks to infraops.michael.io/v1.
type groupClient struct {
	rest rest.Interface
}

func newGroupClient(cfg *rest.Config) (*groupClient, error) {
	c := rest.CopyConfig(cfg)
	gv := infraopsv1.SchemeGroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.NegotiatedSerializer = codecs.WithoutConversion()
	// The server speaks JSON only; asking for protobuf would only add a
	// round of content negotiation.
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &groupClient{rest: rc}, nil
}

// actionPath is where an action on a node is posted, for messages.
func actionPath(action, node string) string {
	return "/apis/" + infraopsv1.SchemeGroupVersion.String() + "/nodes/" + url.PathEscape(node) + "/" + action
}

// act posts the body to nodes/{node}/{action}. The body is marshalled by
// hand: an action this plugin does not know has no type in the scheme.
func (c *groupClient) act(ctx context.Context, action, node string, body runtime.Object) (*infraopsv1.NodeAction, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	answer := &infraopsv1.NodeAction{}
	err = c.rest.Post().
		Resource("nodes").
		Name(node).
		SubResource(action).
		SetHeader("Content-Type", runtime.ContentTypeJSON).
		// client-go would retry a 429 with Retry-After by itself, ten
		// times, silently; the runner retries it and says so.
		MaxRetries(0).
		Body(data).
		Do(ctx).
		Into(answer)
	if err != nil {
		return nil, err
	}
	// The decoder drops apiVersion and kind; printers need them.
	answer.SetGroupVersionKind(infraopsv1.SchemeGroupVersion.WithKind("NodeAction"))
	return answer, nil
}

// list lists the group's nodes matching a label selector.
func (c *groupClient) list(ctx context.Context, selector string) (*infraopsv1.NodeList, error) {
	list := &infraopsv1.NodeList{}
	err := c.rest.Get().
		Resource("nodes").
		VersionedParams(&metav1.ListOptions{LabelSelector: selector}, metav1.ParameterCodec).
		Do(ctx).
		Into(list)
	return list, err
}

// servedAction is an action subresource as discovery lists it.
type servedAction struct {
	Name string
	Kind string
}

// servedActions lists the nodes/<action> subresources the server accepts
// POST on. A cached discovery client is invalidated and asked again when
// want is missing, the way kubectl refreshes its cache for an unknown
// resource: the server may have gained the action since the cache was
// written.
func servedActions(d discovery.DiscoveryInterface, want string) ([]servedAction, error) {
	list := func() ([]servedAction, error) {
		resources, err := d.ServerResourcesForGroupVersion(infraopsv1.SchemeGroupVersion.String())
		if err != nil {
			return nil, err
		}
		var out []servedAction
		for _, r := range resources.APIResources {
			action, ok := strings.CutPrefix(r.Name, "nodes/")
			if !ok || !slices.Contains(r.Verbs, "create") {
				continue
			}
			out = append(out, servedAction{Name: action, Kind: r.Kind})
		}
		slices.SortFunc(out, func(a, b servedAction) int { return strings.Compare(a.Name, b.Name) })
		return out, nil
	}
	served, err := list()
	if err != nil || want == "" || slices.ContainsFunc(served, func(s servedAction) bool { return s.Name == want }) {
		return served, err
	}
	if cached, ok := d.(discovery.CachedDiscoveryInterface); ok && cached.Fresh() {
		return served, nil
	} else if ok {
		cached.Invalidate()
		return list()
	}
	return served, nil
}

// resolveAction finds the action name in discovery: a known action keeps
// its options, an unknown one gets the kind discovery gives.
func resolveAction(d discovery.DiscoveryInterface, name string) (Action, error) {
	served, err := servedActions(d, name)
	if err != nil {
		return Action{}, fmt.Errorf("discovering the actions of %s: %w", infraopsv1.SchemeGroupVersion, err)
	}
	i := slices.IndexFunc(served, func(s servedAction) bool { return s.Name == name })
	if i < 0 {
		names := make([]string, len(served))
		for j, s := range served {
			names[j] = s.Name
		}
		if len(names) == 0 {
			return Action{}, fmt.Errorf("the server serves no node actions of %s", infraopsv1.SchemeGroupVersion)
		}
		return Action{}, fmt.Errorf("the server has no node action %q; it serves: %s", name, strings.Join(names, ", "))
	}
	if a, ok := LookupAction(name); ok {
		return a, nil
	}
	return discoveredAction(name, served[i].Kind), nil
}

// get reads one of the group's nodes.
func (c *groupClient) get(ctx context.Context, node string) (*infraopsv1.Node, error) {
	n := &infraopsv1.Node{}
	err := c.rest.Get().Resource("nodes").Name(node).Do(ctx).Into(n)
	return n, err
}

// viewNodes is the group's nodes as a list-watch source for --wait.
type viewNodes struct{ c *groupClient }

func (v viewNodes) List(ctx context.Context, opts metav1.ListOptions) (*infraopsv1.NodeList, error) {
	list := &infraopsv1.NodeList{}
	err := v.c.rest.Get().Resource("nodes").VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(list)
	return list, err
}

func (v viewNodes) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return v.c.rest.Get().Resource("nodes").VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
}
