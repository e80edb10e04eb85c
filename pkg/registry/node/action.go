package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	sigjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Options is the request body of an action: a kind of this group that
// embeds ActionOptions.
type Options interface {
	runtime.Object
	Common() *infraopsv1.ActionOptions
}

// Action is one thing the server can do to a node's machine. Everything
// around the cloud call (authorization, reading the node, the one-at-a-time
// lock, events, logging, the answer and the error codes) is shared, so a new
// action is one more Action value in Actions, and a capability interface on
// the drivers that can do it.
type Action struct {
	// Name is the subresource: POST nodes/{name}/<Name>.
	Name string
	// NewOptions returns an empty request body.
	NewOptions func() Options
	// Validate checks the action's own fields; the common ones are checked
	// for every action. Optional.
	Validate func(Options) field.ErrorList
	// Mode describes how the action runs (e.g. soft or hard), for the
	// answer, the event and the log. Optional.
	Mode func(Options) string
	// Run calls the cloud. It returns errUnsupported when the driver lacks
	// the capability.
	Run func(ctx context.Context, d cloud.Driver, inst cloud.Instance, opts Options) (cloud.Result, error)
}

// Drivers finds the driver of an enabled provider.
type Drivers interface {
	Driver(provider string) (cloud.Driver, bool)
}

// ActionConfig is what every action's storage shares.
type ActionConfig struct {
	Client   kubernetes.Interface
	Drivers  Drivers
	Locker   Locker
	Recorder record.EventRecorder
	// DefaultRegion gives the cloud config's default region of a provider.
	DefaultRegion func(provider string) string
	// SelfNodeName is the node this server runs on; actions on it are
	// refused, since the server would go down with the machine mid-request.
	SelfNodeName string
	// Cooldown is how long a node stays locked after an accepted action,
	// or after one whose outcome is unknown, so a retried or duplicated
	// request does not act twice on a machine that is already rebooting.
	Cooldown time.Duration
	// CloudTimeout bounds the cloud call when the driver set has none.
	CloudTimeout time.Duration
	// Now is the clock (tests replace it).
	Now func() time.Time
}

// ActionREST serves POST nodes/{name}/<action> as a rest.Connecter, the
// pattern of the core nodes/proxy and pods/exec subresources.
type ActionREST struct {
	action Action
	cfg    ActionConfig
}

var (
	_ rest.Storage         = &ActionREST{}
	_ rest.Connecter       = &ActionREST{}
	_ rest.StorageMetadata = &ActionREST{}
)

// NewActionREST returns the storage of one action.
func NewActionREST(a Action, cfg ActionConfig) *ActionREST {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &ActionREST{action: a, cfg: cfg}
}

func (r *ActionREST) New() runtime.Object { return r.action.NewOptions() }
func (r *ActionREST) Destroy()            {}

// ConnectMethods is POST only: a GET must never reboot a machine, and POST
// maps to the RBAC verb "create" on nodes/<action>.
func (r *ActionREST) ConnectMethods() []string { return []string{http.MethodPost} }

// NewConnectOptions returns nil: the options travel in the request body,
// because the connect handler refuses a dryRun query parameter and does not
// bound or decode a body.
func (r *ActionREST) NewConnectOptions() (runtime.Object, bool, string) { return nil, false, "" }

// ProducesMIMETypes and ProducesObject publish the answer's type in OpenAPI.
func (r *ActionREST) ProducesMIMETypes(string) []string { return []string{"application/json"} }
func (r *ActionREST) ProducesObject(string) interface{} { return infraopsv1.NodeAction{} }

func (r *ActionREST) Connect(ctx context.Context, name string, _ runtime.Object, responder rest.Responder) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		obj, code, err := r.serve(ctx, name, w, req)
		dryRun := false
		if a, ok := obj.(*infraopsv1.NodeAction); ok {
			dryRun = a.DryRun
		}
		observeRequest(r.action.Name, dryRun, code, err)
		if err != nil {
			responder.Error(err)
			return
		}
		responder.Object(code, obj)
	}), nil
}

// maxBodyBytes bounds the request body; a valid one is a few hundred bytes.
const maxBodyBytes = 64 << 10

// maxReasonLength bounds the free-text reason kept in events and logs.
const maxReasonLength = 1024

func (r *ActionREST) serve(ctx context.Context, name string, w http.ResponseWriter, req *http.Request) (runtime.Object, int, error) {
	opts, err := r.decodeOptions(w, req)
	if err != nil {
		return nil, 0, err
	}
	if errs := r.validate(opts); len(errs) > 0 {
		return nil, 0, apierrors.NewInvalid(infraopsv1.SchemeGroupVersion.WithKind(kindOf(opts)).GroupKind(), name, errs)
	}
	common := opts.Common()
	dryRun := common.IsDryRun()
	user, _ := genericapirequest.UserFrom(ctx)
	userName := "<unknown>"
	if user != nil {
		userName = user.GetName()
	}
	mode := ""
	if r.action.Mode != nil {
		mode = r.action.Mode(opts)
	}
	logger := klog.FromContext(ctx).WithValues("action", r.action.Name, "node", name, "user", userName, "mode", mode, "dryRun", dryRun, "reason", common.Reason)

	// The node is read from kube-apiserver, not the informer cache: a
	// destructive action must see the current providerID and UID.
	node, err := r.cfg.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, 0, nodeNotFound(name)
	}
	if err != nil {
		return nil, 0, kubeAPIError("read the node", err)
	}
	if r.cfg.SelfNodeName != "" && name == r.cfg.SelfNodeName {
		return nil, 0, apierrors.NewForbidden(infraopsv1.Resource("nodes"), name,
			fmt.Errorf("refusing to %s the node this server runs on: it would go down mid-request; a replica on another node can do it", r.action.Name))
	}
	if common.NodeUID != "" && common.NodeUID != node.UID {
		return nil, 0, apierrors.NewConflict(infraopsv1.Resource("nodes"), name,
			fmt.Errorf("precondition failed: nodeUID %s does not match the node's UID %s (the node was recreated)", common.NodeUID, node.UID))
	}
	inst, err := Resolve(node, r.cfg.DefaultRegion)
	if err != nil {
		return nil, 0, unresolvableNode(name, node, err)
	}
	driver, ok := r.cfg.Drivers.Driver(inst.Provider)
	if !ok {
		return nil, 0, invalidNode(name, field.Invalid(field.NewPath("spec", "providerID"), node.Spec.ProviderID,
			fmt.Sprintf("cloud %q is not enabled in this server's cloud config", inst.Provider)))
	}
	logger = logger.WithValues("nodeUID", node.UID, "provider", inst.Provider, "region", inst.Region, "instanceID", inst.ID)

	var lock Lock
	if !dryRun {
		lock, err = r.cfg.Locker.Acquire(ctx, name, LockRecord{Action: r.action.Name, User: userName, NodeUID: string(node.UID)}, r.cfg.Cooldown)
		if err != nil {
			logger.Info("Refused: node is locked", "err", err)
			return nil, 0, err
		}
	}

	// The cloud call outlives the client: if the client goes away after the
	// cloud got the call, a retry must meet the lock, not a second reboot.
	callCtx := context.WithoutCancel(ctx)
	if r.cfg.CloudTimeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(callCtx, r.cfg.CloudTimeout)
		defer cancel()
	}
	started := r.cfg.Now()
	result, err := r.action.Run(callCtx, driver, inst, opts)
	elapsed := r.cfg.Now().Sub(started)
	observeCloudCall(inst.Provider, r.action.Name, elapsed, err)
	if err != nil {
		if lock != nil && cloudDidNothing(err) {
			// Release on a fresh context: the request's may be gone.
			relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if rerr := lock.Release(relCtx); rerr != nil {
				logger.Error(rerr, "Could not release the node lock; it expires by itself")
			}
			cancel()
		}
		logger.Info("Cloud refused the action", "err", err, "cloudRequestID", requestIDOf(err), "elapsed", elapsed)
		if !dryRun {
			r.cfg.Recorder.AnnotatedEventf(node, nil, corev1.EventTypeWarning, eventReason(r.action.Name, "Failed"),
				"%s of %s %s by %s failed (mode %s, reason %q): %v", r.action.Name, inst.Provider, inst.ID, userName, orNone(mode), common.Reason, err)
		}
		return nil, 0, cloudError(name, r.action.Name, inst, err)
	}

	if result.Mode != "" {
		mode = string(result.Mode) // the cloud's default when none was asked
	}
	now := metav1.NewTime(r.cfg.Now())
	answer := &infraopsv1.NodeAction{
		TypeMeta: metav1.TypeMeta{APIVersion: infraopsv1.SchemeGroupVersion.String(), Kind: "NodeAction"},
		Action:   r.action.Name,
		NodeName: name,
		NodeUID:  node.UID,
		Cloud: infraopsv1.CloudInstance{
			Provider: inst.Provider, Region: inst.Region, Zone: inst.Zone, InstanceID: inst.ID,
		},
		Mode:           mode,
		DryRun:         dryRun,
		Reason:         common.Reason,
		CloudRequestID: result.RequestID,
		User:           userName,
		Time:           now,
	}
	logger.Info("Cloud accepted the action", "cloudRequestID", result.RequestID, "elapsed", elapsed)
	if !dryRun {
		r.cfg.Recorder.AnnotatedEventf(node, map[string]string{
			infraopsv1.GroupName + "/user":             userName,
			infraopsv1.GroupName + "/cloud-request-id": result.RequestID,
		}, corev1.EventTypeNormal, eventReason(r.action.Name, "Requested"),
			"%s of %s %s in %s requested by %s (mode %s, reason %q, cloud request %s)",
			r.action.Name, inst.Provider, inst.ID, inst.Region, userName, orNone(mode), common.Reason, orNone(result.RequestID))
	}
	return answer, http.StatusAccepted, nil
}

// decodeOptions reads the optional body strictly: unknown or duplicate
// fields, wrong kinds and bad JSON or YAML are a 400, never ignored, so a
// misspelt "dryrun" cannot turn a dry run into a reboot.
func (r *ActionREST) decodeOptions(w http.ResponseWriter, req *http.Request) (Options, error) {
	opts := r.action.NewOptions()
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBodyBytes))
	if err != nil {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the request body is limited to %d bytes", maxBodyBytes))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return opts, nil
	}
	data, err := yaml.YAMLToJSONStrict(body)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body is not valid JSON or YAML: %v", err))
	}
	strictErrs, err := sigjson.UnmarshalStrict(data, opts)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot decode the request body as %s: %v", kindOf(opts), err))
	}
	if len(strictErrs) > 0 {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body has fields %s does not have: %v", kindOf(opts), strictErrs))
	}
	gvk := opts.GetObjectKind().GroupVersionKind()
	if (gvk.Kind != "" && gvk.Kind != kindOf(opts)) || (gvk.Group != "" || gvk.Version != "") && gvk.GroupVersion() != infraopsv1.SchemeGroupVersion {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body must be a %s of %s, not %s", kindOf(opts), infraopsv1.SchemeGroupVersion, gvk))
	}
	return opts, nil
}

func (r *ActionREST) validate(opts Options) field.ErrorList {
	common := opts.Common()
	var errs field.ErrorList
	for i, v := range common.DryRun {
		if v != infraopsv1.DryRunAll {
			errs = append(errs, field.NotSupported(field.NewPath("dryRun").Index(i), v, []string{infraopsv1.DryRunAll}))
		}
	}
	if len(common.Reason) > maxReasonLength {
		errs = append(errs, field.TooLong(field.NewPath("reason"), "", maxReasonLength))
	}
	if r.action.Validate != nil {
		errs = append(errs, r.action.Validate(opts)...)
	}
	return errs
}

func kindOf(o Options) string {
	return reflect.TypeOf(o).Elem().Name()
}

// eventReason is e.g. RestartRequested, RestartFailed.
func eventReason(action, outcome string) string {
	return strings.ToUpper(action[:1]) + action[1:] + outcome
}
