// Package aws drives EC2 instances through aws-sdk-go-v2.
//
// Credentials come from the SDK's default chain (environment, IRSA web
// identity, EKS Pod Identity, shared config, IMDS); the cloud config never
// holds them. AWS_ENDPOINT_URL_EC2 is honoured when the config sets no
// endpoint.
package aws

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// throttleRetryAfter is the hint given with ErrThrottled when EC2 sends no
// Retry-After: EC2 refills its per-action request tokens every second.
const throttleRetryAfter = 2 * time.Second

// Driver reboots EC2 instances. It keeps one EC2 client per region.
type Driver struct {
	cfg cloud.ProviderConfig
	// httpClient is set when the config names a CA file.
	httpClient *awshttp.BuildableClient

	mu      sync.Mutex
	clients map[string]*ec2.Client
}

var (
	_ cloud.Driver  = (*Driver)(nil)
	_ cloud.Moder   = (*Driver)(nil)
	_ cloud.Stopper = (*Driver)(nil)
	_ cloud.Starter = (*Driver)(nil)
)

// New builds the EC2 driver. It reads the CA file now, so a bad file
// stops the server at start rather than at the first reboot; clients and
// credentials are resolved lazily, per region.
func New(_ context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error) {
	d := &Driver{cfg: cfg, clients: map[string]*ec2.Client{}}
	if cfg.CAFile != "" {
		// Not config.WithCustomCABundle: it replaces the system roots.
		pool, err := cloud.CAPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("aws: %w", err)
		}
		d.httpClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		})
	}
	return d, nil
}

// Name implements cloud.Driver.
func (d *Driver) Name() string { return Name }

// Modes implements cloud.Moder. EC2 has one kind of reboot: it asks the
// OS to reboot, and forces a hard reboot itself only if the OS has not
// gone down after about four minutes. That is a soft reboot with a
// fallback, so it is named soft, and hard is refused rather than
// answered with something softer than asked.
func (d *Driver) Modes(action string) []cloud.Mode {
	switch action {
	case cloud.ActionRestart:
		return []cloud.Mode{cloud.ModeSoft}
	case cloud.ActionStop:
		// StopInstances without and with Force.
		return []cloud.Mode{cloud.ModeSoft, cloud.ModeHard}
	}
	return nil
}

// client returns the region's EC2 client, building it on first use.
// LoadDefaultConfig runs per region so that the web-identity and SSO
// providers of the chain call STS in that same region.
func (d *Driver) client(ctx context.Context, region string) (*ec2.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clients[region]; ok {
		return c, nil
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if d.httpClient != nil {
		opts = append(opts, config.WithHTTPClient(d.httpClient))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = taggedCredentials{awsCfg.Credentials}
	}
	c := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if d.cfg.Endpoint != "" {
			o.BaseEndpoint = awssdk.String(d.cfg.Endpoint)
		}
	})
	d.clients[region] = c
	return c, nil
}

// Reboot implements cloud.Driver with RebootInstances (see Modes). The
// call is bounded by ctx alone: the per-call timeout is the wrapper's in
// pkg/cloud/providers.
func (d *Driver) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionRestart, d.Modes(cloud.ActionRestart), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	return d.call(ctx, inst, mode, opts.DryRun, func(c *ec2.Client, dryRun *bool, one func(*ec2.Options)) (middleware.Metadata, error) {
		out, err := c.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: []string{inst.ID}, DryRun: dryRun}, one)
		if err != nil {
			return middleware.Metadata{}, err
		}
		return out.ResultMetadata, nil
	})
}

// Stop implements cloud.Stopper with StopInstances: soft lets the OS shut
// down (EC2 forces the stop itself if it does not), hard sets Force, which
// skips the OS shutdown and the flushing of file system caches. A stopped
// instance keeps its EBS volumes, private IP and instance ID; its instance
// store is lost. EC2 answers the stop of an instance already stopped (or
// stopping) with success and no change; that is a 409 here, with EC2's
// state code, since nothing was done.
func (d *Driver) Stop(ctx context.Context, inst cloud.Instance, opts cloud.StopOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(Name, cloud.ActionStop, d.Modes(cloud.ActionStop), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	return d.call(ctx, inst, mode, opts.DryRun, func(c *ec2.Client, dryRun *bool, one func(*ec2.Options)) (middleware.Metadata, error) {
		in := &ec2.StopInstancesInput{InstanceIds: []string{inst.ID}, DryRun: dryRun}
		if mode == cloud.ModeHard {
			in.Force = awssdk.Bool(true)
		}
		out, err := c.StopInstances(ctx, in, one)
		if err != nil {
			return middleware.Metadata{}, err
		}
		return out.ResultMetadata, unchanged(out.ResultMetadata, inst.ID, out.StoppingInstances, "stopped", "stopping", "stopped")
	})
}

// Start implements cloud.Starter with StartInstances. As for Stop, an
// instance EC2 reports already running (or pending) is a 409.
func (d *Driver) Start(ctx context.Context, inst cloud.Instance, opts cloud.StartOptions) (cloud.Result, error) {
	return d.call(ctx, inst, "", opts.DryRun, func(c *ec2.Client, dryRun *bool, one func(*ec2.Options)) (middleware.Metadata, error) {
		out, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{inst.ID}, DryRun: dryRun}, one)
		if err != nil {
			return middleware.Metadata{}, err
		}
		return out.ResultMetadata, unchanged(out.ResultMetadata, inst.ID, out.StartingInstances, "started", "pending", "running")
	})
}

// unchanged is the error of a stop or start EC2 accepted for an instance
// that was already in the target state (its previousState says so).
func unchanged(md middleware.Metadata, id string, changes []types.InstanceStateChange, verb string, already ...types.InstanceStateName) error {
	for _, ch := range changes {
		if awssdk.ToString(ch.InstanceId) != id || ch.PreviousState == nil || !slices.Contains(already, ch.PreviousState.Name) {
			continue
		}
		rid, _ := awsmiddleware.GetRequestIDMetadata(md)
		return &cloud.Error{
			Kind: cloud.ErrInvalidState, Provider: Name, Code: "IncorrectInstanceState", RequestID: rid,
			Message: fmt.Sprintf("instance %s is already %s: nothing was %s", id, ch.PreviousState.Name, verb),
		}
	}
	return nil
}

// call is one EC2 call of any action: the client, DryRun, one attempt, the
// request ID and the error mapping, shared so that every action keeps the
// same rules.
func (d *Driver) call(ctx context.Context, inst cloud.Instance, mode cloud.Mode, dryRun bool,
	send func(c *ec2.Client, dryRun *bool, one func(*ec2.Options)) (middleware.Metadata, error)) (cloud.Result, error) {
	if err := inst.CheckFor(Name); err != nil {
		return cloud.Result{}, err
	}
	c, err := d.client(ctx, inst.Region)
	if err != nil {
		return cloud.Result{}, &cloud.Error{
			Kind: cloud.ErrUnauthorized, Provider: Name, Code: "ConfigError", NotSent: true,
			Message: "cannot load the AWS configuration: " + err.Error(), Err: err,
		}
	}
	// One attempt only: a retried action is a second action, and a
	// throttled call is better handed back to our caller, who can wait.
	one := func(o *ec2.Options) { o.RetryMaxAttempts = 1 }
	if cluster := d.cfg.Ownership.ClusterName; cluster != "" {
		if err := checkOwned(ctx, c, inst.ID, cluster, one); err != nil {
			return cloud.Result{}, err
		}
	}
	var dry *bool
	if dryRun {
		dry = awssdk.Bool(true)
	}
	md, err := send(c, dry, one)
	if err != nil {
		var ce *cloud.Error
		if errors.As(err, &ce) {
			return cloud.Result{}, ce
		}
		var api smithy.APIError
		if dryRun && errors.As(err, &api) && api.ErrorCode() == "DryRunOperation" {
			if id := requestID(err); id != "" {
				return cloud.Result{RequestID: id, Mode: mode}, nil
			}
			return cloud.Result{}, cloud.BadAnswer(Name, "a DryRunOperation answer without a request ID", err)
		}
		return cloud.Result{}, mapError(ctx, err)
	}
	// EC2 answers every call with a request ID (header and body). A 200
	// without one came from something else in front of it (a proxy, a
	// captive portal, a misrouted VPC endpoint), which the SDK decodes as
	// an empty success: whether EC2 ever saw the call is unknown.
	id, _ := awsmiddleware.GetRequestIDMetadata(md)
	if id == "" {
		return cloud.Result{}, cloud.BadAnswer(Name, "a 200 answer without an EC2 request ID", nil)
	}
	return cloud.Result{RequestID: id, Mode: mode}, nil
}

// checkOwned is the ownership check (cloud config ownership.clusterName):
// one DescribeInstances, before the action and for dry runs too, that the
// instance carries the cluster's tag. Its failures all say the action was
// not sent: the lock is released and a retry is safe.
func checkOwned(ctx context.Context, c *ec2.Client, id, cluster string, one func(*ec2.Options)) error {
	notSent := func(e *cloud.Error) *cloud.Error { e.NotSent = true; return e }
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, one)
	if err != nil {
		e := mapError(ctx, err)
		if e.Kind == cloud.ErrTimeout {
			// Only the check timed out: the action itself was never sent.
			e.Kind, e.Message = cloud.ErrUnavailable, "no answer from EC2 DescribeInstances (the ownership check) in time; the action was not sent"
		}
		return notSent(e)
	}
	rid, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	if rid == "" {
		return notSent(&cloud.Error{
			Kind: cloud.ErrUnavailable, Provider: Name, Code: "MalformedAnswer",
			Message: "a DescribeInstances answer (the ownership check) without an EC2 request ID, so not EC2's own (a proxy or a misrouted endpoint?); the action was not sent",
		})
	}
	tag := ClusterTagPrefix + cluster
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if awssdk.ToString(in.InstanceId) != id {
				continue
			}
			for _, t := range in.Tags {
				if awssdk.ToString(t.Key) == tag {
					return nil
				}
			}
			return notSent(&cloud.Error{
				Kind: cloud.ErrNotOwned, Provider: Name, Code: "ClusterTagMissing", RequestID: rid,
				Message: fmt.Sprintf("instance %s does not carry the tag %s, so it is not this cluster's machine (cloud config ownership.clusterName %q)", id, tag, cluster),
			})
		}
	}
	return notSent(&cloud.Error{
		Kind: cloud.ErrNotFound, Provider: Name, Code: "InvalidInstanceID.NotFound", RequestID: rid,
		Message: fmt.Sprintf("DescribeInstances does not list instance %s", id),
	})
}

func requestID(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.ServiceRequestID()
	}
	return ""
}

// mapError classifies an SDK error. An answer from EC2 is trusted before
// the state of ctx: a code that came back is what happened.
func mapError(ctx context.Context, err error) *cloud.Error {
	e := &cloud.Error{Provider: Name, RequestID: requestID(err), Err: err}
	var api smithy.APIError
	if errors.As(err, &api) {
		e.Code, e.Message = api.ErrorCode(), api.ErrorMessage()
		switch e.Code {
		case "RequestLimitExceeded", "Throttling", "ThrottlingException":
			e.Kind = cloud.ErrThrottled
			e.RetryAfter = retryAfter(err)
		case "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed":
			e.Kind = cloud.ErrNotFound
		case "IncorrectInstanceState", "IncorrectState":
			e.Kind = cloud.ErrInvalidState
		case "UnauthorizedOperation", "AuthFailure", "Blocked", "OptInRequired",
			"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "RequestExpired":
			e.Kind = cloud.ErrUnauthorized
		default:
			e.Kind = cloud.ErrUnavailable
		}
		return e
	}
	var ce *credentialsError
	var se *v4.SigningError
	if errors.As(err, &ce) || errors.As(err, &se) {
		e.Kind, e.Code, e.NotSent = cloud.ErrUnauthorized, "CredentialsError", true
		e.Message = "no usable AWS credentials: " + err.Error()
		if ctx.Err() != nil {
			// Nothing was sent; the credential source was slow, which is
			// worth a retry rather than a permission error.
			e.Kind = cloud.ErrUnavailable
			e.Message = "AWS credentials not resolved in time: " + err.Error()
		}
		return e
	}
	if timedOut(ctx, err) {
		e.Kind = cloud.ErrTimeout
		e.Message = "no answer from EC2 in time; the action may or may not have been queued"
		return e
	}
	e.Kind = cloud.ErrUnavailable
	e.Message = err.Error()
	return e
}

// credentialsError marks a failure of the credential chain, which the SDK
// reports only as text ("get identity: get credentials: …").
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

type taggedCredentials struct{ p awssdk.CredentialsProvider }

func (t taggedCredentials) Retrieve(ctx context.Context) (awssdk.Credentials, error) {
	c, err := t.p.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	return c, nil
}

func timedOut(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryAfter honours a Retry-After header in seconds if EC2 ever sends
// one, else gives the default hint.
func retryAfter(err error) time.Duration {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if s, perr := strconv.Atoi(re.Response.Header.Get("Retry-After")); perr == nil && s > 0 && s < 3600 {
			return time.Duration(s) * time.Second
		}
	}
	return throttleRetryAfter
}
