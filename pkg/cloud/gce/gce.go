// Package gce drives Google Compute Engine instances (GKE nodes) through
// the Compute API's REST clients, cloud.google.com/go/compute/apiv1.
//
// Credentials come from Application Default Credentials only:
// GOOGLE_APPLICATION_CREDENTIALS (a service-account key or a workload
// identity federation file), gcloud's well-known file, or the metadata
// server (GKE Workload Identity). The cloud config never holds them.
package gce

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/httptransport"
	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// computeScope is the narrowest OAuth2 scope that can reset, stop and
// start instances; what the token can do is then the IAM role's.
const computeScope = "https://www.googleapis.com/auth/compute"

// The IAM permission each action needs on the instance. A dry run asks
// TestIamPermissions for it; waiting for the operation needs
// compute.zoneOperations.get too (docs/install-gke.md lists the role).
const (
	permReset = "compute.instances.reset"
	permStop  = "compute.instances.stop"
	permStart = "compute.instances.start"
)

// Driver drives GCE instances. The Compute API is global (the zone is in
// each call's path), so one pair of clients serves every zone.
type Driver struct {
	endpoint string
	// base carries the caFile's trust to both the token endpoint and the
	// compute endpoint.
	base *http.Transport

	mu        sync.Mutex
	instances *compute.InstancesClient
	ops       *compute.ZoneOperationsClient
}

var (
	_ cloud.Driver  = (*Driver)(nil)
	_ cloud.Moder   = (*Driver)(nil)
	_ cloud.Stopper = (*Driver)(nil)
	_ cloud.Starter = (*Driver)(nil)
)

// New builds the driver. It reads the CA file now, so a bad file stops
// the server at start; credentials and clients wait for the first call,
// so a server on a cluster without GCE nodes never looks for them.
func New(_ context.Context, cfg cloud.ProviderConfig) (*Driver, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pool, err := cloud.CAPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", Name, err)
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Driver{endpoint: cfg.Endpoint, base: base}, nil
}

// Name implements cloud.Driver.
func (d *Driver) Name() string { return Name }

// Modes implements cloud.Moder. GCE's only generally available restart is
// a reset (a hard power cycle), so "soft" is refused rather than silently
// made harder; a stop is graceful by default, hard with
// NoGracefulShutdown.
func (d *Driver) Modes(action string) []cloud.Mode {
	switch action {
	case cloud.ActionRestart:
		return []cloud.Mode{cloud.ModeHard}
	case cloud.ActionStop:
		return []cloud.Mode{cloud.ModeSoft, cloud.ModeHard}
	}
	return nil
}

// clients returns the compute clients, building them on first use. Only
// ADC is asked for credentials: credentials.DetectDefault is its one
// implementation, and its token fetches go through the same trust as the
// API calls.
func (d *Driver) clients() (*compute.InstancesClient, *compute.ZoneOperationsClient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.instances != nil {
		return d.instances, d.ops, nil
	}
	creds, err := credentials.DetectDefault(&credentials.DetectOptions{
		Scopes: []string{computeScope},
		Client: &http.Client{Transport: d.base},
	})
	if err != nil {
		return nil, nil, &credentialsError{err}
	}
	creds.TokenProvider = taggedTokens{creds.TokenProvider}
	hc, err := httptransport.NewClient(&httptransport.Options{
		Credentials:      creds,
		BaseRoundTripper: d.base,
		DisableTelemetry: true,
	})
	if err != nil {
		return nil, nil, &credentialsError{err}
	}
	opts := []option.ClientOption{option.WithHTTPClient(hc)}
	if d.endpoint != "" {
		opts = append(opts, option.WithEndpoint(d.endpoint))
	}
	// Contexts for the constructors only: the REST clients do no I/O here.
	ic, err := compute.NewInstancesRESTClient(context.Background(), opts...)
	if err != nil {
		return nil, nil, err
	}
	oc, err := compute.NewZoneOperationsRESTClient(context.Background(), opts...)
	if err != nil {
		_ = ic.Close()
		return nil, nil, err
	}
	d.instances, d.ops = ic, oc
	return ic, oc, nil
}

// noRetry is passed to every call: the SDK never retries on its own. A
// retried reset without its idempotency key would be a second reset; the
// one retry there is (a lost answer) is act's, with the same key.
var noRetry = gax.WithRetry(func() gax.Retryer { return nil })

// Reboot implements cloud.Driver with Instances.Reset. A dry run asks
// TestIamPermissions whether this server may reset the instance.
func (d *Driver) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionRestart, d.Modes(cloud.ActionRestart), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	return d.act(ctx, inst, action{
		name: cloud.ActionRestart, perm: permReset, mode: mode, dryRun: opts.DryRun,
		call: func(ctx context.Context, c *compute.InstancesClient, reqID string) (*compute.Operation, error) {
			return c.Reset(ctx, &computepb.ResetInstanceRequest{
				Project: inst.Project, Zone: inst.Zone, Instance: inst.ID, RequestId: &reqID,
			}, noRetry)
		},
	})
}

// Stop implements cloud.Stopper with Instances.Stop: soft lets the guest
// shut down, hard is NoGracefulShutdown.
func (d *Driver) Stop(ctx context.Context, inst cloud.Instance, opts cloud.StopOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionStop, d.Modes(cloud.ActionStop), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	return d.act(ctx, inst, action{
		name: cloud.ActionStop, perm: permStop, mode: mode, dryRun: opts.DryRun,
		call: func(ctx context.Context, c *compute.InstancesClient, reqID string) (*compute.Operation, error) {
			req := &computepb.StopInstanceRequest{Project: inst.Project, Zone: inst.Zone, Instance: inst.ID, RequestId: &reqID}
			if mode == cloud.ModeHard {
				hard := true
				req.NoGracefulShutdown = &hard
			}
			return c.Stop(ctx, req, noRetry)
		},
	})
}

// Start implements cloud.Starter with Instances.Start.
func (d *Driver) Start(ctx context.Context, inst cloud.Instance, opts cloud.StartOptions) (cloud.Result, error) {
	return d.act(ctx, inst, action{
		name: cloud.ActionStart, perm: permStart, dryRun: opts.DryRun,
		call: func(ctx context.Context, c *compute.InstancesClient, reqID string) (*compute.Operation, error) {
			return c.Start(ctx, &computepb.StartInstanceRequest{
				Project: inst.Project, Zone: inst.Zone, Instance: inst.ID, RequestId: &reqID,
			}, noRetry)
		},
	})
}

// action is one mutating call and what is needed to run and check it.
type action struct {
	name   string
	perm   string
	mode   cloud.Mode
	dryRun bool
	call   func(ctx context.Context, c *compute.InstancesClient, requestID string) (*compute.Operation, error)
}

func (d *Driver) act(ctx context.Context, inst cloud.Instance, a action) (cloud.Result, error) {
	if err := inst.CheckFor(Name); err != nil {
		return cloud.Result{}, err
	}
	if inst.Project == "" || inst.Zone == "" {
		return cloud.Result{}, fmt.Errorf("%s: instance %s has no project or zone", Name, inst.ID)
	}
	ic, oc, err := d.clients()
	if err != nil {
		return cloud.Result{}, mapError(ctx, a.perm, err)
	}
	if a.dryRun {
		if err := d.testPermission(ctx, ic, inst, a.perm); err != nil {
			return cloud.Result{}, err
		}
		return cloud.Result{Mode: a.mode}, nil
	}
	// One idempotency key per accepted action, made here because the
	// contract hands the driver no identity of the action: every try of
	// this action carries it, so GCE does the action at most once.
	reqID, err := newRequestID()
	if err != nil {
		return cloud.Result{}, err
	}
	op, err := a.call(ctx, ic, reqID)
	if err != nil && lostAnswer(ctx, err) {
		// The call may have reached GCE and the answer been lost. The
		// same key again is safe: GCE answers the first call's
		// operation and does nothing twice. This is the only retry.
		op, err = a.call(ctx, ic, reqID)
	}
	if err != nil {
		return cloud.Result{}, mapError(ctx, a.perm, err)
	}
	if op.Name() == "" {
		return cloud.Result{}, cloud.BadAnswer(Name, "the answer to "+a.name+" carries no operation name", nil)
	}
	if err := d.wait(ctx, oc, inst, op.Proto()); err != nil {
		return cloud.Result{}, err
	}
	return cloud.Result{RequestID: op.Name(), Mode: a.mode}, nil
}

// testPermission is the dry run: GCE has no DryRun flag, but
// TestIamPermissions on the instance says whether the call would be
// allowed (and a missing instance answers 404).
func (d *Driver) testPermission(ctx context.Context, ic *compute.InstancesClient, inst cloud.Instance, perm string) error {
	resp, err := ic.TestIamPermissions(ctx, &computepb.TestIamPermissionsInstanceRequest{
		Project: inst.Project, Zone: inst.Zone, Resource: inst.ID,
		TestPermissionsRequestResource: &computepb.TestPermissionsRequest{Permissions: []string{perm}},
	}, noRetry)
	if err != nil {
		return mapError(ctx, perm, err)
	}
	for _, p := range resp.GetPermissions() {
		if p == perm {
			return nil
		}
	}
	return &cloud.Error{
		Kind: cloud.ErrUnauthorized, Provider: Name, Code: "PermissionDenied",
		Message: fmt.Sprintf("this server's service account lacks the permission %s on projects/%s/zones/%s/instances/%s", perm, inst.Project, inst.Zone, inst.ID),
	}
}

// newRequestID makes the idempotency key GCE takes on each mutating call:
// a random UUID (GCE refuses anything else, and the zero UUID).
func newRequestID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("%s: no randomness for a requestId: %w", Name, err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32], nil
}

// wait follows the operation to its end within ctx: the call was accepted
// when it returned, but a reset or stop that then fails must not be
// reported as done. ZoneOperations.Wait blocks at GCE for up to two
// minutes per call, so this is one call in the usual case.
func (d *Driver) wait(ctx context.Context, oc *compute.ZoneOperationsClient, inst cloud.Instance, op *computepb.Operation) error {
	name := op.GetName()
	for op.GetStatus() != computepb.Operation_DONE {
		next, err := oc.Wait(ctx, &computepb.WaitZoneOperationRequest{Project: inst.Project, Zone: inst.Zone, Operation: name}, noRetry)
		switch {
		case err == nil:
			op = next
		case ctx.Err() != nil || timedOut(ctx, err):
			return &cloud.Error{
				Kind: cloud.ErrTimeout, Provider: Name, RequestID: name, Err: err,
				Message: "GCE accepted the call, but its operation did not finish in time; the outcome is unknown",
			}
		case retryableWait(err):
			// Waiting is only reading: try again after a pause (a
			// context that ends meanwhile is the timeout above).
			_ = gax.Sleep(ctx, time.Second)
		default:
			// The call was accepted; whatever this error says about the
			// wait, it does not say the cloud did nothing.
			e := mapError(ctx, "compute.zoneOperations.get", err)
			e.Kind, e.RequestID = cloud.ErrUnavailable, name
			e.Message = "GCE accepted the call, but its operation cannot be followed: " + e.Message
			return e
		}
	}
	if oe := op.GetError(); oe != nil && len(oe.GetErrors()) > 0 {
		first := oe.GetErrors()[0]
		return &cloud.Error{
			Kind: cloud.ErrUnavailable, Provider: Name, RequestID: name, Code: first.GetCode(),
			Message: fmt.Sprintf("the operation ended in an error: %s", first.GetMessage()),
		}
	}
	if c := op.GetHttpErrorStatusCode(); c != 0 && (c < 200 || c > 299) {
		return &cloud.Error{
			Kind: cloud.ErrUnavailable, Provider: Name, RequestID: name, Code: fmt.Sprint(c),
			Message: "the operation ended in an error: " + op.GetHttpErrorMessage(),
		}
	}
	return nil
}

// taggedTokens marks the failures of the token source, so they are told
// from the compute API's own answers: no request reached compute.
type taggedTokens struct{ p auth.TokenProvider }

func (t taggedTokens) Token(ctx context.Context) (*auth.Token, error) {
	tok, err := t.p.Token(ctx)
	if err != nil {
		return nil, &credentialsError{err}
	}
	return tok, nil
}

// credentialsError is a failure to find or use ADC.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }
