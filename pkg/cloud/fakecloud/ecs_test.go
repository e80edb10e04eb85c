package fakecloud

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"
)

const (
	ecsID     = "i-bp1abcdefghij0000001"
	ecsKey    = "LTAI5tTestTestTest0000"
	ecsSecret = "test-secret"
)

// ecsRequest is one ECS call, signed by the SDK's own ACS3 signer (not
// the fake's), then changed by tamper before it is sent.
type ecsRequest struct {
	action string
	query  map[string]string
	body   string
	date   time.Time
	nonce  string
	key    string
	secret string
}

func (er ecsRequest) send(t *testing.T, srv *httptest.Server, tamper func(*http.Request)) (int, map[string]any) {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	if er.date.IsZero() {
		er.date = time.Now()
	}
	if er.nonce == "" {
		er.nonce = newRequestID()
	}
	if er.key == "" {
		er.key, er.secret = ecsKey, ecsSecret
	}
	headers := map[string]*string{
		"host":                  dara.String(u.Host),
		"x-acs-action":          dara.String(er.action),
		"x-acs-version":         dara.String(ecsVersion),
		"x-acs-date":            dara.String(er.date.UTC().Format("2006-01-02T15:04:05Z")),
		"x-acs-signature-nonce": dara.String(er.nonce),
		"x-acs-content-sha256":  dara.String(sha256Hex([]byte(er.body))),
	}
	query := map[string]*string{}
	values := url.Values{}
	for k, v := range er.query {
		query[k] = dara.String(v)
		values.Set(k, v)
	}
	auth := openapiutil.GetAuthorization(&dara.Request{
		Method: dara.String(http.MethodPost), Pathname: dara.String("/"), Query: query, Headers: headers,
	}, dara.String("ACS3-HMAC-SHA256"), headers["x-acs-content-sha256"], dara.String(er.key), dara.String(er.secret))
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/?"+values.Encode(), strings.NewReader(er.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k != "host" {
			req.Header.Set(k, *v)
		}
	}
	req.Header.Set("Authorization", *auth)
	if tamper != nil {
		tamper(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("answer %q is not JSON: %v", data, err)
	}
	if out["RequestId"] == "" || out["RequestId"] != resp.Header.Get("x-acs-request-id") {
		t.Fatalf("answer %v: RequestId missing or not the header's %q", out, resp.Header.Get("x-acs-request-id"))
	}
	return resp.StatusCode, out
}

func newECSServer(t *testing.T) (*ECS, *httptest.Server) {
	t.Helper()
	f := NewECS(Options{
		Instances: []Instance{{ID: ecsID, Region: "cn-hangzhou"}},
		Secrets:   map[string]string{ecsKey: ecsSecret},
	})
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func reboot() ecsRequest {
	return ecsRequest{action: "RebootInstance", query: map[string]string{"InstanceId": ecsID, "ForceStop": "false"}}
}

// The ACS3 checks, each on a request the SDK's signer made good: only the
// untouched one reboots.
func TestECSSignature(t *testing.T) {
	f, srv := newECSServer(t)
	if status, out := reboot().send(t, srv, nil); status != http.StatusOK || out["Code"] != nil {
		t.Fatalf("a good request: %d %v", status, out)
	}
	replayed := reboot()
	replayed.nonce = "nonce-used-twice"
	if status, _ := replayed.send(t, srv, nil); status != http.StatusOK {
		t.Fatalf("first use of a nonce: %d", status)
	}
	old := reboot()
	old.date = time.Now().Add(-20 * time.Minute)
	future := reboot()
	future.date = time.Now().Add(20 * time.Minute)
	unknown := reboot()
	unknown.key, unknown.secret = "LTAI5tNobodyNobody0000", ecsSecret
	wrongSecret := reboot()
	wrongSecret.key, wrongSecret.secret = ecsKey, "not-the-secret"
	withBody := reboot()
	withBody.body = "x=1"

	for _, tc := range []struct {
		name   string
		req    ecsRequest
		tamper func(*http.Request)
		status int
		code   string
	}{
		{"replayed nonce", replayed, nil, http.StatusBadRequest, "SignatureNonceUsed"},
		{"date too old", old, nil, http.StatusBadRequest, "InvalidTimeStamp.Expired"},
		{"date too new", future, nil, http.StatusBadRequest, "InvalidTimeStamp.Expired"},
		{"unknown key", unknown, nil, http.StatusNotFound, "InvalidAccessKeyId.NotFound"},
		{"wrong secret", wrongSecret, nil, http.StatusBadRequest, "SignatureDoesNotMatch"},
		{"query changed", reboot(), func(r *http.Request) {
			q := r.URL.Query()
			q.Set("ForceStop", "true")
			r.URL.RawQuery = q.Encode()
		}, http.StatusBadRequest, "SignatureDoesNotMatch"},
		{"signed header changed", reboot(), func(r *http.Request) { r.Header.Set("x-acs-action", "StopInstance") }, http.StatusBadRequest, "SignatureDoesNotMatch"},
		{"payload not the hash", withBody, func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader("x=2"))
		}, http.StatusBadRequest, "SignatureDoesNotMatch"},
		{"unsigned x-acs header", reboot(), func(r *http.Request) { r.Header.Set("x-acs-extra", "1") }, http.StatusBadRequest, "IncompleteSignature"},
		{"date not signed", reboot(), func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "x-acs-date;", "", 1))
		}, http.StatusBadRequest, "IncompleteSignature"},
		{"other algorithm", reboot(), func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "ACS3-HMAC-SHA256", "ACS3-HMAC-SM3", 1))
		}, http.StatusBadRequest, "IncompleteSignature"},
		{"bad signature hex", reboot(), func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:len(a)-64]+strings.Repeat("0", 64))
		}, http.StatusBadRequest, "SignatureDoesNotMatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := tc.req.send(t, srv, tc.tamper)
			if status != tc.status || out["Code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", status, out, tc.status, tc.code)
			}
		})
	}
	if in, _ := f.Instance(ecsID); in.Reboots != 2 {
		t.Fatalf("%d reboots, want 2 (the good requests only)", in.Reboots)
	}
}

// ECS's answers and the instance's state across stop, start and a dry
// run; a security lock refuses reboots and starts, not stops.
func TestECSStateAndAnswers(t *testing.T) {
	f, srv := newECSServer(t)
	act := func(action string, extra map[string]string) (int, map[string]any) {
		q := map[string]string{"InstanceId": ecsID}
		for k, v := range extra {
			q[k] = v
		}
		return ecsRequest{action: action, query: q}.send(t, srv, nil)
	}
	state := func() string {
		_, out := ecsRequest{action: "DescribeInstances", query: map[string]string{"RegionId": "cn-hangzhou", "InstanceIds": `["` + ecsID + `"]`}}.send(t, srv, nil)
		set := out["Instances"].(map[string]any)["Instance"].([]any)
		if len(set) != 1 {
			t.Fatalf("DescribeInstances: %v", out)
		}
		return set[0].(map[string]any)["Status"].(string)
	}
	if status, out := act("StopInstance", map[string]string{"DryRun": "true"}); status != http.StatusBadRequest || out["Code"] != "DryRunOperation" || state() != "Running" {
		t.Fatalf("dry-run stop: %d %v", status, out)
	}
	if status, _ := act("StopInstance", map[string]string{"StoppedMode": "KeepCharging"}); status != http.StatusOK || state() != "Stopped" {
		t.Fatalf("stop: %d, state %s", status, state())
	}
	if status, out := act("RebootInstance", nil); status != http.StatusForbidden || out["Code"] != "IncorrectInstanceStatus" {
		t.Fatalf("reboot of a stopped instance: %d %v", status, out)
	}
	if status, _ := act("StartInstance", nil); status != http.StatusOK || state() != "Running" {
		t.Fatalf("start: %d, state %s", status, state())
	}
	if status, out := act("StopInstance", map[string]string{"StoppedMode": "Whenever"}); status != http.StatusBadRequest || out["Code"] != "InvalidStoppedMode" {
		t.Fatalf("bad StoppedMode: %d %v", status, out)
	}
	unknown := ecsRequest{action: "RebootInstance", query: map[string]string{"InstanceId": "i-bp1nosuchinstance0000"}}
	if status, out := unknown.send(t, srv, nil); status != http.StatusNotFound || out["Code"] != "InvalidInstanceId.NotFound" {
		t.Fatalf("unknown instance: %d %v", status, out)
	}
	if status, out := act("DeleteInstance", nil); status != http.StatusNotFound || out["Code"] != "InvalidAction.NotFound" {
		t.Fatalf("unknown action: %d %v", status, out)
	}

	f.SetFault(ecsID, Fault{Kind: FaultLocked})
	_, out := ecsRequest{action: "DescribeInstances", query: map[string]string{"RegionId": "cn-hangzhou"}}.send(t, srv, nil)
	locks := out["Instances"].(map[string]any)["Instance"].([]any)[0].(map[string]any)["OperationLocks"].(map[string]any)["LockReason"].([]any)
	if len(locks) != 1 || locks[0].(map[string]any)["LockReason"] != "security" {
		t.Fatalf("locks %v", locks)
	}
	for _, action := range []string{"RebootInstance", "StartInstance"} {
		if status, out := act(action, nil); status != http.StatusForbidden || out["Code"] != "InstanceLockedForSecurity" {
			t.Fatalf("%s of a locked instance: %d %v", action, status, out)
		}
	}
	if status, _ := act("StopInstance", nil); status != http.StatusOK {
		t.Fatalf("stop of a locked instance: %d", status)
	}
	f.SetFault(ecsID, Fault{Kind: FaultAuth})
	if status, out := act("StartInstance", nil); status != http.StatusForbidden || out["Code"] != "Forbidden.RAM" ||
		out["AccessDeniedDetail"].(map[string]any)["AuthAction"] != "ecs:StartInstance" {
		t.Fatalf("forbidden: %d %v", status, out)
	}
	// Another region's DescribeInstances does not see the instance.
	_, out = ecsRequest{action: "DescribeInstances", query: map[string]string{"RegionId": "cn-beijing"}}.send(t, srv, nil)
	if n := out["TotalCount"]; n != float64(0) {
		t.Fatalf("cn-beijing sees %v instances", n)
	}
	calls := f.Calls()
	if c := calls[len(calls)-1]; c.Action != "DescribeInstances" || c.Region != "cn-beijing" || c.AccessKeyID != ecsKey {
		t.Fatalf("last call %+v", c)
	}
}
