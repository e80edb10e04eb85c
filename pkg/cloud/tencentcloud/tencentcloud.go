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
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
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

	mu           sync.Mutex
	cred         common.CredentialIface
	credInFlight *credAttempt
	clients      map[string]*cvm.Client
}

var _ cloud.Driver = (*Driver)(nil)

// New builds the CVM driver. The CA file is read now; credentials are
// resolved at the first call, since the CVM role and TKE OIDC providers
// need the network.
func New(_ context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	d := &Driver{cfg: cfg, scheme: "HTTPS", clients: map[string]*cvm.Client{}}
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
func (d *Driver) Name() string { return cloud.ProviderTencentCloud }

func credentialProvider() (common.Provider, error) {
	if os.Getenv("TKE_ROLE_ARN") != "" {
		p, err := common.DefaultTkeOIDCRoleArnProvider()
		if err != nil {
			return nil, fmt.Errorf("TKE_ROLE_ARN is set but TKE OIDC is not usable: %w", err)
		}
		return p, nil
	}
	return common.DefaultProviderChain(), nil
}

// credAttempt is one resolution of the credential chain, shared by the
// calls that wait for it.
type credAttempt struct {
	done chan struct{}
	cred common.CredentialIface
	err  error
}

// credential resolves the chain once and keeps the result; the returned
// credential refreshes itself when it is a role credential, so one serves
// every region. The CVM role provider calls the metadata server with no
// timeout of its own, so the resolution runs aside and ctx bounds the
// wait, and d.mu is never held across it.
func (d *Driver) credential(ctx context.Context) (common.CredentialIface, error) {
	d.mu.Lock()
	if d.cred != nil {
		c := d.cred
		d.mu.Unlock()
		return c, nil
	}
	a := d.credInFlight
	if a == nil {
		a = &credAttempt{done: make(chan struct{})}
		d.credInFlight = a
		go func() {
			p, err := credentialProvider()
			if err == nil {
				a.cred, err = p.GetCredential()
			}
			a.err = err
			d.mu.Lock()
			if err == nil {
				d.cred = a.cred
			}
			d.credInFlight = nil
			d.mu.Unlock()
			close(a.done)
		}()
	}
	d.mu.Unlock()
	select {
	case <-a.done:
		return a.cred, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *Driver) client(ctx context.Context, region string) (*cvm.Client, error) {
	cred, err := d.credential(ctx)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clients[region]; ok {
		return c, nil
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
	if d.cfg.Timeout > 0 {
		// ReqTimeout is whole seconds; the context deadline is the exact one.
		cpf.HttpProfile.ReqTimeout = int(math.Ceil(d.cfg.Timeout.Seconds()))
	}
	c, err := cvm.NewClient(cred, region, cpf)
	if err != nil {
		return nil, err
	}
	if d.transport != nil {
		c.WithHttpTransport(d.transport)
	}
	d.clients[region] = c
	return c, nil
}

// Reboot implements cloud.Driver: StopType SOFT or HARD (never the
// deprecated ForceReboot). The API has no dry-run; a dry run checks with
// DescribeInstances that the instance exists and is RUNNING, the state
// RebootInstances requires, and reboots nothing.
func (d *Driver) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	if err := inst.CheckFor(cloud.ProviderTencentCloud); err != nil {
		return cloud.Result{}, err
	}
	var stopType string
	switch opts.Mode {
	case "", cloud.RebootSoft:
		stopType = "SOFT"
	case cloud.RebootHard:
		stopType = "HARD"
	default:
		return cloud.Result{}, fmt.Errorf("tencentcloud: unknown reboot mode %q", opts.Mode)
	}
	if d.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.cfg.Timeout)
		defer cancel()
	}
	c, err := d.client(ctx, inst.Region)
	if err != nil {
		e := &cloud.Error{
			Kind: cloud.ErrUnauthorized, Provider: cloud.ProviderTencentCloud, Code: "CredentialError",
			Message: "cannot get Tencent Cloud credentials: " + err.Error(), Err: err,
		}
		if ctx.Err() != nil {
			// Nothing was sent; the credential source was slow, which is
			// worth a retry rather than a permission error.
			e.Kind, e.Message = cloud.ErrUnavailable, "credentials not resolved in time: "+err.Error()
		}
		return cloud.Result{}, e
	}

	if opts.DryRun {
		return d.check(ctx, c, inst.ID)
	}
	req := cvm.NewRebootInstancesRequest()
	req.InstanceIds = []*string{&inst.ID}
	req.StopType = &stopType
	resp, err := c.RebootInstancesWithContext(ctx, req)
	if err != nil {
		return cloud.Result{}, mapError(ctx, err)
	}
	return cloud.Result{RequestID: deref(resp.Response.RequestId)}, nil
}

func (d *Driver) check(ctx context.Context, c *cvm.Client, id string) (cloud.Result, error) {
	req := cvm.NewDescribeInstancesRequest()
	req.InstanceIds = []*string{&id}
	resp, err := c.DescribeInstancesWithContext(ctx, req)
	if err != nil {
		return cloud.Result{}, mapError(ctx, err)
	}
	rid := deref(resp.Response.RequestId)
	for _, in := range resp.Response.InstanceSet {
		if in == nil || deref(in.InstanceId) != id {
			continue
		}
		state := deref(in.InstanceState)
		switch {
		case state != "RUNNING":
			return cloud.Result{}, &cloud.Error{
				Kind: cloud.ErrInvalidState, Provider: cloud.ProviderTencentCloud,
				Code:      "UnsupportedOperation.InstanceState" + camel(state),
				Message:   fmt.Sprintf("instance %s is %s; only a RUNNING instance can be rebooted", id, state),
				RequestID: rid,
			}
		case deref(in.LatestOperationState) == "OPERATING":
			return cloud.Result{}, &cloud.Error{
				Kind: cloud.ErrInvalidState, Provider: cloud.ProviderTencentCloud,
				Code:      "OperationDenied.InstanceOperationInProgress",
				Message:   fmt.Sprintf("instance %s is busy with %s", id, deref(in.LatestOperation)),
				RequestID: rid,
			}
		}
		return cloud.Result{RequestID: rid}, nil
	}
	return cloud.Result{}, &cloud.Error{
		Kind: cloud.ErrNotFound, Provider: cloud.ProviderTencentCloud, Code: "InvalidInstanceId.NotFound",
		Message: fmt.Sprintf("instance %s does not exist in this region", id), RequestID: rid,
	}
}

// mapError classifies an SDK error. The SDK turns every transport failure
// into ClientError.NetworkError with the cause flattened into the message,
// so a timeout is recognised from the context.
func mapError(ctx context.Context, err error) *cloud.Error {
	e := &cloud.Error{Provider: cloud.ProviderTencentCloud, Kind: cloud.ErrUnavailable, Err: err, Message: err.Error()}
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
	case c == "ClientError.NetworkError" &&
		(ctx.Err() != nil || strings.Contains(se.Message, "Client.Timeout exceeded") || strings.Contains(se.Message, "i/o timeout")):
		e.Kind = cloud.ErrTimeout
		e.Message = "no answer from CVM in time; the reboot may or may not have been accepted: " + se.Message
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
