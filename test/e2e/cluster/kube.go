package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"
)

// The product's API group and where it is registered.
const (
	Group       = "infraops.michael.io"
	Version     = "v1"
	Namespace   = "k8s-cloud-node-manager"
	ServiceName = "k8s-cloud-node-manager"
)

// apiServiceGVR is addressed through the dynamic client: the typed
// APIService client lives in k8s.io/kube-aggregator, which the project
// does not depend on.
var apiServiceGVR = schema.GroupVersionResource{
	Group:    "apiregistration.k8s.io",
	Version:  "v1",
	Resource: "apiservices",
}

// APIServiceOptions describe an APIService backed by a server on loopback.
type APIServiceOptions struct {
	Group       string
	Version     string
	Namespace   string
	ServiceName string
	// Port is the extension server's port on 127.0.0.1.
	Port int
	// CABundle signs the extension server's serving certificate (see
	// NewServingCert).
	CABundle []byte
}

// ProductAPIService is the registration of this project's API group.
func ProductAPIService(port int, caBundle []byte) APIServiceOptions {
	return APIServiceOptions{
		Group:       Group,
		Version:     Version,
		Namespace:   Namespace,
		ServiceName: ServiceName,
		Port:        port,
		CABundle:    caBundle,
	}
}

// Name is the APIService's object name, <version>.<group>.
func (o APIServiceOptions) Name() string { return o.Version + "." + o.Group }

// GroupVersionPath is the discovery path of the group version.
func (o APIServiceOptions) GroupVersionPath() string {
	return "/apis/" + o.Group + "/" + o.Version
}

// ServingDNSNames are the names the extension server's certificate must
// carry: the aggregator verifies <service>.<namespace>.svc, and local
// clients use localhost.
func (o APIServiceOptions) ServingDNSNames() []string {
	svc := o.ServiceName + "." + o.Namespace + ".svc"
	return []string{"localhost", svc, svc + ".cluster.local"}
}

func (c *Cluster) core() (*corev1client.CoreV1Client, error) {
	return corev1client.NewForConfig(c.RESTConfig())
}

// EnsureNamespace creates a namespace unless it exists.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string) error {
	core, err := c.core()
	if err != nil {
		return err
	}
	_, err = core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// RegisterAPIService points an APIService at a server listening on
// 127.0.0.1:Port, through an ExternalName Service resolving to localhost:
// a Service with Endpoints on a loopback address fails validation. It
// creates the namespace and updates existing objects, so it can be called
// again after the server moved to another port.
func (c *Cluster) RegisterAPIService(ctx context.Context, o APIServiceOptions) error {
	if o.Group == "" || o.Version == "" || o.Namespace == "" || o.ServiceName == "" || o.Port == 0 {
		return fmt.Errorf("cluster: incomplete APIServiceOptions %+v", o)
	}
	if len(o.CABundle) == 0 {
		return errors.New("cluster: APIServiceOptions.CABundle is required (no insecureSkipTLSVerify)")
	}
	if err := c.EnsureNamespace(ctx, o.Namespace); err != nil {
		return err
	}
	core, err := c.core()
	if err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: o.ServiceName, Namespace: o.Namespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "localhost",
			Ports: []corev1.ServicePort{{
				Name:     "https",
				Protocol: corev1.ProtocolTCP,
				Port:     int32(o.Port),
			}},
		},
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := core.Services(o.Namespace).Get(ctx, o.ServiceName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = core.Services(o.Namespace).Create(ctx, svc, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		cur.Spec = svc.Spec
		_, err = core.Services(o.Namespace).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("writing Service %s/%s: %w", o.Namespace, o.ServiceName, err)
	}

	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	apiServices := dyn.Resource(apiServiceGVR)
	spec := map[string]any{
		"group":   o.Group,
		"version": o.Version,
		"service": map[string]any{
			"namespace": o.Namespace,
			"name":      o.ServiceName,
			"port":      int64(o.Port),
		},
		"caBundle":             base64.StdEncoding.EncodeToString(o.CABundle),
		"groupPriorityMinimum": int64(1000),
		"versionPriority":      int64(15),
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := apiServices.Get(ctx, o.Name(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "apiregistration.k8s.io/v1",
				"kind":       "APIService",
				"metadata":   map[string]any{"name": o.Name()},
				"spec":       spec,
			}}
			_, err = apiServices.Create(ctx, obj, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		cur.Object["spec"] = spec
		_, err = apiServices.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("writing APIService %s: %w", o.Name(), err)
	}
	return nil
}

// WaitAPIServiceAvailable waits until the APIService reports Available=True
// and a GET of groupVersionPath through kube-apiserver succeeds, and
// returns how long that took. Both are needed: Available lags behind the
// backend in both directions for a few seconds. Without a deadline on ctx
// it gives up after two minutes.
func (c *Cluster) WaitAPIServiceAvailable(ctx context.Context, name, groupVersionPath string) (time.Duration, error) {
	begin := time.Now()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		return 0, err
	}
	core, err := c.core()
	if err != nil {
		return 0, err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = func() error {
			obj, err := dyn.Resource(apiServiceGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			status, reason, message := apiServiceCondition(obj, "Available")
			if status != "True" {
				return fmt.Errorf("APIService %s Available=%q %s: %s", name, status, reason, message)
			}
			_, err = core.RESTClient().Get().AbsPath(groupVersionPath).DoRaw(ctx)
			if err != nil {
				return fmt.Errorf("GET %s: %w", groupVersionPath, err)
			}
			return nil
		}()
		if last == nil {
			return time.Since(begin), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(begin), fmt.Errorf("APIService %s not available: %w; last: %v", name, context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}

func apiServiceCondition(obj *unstructured.Unstructured, condType string) (status, reason, message string) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, raw := range conds {
		cond, ok := raw.(map[string]any)
		if !ok || cond["type"] != condType {
			continue
		}
		status, _ = cond["status"].(string)
		reason, _ = cond["reason"].(string)
		message, _ = cond["message"].(string)
		return status, reason, message
	}
	return "", "NoCondition", "no " + condType + " condition yet"
}

// CreateNode creates a core Node, as a cloud's node bootstrap would; no
// kubelet ever runs for it (see SetNodeStatus).
func (c *Cluster) CreateNode(ctx context.Context, name, providerID string, labels map[string]string) (*corev1.Node, error) {
	core, err := c.core()
	if err != nil {
		return nil, err
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{ProviderID: providerID},
	}
	created, err := core.Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating Node %s: %w", name, err)
	}
	return created, nil
}

// SetNodeStatus writes the Ready condition and nodeInfo.bootID through the
// status subresource, as a kubelet would after (re)booting.
func (c *Cluster) SetNodeStatus(ctx context.Context, name string, ready bool, bootID string) error {
	core, err := c.core()
	if err != nil {
		return err
	}
	cond := corev1.NodeCondition{
		Type:    corev1.NodeReady,
		Status:  corev1.ConditionFalse,
		Reason:  "KubeletNotReady",
		Message: "set by the test harness",
	}
	if ready {
		cond.Status = corev1.ConditionTrue
		cond.Reason = "KubeletReady"
		cond.Message = "kubelet is posting ready status (set by the test harness)"
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := core.Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		cond.LastHeartbeatTime = now
		cond.LastTransitionTime = now
		replaced := false
		for i := range node.Status.Conditions {
			if node.Status.Conditions[i].Type != corev1.NodeReady {
				continue
			}
			if node.Status.Conditions[i].Status == cond.Status {
				cond.LastTransitionTime = node.Status.Conditions[i].LastTransitionTime
			}
			node.Status.Conditions[i] = cond
			replaced = true
		}
		if !replaced {
			node.Status.Conditions = append(node.Status.Conditions, cond)
		}
		node.Status.NodeInfo.BootID = bootID
		_, err = core.Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("updating the status of Node %s: %w", name, err)
	}
	return nil
}
