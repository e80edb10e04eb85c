package gce

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

const (
	project = "my-project-1"
	zone    = "us-central1-a"
	vm      = "gke-pool-1-abcd"
	email   = "node-manager@my-project-1.iam.gserviceaccount.com"
)

var (
	accountOnce sync.Once
	account     *fakecloud.ServiceAccount
	stranger    *fakecloud.ServiceAccount
)

// accounts makes the test keys once: RSA key generation is the slow part.
func accounts(t *testing.T) (*fakecloud.ServiceAccount, *fakecloud.ServiceAccount) {
	t.Helper()
	accountOnce.Do(func() {
		var err error
		if account, err = fakecloud.NewServiceAccount(email); err != nil {
			panic(err)
		}
		if stranger, err = fakecloud.NewServiceAccount("stranger@other-project.iam.gserviceaccount.com"); err != nil {
			panic(err)
		}
	})
	a := *account
	return &a, stranger
}

type env struct {
	fake   *fakecloud.GCE
	srv    *httptest.Server
	driver *Driver
	inst   cloud.Instance
	cfg    cloud.ProviderConfig
}

// setup starts the fake, writes a service-account key file whose
// token_uri is the fake's, points ADC at it with
// GOOGLE_APPLICATION_CREDENTIALS, and builds the driver with the fake's
// CA as caFile. keyAccount signs the grants; trusted is what the fake
// knows.
func setup(t *testing.T, perms []string, keyAccount *fakecloud.ServiceAccount) *env {
	t.Helper()
	trusted, _ := accounts(t)
	trusted.Permissions = perms
	if keyAccount == nil {
		keyAccount = trusted
	}
	fake := fakecloud.NewGCE(fakecloud.Options{Instances: []fakecloud.Instance{
		{ID: vm, Project: project, Zone: zone},
		{ID: "stopped-vm", Project: project, Zone: zone, State: "TERMINATED"},
	}}, trusted)
	srv := httptest.NewTLSServer(fake)
	t.Cleanup(srv.Close)
	return setupWith(t, fake, srv, keyAccount)
}

func setupWith(t *testing.T, fake *fakecloud.GCE, srv *httptest.Server, keyAccount *fakecloud.ServiceAccount) *env {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sa.json")
	if err := keyAccount.WriteKeyFile(keyFile, project, srv.URL+fakecloud.TokenPath); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", keyFile)
	// Nothing else of ADC may answer: no gcloud file, no metadata server.
	t.Setenv("CLOUDSDK_CONFIG", dir)
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1")
	caFile, err := fakecloud.WriteCAFile(srv, dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cloud.ProviderConfig{Enabled: true, Endpoint: srv.URL, CAFile: caFile, Timeout: 10 * time.Second}
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := Provider.Resolve("gce://"+project+"/"+zone+"/"+vm, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, srv: srv, driver: d, inst: inst, cfg: cfg}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mutating returns the fake's calls that may change an instance.
func mutating(f *fakecloud.GCE) []fakecloud.Call {
	var out []fakecloud.Call
	for _, c := range f.Calls() {
		switch c.Action {
		case fakecloud.GCEMethodReset, fakecloud.GCEMethodStop, fakecloud.GCEMethodStart:
			out = append(out, c)
		}
	}
	return out
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRestartIsOneResetThroughADC(t *testing.T) {
	e := setup(t, nil, nil)
	res, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	calls := mutating(e.fake)
	if len(calls) != 1 {
		t.Fatalf("%d mutating calls, want 1: %+v", len(calls), calls)
	}
	c := calls[0]
	if c.Action != fakecloud.GCEMethodReset || c.Project != project || c.Zone != zone || c.InstanceIDs[0] != vm || c.Error != "" {
		t.Fatalf("call %+v", c)
	}
	// The answer: the cloud's own reboot, and the operation's name.
	if res.Mode != cloud.ModeHard || res.RequestID != c.RequestID || !strings.HasPrefix(res.RequestID, "operation-") {
		t.Fatalf("result %+v, call %+v", res, c)
	}
	if !uuidRE.MatchString(c.ClientRequestID) {
		t.Fatalf("requestId %q is not a UUID", c.ClientRequestID)
	}
	// The bearer token is one the fake issued, through the key file's
	// JWT-bearer grant, to the key file's account.
	grants := e.fake.Grants()
	if len(grants) != 1 || grants[0].Token != c.Token || c.AccessKeyID != email || !strings.Contains(grants[0].Scope, computeScope) {
		t.Fatalf("grants %+v, call token %q by %q", grants, c.Token, c.AccessKeyID)
	}
	// The operation was followed to its end.
	waited := false
	for _, c := range e.fake.Calls() {
		waited = waited || (c.Action == fakecloud.GCEMethodOperationWait && c.RequestID == res.RequestID)
	}
	if !waited {
		t.Fatalf("the operation was not waited for: %+v", e.fake.Calls())
	}
	if in, _ := e.fake.Instance(vm); in.Reboots != 1 {
		t.Fatalf("reboots %d", in.Reboots)
	}
}

func TestSoftRestartIsRefusedNamingTheModes(t *testing.T) {
	e := setup(t, nil, nil)
	_, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{Mode: cloud.ModeSoft})
	var ue *cloud.UnsupportedError
	if !errors.As(err, &ue) || !slices.Equal(ue.Modes, []cloud.Mode{cloud.ModeHard}) || !strings.Contains(err.Error(), "hard") {
		t.Fatalf("err %v, want an UnsupportedError naming hard", err)
	}
	if len(e.fake.Calls()) != 0 {
		t.Fatalf("a refused mode reached the cloud: %+v", e.fake.Calls())
	}
	if _, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{Mode: cloud.ModeHard}); err != nil {
		t.Fatalf("hard: %v", err)
	}
}

func TestStopAndStart(t *testing.T) {
	e := setup(t, nil, nil)
	res, err := e.driver.Stop(ctxT(t), e.inst, cloud.StopOptions{})
	if err != nil || res.Mode != cloud.ModeSoft {
		t.Fatalf("stop: %+v %v", res, err)
	}
	if in, _ := e.fake.Instance(vm); in.State != "TERMINATED" {
		t.Fatalf("state %s after stop", in.State)
	}
	// A stopped instance refuses a reset with GCE's own error.
	_, err = e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
	fakecloud.WantCloudError(t, Name, err, cloud.ErrInvalidState, "resourceNotReady")
	res, err = e.driver.Start(ctxT(t), e.inst, cloud.StartOptions{})
	if err != nil || res.RequestID == "" {
		t.Fatalf("start: %+v %v", res, err)
	}
	if in, _ := e.fake.Instance(vm); in.State != "RUNNING" {
		t.Fatalf("state %s after start", in.State)
	}
	if res, err = e.driver.Stop(ctxT(t), e.inst, cloud.StopOptions{Mode: cloud.ModeHard}); err != nil || res.Mode != cloud.ModeHard {
		t.Fatalf("hard stop: %+v %v", res, err)
	}
	calls := mutating(e.fake)
	want := []struct {
		action string
		hard   bool
	}{{fakecloud.GCEMethodStop, false}, {fakecloud.GCEMethodReset, false}, {fakecloud.GCEMethodStart, false}, {fakecloud.GCEMethodStop, true}}
	if len(calls) != len(want) {
		t.Fatalf("calls %+v", calls)
	}
	ids := map[string]bool{}
	for i, w := range want {
		if calls[i].Action != w.action || calls[i].NoGracefulShutdown != w.hard || calls[i].InstanceIDs[0] != vm {
			t.Errorf("call %d: %+v, want %s hard=%v", i, calls[i], w.action, w.hard)
		}
		ids[calls[i].ClientRequestID] = true
	}
	if len(ids) != len(want) {
		t.Errorf("distinct actions shared a requestId: %v", ids)
	}
}

func TestDryRunIsTestIamPermissions(t *testing.T) {
	e := setup(t, nil, nil)
	for _, tt := range []struct {
		name string
		run  func() (cloud.Result, error)
		perm string
	}{
		{"restart", func() (cloud.Result, error) {
			return e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{DryRun: true})
		}, "compute.instances.reset"},
		{"stop", func() (cloud.Result, error) {
			return e.driver.Stop(ctxT(t), e.inst, cloud.StopOptions{DryRun: true, Mode: cloud.ModeHard})
		}, "compute.instances.stop"},
		{"start", func() (cloud.Result, error) { return e.driver.Start(ctxT(t), e.inst, cloud.StartOptions{DryRun: true}) }, "compute.instances.start"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.fake.ClearCalls()
			if _, err := tt.run(); err != nil {
				t.Fatal(err)
			}
			c := fakecloud.OneCall(t, e.fake)
			if c.Action != fakecloud.GCEMethodTestPermissions || !slices.Equal(c.Permissions, []string{tt.perm}) || c.InstanceIDs[0] != vm {
				t.Fatalf("call %+v", c)
			}
		})
	}
	if in, _ := e.fake.Instance(vm); in.Reboots != 0 || in.State != "RUNNING" {
		t.Fatalf("a dry run changed the instance: %+v", in)
	}

	// Without the permission: the code of a cloud refusing our
	// credentials, naming the permission.
	d := setup(t, []string{"compute.instances.get", "compute.zoneOperations.get"}, nil)
	_, err := d.driver.Reboot(ctxT(t), d.inst, cloud.RebootOptions{DryRun: true})
	ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrUnauthorized, "")
	if !strings.Contains(ce.Message, "compute.instances.reset") {
		t.Fatalf("message %q does not name the permission", ce.Message)
	}
	// An unknown instance is a 404 to the dry run too.
	gone := d.inst
	gone.ID = "no-such-vm"
	_, err = d.driver.Reboot(ctxT(t), gone, cloud.RebootOptions{DryRun: true})
	fakecloud.WantCloudError(t, Name, err, cloud.ErrNotFound, "notFound")
}

func TestErrorsAreMappedAndNeverRetried(t *testing.T) {
	e := setup(t, nil, nil)
	tests := []struct {
		fault string
		kind  cloud.ErrorKind
		code  string
	}{
		{fakecloud.FaultNotFound, cloud.ErrNotFound, "notFound"},
		{fakecloud.FaultAuth, cloud.ErrUnauthorized, "forbidden"},
		{fakecloud.FaultThrottle, cloud.ErrThrottled, "rateLimitExceeded"},
		{fakecloud.FaultUnavailable, cloud.ErrUnavailable, "backendError"},
		{fakecloud.FaultBusy, cloud.ErrInvalidState, "resourceNotReady"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			e.fake.ClearCalls()
			e.fake.SetFault(vm, fakecloud.Fault{Kind: tt.fault})
			defer e.fake.ClearFaults()
			_, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
			ce := fakecloud.WantCloudError(t, Name, err, tt.kind, tt.code)
			c := fakecloud.OneCall(t, e.fake)
			if c.Action != fakecloud.GCEMethodReset {
				t.Fatalf("call %+v", c)
			}
			switch tt.kind {
			case cloud.ErrUnauthorized:
				if !strings.Contains(ce.Message, "compute.instances.reset") {
					t.Fatalf("403 message %q does not name the permission", ce.Message)
				}
			case cloud.ErrThrottled:
				if ce.RetryAfter <= 0 {
					t.Fatal("no Retry-After hint")
				}
			}
		})
	}
	if in, _ := e.fake.Instance(vm); in.Reboots != 0 {
		t.Fatalf("a refused call reset the instance %d times", in.Reboots)
	}

	t.Run("unknown instance", func(t *testing.T) {
		gone := e.inst
		gone.ID = "no-such-vm"
		_, err := e.driver.Reboot(ctxT(t), gone, cloud.RebootOptions{})
		fakecloud.WantCloudError(t, Name, err, cloud.ErrNotFound, "notFound")
	})
}

func TestAnOperationEndingInErrorIsNotSuccess(t *testing.T) {
	e := setup(t, nil, nil)
	e.fake.SetFault(vm, fakecloud.Fault{Kind: fakecloud.FaultOperationError})
	_, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
	ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrUnavailable, "INTERNAL_ERROR")
	calls := mutating(e.fake)
	if len(calls) != 1 || ce.RequestID != calls[0].RequestID {
		t.Fatalf("error %+v, calls %+v", ce, calls)
	}
}

func TestDeadlines(t *testing.T) {
	e := setup(t, nil, nil)
	// Get the token first, so the deadline falls on the compute call.
	if _, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}

	t.Run("operation never ends", func(t *testing.T) {
		e.fake.ClearCalls()
		e.fake.SetFault(vm, fakecloud.Fault{Kind: fakecloud.FaultStuck})
		defer e.fake.ClearFaults()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := e.driver.Reboot(ctx, e.inst, cloud.RebootOptions{})
		ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrTimeout, "")
		if calls := mutating(e.fake); len(calls) != 1 || ce.RequestID != calls[0].RequestID {
			t.Fatalf("error %+v, calls %+v", ce, calls)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		e.fake.ClearCalls()
		e.fake.SetFault(vm, fakecloud.Fault{Delay: time.Minute})
		defer e.fake.ClearFaults()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := e.driver.Reboot(ctx, e.inst, cloud.RebootOptions{})
		fakecloud.WantCloudError(t, Name, err, cloud.ErrTimeout, "")
		if calls := mutating(e.fake); len(calls) != 1 {
			t.Fatalf("calls %+v: a timed-out reset was retried", calls)
		}
	})
}

func TestCredentials(t *testing.T) {
	t.Run("token endpoint refuses an unknown key", func(t *testing.T) {
		_, other := accounts(t)
		e := setup(t, nil, other)
		_, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
		ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrUnauthorized, "TokenRefused")
		if !ce.NotSent || len(e.fake.Calls()) != 0 || len(e.fake.Grants()) != 0 {
			t.Fatalf("error %+v; calls %+v", ce, e.fake.Calls())
		}
	})
	t.Run("compute refuses a token it did not issue", func(t *testing.T) {
		e := setup(t, nil, nil)
		if _, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{DryRun: true}); err != nil {
			t.Fatal(err)
		}
		e.fake.RevokeTokens()
		_, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
		fakecloud.WantCloudError(t, Name, err, cloud.ErrUnauthorized, "authError")
		if in, _ := e.fake.Instance(vm); in.Reboots != 0 {
			t.Fatal("reset with a revoked token")
		}
	})
	t.Run("no credentials file", func(t *testing.T) {
		e := setup(t, nil, nil)
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
		d, err := New(context.Background(), e.cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
		ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrUnauthorized, "CredentialsError")
		if !ce.NotSent || len(e.fake.Calls()) != 0 {
			t.Fatalf("error %+v", ce)
		}
	})
	t.Run("bad caFile", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(context.Background(), cloud.ProviderConfig{CAFile: bad}); err == nil {
			t.Fatal("a bad caFile was accepted")
		}
	})
}

// TestAnswersThatAreNotGoogles: a proxy's page in place of GCE's answer is
// never success, nor a "no such instance" that would release the lock.
func TestAnswersThatAreNotGoogles(t *testing.T) {
	trusted, _ := accounts(t)
	fake := fakecloud.NewGCE(fakecloud.Options{}, trusted)
	var status int
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fakecloud.TokenPath {
			fake.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = w.Write([]byte("<html><body>Not here</body></html>"))
	}))
	defer srv.Close()
	e := setupWith(t, fake, srv, trusted)
	for _, s := range []int{http.StatusOK, http.StatusNotFound, http.StatusForbidden} {
		status = s
		_, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
		fakecloud.WantCloudError(t, Name, err, cloud.ErrBadAnswer, "")
	}
}

// TestALostAnswerIsAskedAgainWithTheSameKey: a reset whose answer the
// network lost is sent once more with the same requestId, which GCE
// answers with the first operation: one reset, and a known outcome.
func TestALostAnswerIsAskedAgainWithTheSameKey(t *testing.T) {
	e := setup(t, nil, nil)
	e.fake.SetFault(vm, fakecloud.Fault{Kind: fakecloud.FaultDrop})
	res, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	calls := mutating(e.fake)
	if len(calls) != 2 || calls[0].Replay || !calls[1].Replay || calls[0].ClientRequestID != calls[1].ClientRequestID ||
		calls[1].RequestID != res.RequestID {
		t.Fatalf("want the call and one replay with the same key, got %+v (result %+v)", calls, res)
	}
	if in, _ := e.fake.Instance(vm); in.Reboots != 1 {
		t.Fatalf("reboots %d, want 1", in.Reboots)
	}
	// Another action has a key of its own.
	e.fake.ClearFaults()
	if _, err := e.driver.Reboot(ctxT(t), e.inst, cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	if calls := mutating(e.fake); len(calls) != 3 || calls[2].ClientRequestID == calls[0].ClientRequestID || calls[2].Replay {
		t.Fatalf("a second action reused the first one's key: %+v", calls)
	}
}
