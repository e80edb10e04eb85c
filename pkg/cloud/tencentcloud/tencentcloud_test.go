package tencentcloud

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

const (
	testID     = "AKIDfakeSecretId"
	testKey    = "fakeSecretKey"
	runningID  = "ins-abcd1234"
	stoppedID  = "ins-stop0001"
	shanghaiID = "ins-sh000001"
)

// isolate keeps the host's Tencent configuration out of a test: the
// credentials come only from the variables set here.
func isolate(t *testing.T, id, key string) {
	t.Helper()
	dir := t.TempDir()
	empty := filepath.Join(dir, "credentials")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", dir)
	t.Setenv("TENCENTCLOUD_CREDENTIALS_FILE", empty)
	for _, v := range []string{"TKE_ROLE_ARN", "TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(v, "")
	}
	t.Setenv("TENCENTCLOUD_SECRET_ID", id)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", key)
}

type env struct {
	fake *fakecloud.CVM
	cfg  cloud.ProviderConfig
}

// setup starts a TLS fake CVM that knows testID's key, so every call in
// these tests has its full TC3 signature checked.
func setup(t *testing.T) *env {
	t.Helper()
	isolate(t, testID, testKey)
	fake := fakecloud.NewCVM(fakecloud.Options{
		Instances: []fakecloud.Instance{
			{ID: runningID, Region: "ap-guangzhou"},
			{ID: stoppedID, Region: "ap-guangzhou", State: "stopped"},
			{ID: shanghaiID, Region: "ap-shanghai"},
		},
		Secrets: map[string]string{testID: testKey},
	})
	srv := httptest.NewUnstartedServer(fake)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca, err := fakecloud.WriteCAFile(srv, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, cfg: cloud.ProviderConfig{
		Enabled: true, Endpoint: srv.URL, CAFile: ca, Timeout: 10 * time.Second,
	}}
}

func (e *env) driver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d.(*Driver)
}

func inst(id, region string) cloud.Instance {
	return cloud.Instance{Provider: cloud.ProviderTencentCloud, ID: id, Region: region}
}

func TestRebootSuccess(t *testing.T) {
	for mode, stopType := range map[cloud.RebootMode]string{cloud.RebootSoft: "SOFT", cloud.RebootHard: "HARD", "": "SOFT"} {
		t.Run(string(mode)+"->"+stopType, func(t *testing.T) {
			e := setup(t)
			res, err := e.driver(t).Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			c := fakecloud.OneCall(t, e.fake)
			if c.Action != "RebootInstances" || c.Region != "ap-guangzhou" || len(c.InstanceIDs) != 1 ||
				c.InstanceIDs[0] != runningID || c.StopType != stopType || c.AccessKeyID != testID || c.Error != "" {
				t.Fatalf("recorded call %+v", c)
			}
			if res.RequestID == "" || res.RequestID != c.RequestID {
				t.Fatalf("request ID %q, the fake answered %q", res.RequestID, c.RequestID)
			}
			if want := map[string]cloud.Mode{"SOFT": cloud.ModeSoft, "HARD": cloud.ModeHard}[stopType]; res.Mode != want {
				t.Fatalf("mode used %q, want %q", res.Mode, want)
			}
			if in, _ := e.fake.Instance(runningID); in.Reboots != 1 {
				t.Fatalf("instance rebooted %d times, want 1", in.Reboots)
			}
		})
	}
}

func TestRebootDryRun(t *testing.T) {
	e := setup(t)
	res, err := e.driver(t).Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{Mode: cloud.RebootHard, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	c := fakecloud.OneCall(t, e.fake)
	if c.Action != "DescribeInstances" || c.Region != "ap-guangzhou" || len(c.InstanceIDs) != 1 || c.InstanceIDs[0] != runningID {
		t.Fatalf("recorded call %+v, want only DescribeInstances of %s", c, runningID)
	}
	if res.RequestID != c.RequestID {
		t.Fatalf("request ID %q, the fake answered %q", res.RequestID, c.RequestID)
	}
	if in, _ := e.fake.Instance(runningID); in.Reboots != 0 {
		t.Fatalf("a dry run rebooted the instance %d times", in.Reboots)
	}
}

func TestRebootErrors(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		region string
		fault  *fakecloud.Fault
		dryRun bool
		kind   cloud.ErrorKind
		code   string
	}{
		{"unknown instance", "ins-zzzz9999", "ap-guangzhou", nil, false, cloud.ErrNotFound, "InvalidInstanceId.NotFound"},
		{"other region", shanghaiID, "ap-guangzhou", nil, false, cloud.ErrNotFound, "InvalidInstanceId.NotFound"},
		{"malformed", "ins-x", "ap-guangzhou", nil, false, cloud.ErrNotFound, "InvalidInstanceId.Malformed"},
		{"stopped", stoppedID, "ap-guangzhou", nil, false, cloud.ErrInvalidState, "UnsupportedOperation.InstanceStateStopped"},
		{"busy", runningID, "ap-guangzhou", &fakecloud.Fault{Kind: fakecloud.FaultBusy}, false, cloud.ErrInvalidState, "OperationDenied.InstanceOperationInProgress"},
		{"not found fault", runningID, "ap-guangzhou", &fakecloud.Fault{Kind: fakecloud.FaultNotFound}, false, cloud.ErrNotFound, "InvalidInstanceId.NotFound"},
		{"throttled", runningID, "ap-guangzhou", &fakecloud.Fault{Kind: fakecloud.FaultThrottle}, false, cloud.ErrThrottled, "RequestLimitExceeded"},
		{"not permitted", runningID, "ap-guangzhou", &fakecloud.Fault{Kind: fakecloud.FaultAuth}, false, cloud.ErrUnauthorized, "AuthFailure.UnauthorizedOperation"},
		{"dry run unknown", "ins-zzzz9999", "ap-guangzhou", nil, true, cloud.ErrNotFound, "InvalidInstanceId.NotFound"},
		{"dry run other region", shanghaiID, "ap-guangzhou", nil, true, cloud.ErrNotFound, "InvalidInstanceId.NotFound"},
		{"dry run malformed", "ins-x", "ap-guangzhou", nil, true, cloud.ErrNotFound, "InvalidInstanceId.Malformed"},
		{"dry run stopped", stoppedID, "ap-guangzhou", nil, true, cloud.ErrInvalidState, "UnsupportedOperation.InstanceStateStopped"},
		{"dry run busy", runningID, "ap-guangzhou", &fakecloud.Fault{Kind: fakecloud.FaultBusy}, true, cloud.ErrInvalidState, "OperationDenied.InstanceOperationInProgress"},
		{"dry run throttled", runningID, "ap-guangzhou", &fakecloud.Fault{Kind: fakecloud.FaultThrottle}, true, cloud.ErrThrottled, "RequestLimitExceeded"},
		{"dry run not permitted", runningID, "ap-guangzhou", &fakecloud.Fault{Kind: fakecloud.FaultAuth}, true, cloud.ErrUnauthorized, "AuthFailure.UnauthorizedOperation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			if tt.fault != nil {
				e.fake.SetFault(tt.id, *tt.fault)
			}
			_, err := e.driver(t).Reboot(context.Background(), inst(tt.id, tt.region), cloud.RebootOptions{DryRun: tt.dryRun})
			ce := fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, tt.kind, tt.code)
			c := fakecloud.OneCall(t, e.fake)
			wantAction := "RebootInstances"
			if tt.dryRun {
				wantAction = "DescribeInstances"
			}
			if c.Action != wantAction {
				t.Errorf("the fake saw %s, want %s", c.Action, wantAction)
			}
			if ce.RequestID == "" || ce.RequestID != c.RequestID {
				t.Errorf("request ID %q, the fake answered %q", ce.RequestID, c.RequestID)
			}
			if tt.kind == cloud.ErrThrottled && ce.RetryAfter <= 0 {
				t.Errorf("no RetryAfter hint on %v", ce)
			}
			for _, in := range e.fake.Instances() {
				if in.Reboots != 0 {
					t.Errorf("instance %s rebooted", in.ID)
				}
			}
		})
	}
}

func TestRebootWrongKey(t *testing.T) {
	e := setup(t)
	isolate(t, testID, "not-the-key")
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrUnauthorized, "AuthFailure.SignatureFailure")
	if c := fakecloud.OneCall(t, e.fake); c.Error != "AuthFailure.SignatureFailure" || c.AccessKeyID != testID {
		t.Fatalf("recorded call %+v", c)
	}
	if in, _ := e.fake.Instance(runningID); in.Reboots != 0 {
		t.Fatal("a call with a bad signature rebooted the instance")
	}
}

func TestRebootUnknownSecretID(t *testing.T) {
	e := setup(t)
	isolate(t, "AKIDsomeoneElse", testKey)
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrUnauthorized, "AuthFailure.SecretIdNotFound")
	fakecloud.OneCall(t, e.fake)
}

func TestRebootTKEOIDCMisconfigured(t *testing.T) {
	e := setup(t)
	// TKE_ROLE_ARN selects TKE OIDC, which then needs its other variables;
	// the env credentials must not be used as a silent fallback.
	t.Setenv("TKE_ROLE_ARN", "qcs::cam::uin/100000000001:roleName/reboot")
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrUnauthorized, "CredentialError")
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("a call went out: %+v", calls)
	}
}

func TestRebootCallerDeadline(t *testing.T) {
	e := setup(t)
	e.fake.SetFault(runningID, fakecloud.Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.driver(t).Reboot(ctx, inst(runningID, "ap-guangzhou"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrTimeout, "")
	fakecloud.OneCall(t, e.fake)
}

// The configured timeout is the wrapper's (pkg/cloud/providers tests it
// on this driver); neither the driver nor the SDK (ReqTimeout) applies
// one of its own.
func TestRebootNoOwnTimeout(t *testing.T) {
	e := setup(t)
	e.cfg.Timeout = 50 * time.Millisecond
	e.fake.SetFault(runningID, fakecloud.Fault{Delay: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.driver(t).Reboot(ctx, inst(runningID, "ap-guangzhou"), cloud.RebootOptions{}); err != nil {
		t.Fatalf("the driver applied a timeout of its own: %v", err)
	}
	fakecloud.OneCall(t, e.fake)
}

func TestClientPerRegion(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	ctx := context.Background()
	for _, in := range []cloud.Instance{inst(runningID, "ap-guangzhou"), inst(runningID, "ap-guangzhou"), inst(shanghaiID, "ap-shanghai")} {
		if _, err := d.Reboot(ctx, in, cloud.RebootOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	first := d.clients["ap-guangzhou"].c
	if len(d.clients) != 2 || first == nil || d.clients["ap-shanghai"].c == nil {
		t.Fatalf("clients: %v", d.clients)
	}
	if _, err := d.Reboot(ctx, inst(runningID, "ap-guangzhou"), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	if d.clients["ap-guangzhou"].c != first {
		t.Fatal("the ap-guangzhou client was rebuilt")
	}
}

func TestUntrustedServer(t *testing.T) {
	e := setup(t)
	e.cfg.CAFile = ""
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrUnavailable, "ClientError.NetworkError")
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("a call reached a server whose certificate is not trusted: %+v", calls)
	}
}

func TestRebootRefusesOtherInstances(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	for _, in := range []cloud.Instance{
		{Provider: cloud.ProviderAWS, ID: "i-0123456789abcdef0", Region: "us-east-1"},
		{Provider: cloud.ProviderTencentCloud, ID: runningID},
	} {
		if _, err := d.Reboot(context.Background(), in, cloud.RebootOptions{}); err == nil {
			t.Errorf("Reboot(%+v) succeeded", in)
		}
	}
	if _, err := d.Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{Mode: "gentle"}); err == nil {
		t.Error("an unknown mode was accepted")
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("calls went out: %+v", calls)
	}
}

func TestCamel(t *testing.T) {
	for in, want := range map[string]string{"STOPPED": "Stopped", "LAUNCH_FAILED": "LaunchFailed", "": ""} {
		if got := camel(in); got != want {
			t.Errorf("camel(%q) = %q, want %q", in, got, want)
		}
	}
}

// A 200 answer without CVM's Response envelope, or without a RequestId,
// is never a success and never a panic: it is ErrBadAnswer, whose outcome
// is unknown, for real calls and dry runs alike.
func TestRebootMalformedAnswers(t *testing.T) {
	for _, kind := range []string{fakecloud.FaultMalformed, fakecloud.FaultNoRequestID} {
		for _, dryRun := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/dryRun=%v", kind, dryRun), func(t *testing.T) {
				e := setup(t)
				e.fake.SetFault(runningID, fakecloud.Fault{Kind: kind})
				res, err := e.driver(t).Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{DryRun: dryRun})
				if err == nil {
					t.Fatalf("a malformed answer was taken for success: %+v", res)
				}
				ce := fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrBadAnswer, "")
				if ce.NotSent || !strings.Contains(ce.Error(), "unknown") {
					t.Errorf("%v: want an error saying the outcome is unknown", ce)
				}
				fakecloud.OneCall(t, e.fake)
			})
		}
	}
}

// TKE OIDC: the projected ServiceAccount token is read again at every
// resolution. The fake STS accepts only the current token and issues
// credentials that expire at once; after the kubelet rotates the file,
// the next call succeeds with the new token.
func TestTKEOIDCTokenRotation(t *testing.T) {
	e := setup(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	write := func(tok string) {
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("sa-token-1")
	t.Setenv("TKE_ROLE_ARN", "qcs::cam::uin/100000000001:roleName/reboot")
	t.Setenv("TKE_PROVIDER_ID", "oidc-provider")
	t.Setenv("TKE_REGION", "ap-guangzhou")
	t.Setenv("TKE_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	e.fake.SetWebIdentityToken("sa-token-1")
	d := e.driver(t)
	ctx := context.Background()
	if _, err := d.Reboot(ctx, inst(runningID, "ap-guangzhou"), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	write("sa-token-2")
	e.fake.SetWebIdentityToken("sa-token-2") // the old token is no longer accepted
	if _, err := d.Reboot(ctx, inst(runningID, "ap-guangzhou"), cloud.RebootOptions{}); err != nil {
		t.Fatalf("after the token rotated: %v", err)
	}
	calls := e.fake.Calls()
	if len(calls) != 2 || calls[0].AccessKeyID == calls[1].AccessKeyID || !strings.HasPrefix(calls[1].AccessKeyID, "AKIDsts") {
		t.Fatalf("calls %+v, want two signed with two role credentials", calls)
	}
	if n := e.fake.AssumedRoles(); n != 2 {
		t.Fatalf("STS issued %d credentials, want 2", n)
	}
	// A token the provider no longer accepts fails the call, and sends
	// nothing.
	e.fake.SetWebIdentityToken("sa-token-3")
	_, err := d.Reboot(ctx, inst(runningID, "ap-guangzhou"), cloud.RebootOptions{})
	ce := fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrUnauthorized, "CredentialError")
	if !ce.NotSent || len(e.fake.Calls()) != 2 {
		t.Fatalf("%v: want NotSent and no third call", ce)
	}
}

// A hung metadata server fails the call that waits for it (nothing is
// sent; the lock can be released) and does not disable the driver: the
// next call resolves again.
func TestHungMetadataServer(t *testing.T) {
	e := setup(t)
	isolate(t, "", "")
	release := make(chan struct{})
	var mu sync.Mutex
	requests := 0
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n == 1 {
			select { // hang, as a metadata server that accepts and never answers
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		if strings.HasSuffix(r.URL.Path, "/security-credentials/") {
			_, _ = io.WriteString(w, "reboot-role")
			return
		}
		_, _ = fmt.Fprintf(w, `{"TmpSecretId":%q,"TmpSecretKey":%q,"Token":"t","ExpiredTime":%d,"Code":"Success"}`,
			testID, testKey, time.Now().Add(time.Hour).Unix())
	}))
	t.Cleanup(func() { close(release); meta.Close() })
	d := e.driver(t)
	d.metadataURL = meta.URL + "/latest/meta-data/cam/security-credentials/"

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := d.Reboot(ctx, inst(runningID, "ap-guangzhou"), cloud.RebootOptions{})
	ce := fakecloud.WantCloudError(t, cloud.ProviderTencentCloud, err, cloud.ErrUnavailable, "CredentialError")
	if !ce.NotSent {
		t.Errorf("%v: want NotSent", ce)
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("a call went out without credentials: %+v", calls)
	}
	if _, err := d.Reboot(context.Background(), inst(runningID, "ap-guangzhou"), cloud.RebootOptions{}); err != nil {
		t.Fatalf("the call after a hung resolution: %v", err)
	}
	if c := fakecloud.OneCall(t, e.fake); c.AccessKeyID != testID {
		t.Fatalf("call %+v", c)
	}
}
