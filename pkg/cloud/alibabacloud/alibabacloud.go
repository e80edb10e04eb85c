// Package alibabacloud drives Alibaba Cloud ECS instances (ACK and
// self-built clusters) through the official SDK,
// github.com/alibabacloud-go/ecs-20140526/v7 on darabonba-openapi/v2.
//
// Credentials come from credentials-go's default chain, passed to the SDK
// explicitly (it builds none itself): the environment
// (ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, ALIBABA_CLOUD_SECURITY_TOKEN), ACK
// RRSA OIDC (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN,
// ALIBABA_CLOUD_OIDC_TOKEN_FILE, as ack-pod-identity-webhook injects them),
// the CLI and credentials files, the ECS instance's RAM role. The cloud
// config never holds them.
package alibabacloud

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	ecs "github.com/alibabacloud-go/ecs-20140526/v7/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// throttleRetryAfter is the hint given with ErrThrottled when ECS says
// nothing (its x-ratelimit-* headers give the time left when it does).
const throttleRetryAfter = time.Second

// Driver drives ECS instances. It keeps one ECS client per region, all
// sharing one credential chain and one HTTP client.
type Driver struct {
	// endpoint is host[:port] from the config; "" means the regional
	// public endpoint ecs.<region>.aliyuncs.com.
	endpoint string
	http     *httpClient

	// newCredential builds the chain at the first call: the RRSA and RAM
	// role providers are network clients, not worth building for a
	// server that never meets an Alibaba node. Tests replace it.
	newCredential func() (credentials.Credential, error)

	mu      sync.Mutex
	cred    *serialCredential
	clients map[string]*ecs.Client
}

var (
	_ cloud.Driver  = (*Driver)(nil)
	_ cloud.Moder   = (*Driver)(nil)
	_ cloud.Stopper = (*Driver)(nil)
	_ cloud.Starter = (*Driver)(nil)
)

// New builds the ECS driver. The CA file is read now, so a bad file stops
// the server at start; credentials and clients wait for the first call.
func New(_ context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	d := &Driver{
		clients:       map[string]*ecs.Client{},
		newCredential: func() (credentials.Credential, error) { return credentials.NewCredential(nil) },
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Host == "" || u.Scheme != "https" {
			return nil, fmt.Errorf("alibabacloud: bad endpoint %q, want https://host[:port]", cfg.Endpoint)
		}
		d.endpoint = u.Host
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// darabonba's own transport takes HTTPS_PROXY for every host, loopback
	// and VPC endpoints included, and ignores NO_PROXY's usual forms; Go's
	// rules (NO_PROXY with domains and CIDRs, never a proxy for loopback)
	// are the ones every other client of this server follows.
	tr.Proxy = http.ProxyFromEnvironment
	if cfg.CAFile != "" {
		// Not the SDK's Config.Ca: it replaces the system roots.
		pool, err := cloud.CAPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("alibabacloud: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// No http.Client timeout: the wrapper's context is the one bound.
	d.http = &httpClient{c: &http.Client{Transport: tr}}
	return d, nil
}

// Name implements cloud.Driver.
func (d *Driver) Name() string { return Name }

// Modes implements cloud.Moder. RebootInstance and StopInstance take
// ForceStop: false (soft, the default) shuts the OS down cleanly, true
// (hard) is a power cut. StartInstance has no modes.
func (d *Driver) Modes(action string) []cloud.Mode {
	switch action {
	case cloud.ActionRestart, cloud.ActionStop:
		return []cloud.Mode{cloud.ModeSoft, cloud.ModeHard}
	}
	return nil
}

// httpClient is the SDK's dara.HttpClient: every request goes through one
// net/http client of ours (our proxy rules, our CA pool, no timeout of its
// own), and what came back is noted for the call that sent it, so a body
// the SDK cannot read is known to be an answer from something.
type httpClient struct{ c *http.Client }

type answerKey struct{}

// answer is what the HTTP layer saw of one call's answer.
type answer struct {
	mu        sync.Mutex
	status    int
	requestID string
}

func (h *httpClient) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	resp, err := h.c.Do(req)
	if a, ok := req.Context().Value(answerKey{}).(*answer); ok && err == nil {
		a.mu.Lock()
		a.status = resp.StatusCode
		a.requestID = resp.Header.Get("x-acs-request-id")
		a.mu.Unlock()
	}
	return resp, err
}

func (a *answer) get() (int, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status, a.requestID
}

// serialCredential is the chain as the SDK sees it: one caller at a time
// (the chain remembers which provider worked without a lock of its own),
// and failures marked as the chain's, so they read as "nothing sent".
type serialCredential struct {
	credentials.Credential
	mu sync.Mutex
}

type credentialError struct{ err error }

func (e *credentialError) Error() string { return e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

func (s *serialCredential) GetCredential() (*credentials.CredentialModel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.Credential.GetCredential()
	if err != nil {
		return nil, &credentialError{err}
	}
	if m == nil || dara.StringValue(m.AccessKeyId) == "" || dara.StringValue(m.AccessKeySecret) == "" {
		return nil, &credentialError{errors.New("the credential chain gave no AccessKey")}
	}
	return m, nil
}

// credential resolves the chain for one call, bounded by ctx: the RRSA
// provider calls STS and the RAM role provider the metadata server, each
// with timeouts of their own that are not the call's. It returns the
// AccessKey ID in use, for messages. The providers keep what they got
// until it nears expiry, so the SDK's own lookup right after is a cache
// hit.
func (d *Driver) credential(ctx context.Context) (*serialCredential, string, error) {
	d.mu.Lock()
	if d.cred == nil {
		c, err := d.newCredential()
		if err != nil {
			d.mu.Unlock()
			return nil, "", &credentialError{err}
		}
		d.cred = &serialCredential{Credential: c}
	}
	cred := d.cred
	d.mu.Unlock()
	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := cred.GetCredential()
		r := result{err: err}
		if err == nil {
			r.id = dara.StringValue(m.AccessKeyId)
		}
		done <- r
	}()
	select {
	case r := <-done:
		return cred, r.id, r.err
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

// client returns the region's ECS client, building it on first use.
func (d *Driver) client(region string, cred credentials.Credential) (*ecs.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clients[region]; ok {
		return c, nil
	}
	endpoint := d.endpoint
	if endpoint == "" {
		// Set, not left to the SDK's endpoint map, which sends some
		// regions to the central ecs-cn-hangzhou.aliyuncs.com.
		endpoint = "ecs." + region + ".aliyuncs.com"
	}
	c, err := ecs.NewClient(&openapiutil.Config{
		Credential: cred,
		Endpoint:   dara.String(endpoint),
		RegionId:   dara.String(region),
		Protocol:   dara.String("HTTPS"),
		HttpClient: d.http,
		// One attempt: a retried reboot is a second reboot. The SDK
		// retries only when these say so (dara.ShouldRetry); they are
		// set so that a change of default can never make it.
		RetryOptions: &dara.RetryOptions{Retryable: false, MaxAttempts: 1},
	})
	if err != nil {
		return nil, err
	}
	// The SDK's typed errors (ClientError, ServerError, ThrottlingError)
	// keep the request ID and the AccessDeniedDetail; its "SDK errors"
	// flatten them into text.
	c.Client.DisableSDKError = dara.Bool(true)
	d.clients[region] = c
	return c, nil
}

// runtime is every call's runtime options: no retry, and no timeouts of
// the SDK's (the wrapper's context bounds the call).
func runtime() *dara.RuntimeOptions {
	return &dara.RuntimeOptions{Autoretry: dara.Bool(false), MaxAttempts: dara.Int(1)}
}

// op is one ECS call of an action, for messages and error mapping.
type op struct {
	id      string // the instance
	action  string // ActionRestart, …
	api     string // RebootInstance, …
	verb    string // "rebooted", …
	running bool   // the state the call needs: Running (else Stopped)
	dryRun  bool
}

// call runs one ECS call: credentials first (bounded by ctx, nothing
// sent when they fail), then the SDK call once, then the answer checked.
func (d *Driver) call(ctx context.Context, inst cloud.Instance, o op,
	send func(ctx context.Context, c *ecs.Client) (requestID *string, err error)) (cloud.Result, error) {
	if err := inst.CheckFor(Name); err != nil {
		return cloud.Result{}, err
	}
	cred, keyID, err := d.credential(ctx)
	if err != nil {
		return cloud.Result{}, credentialFailure(ctx, err)
	}
	c, err := d.client(inst.Region, cred)
	if err != nil {
		return cloud.Result{}, &cloud.Error{Kind: cloud.ErrUnavailable, Provider: Name, Code: "ClientError",
			NotSent: true, Message: "cannot build the ECS client: " + err.Error(), Err: err}
	}
	a := &answer{}
	rid, err := send(context.WithValue(ctx, answerKey{}, a), c)
	if err != nil {
		e := mapError(ctx, err, a, o, keyID)
		if o.dryRun && e.Code == "DryRunOperation" {
			if e.RequestID == "" {
				return cloud.Result{}, cloud.BadAnswer(Name, "a DryRunOperation answer without a request ID", err)
			}
			return cloud.Result{RequestID: e.RequestID}, nil
		}
		d.explain(ctx, c, inst, o, e)
		return cloud.Result{}, e
	}
	if o.dryRun {
		// A dry run that passes is a 400 DryRunOperation; a 200 would
		// mean the call was run for real, or came from something else.
		return cloud.Result{}, cloud.BadAnswer(Name, "a dry run answered 200 instead of DryRunOperation", nil)
	}
	if dara.StringValue(rid) == "" {
		// ECS answers every call with a RequestId. A 200 without one came
		// from something in front of it, which the SDK decodes as an
		// empty success: whether ECS ever saw the call is unknown.
		return cloud.Result{}, cloud.BadAnswer(Name, "a 200 answer without an ECS RequestId", nil)
	}
	return cloud.Result{RequestID: dara.StringValue(rid)}, nil
}

// Reboot implements cloud.Driver with RebootInstance; hard is ForceStop,
// a dry run is ECS's own DryRun.
func (d *Driver) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionRestart, d.Modes(cloud.ActionRestart), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	o := op{id: inst.ID, action: cloud.ActionRestart, api: "RebootInstance", verb: "rebooted", running: true, dryRun: opts.DryRun}
	res, err := d.call(ctx, inst, o, func(ctx context.Context, c *ecs.Client) (*string, error) {
		req := &ecs.RebootInstanceRequest{
			InstanceId: dara.String(inst.ID),
			ForceStop:  dara.Bool(mode == cloud.ModeHard),
			DryRun:     dara.Bool(opts.DryRun),
		}
		resp, err := c.RebootInstanceWithContext(ctx, req, runtime())
		if err != nil || resp == nil || resp.Body == nil {
			return nil, err
		}
		return resp.Body.RequestId, nil
	})
	if err != nil {
		return cloud.Result{}, err
	}
	res.Mode = mode
	return res, nil
}

// Stop implements cloud.Stopper with StopInstance; hard is ForceStop.
// StoppedMode is always sent: KeepCharging unless opts.StopCharging asks
// for StopCharging. KeepCharging keeps the instance's vCPUs, memory and IP
// while stopped, so a start brings the node back as it was; the account's
// default may be the economical mode (StopCharging), which releases them
// and can fail the next start for want of stock, so it is never left to
// the default.
func (d *Driver) Stop(ctx context.Context, inst cloud.Instance, opts cloud.StopOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionStop, d.Modes(cloud.ActionStop), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	o := op{id: inst.ID, action: cloud.ActionStop, api: "StopInstance", verb: "stopped", running: true, dryRun: opts.DryRun}
	res, err := d.call(ctx, inst, o, func(ctx context.Context, c *ecs.Client) (*string, error) {
		req := &ecs.StopInstanceRequest{
			InstanceId:  dara.String(inst.ID),
			ForceStop:   dara.Bool(mode == cloud.ModeHard),
			StoppedMode: dara.String(stoppedMode(opts)),
			DryRun:      dara.Bool(opts.DryRun),
		}
		resp, err := c.StopInstanceWithContext(ctx, req, runtime())
		if err != nil || resp == nil || resp.Body == nil {
			return nil, err
		}
		return resp.Body.RequestId, nil
	})
	if err != nil {
		return cloud.Result{}, err
	}
	res.Mode = mode
	return res, nil
}

// ECS's StoppedMode values (see Stop).
const (
	StoppedModeKeepCharging = "KeepCharging"
	StoppedModeStopCharging = "StopCharging"
)

func stoppedMode(opts cloud.StopOptions) string {
	if opts.StopCharging {
		return StoppedModeStopCharging
	}
	return StoppedModeKeepCharging
}

// Start implements cloud.Starter with StartInstance.
func (d *Driver) Start(ctx context.Context, inst cloud.Instance, opts cloud.StartOptions) (cloud.Result, error) {
	o := op{id: inst.ID, action: cloud.ActionStart, api: "StartInstance", verb: "started", dryRun: opts.DryRun}
	return d.call(ctx, inst, o, func(ctx context.Context, c *ecs.Client) (*string, error) {
		req := &ecs.StartInstanceRequest{InstanceId: dara.String(inst.ID), DryRun: dara.Bool(opts.DryRun)}
		resp, err := c.StartInstanceWithContext(ctx, req, runtime())
		if err != nil || resp == nil || resp.Body == nil {
			return nil, err
		}
		return resp.Body.RequestId, nil
	})
}

// explain completes a refusal that is about the instance's state: ECS's
// IncorrectInstanceStatus says only "the current status of the resource
// does not support this operation", so DescribeInstances tells which
// status (and whether the cloud has locked the instance, which refuses
// every action until it is lifted). DescribeInstances changes nothing, so
// asking after a refused call is no retry; when it fails, the refusal is
// reported as it came.
func (d *Driver) explain(ctx context.Context, c *ecs.Client, inst cloud.Instance, o op, e *cloud.Error) {
	if e.Kind != cloud.ErrInvalidState || ctx.Err() != nil {
		return
	}
	resp, err := c.DescribeInstancesWithContext(ctx, &ecs.DescribeInstancesRequest{
		RegionId:    dara.String(inst.Region),
		InstanceIds: dara.String(`["` + inst.ID + `"]`),
	}, runtime())
	if err != nil || resp == nil || resp.Body == nil || resp.Body.Instances == nil {
		return
	}
	for _, in := range resp.Body.Instances.Instance {
		if in == nil || dara.StringValue(in.InstanceId) != inst.ID {
			continue
		}
		if in.OperationLocks != nil {
			for _, l := range in.OperationLocks.LockReason {
				if l != nil && dara.StringValue(l.LockReason) == "security" {
					e.Code = "InstanceLockedForSecurity"
					e.Message = lockedMessage(dara.StringValue(l.LockMsg), o)
					return
				}
			}
		}
		status := dara.StringValue(in.Status)
		if status == "" {
			return
		}
		need := "Running"
		if !o.running {
			need = "Stopped"
		}
		if status == need {
			// Busy rather than in the wrong state (another operation
			// holds it): say what ECS said, with the state.
			e.Message = fmt.Sprintf("instance %s is %s, and ECS refuses to have it %s now: %s", inst.ID, status, o.verb, e.Message)
			return
		}
		e.Message = fmt.Sprintf("instance %s is %s; only a %s instance can be %s (ECS: %s)", inst.ID, status, need, o.verb, e.Message)
		return
	}
}

func lockedMessage(lockMsg string, o op) string {
	msg := fmt.Sprintf("Alibaba Cloud has locked instance %s for security reasons (OperationLocks: security), and ECS refuses to have it %s until the lock is lifted; see the instance's security events in the ECS console", o.id, o.verb)
	if lockMsg != "" {
		msg += " (" + lockMsg + ")"
	}
	return msg
}

// credentialFailure is the error of a call whose credentials could not
// be had: nothing was sent.
func credentialFailure(ctx context.Context, err error) *cloud.Error {
	e := &cloud.Error{
		Kind: cloud.ErrUnauthorized, Provider: Name, Code: "CredentialError", NotSent: true, Err: err,
		Message: "no usable Alibaba Cloud credentials (ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, ACK RRSA's ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE, or the ECS instance's RAM role): " + err.Error(),
	}
	if ctx.Err() != nil {
		// Nothing was sent; the credential source was slow, which is
		// worth a retry rather than a permission error.
		e.Kind, e.Message = cloud.ErrUnavailable, "Alibaba Cloud credentials not resolved in time: "+err.Error()
	}
	return e
}

// apiError is what the SDK's ClientError, ServerError and ThrottlingError
// share.
type apiError struct {
	status     int
	code, msg  string
	requestID  string
	retryAfter *int64
	denied     map[string]any
}

func asAPIError(err error) (apiError, bool) {
	var ce *openapi.ClientError
	var se *openapi.ServerError
	var te *openapi.ThrottlingError
	switch {
	case errors.As(err, &te):
		return apiError{dara.IntValue(te.StatusCode), dara.StringValue(te.Code), dara.StringValue(te.Message),
			dara.StringValue(te.RequestId), te.RetryAfter, te.AccessDeniedDetail}, true
	case errors.As(err, &ce):
		return apiError{dara.IntValue(ce.StatusCode), dara.StringValue(ce.Code), dara.StringValue(ce.Message),
			dara.StringValue(ce.RequestId), ce.RetryAfter, ce.AccessDeniedDetail}, true
	case errors.As(err, &se):
		return apiError{status: dara.IntValue(se.StatusCode), code: dara.StringValue(se.Code), msg: dara.StringValue(se.Message),
			requestID: dara.StringValue(se.RequestId)}, true
	}
	return apiError{}, false
}

// mapError classifies an SDK error. An answer from ECS is trusted before
// the state of ctx: a code that came back is what happened.
func mapError(ctx context.Context, err error, a *answer, o op, keyID string) *cloud.Error {
	e := &cloud.Error{Provider: Name, Kind: cloud.ErrUnavailable, Err: err, Message: err.Error()}
	var credErr *credentialError
	if errors.As(err, &credErr) {
		return credentialFailure(ctx, err)
	}
	api, ok := asAPIError(err)
	status, headerID := a.get()
	if !ok {
		switch {
		case status != 0:
			// Something answered, and the SDK could not read it as ECS's
			// JSON: an HTML page from a proxy, a captive portal.
			return cloud.BadAnswer(Name, fmt.Sprintf("an HTTP %d answer that is not ECS's JSON (%v)", status, err), err)
		case timedOut(ctx, err):
			e.Kind = cloud.ErrTimeout
			e.Message = fmt.Sprintf("no answer from ECS in time; whether the instance is %s is unknown", o.verb)
		}
		return e
	}
	// The SDK spells a field the answer lacks "<nil>".
	for _, f := range []*string{&api.code, &api.requestID, &api.msg} {
		if *f == "<nil>" {
			*f = ""
		}
	}
	if api.requestID == "" {
		api.requestID = headerID
	}
	if api.code == "" && api.requestID == "" {
		return cloud.BadAnswer(Name, fmt.Sprintf("an HTTP %d error answer without an ECS code or RequestId", api.status), err)
	}
	e.Code, e.RequestID = api.code, api.requestID
	e.Message = cleanMessage(api.msg, api.requestID)
	c := api.code
	switch {
	case c == "DryRunOperation":
		// The caller (a dry run) decides; for a real call it cannot be.
	case c == "InvalidInstanceId.NotFound" || c == "InvalidInstanceId.MalFormed" || c == "InvalidInstance.NotFound":
		e.Kind = cloud.ErrNotFound
	case c == "InstanceLockedForSecurity":
		e.Kind = cloud.ErrInvalidState
		e.Message = lockedMessage("", o)
	case strings.HasPrefix(c, "IncorrectInstanceStatus") || c == "OperationConflict" || c == "Operation.Conflict" ||
		strings.HasPrefix(c, "LastTokenProcessing") || strings.HasPrefix(c, "IncorrectStatus"):
		e.Kind = cloud.ErrInvalidState
	case strings.HasPrefix(c, "Throttling"):
		e.Kind = cloud.ErrThrottled
		e.RetryAfter = throttleRetryAfter
		if ms := dara.Int64Value(api.retryAfter); ms > 0 && ms < 3600_000 {
			e.RetryAfter = time.Duration(ms) * time.Millisecond
		}
	case strings.HasPrefix(c, "Forbidden") || c == "NoPermission":
		e.Kind = cloud.ErrUnauthorized
		e.Message = fmt.Sprintf("the RAM identity lacks %s: %s", missingPermission(api.denied, o), e.Message)
	case strings.HasPrefix(c, "InvalidAccessKeyId"):
		e.Kind = cloud.ErrUnauthorized
		e.Message = fmt.Sprintf("ECS does not accept the AccessKey ID %q (unknown or disabled): check ALIBABA_CLOUD_ACCESS_KEY_ID, or the RAM role the credentials come from: %s", keyID, e.Message)
	case c == "SignatureDoesNotMatch" || c == "IncompleteSignature":
		e.Kind = cloud.ErrUnauthorized
		e.Message = fmt.Sprintf("ECS does not accept the signature made with the AccessKey secret of %q: check ALIBABA_CLOUD_ACCESS_KEY_SECRET (or a proxy altered the request): %s", keyID, e.Message)
	case strings.HasPrefix(c, "InvalidSecurityToken") || strings.HasPrefix(c, "InvalidTimeStamp") || c == "SignatureNonceUsed":
		e.Kind = cloud.ErrUnauthorized
	case api.status >= 500:
		e.Kind = cloud.ErrUnavailable
	}
	return e
}

// missingPermission names the RAM action (and resource, when ECS says)
// a Forbidden.RAM answer is about.
func missingPermission(denied map[string]any, o op) string {
	action := "ecs:" + o.api
	if v, ok := denied["AuthAction"].(string); ok && v != "" {
		action = v
	}
	what := "the permission " + action
	if v, ok := denied["NoPermissionType"].(string); ok && v != "" {
		what += " (" + v + ")"
	}
	if v, ok := denied["AuthPrincipalDisplayName"].(string); ok && v != "" {
		what += " for " + v
	}
	return what
}

// cleanMessage drops the SDK's "code: 400, " prefix and " request id: …"
// suffix, which the error's own fields carry.
func cleanMessage(msg, requestID string) string {
	if i := strings.Index(msg, ", "); strings.HasPrefix(msg, "code: ") && i > 0 {
		msg = msg[i+2:]
	}
	return strings.TrimSuffix(msg, " request id: "+requestID)
}

func timedOut(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
