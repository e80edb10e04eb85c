// Package tencentcloud drives CVM instances through tencentcloud-sdk-go
// (cvm v20170312).
//
// Credentials: TKE OIDC (TKE_ROLE_ARN and friends, as set by TKE's pod
// identity webhook) when TKE_ROLE_ARN is set, else the SDK's default chain
// (TENCENTCLOUD_SECRET_ID/KEY, the profile file, the CVM role). The cloud
// config never holds them.
package tencentcloud

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// throttleRetryAfter is the hint given with ErrThrottled: CVM limits are
// per second (RebootInstances: 10 requests/s).
const throttleRetryAfter = time.Second

// Driver reboots CVM instances. It keeps one CVM client per region.
type Driver struct {
	cfg       cloud.ProviderConfig
	transport http.RoundTripper // nil: the SDK's own
	scheme    string            // "HTTPS"
	endpoint  string            // host[:port] or "" for the SDK's

	// metadataURL replaces the CVM metadata server's (tests).
	metadataURL string

	mu           sync.Mutex
	snap         *snapshot // the current credentials
	credInFlight *credAttempt
	clients      map[string]regionClient
}

// regionClient is a region's CVM client and the credentials it was built
// with; new credentials get a new client, since the SDK's client is not
// safe to change while in use.
type regionClient struct {
	c    *cvm.Client
	snap *snapshot
}

var (
	_ cloud.Driver  = (*Driver)(nil)
	_ cloud.Moder   = (*Driver)(nil)
	_ cloud.Stopper = (*Driver)(nil)
	_ cloud.Starter = (*Driver)(nil)
)

// New builds the CVM driver. The CA file is read now; credentials are
// resolved at the first call, since the CVM role and TKE OIDC providers
// need the network.
func New(_ context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	d := &Driver{cfg: cfg, scheme: "HTTPS", clients: map[string]regionClient{}}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("tencentcloud: bad endpoint %q", cfg.Endpoint)
		}
		d.endpoint = u.Host
		d.scheme = strings.ToUpper(u.Scheme)
	}
	if cfg.CAFile != "" {
		pool, err := cloud.CAPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tencentcloud: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		d.transport = tr
	}
	return d, nil
}

// Name implements cloud.Driver.
func (d *Driver) Name() string { return Name }

// Modes implements cloud.Moder: RebootInstances' and StopInstances'
// StopType SOFT (through the OS, the default) or HARD (forced).
func (d *Driver) Modes(action string) []cloud.Mode {
	switch action {
	case cloud.ActionRestart, cloud.ActionStop:
		return []cloud.Mode{cloud.ModeSoft, cloud.ModeHard}
	}
	return nil
}

func (d *Driver) client(ctx context.Context, region string) (*cvm.Client, error) {
	snap, err := d.credential(ctx)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if rc, ok := d.clients[region]; ok && rc.snap == snap {
		return rc.c, nil
	}
	cpf := profile.NewClientProfile()
	cpf.Language = "en-US"
	// Both are 0 in NewClientProfile today; they are set here so that a
	// change of SDK default can never make a reboot be sent twice.
	cpf.NetworkFailureMaxRetries = 0
	cpf.RateLimitExceededMaxRetries = 0
	cpf.UnsafeRetryOnConnectionFailure = false
	// The region breaker would send calls to a backup endpoint in another
	// region, which is both wrong for an endpoint override and unexpected
	// for a machine in a given region.
	cpf.DisableRegionBreaker = true
	cpf.HttpProfile.Scheme = d.scheme
	cpf.HttpProfile.Endpoint = d.endpoint
	// No SDK timeout: the context the wrapper in pkg/cloud/providers gives
	// every call is the one bound. The SDK's default (60 s, as
	// http.Client.Timeout) would be a second owner that cuts a longer
	// configured timeout short.
	cpf.HttpProfile.ReqTimeout = 0
	c, err := cvm.NewClient(snap.cred, region, cpf)
	if err != nil {
		return nil, err
	}
	if d.transport != nil {
		c.WithHttpTransport(d.transport)
	}
	d.clients[region] = regionClient{c: c, snap: snap}
	return c, nil
}

// Reboot implements cloud.Driver: StopType SOFT or HARD (never the
// deprecated ForceReboot). The API has no dry-run; a dry run checks with
// DescribeInstances that the instance exists and is RUNNING, the state
// RebootInstances requires, and reboots nothing.
func (d *Driver) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionRestart, d.Modes(cloud.ActionRestart), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	return d.call(ctx, inst, mode, opts.DryRun, "RUNNING", "rebooted", func(c *cvm.Client) (*string, bool, error) {
		req := cvm.NewRebootInstancesRequest()
		req.InstanceIds = []*string{&inst.ID}
		req.StopType = stopType(mode)
		resp, err := c.RebootInstancesWithContext(ctx, req)
		if err != nil {
			return nil, false, err
		}
		if resp.Response == nil {
			return nil, false, nil
		}
		return resp.Response.RequestId, true, nil
	})
}

// Stop implements cloud.Stopper: StopInstances with StopType SOFT or HARD
// (never the deprecated ForceStop), and StoppedMode KEEP_CHARGING (the
// instance keeps its resources and is billed) unless StopCharging asks for
// STOP_CHARGING (pay-as-you-go instances with cloud disks only; CVM
// refuses it for others, and the public IP may change at the next start).
// A dry run checks with DescribeInstances that the instance is RUNNING.
func (d *Driver) Stop(ctx context.Context, inst cloud.Instance, opts cloud.StopOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionStop, d.Modes(cloud.ActionStop), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	return d.call(ctx, inst, mode, opts.DryRun, "RUNNING", "stopped", func(c *cvm.Client) (*string, bool, error) {
		req := cvm.NewStopInstancesRequest()
		req.InstanceIds = []*string{&inst.ID}
		req.StopType = stopType(mode)
		stoppedMode := "KEEP_CHARGING"
		if opts.StopCharging {
			stoppedMode = "STOP_CHARGING"
		}
		req.StoppedMode = &stoppedMode
		resp, err := c.StopInstancesWithContext(ctx, req)
		if err != nil {
			return nil, false, err
		}
		if resp.Response == nil {
			return nil, false, nil
		}
		return resp.Response.RequestId, true, nil
	})
}

// Start implements cloud.Starter: StartInstances; a dry run checks with
// DescribeInstances that the instance is STOPPED.
func (d *Driver) Start(ctx context.Context, inst cloud.Instance, opts cloud.StartOptions) (cloud.Result, error) {
	return d.call(ctx, inst, "", opts.DryRun, "STOPPED", "started", func(c *cvm.Client) (*string, bool, error) {
		req := cvm.NewStartInstancesRequest()
		req.InstanceIds = []*string{&inst.ID}
		resp, err := c.StartInstancesWithContext(ctx, req)
		if err != nil {
			return nil, false, err
		}
		if resp.Response == nil {
			return nil, false, nil
		}
		return resp.Response.RequestId, true, nil
	})
}

func stopType(mode cloud.Mode) *string {
	t := "SOFT"
	if mode == cloud.ModeHard {
		t = "HARD"
	}
	return &t
}

// call is one CVM call of any action: credentials and client, the dry run
// (DescribeInstances: the instance must be in state want), the request ID
// and the error mapping, shared so that every action keeps the same rules.
// send returns the answer's RequestId and whether the Response envelope
// was there.
func (d *Driver) call(ctx context.Context, inst cloud.Instance, mode cloud.Mode, dryRun bool, want, verb string,
	send func(c *cvm.Client) (requestID *string, envelope bool, err error)) (cloud.Result, error) {
	if err := inst.CheckFor(Name); err != nil {
		return cloud.Result{}, err
	}
	c, err := d.client(ctx, inst.Region)
	if err != nil {
		e := &cloud.Error{
			Kind: cloud.ErrUnauthorized, Provider: Name, Code: "CredentialError", NotSent: true,
			Message: "cannot get Tencent Cloud credentials: " + err.Error(), Err: err,
		}
		if ctx.Err() != nil {
			// Nothing was sent; the credential source was slow, which is
			// worth a retry rather than a permission error.
			e.Kind, e.Message = cloud.ErrUnavailable, "credentials not resolved in time: "+err.Error()
		}
		return cloud.Result{}, e
	}

	if dryRun {
		res, err := d.check(ctx, c, inst.ID, want, verb)
		res.Mode = mode
		if err != nil {
			return cloud.Result{}, err
		}
		return res, nil
	}
	rid, envelope, err := send(c)
	if err != nil {
		return cloud.Result{}, mapError(ctx, err)
	}
	if !envelope || deref(rid) == "" {
		return cloud.Result{}, badAnswer(!envelope)
	}
	return cloud.Result{RequestID: deref(rid), Mode: mode}, nil
}

// badAnswer is the error of a 200 answer that is not CVM's: API 3.0 wraps
// every answer, success or error, in a Response object with a RequestId,
// and the SDK decodes anything else (an empty object, another JSON
// document) as an empty success.
func badAnswer(noEnvelope bool) error {
	if noEnvelope {
		return cloud.BadAnswer(Name, "a 200 answer without the CVM Response envelope", nil)
	}
	return cloud.BadAnswer(Name, "a 200 answer without a CVM RequestId", nil)
}

func (d *Driver) check(ctx context.Context, c *cvm.Client, id, want, verb string) (cloud.Result, error) {
	req := cvm.NewDescribeInstancesRequest()
	req.InstanceIds = []*string{&id}
	resp, err := c.DescribeInstancesWithContext(ctx, req)
	if err != nil {
		return cloud.Result{}, mapError(ctx, err)
	}
	if resp.Response == nil || deref(resp.Response.RequestId) == "" {
		return cloud.Result{}, badAnswer(resp.Response == nil)
	}
	rid := deref(resp.Response.RequestId)
	for _, in := range resp.Response.InstanceSet {
		if in == nil || deref(in.InstanceId) != id {
			continue
		}
		state := deref(in.InstanceState)
		switch {
		case state != want:
			return cloud.Result{}, &cloud.Error{
				Kind: cloud.ErrInvalidState, Provider: Name,
				Code:      "UnsupportedOperation.InstanceState" + camel(state),
				Message:   fmt.Sprintf("instance %s is %s; only a %s instance can be %s", id, state, want, verb),
				RequestID: rid,
			}
		case deref(in.LatestOperationState) == "OPERATING":
			return cloud.Result{}, &cloud.Error{
				Kind: cloud.ErrInvalidState, Provider: Name,
				Code:      "OperationDenied.InstanceOperationInProgress",
				Message:   fmt.Sprintf("instance %s is busy with %s", id, deref(in.LatestOperation)),
				RequestID: rid,
			}
		}
		return cloud.Result{RequestID: rid}, nil
	}
	return cloud.Result{}, &cloud.Error{
		Kind: cloud.ErrNotFound, Provider: Name, Code: "InvalidInstanceId.NotFound",
		Message: fmt.Sprintf("instance %s does not exist in this region", id), RequestID: rid,
	}
}

// mapError classifies an SDK error. The SDK turns every transport failure
// into ClientError.NetworkError with the cause flattened into the message,
// so a timeout is recognised from the context.
func mapError(ctx context.Context, err error) *cloud.Error {
	e := &cloud.Error{Provider: Name, Kind: cloud.ErrUnavailable, Err: err, Message: err.Error()}
	se, ok := err.(*tcerr.TencentCloudSDKError)
	if !ok {
		if ctx.Err() != nil {
			e.Kind = cloud.ErrTimeout
		}
		return e
	}
	e.Code, e.Message, e.RequestID = se.Code, se.Message, se.RequestId
	c := se.Code
	switch {
	case c == "InvalidInstanceId.NotFound" || c == "InvalidInstanceId.Malformed":
		e.Kind = cloud.ErrNotFound
	case c == "OperationDenied.InstanceOperationInProgress" || c == "MutexOperation.TaskRunning" ||
		strings.HasPrefix(c, "UnsupportedOperation.InstanceState"):
		e.Kind = cloud.ErrInvalidState
	case strings.HasPrefix(c, "RequestLimitExceeded"):
		e.Kind = cloud.ErrThrottled
		e.RetryAfter = throttleRetryAfter
	case strings.HasPrefix(c, "AuthFailure") || strings.HasPrefix(c, "UnauthorizedOperation") ||
		c == "ClientError.CredentialError":
		e.Kind = cloud.ErrUnauthorized
	case strings.HasPrefix(c, "ClientError.") && ctx.Err() != nil,
		c == "ClientError.NetworkError" &&
			(strings.Contains(se.Message, "Client.Timeout exceeded") || strings.Contains(se.Message, "i/o timeout")):
		// The caller's deadline passed with no answer the SDK could read
		// (a lost connection, or a body cut off by the cancellation).
		e.Kind = cloud.ErrTimeout
		e.Message = "no answer from CVM in time; the action may or may not have been accepted: " + se.Message
	}
	return e
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// camel turns STOPPED into Stopped and LAUNCH_FAILED into LaunchFailed,
// the way CVM spells states inside error codes.
func camel(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.ToLower(s), "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}
