package alibabacloud

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

const (
	testKeyID   = "LTAI5tFakeFakeFakeFake00"
	testSecret  = "fakeAccessKeySecret"
	runningID   = "i-bp1runningrunning0001"
	stoppedID   = "i-bp1stoppedstopped0001"
	testRegion  = "cn-hangzhou"
	otherRegion = "cn-beijing"
)

// isolate keeps the host's Alibaba Cloud configuration out of a test: the
// credentials come only from the environment variables set here, through
// credentials-go's default chain, as in production.
func isolate(t *testing.T, id, secret string) {
	t.Helper()
	dir := t.TempDir()
	empty := filepath.Join(dir, "credentials")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", dir)
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", empty)
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	for _, v := range []string{"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
		"ALIBABA_CLOUD_SECURITY_TOKEN", "ALIBABA_CLOUD_CREDENTIALS_URI", "ALIBABA_CLOUD_ECS_METADATA", "ALIBABA_CLOUD_PROFILE"} {
		t.Setenv(v, "")
	}
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", id)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
}

type env struct {
	fake *fakecloud.ECS
	cfg  cloud.ProviderConfig
}

// setup starts a TLS fake ECS that knows testKeyID's secret, so every
// call of these tests has its full ACS3 signature checked. wrap, if set,
// stands in front of the fake.
func setup(t *testing.T, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	isolate(t, testKeyID, testSecret)
	fake := fakecloud.NewECS(fakecloud.Options{
		Instances: []fakecloud.Instance{
			{ID: runningID, Region: testRegion},
			{ID: stoppedID, Region: testRegion, State: "stopped"},
		},
		Secrets: map[string]string{testKeyID: testSecret},
	})
	var h http.Handler = fake
	if wrap != nil {
		h = wrap(fake)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca, err := fakecloud.WriteCAFile(srv, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, cfg: cloud.ProviderConfig{Enabled: true, Endpoint: srv.URL, CAFile: ca, Timeout: 10 * time.Second}}
}

func (e *env) driver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d.(*Driver)
}

func inst(id string) cloud.Instance {
	return cloud.Instance{Provider: Name, ID: id, Region: testRegion}
}

func TestRebootModes(t *testing.T) {
	for mode, force := range map[cloud.Mode]bool{cloud.ModeSoft: false, cloud.ModeHard: true, "": false} {
		t.Run(string(mode), func(t *testing.T) {
			e := setup(t, nil)
			res, err := e.driver(t).Reboot(context.Background(), inst(runningID), cloud.RebootOptions{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			c := fakecloud.OneCall(t, e.fake)
			if c.Action != "RebootInstance" || len(c.InstanceIDs) != 1 || c.InstanceIDs[0] != runningID ||
				c.ForceStop != force || c.DryRun || c.AccessKeyID != testKeyID || c.Error != "" {
				t.Fatalf("recorded call %+v", c)
			}
			if res.RequestID == "" || res.RequestID != c.RequestID {
				t.Fatalf("request ID %q, the fake answered %q", res.RequestID, c.RequestID)
			}
			if want := map[bool]cloud.Mode{false: cloud.ModeSoft, true: cloud.ModeHard}[force]; res.Mode != want {
				t.Fatalf("mode used %q, want %q", res.Mode, want)
			}
			if in, _ := e.fake.Instance(runningID); in.Reboots != 1 {
				t.Fatalf("instance rebooted %d times, want 1", in.Reboots)
			}
		})
	}
}

func TestModeRefused(t *testing.T) {
	e := setup(t, nil)
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID), cloud.RebootOptions{Mode: "gentle"})
	var ue *cloud.UnsupportedError
	if !errors.As(err, &ue) || len(e.fake.Calls()) != 0 {
		t.Fatalf("got %v after %d calls, want an UnsupportedError and no call", err, len(e.fake.Calls()))
	}
}

// A dry run is ECS's own: one RebootInstance with DryRun, answered 400
// DryRunOperation, which is the success; nothing reboots.
func TestDryRun(t *testing.T) {
	e := setup(t, nil)
	d := e.driver(t)
	res, err := d.Reboot(context.Background(), inst(runningID), cloud.RebootOptions{Mode: cloud.ModeHard, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	c := fakecloud.OneCall(t, e.fake)
	if c.Action != "RebootInstance" || !c.DryRun || !c.ForceStop || c.Error != "DryRunOperation" || res.RequestID != c.RequestID || res.Mode != cloud.ModeHard {
		t.Fatalf("call %+v, result %+v", c, res)
	}
	if in, _ := e.fake.Instance(runningID); in.Reboots != 0 {
		t.Fatalf("a dry run rebooted the instance %d times", in.Reboots)
	}
	// A dry run that ECS refuses is the refusal.
	_, err = d.Reboot(context.Background(), inst(stoppedID), cloud.RebootOptions{DryRun: true})
	fakecloud.WantCloudError(t, Name, err, cloud.ErrInvalidState, "IncorrectInstanceStatus")
}

func TestStopStart(t *testing.T) {
	e := setup(t, nil)
	d := e.driver(t)
	ctx := context.Background()

	if _, err := d.Stop(ctx, inst(runningID), cloud.StopOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if in, _ := e.fake.Instance(runningID); in.State != "Running" {
		t.Fatalf("a dry-run stop left the instance %s", in.State)
	}
	e.fake.ClearCalls()
	res, err := d.Stop(ctx, inst(runningID), cloud.StopOptions{Mode: cloud.ModeHard})
	if err != nil {
		t.Fatal(err)
	}
	c := fakecloud.OneCall(t, e.fake)
	if c.Action != "StopInstance" || !c.ForceStop || c.StoppedMode != StoppedModeKeepCharging || res.RequestID != c.RequestID || res.Mode != cloud.ModeHard {
		t.Fatalf("call %+v, result %+v", c, res)
	}
	if in, _ := e.fake.Instance(runningID); in.State != "Stopped" {
		t.Fatalf("instance is %s after a stop", in.State)
	}

	// A stopped instance cannot be rebooted, and the refusal names its
	// state (ECS's own message does not).
	_, err = d.Reboot(ctx, inst(runningID), cloud.RebootOptions{})
	ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrInvalidState, "IncorrectInstanceStatus")
	if !strings.Contains(ce.Message, "is Stopped") || ce.RequestID == "" {
		t.Fatalf("message %q does not name the state", ce.Message)
	}

	e.fake.ClearCalls()
	res, err = d.Start(ctx, inst(runningID), cloud.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := fakecloud.OneCall(t, e.fake); c.Action != "StartInstance" || res.RequestID != c.RequestID || res.Mode != "" {
		t.Fatalf("call %+v, result %+v", c, res)
	}
	if in, _ := e.fake.Instance(runningID); in.State != "Running" {
		t.Fatalf("instance is %s after a start", in.State)
	}
	// StopCharging asks ECS to release the compute while stopped.
	e.fake.ClearCalls()
	if _, err := d.Stop(ctx, inst(runningID), cloud.StopOptions{StopCharging: true}); err != nil {
		t.Fatal(err)
	}
	if c := fakecloud.OneCall(t, e.fake); c.StoppedMode != StoppedModeStopCharging || c.ForceStop {
		t.Fatalf("call %+v", c)
	}
	if _, err := d.Start(ctx, inst(runningID), cloud.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	// Starting a running instance: 409 naming the state.
	_, err = d.Start(ctx, inst(runningID), cloud.StartOptions{})
	if ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrInvalidState, "IncorrectInstanceStatus"); !strings.Contains(ce.Message, "is Running; only a Stopped instance") {
		t.Fatalf("message %q", ce.Message)
	}
}

// Every fault is answered once (no retry) and mapped to its kind.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		fault   string
		id      string
		kind    cloud.ErrorKind
		code    string
		message string
	}{
		{"", "i-bp1nosuchinstance0001", cloud.ErrNotFound, "InvalidInstanceId.NotFound", ""},
		{fakecloud.FaultNotFound, runningID, cloud.ErrNotFound, "InvalidInstanceId.NotFound", ""},
		{fakecloud.FaultThrottle, runningID, cloud.ErrThrottled, "Throttling.User", ""},
		{fakecloud.FaultAuth, runningID, cloud.ErrUnauthorized, "Forbidden.RAM", "ecs:RebootInstance"},
		{fakecloud.FaultLocked, runningID, cloud.ErrInvalidState, "InstanceLockedForSecurity", "locked instance " + runningID + " for security reasons"},
		{fakecloud.FaultBusy, runningID, cloud.ErrInvalidState, "IncorrectInstanceStatus", "is Starting"},
		{fakecloud.FaultMalformed, runningID, cloud.ErrBadAnswer, "MalformedAnswer", ""},
		{fakecloud.FaultNoRequestID, runningID, cloud.ErrBadAnswer, "MalformedAnswer", ""},
	} {
		t.Run(tc.fault+tc.code, func(t *testing.T) {
			e := setup(t, nil)
			if tc.fault != "" {
				e.fake.SetFault(tc.id, fakecloud.Fault{Kind: tc.fault})
			}
			_, err := e.driver(t).Reboot(context.Background(), inst(tc.id), cloud.RebootOptions{})
			ce := fakecloud.WantCloudError(t, Name, err, tc.kind, tc.code)
			if !strings.Contains(ce.Message, tc.message) {
				t.Fatalf("message %q does not contain %q", ce.Message, tc.message)
			}
			reboots := 0
			for _, c := range e.fake.Calls() {
				if c.Action == "RebootInstance" {
					reboots++
				}
			}
			if reboots != 1 {
				t.Fatalf("%d RebootInstance calls, want exactly 1: %+v", reboots, e.fake.Calls())
			}
			if tc.kind == cloud.ErrThrottled && ce.RetryAfter <= 0 {
				t.Fatal("no Retry-After hint")
			}
			if tc.kind != cloud.ErrBadAnswer && ce.RequestID == "" {
				t.Fatal("no request ID")
			}
			if in, _ := e.fake.Instance(runningID); in.Reboots != 0 {
				t.Fatal("the instance was rebooted")
			}
		})
	}
}

// A locked instance can still be stopped (ECS lets StopInstance through),
// and a start is refused as locked.
func TestLockedStopStart(t *testing.T) {
	e := setup(t, nil)
	e.fake.SetFault(runningID, fakecloud.Fault{Kind: fakecloud.FaultLocked})
	d := e.driver(t)
	if _, err := d.Stop(context.Background(), inst(runningID), cloud.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := d.Start(context.Background(), inst(runningID), cloud.StartOptions{})
	if ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrInvalidState, "InstanceLockedForSecurity"); !strings.Contains(ce.Message, "started") {
		t.Fatalf("message %q", ce.Message)
	}
}

func TestCredentialErrors(t *testing.T) {
	for _, tc := range []struct {
		name, id, secret, code, message string
	}{
		{"unknown key", "LTAI5tUnknownUnknown0000", testSecret, "InvalidAccessKeyId.NotFound", "LTAI5tUnknownUnknown0000"},
		{"wrong secret", testKeyID, "not-the-secret", "SignatureDoesNotMatch", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, nil)
			isolate(t, tc.id, tc.secret)
			_, err := e.driver(t).Reboot(context.Background(), inst(runningID), cloud.RebootOptions{})
			ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrUnauthorized, tc.code)
			if !strings.Contains(ce.Message, tc.message) || ce.NotSent {
				t.Fatalf("message %q (NotSent %v) does not name %q", ce.Message, ce.NotSent, tc.message)
			}
			fakecloud.OneCall(t, e.fake)
		})
	}
	t.Run("none", func(t *testing.T) {
		e := setup(t, nil)
		isolate(t, "", "")
		_, err := e.driver(t).Reboot(context.Background(), inst(runningID), cloud.RebootOptions{})
		ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrUnauthorized, "CredentialError")
		if !ce.NotSent || !strings.Contains(ce.Message, "ALIBABA_CLOUD_ACCESS_KEY_ID") || len(e.fake.Calls()) != 0 {
			t.Fatalf("%+v after %d calls", ce, len(e.fake.Calls()))
		}
	})
}

// A context deadline ends the call as ErrTimeout, after one call: the
// reboot may have been accepted.
func TestTimeout(t *testing.T) {
	e := setup(t, nil)
	e.fake.SetFault(runningID, fakecloud.Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.driver(t).Reboot(ctx, inst(runningID), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, Name, err, cloud.ErrTimeout, "")
	fakecloud.OneCall(t, e.fake)
}

// What stands in front of ECS: a 5xx of ECS's own is ErrUnavailable (502),
// an HTML page is not ECS's answer at all; neither is retried.
func TestInFront(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		kind        cloud.ErrorKind
		code        string
	}{
		{"ecs 503", http.StatusServiceUnavailable, "application/json", `{"RequestId":"R-1","Code":"ServiceUnavailable","Message":"The request has failed due to a temporary failure of the server."}`, cloud.ErrUnavailable, "ServiceUnavailable"},
		{"ecs 500", http.StatusInternalServerError, "application/json", `{"RequestId":"R-2","Code":"InternalError","Message":"The request processing has failed due to some unknown error."}`, cloud.ErrUnavailable, "InternalError"},
		{"proxy 502", http.StatusBadGateway, "text/html", `<html>Bad Gateway</html>`, cloud.ErrBadAnswer, "MalformedAnswer"},
		{"json 403 not ECS's", http.StatusForbidden, "application/json", `{"error":"denied"}`, cloud.ErrBadAnswer, "MalformedAnswer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			e := setup(t, func(http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					calls++
					w.Header().Set("Content-Type", tc.contentType)
					w.WriteHeader(tc.status)
					_, _ = io.WriteString(w, tc.body)
				})
			})
			_, err := e.driver(t).Reboot(context.Background(), inst(runningID), cloud.RebootOptions{})
			fakecloud.WantCloudError(t, Name, err, tc.kind, tc.code)
			if calls != 1 {
				t.Fatalf("%d calls, want 1", calls)
			}
		})
	}
}

// darabonba sends every request through HTTPS_PROXY, loopback included;
// the driver's own transport does not (Go's proxy rules), so a proxy
// variable meant for the internet does not break a local endpoint.
func TestProxyNotForLoopback(t *testing.T) {
	e := setup(t, nil)
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("https_proxy", "http://127.0.0.1:1")
	if _, err := e.driver(t).Reboot(context.Background(), inst(runningID), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	fakecloud.OneCall(t, e.fake)
}

func TestNewErrors(t *testing.T) {
	for _, pc := range []cloud.ProviderConfig{
		{Endpoint: "http://ecs.cn-hangzhou.aliyuncs.com"},
		{Endpoint: "https://"},
		{CAFile: filepath.Join(t.TempDir(), "missing.pem")},
	} {
		if _, err := New(context.Background(), pc); err == nil {
			t.Errorf("New(%+v) succeeded", pc)
		}
	}
}

func TestDefaultEndpoint(t *testing.T) {
	d, err := New(context.Background(), cloud.ProviderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	isolate(t, testKeyID, testSecret)
	cred, _, err := d.(*Driver).credential(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.(*Driver).client("ap-southeast-1", cred)
	if err != nil {
		t.Fatal(err)
	}
	if got := dara.StringValue(c.Endpoint); got != "ecs.ap-southeast-1.aliyuncs.com" {
		t.Fatalf("endpoint %q", got)
	}
	// The SDK retries only when these say so (dara.ShouldRetry): a
	// retried reboot is a second reboot.
	if ro := c.RetryOptions; ro == nil || ro.Retryable || ro.MaxAttempts > 1 {
		t.Fatalf("retry options %+v", ro)
	}
	if rt := runtime(); dara.BoolValue(rt.Autoretry) || dara.IntValue(rt.MaxAttempts) != 1 {
		t.Fatalf("runtime options %+v", rt)
	}
	if c.Client.HttpClient != d.(*Driver).http || !dara.BoolValue(c.Client.DisableSDKError) {
		t.Fatal("the client does not use the driver's HTTP client and typed errors")
	}
}

// The mapping of codes the fake does not produce, from the SDK's own
// error types.
func TestMapError(t *testing.T) {
	o := op{id: runningID, action: cloud.ActionStop, api: "StopInstance", verb: "stopped", running: true}
	for _, tc := range []struct {
		err     error
		kind    cloud.ErrorKind
		message string
	}{
		{&openapi.ClientError{StatusCode: dara.Int(403), Code: dara.String("Forbidden.RAM"), RequestId: dara.String("R"),
			Message: dara.String("code: 403, User not authorized request id: R")}, cloud.ErrUnauthorized, "ecs:StopInstance"},
		{&openapi.ClientError{StatusCode: dara.Int(404), Code: dara.String("InvalidAccessKeyId.Inactive"), RequestId: dara.String("R")},
			cloud.ErrUnauthorized, `"` + testKeyID + `"`},
		{&openapi.ThrottlingError{StatusCode: dara.Int(400), Code: dara.String("Throttling.Api"), RequestId: dara.String("R"), RetryAfter: dara.Int64(1500)},
			cloud.ErrThrottled, ""},
		{&openapi.ClientError{StatusCode: dara.Int(400), Code: dara.String("InvalidSecurityToken.Expired"), RequestId: dara.String("R")},
			cloud.ErrUnauthorized, ""},
		{&openapi.ServerError{StatusCode: dara.Int(500), Code: dara.String("InternalError"), RequestId: dara.String("R")},
			cloud.ErrUnavailable, ""},
		{context.DeadlineExceeded, cloud.ErrTimeout, "stopped is unknown"},
	} {
		e := mapError(context.Background(), tc.err, &answer{}, o, testKeyID)
		if e.Kind != tc.kind || !strings.Contains(e.Message, tc.message) {
			t.Errorf("%v: got %s %q, want %s containing %q", tc.err, e.Kind, e.Message, tc.kind, tc.message)
		}
		if e.Kind == cloud.ErrThrottled && e.RetryAfter != 1500*time.Millisecond {
			t.Errorf("Retry-After %s, want the answer's 1.5s", e.RetryAfter)
		}
	}
}

// A refusal of an instance that is in the right state (another operation
// holds it) says so, rather than claiming the state is wrong.
func TestBusyInTheRightState(t *testing.T) {
	e := setup(t, func(fake http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("x-acs-action") != "RebootInstance" {
				fake.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"RequestId":"R-busy","Code":"OperationConflict","Message":"The operation may conflicts with others."}`)
		})
	})
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID), cloud.RebootOptions{})
	ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrInvalidState, "OperationConflict")
	if !strings.Contains(ce.Message, "is Running, and ECS refuses") || strings.Contains(ce.Message, "only a") {
		t.Fatalf("message %q", ce.Message)
	}
}
