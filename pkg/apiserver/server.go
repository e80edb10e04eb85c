package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/client-go/informers"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/policy"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// Server is the running API server.
type Server struct {
	GenericAPIServer *genericapiserver.GenericAPIServer
}

// New builds the server: the nodes view over a cache of trimmed Nodes, one
// connecter per node action, and a readiness check on the cache's sync.
func (c CompletedConfig) New(ctx context.Context) (*Server, error) {
	gs, err := c.Generic.New("k8s-cloud-node-manager", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	drivers, err := c.drivers(ctx)
	if err != nil {
		return nil, err
	}

	// The view's cache is filled by a reflector of its own, not a shared
	// informer: it receives kube-apiserver's list and bookmark
	// resourceVersions in order, which watch resumption needs.
	nodeCache := node.NewCache(0, c.defaultRegion)
	kube := c.Extra.Kube
	nodeReflector := cache.NewReflectorWithOptions(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return kube.CoreV1().Nodes().List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return kube.CoreV1().Nodes().Watch(ctx, opts)
		},
	}, kube), &corev1.Node{}, nodeCache, cache.ReflectorOptions{Name: "nodes-view"})
	synced := nodeCache.HasSynced

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	recorder := broadcaster.NewRecorder(clientgoscheme.Scheme, corev1.EventSource{Component: "k8s-cloud-node-manager", Host: c.Extra.NodeName})

	storage := map[string]rest.Storage{
		"nodes": node.NewREST(nodeCache, c.Extra.BookmarkInterval).WithConsistentReads(func(ctx context.Context) (uint64, error) {
			// A one-item list is a quorum read that answers the current
			// resourceVersion without moving the Nodes.
			l, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
			if err != nil {
				return 0, err
			}
			return strconv.ParseUint(l.ResourceVersion, 10, 64)
		}),
	}
	// Each node's lastAction record (a Lease in the lock namespace),
	// followed on every replica into the view.
	history := &node.History{Client: c.Extra.Kube, Namespace: c.Extra.LockNamespace}
	recordInformers := informers.NewSharedInformerFactoryWithOptions(c.Extra.Kube, 0,
		informers.WithNamespace(c.Extra.LockNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = node.HistoryLabel }))
	follower, err := node.NewFollower(&node.Follower{
		History: history, Cache: nodeCache, Actions: node.Actions, Timeout: c.Extra.CompletionTimeout,
	}, recordInformers.Coordination().V1().Leases().Informer())
	if err != nil {
		return nil, err
	}

	locker := &node.LeaseLocker{
		Client:    c.Extra.Kube,
		Namespace: c.Extra.LockNamespace,
		Identity:  c.Extra.Identity,
	}
	actionConfig := node.ActionConfig{
		Client:        c.Extra.Kube,
		Drivers:       drivers,
		Locker:        locker,
		Recorder:      recorder,
		Machines:      nodeCache,
		DefaultRegion: c.defaultRegion,
		SelfNodeName:  c.Extra.NodeName,
		Cooldown:      c.Extra.ActionCooldown,
		History:       history,
	}
	// The policy's budgets live beside the node locks; a node counts as
	// under an action until its lastAction has left Requested.
	pol := c.Extra.Policy
	if pol != nil {
		pol = pol.With(policy.Deps{
			Client: c.Extra.Kube, Namespace: c.Extra.LockNamespace, Identity: c.Extra.Identity,
			Tracker: policy.LastActionTracker{LastAction: nodeCache.LastAction, Lock: policy.LockTracker{Locker: locker}},
			Nodes:   nodeCache.Nodes, Recorder: recorder,
		})
		actionConfig.Policy = pol
	}
	storage["budgets"] = policy.NewREST(pol)
	policy.RegisterMetrics()
	node.RegisterMetrics()
	for _, a := range node.Actions {
		storage["nodes/"+a.Name] = node.NewActionREST(a, actionConfig)
	}

	group := genericapiserver.NewDefaultAPIGroupInfo(infraopsv1.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	group.VersionedResourcesStorageMap[infraopsv1.SchemeGroupVersion.Version] = storage
	if err := gs.InstallAPIGroup(&group); err != nil {
		return nil, err
	}

	if err := gs.AddReadyzChecks(
		healthz.NamedCheck("node-cache-sync", func(*http.Request) error {
			if !synced() {
				return fmt.Errorf("the node cache has not loaded the Nodes yet")
			}
			if !follower.HasSynced() {
				return fmt.Errorf("the nodes' lastAction records have not been read yet")
			}
			return nil
		}),
		authenticationReady(c.Generic.Authentication.RequestHeaderConfig),
		authorizationReady(c.Generic.Authorization.Authorizer),
	); err != nil {
		return nil, err
	}
	gs.AddPostStartHookOrDie("start-node-informer", func(hookCtx genericapiserver.PostStartHookContext) error {
		go nodeReflector.RunWithContext(hookCtx)
		recordInformers.Start(hookCtx.Done())
		go follower.Run(hookCtx)
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.Extra.Kube.CoreV1().Events("")})
		go func() {
			<-hookCtx.Done()
			broadcaster.Shutdown()
		}()
		return nil
	})
	return &Server{GenericAPIServer: gs}, nil
}

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	return s.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

// authenticationReady fails until the front-proxy (requestheader) CA is
// loaded. It comes from kube-system/extension-apiserver-authentication
// through an informer that starts with the server: until it has synced,
// the aggregator's requests would be served as system:anonymous and
// refused, so a replica in a rolling update must not take traffic yet.
func authenticationReady(rh *authenticatorfactory.RequestHeaderConfig) healthz.HealthChecker {
	return healthz.NamedCheck("requestheader-client-ca", func(*http.Request) error {
		if rh == nil || rh.CAContentProvider == nil {
			return nil // no front proxy configured: nothing to wait for
		}
		if len(rh.CAContentProvider.CurrentCABundleContent()) == 0 {
			return fmt.Errorf("the requestheader client CA (front proxy) is not loaded yet from kube-system/extension-apiserver-authentication")
		}
		return nil
	})
}

// readinessProbeUser is who the authorization check asks about; any user
// outside system:masters, so the question reaches the delegated authorizer.
var readinessProbeUser = &user.DefaultInfo{Name: "system:k8s-cloud-node-manager:readiness-probe"}

// authorizationReady fails until one authorization question has been
// answered (allowed or not) without error: delegated authorization asks
// kube-apiserver, and a replica that cannot reach it would refuse every
// request. Once answered, it passes for good: later failures are the
// requests' own to report.
func authorizationReady(a authorizer.Authorizer) healthz.HealthChecker {
	var ok atomic.Bool
	return healthz.NamedCheck("delegated-authorization", func(req *http.Request) error {
		if a == nil || ok.Load() {
			return nil
		}
		_, _, err := a.Authorize(req.Context(), authorizer.AttributesRecord{
			User: readinessProbeUser, Verb: "get", Path: "/readyz-probe", ResourceRequest: false,
		})
		if err != nil {
			return fmt.Errorf("delegated authorization does not answer yet: %v", err)
		}
		ok.Store(true)
		return nil
	})
}
