package fakecloud

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	gceProject = "my-project-1"
	gceZone    = "us-central1-a"
	gceName    = "gke-pool-1-abcd"
	gceEmail   = "node-manager@my-project-1.iam.gserviceaccount.com"
)

var (
	testAccountOnce sync.Once
	testAccount     *ServiceAccount
	otherAccount    *ServiceAccount
)

// accounts returns two service accounts made once: key generation is the
// slow part of these tests.
func accounts(t *testing.T) (*ServiceAccount, *ServiceAccount) {
	t.Helper()
	testAccountOnce.Do(func() {
		var err error
		if testAccount, err = NewServiceAccount(gceEmail); err != nil {
			panic(err)
		}
		if otherAccount, err = NewServiceAccount("intruder@elsewhere.iam.gserviceaccount.com"); err != nil {
			panic(err)
		}
	})
	a := *testAccount
	return &a, otherAccount
}

type gceFixture struct {
	f   *GCE
	srv *httptest.Server
	sa  *ServiceAccount
}

func newGCEFixture(t *testing.T, perms []string, instances ...Instance) *gceFixture {
	t.Helper()
	sa, _ := accounts(t)
	sa.Permissions = perms
	if instances == nil {
		instances = []Instance{
			{ID: gceName, Project: gceProject, Zone: gceZone},
			{ID: "stopped-vm", Project: gceProject, Zone: gceZone, State: "terminated"},
		}
	}
	f := NewGCE(Options{Instances: instances}, sa)
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	return &gceFixture{f: f, srv: srv, sa: sa}
}

// jwt signs claims with key as a service-account assertion.
func jwt(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	d := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (x *gceFixture) claims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss": x.sa.Email, "aud": x.srv.URL + TokenPath,
		"scope": "https://www.googleapis.com/auth/compute", "iat": now, "exp": now + 3600,
	}
}

// tokenRequest posts a JWT-bearer grant and returns the status and body.
func (x *gceFixture) tokenRequest(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := x.srv.Client().PostForm(x.srv.URL+TokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (x *gceFixture) token(t *testing.T) string {
	t.Helper()
	code, out := x.tokenRequest(t, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, x.sa.Key, x.sa.KeyID, x.claims())}})
	tok, _ := out["access_token"].(string)
	if code != http.StatusOK || tok == "" || out["token_type"] != "Bearer" {
		t.Fatalf("token grant: %d %v", code, out)
	}
	return tok
}

// compute calls the compute API and decodes the answer.
func (x *gceFixture) compute(t *testing.T, ctx context.Context, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, x.srv.URL+"/compute/v1/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := x.srv.Client().Do(req)
	if err != nil {
		return 0, map[string]any{"transport": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: not JSON (%v): %s", method, path, err, b)
	}
	return resp.StatusCode, out
}

func reason(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	errs, _ := e["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	r, _ := errs[0].(map[string]any)["reason"].(string)
	return r
}

const instPath = "projects/" + gceProject + "/zones/" + gceZone + "/instances/"

func TestGCETokenEndpointChecksTheGrant(t *testing.T) {
	x := newGCEFixture(t, nil)
	_, other := accounts(t)
	good := x.claims()
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	now := time.Now().Unix()
	tests := []struct {
		name string
		form url.Values
		want string
	}{
		{"other grant", url.Values{"grant_type": {"client_credentials"}, "assertion": {jwt(t, x.sa.Key, x.sa.KeyID, good)}}, "unsupported_grant_type"},
		{"signed by another key", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, other.Key, x.sa.KeyID, good)}}, "invalid_grant"},
		{"other kid", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, x.sa.Key, "0000", good)}}, "invalid_grant"},
		{"unknown issuer", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, other.Key, other.KeyID, with("iss", other.Email))}}, "invalid_grant"},
		{"aud is Google's", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, x.sa.Key, x.sa.KeyID, with("aud", "https://oauth2.googleapis.com/token"))}}, "invalid_grant"},
		{"expired", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, x.sa.Key, x.sa.KeyID, with("exp", now-10))}}, "invalid_grant"},
		{"too long-lived", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, x.sa.Key, x.sa.KeyID, with("exp", now+7200))}}, "invalid_grant"},
		{"from the future", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, x.sa.Key, x.sa.KeyID, with("iat", now+600))}}, "invalid_grant"},
		{"no scope", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, x.sa.Key, x.sa.KeyID, with("scope", nil))}}, "invalid_grant"},
		{"storage scope", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {jwt(t, x.sa.Key, x.sa.KeyID, with("scope", "https://www.googleapis.com/auth/devstorage.read_only"))}}, "invalid_grant"},
		{"not a JWT", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {"abc.def"}}, "invalid_grant"},
		{"tampered claims", url.Values{"grant_type": {jwtBearerGrant}, "assertion": {tamper(jwt(t, x.sa.Key, x.sa.KeyID, good))}}, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := x.tokenRequest(t, tt.form)
			if code != http.StatusBadRequest || out["error"] != tt.want || out["access_token"] != nil {
				t.Fatalf("got %d %v, want 400 %s", code, out, tt.want)
			}
		})
	}
	if g := x.f.Grants(); len(g) != 0 {
		t.Fatalf("refused grants issued tokens: %+v", g)
	}
	tok := x.token(t)
	if g := x.f.Grants(); len(g) != 1 || g[0].Token != tok || g[0].Email != gceEmail {
		t.Fatalf("grants %+v", g)
	}
}

// tamper swaps the claims of a signed JWT for others, keeping the
// signature.
func tamper(s string) string {
	parts := strings.Split(s, ".")
	c, _ := json.Marshal(map[string]any{"iss": gceEmail, "aud": "x", "scope": "https://www.googleapis.com/auth/compute"})
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(c) + "." + parts[2]
}

func TestGCEComputeTakesOnlyItsOwnTokens(t *testing.T) {
	x := newGCEFixture(t, nil)
	ctx := context.Background()
	for name, tok := range map[string]string{"none": "", "made up": "ya29.made-up", "another fake's": newGCEFixture(t, nil).token(t)} {
		t.Run(name, func(t *testing.T) {
			code, out := x.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/reset", "")
			if code != http.StatusUnauthorized || reason(out) != "authError" {
				t.Fatalf("got %d %v, want 401 authError", code, out)
			}
		})
	}
	if in, _ := x.f.Instance(gceName); in.Reboots != 0 {
		t.Fatal("an unauthenticated reset happened")
	}
	tok := x.token(t)
	x.f.RevokeTokens()
	if code, _ := x.compute(t, ctx, tok, http.MethodGet, instPath+gceName, ""); code != http.StatusUnauthorized {
		t.Fatalf("a revoked token was accepted: %d", code)
	}
	calls := x.f.Calls()
	if len(calls) != 4 || calls[0].Error != "authError" || calls[0].Action != GCEMethodReset {
		t.Fatalf("calls %+v", calls)
	}
}

func TestGCEWireFormat(t *testing.T) {
	x := newGCEFixture(t, nil)
	ctx := context.Background()
	tok := x.token(t)
	const reqID = "6f1c2a9e-0b7d-4c3e-9a55-0123456789ab"

	code, op := x.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/reset?requestId="+reqID, "")
	name, _ := op["name"].(string)
	if code != 200 || op["kind"] != "compute#operation" || op["status"] != "RUNNING" || op["operationType"] != "reset" ||
		!strings.HasPrefix(name, "operation-") || !strings.HasSuffix(op["targetLink"].(string), instPath+gceName) {
		t.Fatalf("reset: %d %v", code, op)
	}
	// The same key again: the first operation, nothing done again.
	if code, again := x.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/reset?requestId="+reqID, ""); code != 200 || again["name"] != name {
		t.Fatalf("replay: %d %v", code, again)
	}
	if in, _ := x.f.Instance(gceName); in.Reboots != 1 {
		t.Fatalf("reboots %d after a replayed key, want 1", in.Reboots)
	}
	opPath := "projects/" + gceProject + "/zones/" + gceZone + "/operations/" + name
	if code, done := x.compute(t, ctx, tok, http.MethodPost, opPath+"/wait", ""); code != 200 || done["status"] != "DONE" || done["error"] != nil {
		t.Fatalf("wait: %d %v", code, done)
	}
	if code, done := x.compute(t, ctx, tok, http.MethodGet, opPath, ""); code != 200 || done["status"] != "DONE" {
		t.Fatalf("get: %d %v", code, done)
	}

	// Stop (hard), then a reset of the stopped instance is refused, then start.
	if code, op := x.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/stop?noGracefulShutdown=true&requestId=7f1c2a9e-0b7d-4c3e-9a55-0123456789ab", ""); code != 200 || op["operationType"] != "stop" {
		t.Fatalf("stop: %d %v", code, op)
	}
	if code, in := x.compute(t, ctx, tok, http.MethodGet, instPath+gceName, ""); code != 200 || in["status"] != "TERMINATED" || in["name"] != gceName {
		t.Fatalf("get: %d %v", code, in)
	}
	if code, out := x.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/reset", ""); code != 400 || reason(out) != "resourceNotReady" {
		t.Fatalf("reset of a stopped instance: %d %v", code, out)
	}
	if code, _ := x.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/start", ""); code != 200 {
		t.Fatalf("start: %d", code)
	}
	if in, _ := x.f.Instance(gceName); in.State != "RUNNING" {
		t.Fatalf("state %s after start", in.State)
	}

	tests := []struct {
		name, method, path string
		status             int
		reason             string
	}{
		{"unknown instance", "POST", instPath + "nope/reset", 404, "notFound"},
		{"other zone", "POST", "projects/" + gceProject + "/zones/us-central1-b/instances/" + gceName + "/reset", 404, "notFound"},
		{"other project", "POST", "projects/other-project/zones/" + gceZone + "/instances/" + gceName + "/reset", 404, "notFound"},
		{"unknown operation", "GET", "projects/" + gceProject + "/zones/" + gceZone + "/operations/operation-1", 404, "notFound"},
		{"bad request ID", "POST", instPath + gceName + "/reset?requestId=not-a-uuid", 400, "invalid"},
		{"zero request ID", "POST", instPath + gceName + "/reset?requestId=00000000-0000-0000-0000-000000000000", 400, "invalid"},
		{"other method", "POST", instPath + gceName + "/delete", 404, "notFound"},
		{"GET of a verb", "GET", instPath + gceName + "/reset", 404, "notFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := x.compute(t, ctx, tok, tt.method, tt.path, "")
			if code != tt.status || reason(out) != tt.reason {
				t.Fatalf("got %d %v, want %d %s", code, out, tt.status, tt.reason)
			}
		})
	}

	calls := x.f.Calls()
	first := calls[0]
	if first.Action != GCEMethodReset || first.Project != gceProject || first.Zone != gceZone || first.Region != "us-central1" ||
		first.InstanceIDs[0] != gceName || first.ClientRequestID != reqID || first.RequestID != name || first.Token != tok ||
		first.AccessKeyID != gceEmail || first.Replay {
		t.Errorf("first call %+v", first)
	}
	if !calls[1].Replay || calls[1].RequestID != name {
		t.Errorf("replayed call %+v", calls[1])
	}
	if stop := calls[4]; stop.Action != GCEMethodStop || !stop.NoGracefulShutdown {
		t.Errorf("stop call %+v", stop)
	}
}

func TestGCEPermissionsAndFaults(t *testing.T) {
	x := newGCEFixture(t, []string{"compute.instances.get", "compute.zoneOperations.get"})
	ctx := context.Background()
	tok := x.token(t)

	code, out := x.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/reset", "")
	msg, _ := out["error"].(map[string]any)["message"].(string)
	if code != 403 || reason(out) != "forbidden" || !strings.Contains(msg, "compute.instances.reset") {
		t.Fatalf("reset without the permission: %d %v", code, out)
	}
	code, out = x.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/testIamPermissions",
		`{"permissions":["compute.instances.reset","compute.instances.get"]}`)
	if got, _ := out["permissions"].([]any); code != 200 || len(got) != 1 || got[0] != "compute.instances.get" {
		t.Fatalf("testIamPermissions: %d %v", code, out)
	}
	if c := x.f.Calls(); c[len(c)-1].Permissions[0] != "compute.instances.reset" {
		t.Errorf("asked permissions not recorded: %+v", c[len(c)-1])
	}

	y := newGCEFixture(t, nil)
	tok = y.token(t)
	for _, tt := range []struct {
		fault  string
		status int
		reason string
	}{
		{FaultThrottle, 429, "rateLimitExceeded"},
		{FaultUnavailable, 503, "backendError"},
		{FaultNotFound, 404, "notFound"},
		{FaultAuth, 403, "forbidden"},
		{FaultBusy, 400, "resourceNotReady"},
	} {
		t.Run(tt.fault, func(t *testing.T) {
			y.f.SetFault(gceName, Fault{Kind: tt.fault})
			defer y.f.ClearFaults()
			code, out := y.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/reset", "")
			if code != tt.status || reason(out) != tt.reason {
				t.Fatalf("got %d %v, want %d %s", code, out, tt.status, tt.reason)
			}
		})
	}
	y.f.SetFault(gceName, Fault{Kind: FaultAuth})
	if _, out := y.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/testIamPermissions", `{"permissions":["compute.instances.reset"]}`); out["permissions"] != nil {
		t.Fatalf("the auth fault still grants: %v", out)
	}
	if in, _ := y.f.Instance(gceName); in.Reboots != 0 {
		t.Fatalf("a refused reset counted: %d", in.Reboots)
	}

	// An operation that ends in an error, and one that never ends.
	y.f.SetFault(gceName, Fault{Kind: FaultOperationError})
	_, op := y.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/reset", "")
	opPath := "projects/" + gceProject + "/zones/" + gceZone + "/operations/" + op["name"].(string)
	_, done := y.compute(t, ctx, tok, http.MethodPost, opPath+"/wait", "")
	if done["status"] != "DONE" || done["error"] == nil || done["httpErrorStatusCode"] != float64(500) {
		t.Fatalf("failed operation: %v", done)
	}
	if in, _ := y.f.Instance(gceName); in.Reboots != 0 {
		t.Fatalf("a failed reset counted: %d", in.Reboots)
	}
	y.f.SetFault(gceName, Fault{Kind: FaultStuck})
	_, op = y.compute(t, ctx, tok, http.MethodPost, instPath+gceName+"/reset", "")
	opPath = "projects/" + gceProject + "/zones/" + gceZone + "/operations/" + op["name"].(string)
	if _, got := y.compute(t, ctx, tok, http.MethodGet, opPath, ""); got["status"] != "RUNNING" {
		t.Fatalf("stuck operation: %v", got)
	}
	// The wait blocks until the client gives up.
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		for len(y.f.Calls()) == 0 || y.f.Calls()[len(y.f.Calls())-1].Action != GCEMethodOperationWait {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	if code, out := y.compute(t, wctx, tok, http.MethodPost, opPath+"/wait", ""); code != 0 {
		t.Fatalf("a stuck wait answered: %d %v", code, out)
	}
}

func TestGCEKeyFileRoundTrip(t *testing.T) {
	sa, _ := accounts(t)
	path := filepath.Join(t.TempDir(), "key.json")
	if err := sa.WriteKeyFile(path, gceProject, "https://127.0.0.1:1/token"); err != nil {
		t.Fatal(err)
	}
	back, err := ReadServiceAccount(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Email != sa.Email || back.KeyID != sa.KeyID || !back.Key.Equal(sa.Key) {
		t.Fatalf("read back %+v", back)
	}
}

func TestGCEAdminInstances(t *testing.T) {
	x := newGCEFixture(t, nil)
	post := func(body string) int {
		resp, err := x.srv.Client().Post(x.srv.URL+"/_fake/instances", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(`{"id":"vm-2","region":"us-east1"}`); c != http.StatusBadRequest {
		t.Fatalf("an instance without project and zone: %d", c)
	}
	if c := post(`{"id":"vm-2","project":"p-123456","zone":"europe-west4-b","state":"terminated"}`); c != http.StatusNoContent {
		t.Fatalf("add: %d", c)
	}
	in, ok := x.f.Instance("vm-2")
	if !ok || in.Region != "europe-west4" || in.State != "TERMINATED" || in.Provider != ProviderGCE {
		t.Fatalf("added %+v", in)
	}
	resp, err := x.srv.Client().Post(x.srv.URL+"/_fake/faults", "application/json", strings.NewReader(`{"instanceId":"vm-2","kind":"stuck"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a GCE fault kind refused: %d", resp.StatusCode)
	}
	x.token(t)
	resp, err = x.srv.Client().Get(x.srv.URL + "/_fake/tokens")
	if err != nil {
		t.Fatal(err)
	}
	var grants []TokenGrant
	_ = json.NewDecoder(resp.Body).Decode(&grants)
	resp.Body.Close()
	if len(grants) != 1 || grants[0].Email != gceEmail {
		t.Fatalf("grants %+v", grants)
	}
	resp, err = x.srv.Client().Post(x.srv.URL+"/_fake/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := x.f.Instance("vm-2"); ok || len(x.f.Grants()) != 0 {
		t.Fatal("reset kept an added instance or the grants")
	}
}

// The fake kubelets follow GCE's resets, stops and starts as they do EC2's
// and CVM's; a replayed requestId did nothing, so no machine event.
func TestGCEMachineEvents(t *testing.T) {
	for _, tc := range []struct {
		call Call
		want string
	}{
		{Call{Provider: "gce", Action: GCEMethodReset, InstanceIDs: []string{"vm"}}, MachineRebooted},
		{Call{Provider: "gce", Action: GCEMethodStop, InstanceIDs: []string{"vm"}}, MachineStopped},
		{Call{Provider: "gce", Action: GCEMethodStart, InstanceIDs: []string{"vm"}}, MachineStarted},
		{Call{Provider: "gce", Action: GCEMethodReset, InstanceIDs: []string{"vm"}, Replay: true}, ""},
		{Call{Provider: "gce", Action: GCEMethodTestPermissions, InstanceIDs: []string{"vm"}}, ""},
	} {
		evs := tc.call.MachineEvents()
		got := ""
		if len(evs) == 1 {
			got = evs[0].Kind
		}
		if got != tc.want || len(evs) > 1 {
			t.Errorf("%s replay=%v: events %+v, want %q", tc.call.Action, tc.call.Replay, evs, tc.want)
		}
	}
}
