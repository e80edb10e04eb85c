package aws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	testKey    = "AKIDFAKEEXAMPLE"
	testSecret = "fake/secret/key"
	runningID  = "i-0123456789abcdef0"
	stoppedID  = "i-0fedcba9876543210"
	westID     = "i-00000000"
	ownedID    = "i-0c1a5c1a5c1a5c1a5"
)

// isolate keeps the host's AWS configuration out of a test: credentials
// come only from the variables set here, and nothing is read from ~/.aws
// or IMDS.
func isolate(t *testing.T, key, secret string) {
	t.Helper()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CA_BUNDLE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
}

type env struct {
	fake *fakecloud.EC2
	srv  *httptest.Server
	cfg  cloud.ProviderConfig
}

// setup starts a TLS fake EC2 that knows testKey's secret, so every call
// in these tests has its full signature checked.
func setup(t *testing.T) *env {
	t.Helper()
	isolate(t, testKey, testSecret)
	fake := fakecloud.NewEC2(fakecloud.Options{
		Instances: []fakecloud.Instance{
			{ID: runningID, Region: "us-east-1"},
			{ID: stoppedID, Region: "us-east-1", State: "stopped"},
			{ID: westID, Region: "us-west-2"},
			{ID: ownedID, Region: "us-east-1", Tags: map[string]string{"Name": "prod-node", ClusterTagPrefix + "prod": "owned"}},
		},
		Secrets: map[string]string{testKey: testSecret},
	})
	srv := httptest.NewUnstartedServer(fake)
	// TestUntrustedServer makes handshakes fail on purpose.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca, err := fakecloud.WriteCAFile(srv, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, srv: srv, cfg: cloud.ProviderConfig{
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
	return cloud.Instance{Provider: cloud.ProviderAWS, ID: id, Region: region}
}

func TestRebootSuccess(t *testing.T) {
	for _, mode := range []cloud.RebootMode{cloud.RebootSoft, ""} {
		t.Run(string(mode), func(t *testing.T) {
			e := setup(t)
			res, err := e.driver(t).Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			c := fakecloud.OneCall(t, e.fake)
			if c.Action != "RebootInstances" || c.Region != "us-east-1" || len(c.InstanceIDs) != 1 ||
				c.InstanceIDs[0] != runningID || c.DryRun || c.AccessKeyID != testKey || c.Error != "" {
				t.Fatalf("recorded call %+v", c)
			}
			if res.RequestID == "" || res.RequestID != c.RequestID {
				t.Fatalf("request ID %q, the fake answered %q", res.RequestID, c.RequestID)
			}
			if res.Mode != cloud.ModeSoft {
				t.Fatalf("mode used %q, want soft (EC2's one reboot)", res.Mode)
			}
			if in, _ := e.fake.Instance(runningID); in.Reboots != 1 {
				t.Fatalf("instance rebooted %d times, want 1", in.Reboots)
			}
		})
	}
}

func TestRebootDryRun(t *testing.T) {
	e := setup(t)
	res, err := e.driver(t).Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{Mode: cloud.RebootSoft, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	c := fakecloud.OneCall(t, e.fake)
	if !c.DryRun || c.Action != "RebootInstances" || c.Error != "DryRunOperation" {
		t.Fatalf("recorded call %+v, want a dry run answered DryRunOperation", c)
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
		{"unknown instance", "i-0aaaaaaaaaaaaaaaa", "us-east-1", nil, false, cloud.ErrNotFound, "InvalidInstanceID.NotFound"},
		{"other region", westID, "us-east-1", nil, false, cloud.ErrNotFound, "InvalidInstanceID.NotFound"},
		{"malformed", "i-xyz", "us-east-1", nil, false, cloud.ErrNotFound, "InvalidInstanceID.Malformed"},
		{"dry run unknown", "i-0aaaaaaaaaaaaaaaa", "us-east-1", nil, true, cloud.ErrNotFound, "InvalidInstanceID.NotFound"},
		{"stopped", stoppedID, "us-east-1", nil, false, cloud.ErrInvalidState, "IncorrectInstanceState"},
		{"busy", runningID, "us-east-1", &fakecloud.Fault{Kind: fakecloud.FaultBusy}, false, cloud.ErrInvalidState, "IncorrectInstanceState"},
		{"not found fault", runningID, "us-east-1", &fakecloud.Fault{Kind: fakecloud.FaultNotFound}, false, cloud.ErrNotFound, "InvalidInstanceID.NotFound"},
		{"throttled", runningID, "us-east-1", &fakecloud.Fault{Kind: fakecloud.FaultThrottle}, false, cloud.ErrThrottled, "RequestLimitExceeded"},
		{"dry run throttled", runningID, "us-east-1", &fakecloud.Fault{Kind: fakecloud.FaultThrottle}, true, cloud.ErrThrottled, "RequestLimitExceeded"},
		{"not permitted", runningID, "us-east-1", &fakecloud.Fault{Kind: fakecloud.FaultAuth}, false, cloud.ErrUnauthorized, "UnauthorizedOperation"},
		{"dry run not permitted", runningID, "us-east-1", &fakecloud.Fault{Kind: fakecloud.FaultAuth}, true, cloud.ErrUnauthorized, "UnauthorizedOperation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			if tt.fault != nil {
				e.fake.SetFault(tt.id, *tt.fault)
			}
			_, err := e.driver(t).Reboot(context.Background(), inst(tt.id, tt.region), cloud.RebootOptions{DryRun: tt.dryRun})
			ce := fakecloud.WantCloudError(t, cloud.ProviderAWS, err, tt.kind, tt.code)
			// Exactly one call: the SDK's retryer would otherwise retry
			// throttling, which for a reboot means a second reboot.
			c := fakecloud.OneCall(t, e.fake)
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

func TestRebootWrongSecret(t *testing.T) {
	e := setup(t)
	isolate(t, testKey, "not-the-secret")
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrUnauthorized, "AuthFailure")
	if c := fakecloud.OneCall(t, e.fake); c.Error != "AuthFailure" || c.AccessKeyID != testKey {
		t.Fatalf("recorded call %+v", c)
	}
	if in, _ := e.fake.Instance(runningID); in.Reboots != 0 {
		t.Fatal("a call with a bad signature rebooted the instance")
	}
}

func TestRebootNoCredentials(t *testing.T) {
	e := setup(t)
	isolate(t, "", "")
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrUnauthorized, "")
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("a call went out without credentials: %+v", calls)
	}
}

// EC2 has one kind of reboot: hard is refused, naming what EC2 has,
// rather than answered with a reboot that is not what was asked.
func TestRebootHardRefused(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	for _, dryRun := range []bool{false, true} {
		_, err := d.Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{Mode: cloud.RebootHard, DryRun: dryRun})
		var ue *cloud.UnsupportedError
		if !errors.As(err, &ue) || ue.Mode != cloud.ModeHard || len(ue.Modes) != 1 || ue.Modes[0] != cloud.ModeSoft ||
			!strings.Contains(err.Error(), "soft") {
			t.Fatalf("dry run %v: %v, want an UnsupportedError naming soft", dryRun, err)
		}
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("calls went out: %+v", calls)
	}
	if got := d.Modes(cloud.ActionRestart); len(got) != 1 || got[0] != cloud.ModeSoft {
		t.Fatalf("Modes(restart) = %v", got)
	}
}

// The configured timeout is the wrapper's (pkg/cloud/providers tests it
// on this driver); the driver applies none of its own, so a call slower
// than the config's timeout but within its context's succeeds here.
func TestRebootNoOwnTimeout(t *testing.T) {
	e := setup(t)
	e.cfg.Timeout = 50 * time.Millisecond
	e.fake.SetFault(runningID, fakecloud.Fault{Delay: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.driver(t).Reboot(ctx, inst(runningID, "us-east-1"), cloud.RebootOptions{}); err != nil {
		t.Fatalf("the driver applied a timeout of its own: %v", err)
	}
	fakecloud.OneCall(t, e.fake)
}

func TestRebootCallerDeadline(t *testing.T) {
	e := setup(t)
	e.fake.SetFault(runningID, fakecloud.Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.driver(t).Reboot(ctx, inst(runningID, "us-east-1"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrTimeout, "")
	fakecloud.OneCall(t, e.fake)
}

func TestClientPerRegion(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	ctx := context.Background()
	for _, in := range []cloud.Instance{inst(runningID, "us-east-1"), inst(runningID, "us-east-1"), inst(westID, "us-west-2")} {
		if _, err := d.Reboot(ctx, in, cloud.RebootOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	first := d.clients["us-east-1"]
	if len(d.clients) != 2 || first == nil || d.clients["us-west-2"] == nil {
		t.Fatalf("clients: %v", d.clients)
	}
	if _, err := d.Reboot(ctx, inst(runningID, "us-east-1"), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	if d.clients["us-east-1"] != first {
		t.Fatal("the us-east-1 client was rebuilt")
	}
	regions := map[string]int{}
	for _, c := range e.fake.Calls() {
		regions[c.Region]++
	}
	if regions["us-east-1"] != 3 || regions["us-west-2"] != 1 {
		t.Fatalf("calls per signing region: %v", regions)
	}
}

func TestEndpointFromEnvironment(t *testing.T) {
	e := setup(t)
	t.Setenv("AWS_ENDPOINT_URL_EC2", e.srv.URL)
	e.cfg.Endpoint = ""
	if _, err := e.driver(t).Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	fakecloud.OneCall(t, e.fake)
}

func TestUntrustedServer(t *testing.T) {
	e := setup(t)
	e.cfg.CAFile = ""
	_, err := e.driver(t).Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{})
	fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrUnavailable, "")
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("a call reached a server whose certificate is not trusted: %+v", calls)
	}
}

func TestNewBadCAFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{notPEM, filepath.Join(dir, "absent.crt")} {
		if _, err := New(context.Background(), cloud.ProviderConfig{CAFile: f}); err == nil {
			t.Errorf("New accepted caFile %s", f)
		}
	}
}

func TestRebootRefusesOtherInstances(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	for _, in := range []cloud.Instance{
		{Provider: cloud.ProviderTencentCloud, ID: "ins-abcd1234", Region: "ap-guangzhou"},
		{Provider: cloud.ProviderAWS, ID: runningID},
	} {
		if _, err := d.Reboot(context.Background(), in, cloud.RebootOptions{}); err == nil {
			t.Errorf("Reboot(%+v) succeeded", in)
		}
	}
	if _, err := d.Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{Mode: "gentle"}); err == nil {
		t.Error("an unknown mode was accepted")
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("calls went out: %+v", calls)
	}
}

// An answer that is not EC2's (an HTML page with 200 from a proxy or
// captive portal, an answer without a request ID) is never a success: it
// is ErrBadAnswer, whose outcome is unknown.
func TestRebootMalformedAnswers(t *testing.T) {
	for _, kind := range []string{fakecloud.FaultMalformed, fakecloud.FaultNoRequestID} {
		for _, dryRun := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/dryRun=%v", kind, dryRun), func(t *testing.T) {
				e := setup(t)
				e.fake.SetFault(runningID, fakecloud.Fault{Kind: kind})
				res, err := e.driver(t).Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{DryRun: dryRun})
				if err == nil {
					t.Fatalf("a malformed answer was taken for success: %+v", res)
				}
				ce := fakecloud.WantCloudError(t, cloud.ProviderAWS, err, cloud.ErrBadAnswer, "")
				if ce.NotSent || !strings.Contains(ce.Error(), "unknown") {
					t.Errorf("%v: want an error saying the outcome is unknown", ce)
				}
				fakecloud.OneCall(t, e.fake)
			})
		}
	}
}

// roleCredentials answers AssumeRoleWithWebIdentity (STS, on the same TLS
// endpoint as the fake EC2, as AWS_ENDPOINT_URL_STS points it there) for
// the current token only, with credentials that expire at once, so that
// every call resolves them again. Every other request goes to ec2.
type roleCredentials struct {
	ec2     http.Handler
	mu      sync.Mutex
	current string            // the one token accepted now
	keys    map[string]string // token → access key ID it is exchanged for
	seen    []string
}

func (rc *roleCredentials) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	if form.Get("Action") != "AssumeRoleWithWebIdentity" {
		rc.ec2.ServeHTTP(w, r)
		return
	}
	rc.mu.Lock()
	tok := form.Get("WebIdentityToken")
	rc.seen = append(rc.seen, tok)
	ok := tok == rc.current
	key := rc.keys[tok]
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>expired</Message></Error><RequestId>r</RequestId></ErrorResponse>`)
		return
	}
	_, _ = fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>session</SessionToken><Expiration>%s</Expiration></Credentials>
<SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/reboot/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
		key, testSecret, time.Now().UTC().Format(time.RFC3339))
}

func (rc *roleCredentials) rotate(tok string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.current = tok
}

// rotatingTokenFile writes the first token and returns a function that
// rotates it, as the kubelet does with a projected ServiceAccount token.
func rotatingTokenFile(t *testing.T) (string, func(string)) {
	path := filepath.Join(t.TempDir(), "token")
	write := func(tok string) {
		if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return path, write
}

// IRSA: the SDK's web identity provider reads the token file at every
// retrieval, so a rotated token is used by the next call.
func TestIRSATokenRotation(t *testing.T) {
	isolate(t, "", "")
	fake := fakecloud.NewEC2(fakecloud.Options{
		Instances: []fakecloud.Instance{{ID: runningID, Region: "us-east-1"}},
		Secrets:   map[string]string{"AKIDWEB1": testSecret, "AKIDWEB2": testSecret},
	})
	rc := &roleCredentials{ec2: fake, current: "tok-1", keys: map[string]string{"tok-1": "AKIDWEB1", "tok-2": "AKIDWEB2"}}
	srv := httptest.NewTLSServer(rc)
	t.Cleanup(srv.Close)
	ca, err := fakecloud.WriteCAFile(srv, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path, write := rotatingTokenFile(t)
	write("tok-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/reboot")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path)
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	d, err := New(context.Background(), cloud.ProviderConfig{Enabled: true, Endpoint: srv.URL, CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	write("tok-2")
	rc.rotate("tok-2")
	if _, err := d.Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{}); err != nil {
		t.Fatalf("after the token rotated: %v", err)
	}
	calls := fake.Calls()
	if len(calls) != 2 || calls[0].AccessKeyID != "AKIDWEB1" || calls[1].AccessKeyID != "AKIDWEB2" {
		t.Fatalf("calls %+v, want one signed with each role credential", calls)
	}
}

// EKS Pod Identity: the container credentials provider reads its
// authorization token file at every retrieval.
func TestPodIdentityTokenRotation(t *testing.T) {
	e := setup(t)
	isolate(t, "", "")
	var mu sync.Mutex
	current, keys := "pod-tok-1", map[string]string{"pod-tok-1": "AKIDPOD1", "pod-tok-2": "AKIDPOD2"}
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("Authorization") != current {
			http.Error(w, `{"code":"AccessDenied"}`, http.StatusForbidden)
			return
		}
		_, _ = fmt.Fprintf(w, `{"AccessKeyId":%q,"SecretAccessKey":%q,"Token":"session","Expiration":%q}`,
			keys[current], testSecret, time.Now().UTC().Format(time.RFC3339))
	}))
	t.Cleanup(agent.Close)
	e.fake = fakecloud.NewEC2(fakecloud.Options{
		Instances: []fakecloud.Instance{{ID: runningID, Region: "us-east-1"}},
		Secrets:   map[string]string{"AKIDPOD1": testSecret, "AKIDPOD2": testSecret},
	})
	e.srv.Config.Handler = e.fake
	path, write := rotatingTokenFile(t)
	write("pod-tok-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.URL+"/v1/credentials")
	t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path)
	d := e.driver(t)
	if _, err := d.Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	write("pod-tok-2")
	mu.Lock()
	current = "pod-tok-2"
	mu.Unlock()
	if _, err := d.Reboot(context.Background(), inst(runningID, "us-east-1"), cloud.RebootOptions{}); err != nil {
		t.Fatalf("after the token rotated: %v", err)
	}
	calls := e.fake.Calls()
	if len(calls) != 2 || calls[0].AccessKeyID != "AKIDPOD1" || calls[1].AccessKeyID != "AKIDPOD2" {
		t.Fatalf("calls %+v, want one signed with each credential", calls)
	}
}
