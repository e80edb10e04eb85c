package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime/debug"
	"sort"
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
	"k8s.io/utils/clock"
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
	// Done judges from the Node whether an accepted action has shown its
	// result (Rebooted, WentDown, CameUp), for status.lastAction. Nil
	// leaves the record Requested until it times out.
	Done func(at, now NodeState) bool
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
	// Machines, when set, tells which Nodes claim a machine, so an action
	// on a machine that two Nodes claim is refused.
	Machines MachineClaims
	// DefaultRegion gives the cloud config's default region of a provider.
	DefaultRegion func(provider string) string
	// SelfNodeName is the node this server runs on. An action on it is
	// done all the same, with its "requested" Event written before the
	// cloud call, since the server may go down before the cloud answers.
	SelfNodeName string
	// Cooldown is how long a node stays locked after an accepted action,
	// or after one whose outcome is unknown, counted from when the cloud
	// call returned, so a retried or duplicated request does not act twice
	// on a machine that is already rebooting. While the call runs the lock
	// is renewed. The call's own time limit belongs to the driver set
	// (pkg/cloud/providers), not to this handler.
	Cooldown time.Duration
	// Clock is the clock (tests replace it); nil means the real one.
	Clock Clock
	// History, when set, records each real action's outcome for
	// status.lastAction (the Follower takes it from there).
	History *History
	// Policy, when set, is the safety policy (budgets, windows, opt-outs).
	Policy Policy
}

// Clock is what the action handler needs of a clock: the time, a ticker
// to renew the lock during a call, and a timer to drop it afterwards.
type Clock interface {
	clock.WithTicker
	AfterFunc(d time.Duration, f func()) clock.Timer
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
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
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
		// dryRun is known once the body is decoded; failures after that
		// are counted under the right label too.
		dryRun := false
		obj, code, err := r.serve(ctx, name, w, req, &dryRun)
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

func (r *ActionREST) serve(ctx context.Context, name string, w http.ResponseWriter, req *http.Request, dryRunOut *bool) (runtime.Object, int, error) {
	if err := checkName(name); err != nil {
		return nil, 0, err
	}
	opts, err := r.decodeOptions(w, req)
	if err != nil {
		return nil, 0, err
	}
	common := opts.Common()
	dryRun := common.IsDryRun()
	*dryRunOut = dryRun
	if errs := r.validate(opts); len(errs) > 0 {
		return nil, 0, apierrors.NewInvalid(infraopsv1.SchemeGroupVersion.WithKind(kindOf(opts)).GroupKind(), name, errs)
	}
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
	if err := r.claimedByOthers(name, inst); err != nil {
		return nil, 0, err
	}
	self := r.cfg.SelfNodeName != "" && name == r.cfg.SelfNodeName
	logger = logger.WithValues("nodeUID", node.UID, "provider", inst.Provider, "region", inst.Region, "instanceID", inst.ID)

	// A dry run meets the lock as the real request would, without taking it.
	var lock Lock
	if dryRun {
		err = r.cfg.Locker.Check(ctx, name, r.action.Name)
	} else {
		lock, err = r.cfg.Locker.Acquire(ctx, name, LockRecord{Action: r.action.Name, User: userName, NodeUID: string(node.UID)}, r.cfg.Cooldown)
	}
	if err != nil {
		logger.Info("Refused: node is locked", "err", err)
		return nil, 0, err
	}
	if r.cfg.Policy != nil {
		if err := r.cfg.Policy.Admit(ctx, PolicyRequest{Action: r.action.Name, Node: node, User: userName, Mode: mode, Reason: common.Reason, DryRun: dryRun}); err != nil {
			logger.Info("Refused by the policy", "err", err)
			r.release(context.WithoutCancel(ctx), lock, logger)
			return nil, 0, err
		}
	}
	// Fresh contexts from here on: the request's may be gone, and what is
	// left to do (renew, release, record) must happen all the same.
	bg := context.WithoutCancel(ctx)
	if self && !dryRun {
		// This replica runs on the machine it is about to reboot: it may
		// go down before the cloud answers. So the record a 504 would
		// leave (the lock, held for the cooldown, and an Event naming the
		// user) is written before the call, synchronously.
		if err := r.recordSelfRequest(bg, node, inst, userName, mode, common.Reason); err != nil {
			r.release(bg, lock, logger)
			return nil, 0, kubeAPIError("record the action", err)
		}
		// status.lastAction too, so the view follows the action even if
		// the cloud's answer is never recorded; the answer replaces it.
		r.recordHistory(bg, node, userName, mode, common.Reason, "", infraopsv1.ActionRequested,
			"requested of the machine the serving replica runs on; the cloud's answer may not be recorded", logger)
	}

	// The cloud call outlives the client: if the client goes away after the
	// cloud got the call, a retry must meet the lock, not a second reboot.
	// The lock is renewed while the call runs, however long it takes.
	stopRenewing := r.keepLocked(lock, logger)
	started := r.cfg.Clock.Now()
	result, err := r.call(bg, driver, inst, opts, logger)
	elapsed := r.cfg.Clock.Since(started)
	stopRenewing()
	observeCloudCall(inst.Provider, r.action.Name, elapsed, err)
	if err != nil {
		if lock != nil && cloudDidNothing(err) {
			r.release(bg, lock, logger)
		} else {
			r.holdFromNow(bg, lock, logger)
		}
		logger.Info("Cloud refused the action", "err", err, "cloudRequestID", requestIDOf(err), "elapsed", elapsed)
		if !dryRun {
			phase, msg := infraopsv1.ActionFailed, err.Error()
			if !cloudDidNothing(err) {
				// The cloud may have acted: follow it like an accepted one.
				phase, msg = infraopsv1.ActionRequested, "the outcome of the cloud call is unknown: "+msg
			}
			r.recordHistory(bg, node, userName, mode, common.Reason, requestIDOf(err), phase, msg, logger)
			r.cfg.Recorder.AnnotatedEventf(node, nil, corev1.EventTypeWarning, eventReason(r.action.Name, "Failed"),
				"%s of %s %s by %s failed (mode %s, reason %q): %v", r.action.Name, inst.Provider, inst.ID, userName, orNone(mode), common.Reason, err)
		}
		return nil, 0, cloudError(name, r.action.Name, inst, err)
	}
	r.holdFromNow(bg, lock, logger)

	if result.Mode != "" {
		mode = string(result.Mode) // the cloud's default when none was asked
	}
	now := metav1.NewTime(r.cfg.Clock.Now())
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
		r.recordHistory(bg, node, userName, mode, common.Reason, result.RequestID, infraopsv1.ActionRequested, "", logger)
		r.cfg.Recorder.AnnotatedEventf(node, map[string]string{
			infraopsv1.GroupName + "/user":             userName,
			infraopsv1.GroupName + "/cloud-request-id": result.RequestID,
		}, corev1.EventTypeNormal, eventReason(r.action.Name, "Requested"),
			"%s of %s %s in %s requested by %s (mode %s, reason %q, cloud request %s)",
			r.action.Name, inst.Provider, inst.ID, inst.Region, userName, orNone(mode), common.Reason, orNone(result.RequestID))
	}
	return answer, http.StatusAccepted, nil
}

// recordHistory writes the node's lastAction record before the answer, so
// a client that reads the view after the answer finds it. A failure to
// write it does not undo the action: it is logged, and the view shows the
// previous record.
func (r *ActionREST) recordHistory(ctx context.Context, node *corev1.Node, user, mode, reason, requestID string, phase infraopsv1.ActionPhase, msg string, logger klog.Logger) {
	if r.cfg.History == nil {
		return
	}
	now := metav1.NewTime(r.cfg.Clock.Now())
	la := &infraopsv1.LastAction{
		Action: r.action.Name, Mode: mode, User: user, Reason: reason,
		RequestedAt: now, CloudRequestID: requestID, Phase: phase, Message: msg,
		BootIDAtRequest: node.Status.NodeInfo.BootID, ReadyAtRequest: string(readyStatus(node)),
	}
	if phase != infraopsv1.ActionRequested {
		la.CompletedAt = &now
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.cfg.History.Write(ctx, node, la); err != nil {
		logger.Error(err, "Cannot record the action for status.lastAction")
	}
}

// call runs the action's cloud call. A driver that panics (a malformed
// answer it did not expect) gives a 502 whose outcome is unknown: the
// cloud may have acted, so the lock is kept, and the caller gets a Status
// rather than a dropped connection or a bare 500.
func (r *ActionREST) call(ctx context.Context, d cloud.Driver, inst cloud.Instance, opts Options, logger klog.Logger) (res cloud.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			logger.Error(nil, "The cloud driver panicked", "panic", p, "stack", string(debug.Stack()))
			res, err = cloud.Result{}, &cloud.Error{
				Kind: cloud.ErrUnavailable, Provider: inst.Provider, Code: "DriverPanic",
				Message: fmt.Sprintf("the %s driver failed on the cloud's answer (%v); the outcome is unknown, the node stays locked until the cooldown ends", inst.Provider, p),
			}
		}
	}()
	return r.action.Run(ctx, d, inst, opts)
}

// renewEvery is how often the lock is renewed while a cloud call runs: a
// third of the hold, so two renewals may fail before it lapses.
func (r *ActionREST) renewEvery() time.Duration {
	return max(r.cfg.Cooldown/3, 100*time.Millisecond)
}

// keepLocked renews the lock until the returned stop is called (which
// waits for a renewal under way).
func (r *ActionREST) keepLocked(lock Lock, logger klog.Logger) (stop func()) {
	if lock == nil {
		return func() {}
	}
	every := r.renewEvery()
	ticker := r.cfg.Clock.NewTicker(every)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-ticker.C():
				ctx, cancel := context.WithTimeout(context.Background(), every)
				if err := lock.Renew(ctx); err != nil {
					logger.Error(err, "Could not renew the node lock during the cloud call")
				}
				cancel()
			}
		}
	}()
	return func() {
		ticker.Stop()
		close(done)
		<-exited
	}
}

// holdFromNow starts the cooldown when the cloud call has returned, and
// drops the Lease when it ends, so locks do not pile up. If this replica
// is gone by then, the Lease stays (harmless: expired) until another
// action takes it over or its Node is deleted.
func (r *ActionREST) holdFromNow(ctx context.Context, lock Lock, logger klog.Logger) {
	if lock == nil {
		return
	}
	renewCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := lock.EndCall(renewCtx); err != nil {
		// The Lease still holds for the cooldown from its last renewal,
		// at most a renewal interval before the call returned.
		logger.Error(err, "Could not restart the node lock's cooldown at the end of the cloud call")
	}
	r.cfg.Clock.AfterFunc(r.cfg.Cooldown, func() {
		// On a goroutine of its own: a release reads the clock, and a
		// test's fake clock runs this callback with its lock held.
		go func() {
			relCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := lock.Release(relCtx); err != nil {
				logger.V(2).Info("Could not remove the expired node lock", "err", err)
			}
		}()
	})
}

func (r *ActionREST) release(ctx context.Context, lock Lock, logger klog.Logger) {
	if lock == nil {
		return
	}
	relCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := lock.Release(relCtx); err != nil {
		logger.Error(err, "Could not release the node lock; it expires by itself")
	}
}

// claimedByOthers refuses a machine that another Node also claims: a
// Node's providerID is written by whoever registers the Node, so a
// compromised kubelet could point its Node at someone else's machine, and
// RBAC resourceNames on the node would not stop that.
func (r *ActionREST) claimedByOthers(name string, inst cloud.Instance) error {
	if r.cfg.Machines == nil {
		return nil
	}
	var others []string
	for _, n := range r.cfg.Machines.NodesClaiming(inst.Provider, inst.Machine()) {
		if n != name {
			others = append(others, n)
		}
	}
	if len(others) == 0 {
		return nil
	}
	sort.Strings(others)
	return apierrors.NewConflict(infraopsv1.Resource("nodes"), name,
		fmt.Errorf("refusing to %s %s instance %s: Node %s also claims it in spec.providerID; fix or delete the Node that does not run on it",
			r.action.Name, inst.Provider, inst.Machine(), strings.Join(others, ", ")))
}

// recordSelfRequest writes the "requested" Event of an action on the node
// this server runs on, before the cloud call and synchronously (the
// recorder's queue would die with the machine).
func (r *ActionREST) recordSelfRequest(ctx context.Context, node *corev1.Node, inst cloud.Instance, user, mode, reason string) error {
	now := metav1.NewTime(r.cfg.Clock.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: node.Name + ".",
			Namespace:    metav1.NamespaceDefault,
			Annotations:  map[string]string{infraopsv1.GroupName + "/user": user},
		},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: node.Name, UID: node.UID},
		Reason:         eventReason(r.action.Name, "Requested"),
		Message: fmt.Sprintf("%s of %s %s in %s requested by %s (mode %s, reason %q); this server runs on the node and may go down before the cloud answers: until then the outcome is unknown and the node stays locked, as after a timeout",
			r.action.Name, inst.Provider, inst.ID, inst.Region, user, orNone(mode), reason),
		Source:         corev1.EventSource{Component: "k8s-cloud-node-manager", Host: r.cfg.SelfNodeName},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
		Type:           corev1.EventTypeNormal,
	}
	_, err := r.cfg.Client.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{})
	return err
}

// decodeOptions reads the optional body strictly: unknown or duplicate
// fields, wrong kinds and bad JSON or YAML are a 400, never ignored, so a
// misspelt "dryrun" cannot turn a dry run into a reboot.
func (r *ActionREST) decodeOptions(w http.ResponseWriter, req *http.Request) (Options, error) {
	opts := r.action.NewOptions()
	kind := kindOf(opts)
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the request body is limited to %d bytes", maxBodyBytes))
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot read the request body: %v", err))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return opts, nil
	}
	data, err := yaml.YAMLToJSONStrict(body)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body is not valid JSON or YAML: %v", err))
	}
	// The messages below are for people: the decoder's own ("cannot
	// unmarshal string into Go value of type v1.RestartOptions") name Go
	// types a caller never sees.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body must be a %s object, like {\"reason\": \"kernel update\"}, not %s", kind, jsonKindOf(data)))
	}
	strictErrs, err := sigjson.UnmarshalStrict(data, opts)
	if err != nil {
		// encoding/json reports the field and what it got.
		var typeErr *json.UnmarshalTypeError
		if jerr := json.Unmarshal(data, r.action.NewOptions()); errors.As(jerr, &typeErr) && typeErr.Field != "" {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s field %q must be %s, not %s", kind, jsonFieldPath(typeErr.Field), goKindInJSON(typeErr.Type), typeErr.Value))
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body is not a valid %s", kind))
	}
	if len(strictErrs) > 0 {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body has fields %s does not have: %v", kind, strictErrs))
	}
	gvk := opts.GetObjectKind().GroupVersionKind()
	if (gvk.Kind != "" && gvk.Kind != kind) || (gvk.Group != "" || gvk.Version != "") && gvk.GroupVersion() != infraopsv1.SchemeGroupVersion {
		got := "kind " + orNone(gvk.Kind)
		if av := gvk.GroupVersion().String(); av != "" {
			got += " of apiVersion " + av
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the request body must be a %s (apiVersion %s, both optional), not %s", kind, infraopsv1.SchemeGroupVersion, got))
	}
	return opts, nil
}

// jsonFieldPath drops the Go names of embedded structs
// ("ActionOptions.dryRun" is the body's "dryRun").
func jsonFieldPath(p string) string {
	parts := strings.Split(p, ".")
	for len(parts) > 1 && parts[0] != "" && parts[0][0] >= 'A' && parts[0][0] <= 'Z' {
		parts = parts[1:]
	}
	return strings.Join(parts, ".")
}

// jsonKindOf names the kind of a JSON value for a message.
func jsonKindOf(data []byte) string {
	d := bytes.TrimSpace(data)
	if len(d) == 0 {
		return "nothing"
	}
	switch d[0] {
	case '"':
		return "a string"
	case '[':
		return "a list"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	}
	return "a number"
}

// goKindInJSON names what a Go field takes, in JSON's words.
func goKindInJSON(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another type"
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
