package apiserver

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/client-go/informers"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// Server is the running API server.
type Server struct {
	GenericAPIServer *genericapiserver.GenericAPIServer
}

// New builds the server: the nodes view over a trimmed Node informer, one
// connecter per node action, and a readiness check on the informer's sync.
func (c CompletedConfig) New(ctx context.Context) (*Server, error) {
	gs, err := c.Generic.New("k8s-cloud-node-manager", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	drivers, err := c.drivers(ctx)
	if err != nil {
		return nil, err
	}

	factory := informers.NewSharedInformerFactoryWithOptions(c.Extra.Kube, 0, informers.WithTransform(node.TrimNode))
	nodeInformer := factory.Core().V1().Nodes()
	synced := nodeInformer.Informer().HasSynced

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	recorder := broadcaster.NewRecorder(clientgoscheme.Scheme, corev1.EventSource{Component: "k8s-cloud-node-manager", Host: c.Extra.NodeName})

	storage := map[string]rest.Storage{
		"nodes": node.NewREST(nodeInformer.Informer(), c.defaultRegion),
	}
	actionConfig := node.ActionConfig{
		Client:  c.Extra.Kube,
		Drivers: drivers,
		Locker: &node.LeaseLocker{
			Client:    c.Extra.Kube,
			Namespace: c.Extra.LockNamespace,
			Identity:  c.Extra.Identity,
		},
		Recorder:      recorder,
		DefaultRegion: c.defaultRegion,
		SelfNodeName:  c.Extra.NodeName,
		Cooldown:      c.Extra.ActionCooldown,
		// No CloudTimeout: each cloud's configured timeout, applied by
		// the wrapper in pkg/cloud/providers, is the one bound of a call
		// (cloud.Config.LongestTimeout gives the longest).
	}
	node.RegisterMetrics()
	for _, a := range node.Actions {
		storage["nodes/"+a.Name] = node.NewActionREST(a, actionConfig)
	}

	group := genericapiserver.NewDefaultAPIGroupInfo(infraopsv1.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	group.VersionedResourcesStorageMap[infraopsv1.SchemeGroupVersion.Version] = storage
	if err := gs.InstallAPIGroup(&group); err != nil {
		return nil, err
	}

	if err := gs.AddReadyzChecks(healthz.NamedCheck("node-informer-sync", func(*http.Request) error {
		if !synced() {
			return fmt.Errorf("the Node informer has not synced yet")
		}
		return nil
	})); err != nil {
		return nil, err
	}
	gs.AddPostStartHookOrDie("start-node-informer", func(hookCtx genericapiserver.PostStartHookContext) error {
		factory.Start(hookCtx.Done())
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
