// Package azure drives Azure virtual machines and VMSS Uniform instances
// through the Azure SDK for Go (armcompute), with credentials from
// azidentity's DefaultAzureCredential only: the environment (a client
// secret or certificate, or the workload identity token file), AKS
// workload identity, managed identity (IMDS), then the developer tools.
//
// Every action is one POST on one instance: VirtualMachinesClient or
// VirtualMachineScaleSetVMsClient, never VirtualMachineScaleSetsClient,
// whose actions with an empty instance list act on every instance of the
// scale set. A pipeline policy (guard) refuses, before anything is sent,
// any request that is not one of those POSTs, an instance view GET or a
// poll of the operation on the ARM endpoint's own host.
//
// ARM runs each action as a long-running operation: it answers 202 with
// Azure-AsyncOperation and Location, and the driver follows the operation
// to its end within the call's context (the wrapper's timeout). A failed
// operation is a failure; one still running at the deadline is a timeout
// with the outcome unknown. Neither is ever reported as done.
package azure

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v7"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Stop modes. Azure's power-off keeps the machine allocated (and billed
// for its compute); deallocate releases it, so it is asked for by name
// rather than hidden behind soft or hard.
const (
	// ModeDeallocate is BeginDeallocate: the OS is shut down and the
	// compute released; not billed for compute, a dynamic public IP and
	// the temporary disk are lost, and a start may meet a capacity error.
	ModeDeallocate cloud.Mode = "deallocate"
)

// throttleRetryAfter is the hint when ARM throttles without Retry-After.
const throttleRetryAfter = 5 * time.Second

// Poll delays: ARM's Retry-After within these bounds, pollDefault when it
// sends none.
const (
	pollMin     = 50 * time.Millisecond
	pollMax     = 5 * time.Second
	pollDefault = 2 * time.Second
)

// Driver acts on Azure VMs. It keeps one set of clients per subscription.
type Driver struct {
	env     environment
	httpCli *http.Client

	credOnce sync.Once
	cred     azcore.TokenCredential
	credErr  error

	mu      sync.Mutex
	clients map[string]*clients
}

type clients struct {
	vms  *armcompute.VirtualMachinesClient
	vmss *armcompute.VirtualMachineScaleSetVMsClient
}

var (
	_ cloud.Driver  = (*Driver)(nil)
	_ cloud.Moder   = (*Driver)(nil)
	_ cloud.Stopper = (*Driver)(nil)
	_ cloud.Starter = (*Driver)(nil)
)

// New builds the Azure driver. It reads the CA file and decides the cloud
// (endpoints, authority, audience) now, so a bad config stops the server at
// start; credentials are built at the first call.
func New(_ context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	env, err := environmentFor(cfg.Endpoint, lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("azure: %w", err)
	}
	d := &Driver{env: env, clients: map[string]*clients{}}
	if cfg.CAFile != "" {
		pool, err := cloud.CAPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("azure: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		d.httpCli = &http.Client{Transport: tr}
	}
	return d, nil
}

// Name implements cloud.Driver.
func (d *Driver) Name() string { return Name }

// Modes implements cloud.Moder. Azure's restart asks the guest to reboot
// and there is no reset in the Compute API (redeploy moves the VM to
// another host, reimage rebuilds its disk), so restart has soft alone and
// hard is refused. Stop is a power-off, with or without the guest's
// shutdown (skipShutdown), or a deallocation.
func (d *Driver) Modes(action string) []cloud.Mode {
	switch action {
	case cloud.ActionRestart:
		return []cloud.Mode{cloud.ModeSoft}
	case cloud.ActionStop:
		return []cloud.Mode{cloud.ModeSoft, cloud.ModeHard, ModeDeallocate}
	}
	return nil
}

func (d *Driver) credential() (azcore.TokenCredential, error) {
	d.credOnce.Do(func() {
		opts := &azidentity.DefaultAzureCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: d.env.cloud},
			DisableInstanceDiscovery: d.env.disableInstanceDiscovery,
		}
		if d.httpCli != nil {
			opts.ClientOptions.Transport = d.httpCli
		}
		c, err := azidentity.NewDefaultAzureCredential(opts)
		d.cred, d.credErr = c, err
		if err == nil {
			d.cred = taggedCredential{c}
		}
	})
	return d.cred, d.credErr
}

func (d *Driver) clientsFor(sub string) (*clients, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clients[sub]; ok {
		return c, nil
	}
	cred, err := d.credential()
	if err != nil {
		return nil, &cloud.Error{Kind: cloud.ErrUnauthorized, Provider: Name, Code: "CredentialsError", NotSent: true,
			Message: "no usable Azure credentials (DefaultAzureCredential): " + err.Error(), Err: err}
	}
	opts := d.armOptions()
	vms, err := armcompute.NewVirtualMachinesClient(sub, cred, opts)
	if err != nil {
		return nil, err
	}
	vmss, err := armcompute.NewVirtualMachineScaleSetVMsClient(sub, cred, opts)
	if err != nil {
		return nil, err
	}
	c := &clients{vms: vms, vmss: vmss}
	d.clients[sub] = c
	return c, nil
}

// armOptions are every client's options.
func (d *Driver) armOptions() *arm.ClientOptions {
	opts := &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud: d.env.cloud,
			// No retries at all: a retried POST is a second restart, and
			// a throttled call is better handed back to our caller. Polls
			// are retried by follow itself.
			Retry:           policy.RetryOptions{MaxRetries: -1},
			PerCallPolicies: []policy.Policy{guard{host: d.env.armHost}},
		},
		// The registration policy would POST a provider registration on
		// our behalf; the server asks for nothing but its own calls.
		DisableRPRegistration: true,
	}
	if d.httpCli != nil {
		opts.Transport = d.httpCli
	}
	return opts
}

// target checks the instance is ours and takes its resource ID apart again
// (the Instance carries the canonical ARM ID that Resolve built).
func target(inst cloud.Instance) (resourceID, error) {
	if inst.Provider != Name {
		return resourceID{}, fmt.Errorf("%s: instance %s belongs to provider %q", Name, inst.ID, inst.Provider)
	}
	id, err := parseProviderID("azure://" + inst.ID)
	if err != nil {
		return resourceID{}, fmt.Errorf("%s: instance %q is not a VM or scale-set instance ID: %w", Name, inst.ID, err)
	}
	return id, nil
}

// Reboot implements cloud.Driver with BeginRestart on the one VM or
// scale-set instance.
func (d *Driver) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionRestart, d.Modes(cloud.ActionRestart), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	return d.act(ctx, inst, cloud.ActionRestart, mode, opts.DryRun)
}

// Stop implements cloud.Stopper: BeginPowerOff (soft: the guest shuts
// down; hard: skipShutdown) or BeginDeallocate. A powered-off VM is still
// allocated and billed for its compute; only deallocate stops that.
func (d *Driver) Stop(ctx context.Context, inst cloud.Instance, opts cloud.StopOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionStop, d.Modes(cloud.ActionStop), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	return d.act(ctx, inst, cloud.ActionStop, mode, opts.DryRun)
}

// Start implements cloud.Starter with BeginStart.
func (d *Driver) Start(ctx context.Context, inst cloud.Instance, opts cloud.StartOptions) (cloud.Result, error) {
	return d.act(ctx, inst, cloud.ActionStart, "", opts.DryRun)
}

func (d *Driver) act(ctx context.Context, inst cloud.Instance, action string, mode cloud.Mode, dryRun bool) (cloud.Result, error) {
	id, err := target(inst)
	if err != nil {
		return cloud.Result{}, err
	}
	c, err := d.clientsFor(id.Subscription)
	if err != nil {
		return cloud.Result{}, err
	}
	if dryRun {
		res, err := d.check(ctx, c, id, action, mode)
		res.Mode = mode
		return res, err
	}
	var initial *http.Response
	sendCtx := policy.WithCaptureResponse(ctx, &initial)
	var p lro
	switch {
	case action == cloud.ActionRestart && id.isScaleSetVM():
		p, err = wrap(c.vmss.BeginRestart(sendCtx, id.ResourceGroup, id.ScaleSet, id.InstanceID, nil))
	case action == cloud.ActionRestart:
		p, err = wrap(c.vms.BeginRestart(sendCtx, id.ResourceGroup, id.VM, nil))
	case action == cloud.ActionStop && mode == ModeDeallocate && id.isScaleSetVM():
		p, err = wrap(c.vmss.BeginDeallocate(sendCtx, id.ResourceGroup, id.ScaleSet, id.InstanceID, nil))
	case action == cloud.ActionStop && mode == ModeDeallocate:
		p, err = wrap(c.vms.BeginDeallocate(sendCtx, id.ResourceGroup, id.VM, nil))
	case action == cloud.ActionStop && id.isScaleSetVM():
		skip := mode == cloud.ModeHard
		p, err = wrap(c.vmss.BeginPowerOff(sendCtx, id.ResourceGroup, id.ScaleSet, id.InstanceID,
			&armcompute.VirtualMachineScaleSetVMsClientBeginPowerOffOptions{SkipShutdown: &skip}))
	case action == cloud.ActionStop:
		skip := mode == cloud.ModeHard
		p, err = wrap(c.vms.BeginPowerOff(sendCtx, id.ResourceGroup, id.VM,
			&armcompute.VirtualMachinesClientBeginPowerOffOptions{SkipShutdown: &skip}))
	case action == cloud.ActionStart && id.isScaleSetVM():
		p, err = wrap(c.vmss.BeginStart(sendCtx, id.ResourceGroup, id.ScaleSet, id.InstanceID, nil))
	case action == cloud.ActionStart:
		p, err = wrap(c.vms.BeginStart(sendCtx, id.ResourceGroup, id.VM, nil))
	default:
		return cloud.Result{}, &cloud.UnsupportedError{Provider: Name, Action: action}
	}
	if err != nil {
		if initial != nil && initial.StatusCode/100 == 2 {
			// ARM accepted, but its answer could not start a poller (no
			// or a bad Azure-AsyncOperation URL): a proxy's answer, or
			// one from which the operation cannot be followed.
			return cloud.Result{}, withRequest(cloud.BadAnswer(Name, "an accepted answer whose operation cannot be followed ("+err.Error()+")", err), initial)
		}
		return cloud.Result{}, mapError(ctx, err, action)
	}
	opID, ok := operationID(initial)
	if !ok {
		return cloud.Result{}, cloud.BadAnswer(Name, "an accepted answer without ARM's x-ms-request-id", nil)
	}
	if err := follow(ctx, p, initial); err != nil {
		return cloud.Result{}, opError(ctx, err, action, opID)
	}
	return cloud.Result{RequestID: opID, Mode: mode}, nil
}

// lro is what follow needs of a poller, whatever its result type.
type lro interface {
	Poll(ctx context.Context) (*http.Response, error)
	Done() bool
	result(ctx context.Context) error
}

type poller[T any] struct{ *runtime.Poller[T] }

func (p poller[T]) result(ctx context.Context) error {
	_, err := p.Result(ctx)
	return err
}

func wrap[T any](p *runtime.Poller[T], err error) (lro, error) {
	if err != nil {
		return nil, err
	}
	return poller[T]{p}, nil
}

// operationID is the answer's name for the operation: the last segment of
// Azure-AsyncOperation (what `az vm … --no-wait` and the activity log
// show), else of Location, else ARM's request ID for an answer that
// finished at once. ok is false without x-ms-request-id, which ARM sends
// with every answer.
func operationID(resp *http.Response) (string, bool) {
	if resp == nil || resp.Header.Get("x-ms-request-id") == "" {
		return "", false
	}
	for _, h := range []string{"Azure-AsyncOperation", "Location"} {
		if u, err := url.Parse(resp.Header.Get(h)); err == nil && u.Path != "" {
			if seg := u.Path[strings.LastIndexByte(u.Path, '/')+1:]; seg != "" {
				return seg, true
			}
		}
	}
	return resp.Header.Get("x-ms-request-id"), true
}

// errOperationFailed marks the failure of an accepted operation, as
// opposed to one of following it.
type errOperationFailed struct{ err error }

func (e *errOperationFailed) Error() string { return e.err.Error() }
func (e *errOperationFailed) Unwrap() error { return e.err }

// follow polls the operation until it ends or ctx does, at the pace ARM
// asks for with Retry-After. A poll that fails for a passing reason (5xx,
// 429, the network) is tried again; the POST itself never is.
func follow(ctx context.Context, p lro, initial *http.Response) error {
	last := initial
	for !p.Done() {
		if err := sleepCtx(ctx, pollDelay(last)); err != nil {
			return err
		}
		resp, err := p.Poll(ctx)
		if err != nil {
			var re *azcore.ResponseError
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.As(err, &re) && (re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests):
				last = re.RawResponse
				continue
			case errors.As(err, &re):
				return err
			case isNetError(err):
				last = nil
				continue
			}
			return cloud.BadAnswer(Name, "an operation status ARM would not send ("+err.Error()+")", err)
		}
		last = resp
	}
	if err := p.result(ctx); err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode/100 == 2 {
			return &errOperationFailed{err}
		}
		return err
	}
	return nil
}

func pollDelay(resp *http.Response) time.Duration {
	if resp == nil {
		return pollDefault
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		return min(max(time.Duration(s)*time.Second, pollMin), pollMax)
	}
	return pollDefault
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// check is the dry run. ARM has none, so it reads the instance view: the
// machine exists (else 422) and is in a power state the action can start
// from (else 409). It cannot tell whether the real call would be
// authorized: reading needs only Microsoft.Compute/…/read.
func (d *Driver) check(ctx context.Context, c *clients, id resourceID, action string, mode cloud.Mode) (cloud.Result, error) {
	var raw *http.Response
	getCtx := policy.WithCaptureResponse(ctx, &raw)
	var statuses []*armcompute.InstanceViewStatus
	if id.isScaleSetVM() {
		v, err := c.vmss.GetInstanceView(getCtx, id.ResourceGroup, id.ScaleSet, id.InstanceID, nil)
		if err != nil {
			return cloud.Result{}, mapError(ctx, err, "read")
		}
		statuses = v.Statuses
	} else {
		v, err := c.vms.InstanceView(getCtx, id.ResourceGroup, id.VM, nil)
		if err != nil {
			return cloud.Result{}, mapError(ctx, err, "read")
		}
		statuses = v.Statuses
	}
	reqID := ""
	if raw != nil {
		reqID = raw.Header.Get("x-ms-request-id")
	}
	if reqID == "" {
		return cloud.Result{}, cloud.BadAnswer(Name, "an instance view without ARM's x-ms-request-id", nil)
	}
	state := ""
	for _, s := range statuses {
		if s != nil && s.Code != nil {
			if v, ok := strings.CutPrefix(*s.Code, "PowerState/"); ok {
				state = v
			}
		}
	}
	if state == "" {
		return cloud.Result{}, cloud.BadAnswer(Name, "an instance view without a PowerState status", nil)
	}
	if !allowedFrom(action, mode, state) {
		return cloud.Result{}, &cloud.Error{Kind: cloud.ErrInvalidState, Provider: Name, Code: "PowerState/" + state, RequestID: reqID,
			Message: fmt.Sprintf("dry run (ARM has none; the instance view was read): the machine is %s, and %s needs it %s", state, action, wantState(action, mode))}
	}
	return cloud.Result{RequestID: reqID}, nil
}

// allowedFrom says whether action can start from a power state, as
// Compute decides it.
func allowedFrom(action string, mode cloud.Mode, state string) bool {
	switch action {
	case cloud.ActionRestart:
		return state == "running"
	case cloud.ActionStop:
		if mode == ModeDeallocate {
			return state != "deallocated" && state != "deallocating"
		}
		return state == "running" || state == "starting"
	case cloud.ActionStart:
		return state == "stopped" || state == "deallocated"
	}
	return false
}

func wantState(action string, mode cloud.Mode) string {
	switch {
	case action == cloud.ActionRestart:
		return "running"
	case action == cloud.ActionStop && mode == ModeDeallocate:
		return "not deallocated"
	case action == cloud.ActionStop:
		return "running or starting"
	}
	return "stopped or deallocated"
}

// permission is the Azure RBAC action a call needs, for the message of a
// refusal.
func permission(action string, kind string) string {
	base := "Microsoft.Compute/virtualMachines/"
	if kind == "vmss" {
		base = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/"
	}
	switch action {
	case cloud.ActionRestart:
		return base + "restart/action"
	case cloud.ActionStop:
		return base + "powerOff/action (or deallocate/action)"
	case cloud.ActionStart:
		return base + "start/action"
	}
	return base + "read"
}

// mapError classifies a failure of the first call (the POST or the GET):
// an answer from ARM is trusted before the state of ctx.
func mapError(ctx context.Context, err error, action string) error {
	var ue *cloud.UnsupportedError
	var ce *cloud.Error
	if errors.As(err, &ue) || errors.As(err, &ce) {
		return err
	}
	e := &cloud.Error{Provider: Name, Err: err}
	var re *azcore.ResponseError
	var cred *credentialError
	var refused *guardError
	switch {
	case errors.As(err, &refused):
		// Nothing was sent: this is a bug of ours, stopped in time.
		e.Kind, e.Code, e.NotSent, e.Message = cloud.ErrUnavailable, "RefusedByGuard", true, refused.Error()
	case errors.As(err, &re):
		classify(e, re, action)
	case errors.As(err, &cred):
		e.Kind, e.Code, e.NotSent = cloud.ErrUnauthorized, "CredentialsError", true
		e.Message = "no usable Azure credentials (DefaultAzureCredential): " + err.Error()
		if ctx.Err() != nil {
			e.Kind = cloud.ErrUnavailable
			e.Message = "Azure credentials not resolved in time: " + err.Error()
		}
	case timedOut(ctx, err):
		e.Kind, e.Message = cloud.ErrTimeout, "no answer from ARM in time; whether it accepted the call is unknown"
	default:
		e.Kind, e.Message = cloud.ErrUnavailable, err.Error()
	}
	return e
}

// classify maps ARM's answer to a kind.
func classify(e *cloud.Error, re *azcore.ResponseError, action string) {
	e.Code, e.Message = re.ErrorCode, armMessage(re)
	if re.RawResponse != nil {
		e.RequestID = re.RawResponse.Header.Get("x-ms-request-id")
	}
	if e.Code == "" {
		e.Code = http.StatusText(re.StatusCode)
	}
	switch {
	case re.StatusCode == http.StatusNotFound || re.ErrorCode == "ResourceNotFound" || re.ErrorCode == "NotFound" ||
		re.ErrorCode == "ResourceGroupNotFound" || re.ErrorCode == "ParentResourceNotFound" || re.ErrorCode == "SubscriptionNotFound":
		e.Kind = cloud.ErrNotFound
	case re.StatusCode == http.StatusUnauthorized:
		e.Kind = cloud.ErrUnauthorized
		e.Message = "ARM refused this server's token (" + e.Code + "): " + e.Message
	case re.StatusCode == http.StatusForbidden || re.ErrorCode == "AuthorizationFailed" || re.ErrorCode == "LinkedAuthorizationFailed":
		e.Kind = cloud.ErrUnauthorized
		kind := "vm"
		if re.RawResponse != nil && re.RawResponse.Request != nil && strings.Contains(strings.ToLower(re.RawResponse.Request.URL.Path), "/virtualmachinescalesets/") {
			kind = "vmss"
		}
		e.Message = "this server's identity lacks the permission " + permission(action, kind) + ": " + e.Message
	case re.StatusCode == http.StatusTooManyRequests:
		e.Kind = cloud.ErrThrottled
		e.RetryAfter = retryAfter(re.RawResponse)
	case re.StatusCode == http.StatusConflict || re.ErrorCode == "OperationNotAllowed" || re.ErrorCode == "Conflict" ||
		re.ErrorCode == "ConflictingOperation" || re.ErrorCode == "OperationPreempted":
		e.Kind = cloud.ErrInvalidState
	default:
		e.Kind = cloud.ErrUnavailable
	}
}

// opError classifies a failure after ARM accepted the call. The operation
// ran, or may have: a failed operation is reported with its own code but
// as Unavailable (502, the node stays locked), never as a refusal that
// would let a retry through at once, and never as success.
func opError(ctx context.Context, err error, action, opID string) error {
	var failed *errOperationFailed
	var re *azcore.ResponseError
	var ce *cloud.Error
	switch {
	case errors.As(err, &failed) && errors.As(err, &re):
		e := &cloud.Error{Kind: cloud.ErrUnavailable, Provider: Name, Code: re.ErrorCode, RequestID: opID, Err: err}
		if e.Code == "" {
			e.Code = "OperationFailed"
		}
		e.Message = fmt.Sprintf("ARM accepted the %s, but the operation failed: %s", action, armMessage(re))
		return e
	case errors.As(err, &ce):
		if ce.RequestID == "" {
			ce.RequestID = opID
		}
		return ce
	case timedOut(ctx, err):
		return &cloud.Error{Kind: cloud.ErrTimeout, Provider: Name, RequestID: opID, Err: err,
			Message: fmt.Sprintf("ARM accepted the %s as operation %s, which had not ended in time; its outcome is unknown (az vm get-instance-view shows the power state)", action, opID)}
	case errors.As(err, &re):
		e := &cloud.Error{Kind: cloud.ErrUnavailable, Provider: Name, Code: re.ErrorCode, RequestID: opID, Err: err,
			Message: fmt.Sprintf("ARM accepted the %s as operation %s, which could not be followed: %s; its outcome is unknown", action, opID, armMessage(re))}
		return e
	}
	return &cloud.Error{Kind: cloud.ErrUnavailable, Provider: Name, RequestID: opID, Err: err,
		Message: fmt.Sprintf("ARM accepted the %s as operation %s, which could not be followed: %v; its outcome is unknown", action, opID, err)}
}

// armMessage is the message ARM gave ({"error": {"code", "message"}},
// also inside an operation's status), without the SDK's request dump.
func armMessage(re *azcore.ResponseError) string {
	if re.RawResponse != nil {
		if body, err := runtime.Payload(re.RawResponse); err == nil {
			var b struct {
				Error *struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			if json.Unmarshal(body, &b) == nil && b.Error != nil && b.Error.Message != "" {
				return b.Error.Message
			}
		}
	}
	return fmt.Sprintf("HTTP %d %s", re.StatusCode, re.ErrorCode)
}

func retryAfter(resp *http.Response) time.Duration {
	if resp != nil {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 && s < 3600 {
			return time.Duration(s) * time.Second
		}
	}
	return throttleRetryAfter
}

func withRequest(e *cloud.Error, resp *http.Response) *cloud.Error {
	if resp != nil {
		e.RequestID = resp.Header.Get("x-ms-request-id")
	}
	return e
}

func timedOut(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.As(err, &ue)
}

// credentialError marks a failure of DefaultAzureCredential: the request
// was never sent.
type credentialError struct{ err error }

func (e *credentialError) Error() string { return e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

type taggedCredential struct{ c azcore.TokenCredential }

func (t taggedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := t.c.GetToken(ctx, o)
	if err != nil {
		return tok, &credentialError{err}
	}
	return tok, nil
}
