package fakecloud

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	ec2ID = "i-0123456789abcdef0"
	cvmID = "ins-abcd1234"
)

// ec2Request builds a raw EC2 Query request with a well-formed but
// unverified SigV4 header; the fakes under test have no secrets unless a
// test gives them some.
func ec2Request(t *testing.T, srv *httptest.Server, form url.Values, region string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("X-Amz-Date", "20260101T000000Z")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDRAW/20260101/"+region+
		"/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="+strings.Repeat("ab", 32))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type ec2Err struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

func TestEC2WireFormat(t *testing.T) {
	f := NewEC2(Options{Instances: []Instance{{ID: ec2ID, Region: "us-east-1"}}})
	srv := httptest.NewTLSServer(f)
	defer srv.Close()

	reboot := url.Values{"Action": {"RebootInstances"}, "Version": {"2016-11-15"}, "InstanceId.1": {ec2ID}}
	resp := ec2Request(t, srv, reboot, "us-east-1")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<RebootInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`) ||
		!strings.Contains(string(body), "<return>true</return>") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Amzn-Requestid") == "" || !strings.Contains(string(body), "<requestId>"+resp.Header.Get("X-Amzn-Requestid")+"</requestId>") {
		t.Errorf("request ID header %q not in body %s", resp.Header.Get("X-Amzn-Requestid"), body)
	}

	tests := []struct {
		name   string
		form   url.Values
		region string
		status int
		code   string
	}{
		{"dry run", url.Values{"Action": {"RebootInstances"}, "Version": {"2016-11-15"}, "InstanceId.1": {ec2ID}, "DryRun": {"true"}}, "us-east-1", 412, "DryRunOperation"},
		{"unknown", url.Values{"Action": {"RebootInstances"}, "Version": {"2016-11-15"}, "InstanceId.1": {"i-00000000"}}, "us-east-1", 400, "InvalidInstanceID.NotFound"},
		{"wrong region", reboot, "eu-west-1", 400, "InvalidInstanceID.NotFound"},
		{"malformed", url.Values{"Action": {"RebootInstances"}, "Version": {"2016-11-15"}, "InstanceId.1": {"i-XYZ"}}, "us-east-1", 400, "InvalidInstanceID.Malformed"},
		{"no ids", url.Values{"Action": {"RebootInstances"}, "Version": {"2016-11-15"}}, "us-east-1", 400, "MissingParameter"},
		{"other action", url.Values{"Action": {"TerminateInstances"}, "Version": {"2016-11-15"}, "InstanceId.1": {ec2ID}}, "us-east-1", 400, "InvalidAction"},
		{"no action", url.Values{"Version": {"2016-11-15"}}, "us-east-1", 400, "MissingAction"},
		{"old version", url.Values{"Action": {"RebootInstances"}, "Version": {"2014-01-01"}, "InstanceId.1": {ec2ID}}, "us-east-1", 400, "NoSuchVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ec2Request(t, srv, tt.form, tt.region)
			var e ec2Err
			if err := xml.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || e.Code != tt.code || e.Message == "" || e.RequestID == "" {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, e, tt.status, tt.code)
			}
		})
	}
	if in, _ := f.Instance(ec2ID); in.Reboots != 1 {
		t.Errorf("reboots %d, want 1 (only the first call)", in.Reboots)
	}
	calls := f.Calls()
	if len(calls) != 1+len(tests) || calls[1].DryRun != true || calls[0].AccessKeyID != "AKIDRAW" || calls[2].Region != "us-east-1" {
		t.Errorf("calls %+v", calls)
	}
}

func TestEC2RejectsBadAuthorization(t *testing.T) {
	f := NewEC2(Options{Instances: []Instance{{ID: ec2ID, Region: "us-east-1"}}})
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	form := url.Values{"Action": {"RebootInstances"}, "Version": {"2016-11-15"}, "InstanceId.1": {ec2ID}}
	for name, auth := range map[string]string{
		"none":          "",
		"other scheme":  "AWS4-HMAC-SHA512 Credential=K/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("ab", 32),
		"other service": "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("ab", 32),
		"short scope":   "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/ec2, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("ab", 32),
		"no host":       "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/ec2/aws4_request, SignedHeaders=x-amz-date, Signature=" + strings.Repeat("ab", 32),
		"bad signature": "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=xyz",
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e ec2Err
			_ = xml.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != http.StatusUnauthorized || e.Code != "AuthFailure" {
				t.Fatalf("got %d %+v, want 401 AuthFailure", resp.StatusCode, e)
			}
		})
	}
	if in, _ := f.Instance(ec2ID); in.Reboots != 0 {
		t.Fatal("an unauthenticated call rebooted the instance")
	}

	// With secrets, a well-formed header is not enough: the signature
	// must verify.
	f2 := NewEC2(Options{Instances: []Instance{{ID: ec2ID, Region: "us-east-1"}}, Secrets: map[string]string{"AKIDRAW": "s"}})
	srv2 := httptest.NewTLSServer(f2)
	defer srv2.Close()
	resp := ec2Request(t, srv2, form, "us-east-1")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an unverified signature was accepted: %d", resp.StatusCode)
	}
}

// cvmRequest sends a raw CVM call with a well-formed TC3 header.
func cvmRequest(t *testing.T, srv *httptest.Server, action, region, body string, hdr map[string]string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-TC-Action", action)
	req.Header.Set("X-TC-Version", "2017-03-12")
	req.Header.Set("X-TC-Region", region)
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("Authorization", "TC3-HMAC-SHA256 Credential=AKIDRAW/"+time.Unix(ts, 0).UTC().Format("2006-01-02")+
		"/cvm/tc3_request, SignedHeaders=content-type;host, Signature="+strings.Repeat("cd", 32))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: CVM answers 200 even for errors", resp.StatusCode)
	}
	var out struct{ Response map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Response["RequestId"] == "" || out.Response["RequestId"] == nil {
		t.Fatalf("no RequestId in %v", out.Response)
	}
	return out.Response
}

func errCode(r map[string]any) string {
	e, _ := r["Error"].(map[string]any)
	c, _ := e["Code"].(string)
	return c
}

func TestCVMWireFormat(t *testing.T) {
	f := NewCVM(Options{Instances: []Instance{{ID: cvmID, Region: "ap-guangzhou", State: "running"}, {ID: "ins-stopped1", Region: "ap-guangzhou", State: "stopped"}}})
	srv := httptest.NewTLSServer(f)
	defer srv.Close()

	r := cvmRequest(t, srv, "RebootInstances", "ap-guangzhou", `{"InstanceIds":["`+cvmID+`"],"StopType":"HARD"}`, nil)
	if errCode(r) != "" {
		t.Fatalf("reboot failed: %v", r)
	}
	r = cvmRequest(t, srv, "DescribeInstances", "ap-guangzhou", `{"InstanceIds":["`+cvmID+`","ins-zzzzzzzz"]}`, nil)
	set, _ := r["InstanceSet"].([]any)
	if errCode(r) != "" || r["TotalCount"] != float64(1) || len(set) != 1 || set[0].(map[string]any)["InstanceState"] != "RUNNING" {
		t.Fatalf("describe: %v", r)
	}

	tests := []struct {
		name, action, region, body string
		hdr                        map[string]string
		code                       string
	}{
		{"stopped", "RebootInstances", "ap-guangzhou", `{"InstanceIds":["ins-stopped1"]}`, nil, "UnsupportedOperation.InstanceStateStopped"},
		{"wrong region", "RebootInstances", "ap-shanghai", `{"InstanceIds":["` + cvmID + `"]}`, nil, "InvalidInstanceId.NotFound"},
		{"malformed", "RebootInstances", "ap-guangzhou", `{"InstanceIds":["ins-1"]}`, nil, "InvalidInstanceId.Malformed"},
		{"no ids", "RebootInstances", "ap-guangzhou", `{}`, nil, "MissingParameter"},
		{"force and stop type", "RebootInstances", "ap-guangzhou", `{"InstanceIds":["` + cvmID + `"],"ForceReboot":true,"StopType":"SOFT"}`, nil, "InvalidParameterCombination"},
		{"bad stop type", "RebootInstances", "ap-guangzhou", `{"InstanceIds":["` + cvmID + `"],"StopType":"GENTLE"}`, nil, "InvalidParameterValue"},
		{"unknown parameter", "RebootInstances", "ap-guangzhou", `{"InstanceIds":["` + cvmID + `"],"Bogus":1}`, nil, "UnknownParameter"},
		{"other action", "TerminateInstances", "ap-guangzhou", `{}`, nil, "InvalidAction"},
		{"no region", "RebootInstances", "", `{"InstanceIds":["` + cvmID + `"]}`, nil, "MissingParameter"},
		{"old version", "RebootInstances", "ap-guangzhou", `{}`, map[string]string{"X-TC-Version": "2015-01-01"}, "NoSuchVersion"},
		{"no auth", "RebootInstances", "ap-guangzhou", `{}`, map[string]string{"Authorization": "x"}, "AuthFailure.InvalidAuthorization"},
		{"other service", "RebootInstances", "ap-guangzhou", `{}`, map[string]string{"Authorization": "TC3-HMAC-SHA256 Credential=A/2026-01-01/cbs/tc3_request, SignedHeaders=content-type;host, Signature=" + strings.Repeat("cd", 32)}, "AuthFailure.InvalidAuthorization"},
		{"date mismatch", "RebootInstances", "ap-guangzhou", `{}`, map[string]string{"X-TC-Timestamp": "86400"}, "AuthFailure.SignatureFailure"},
		{"form body", "RebootInstances", "ap-guangzhou", `{}`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "InvalidParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cvmRequest(t, srv, tt.action, tt.region, tt.body, tt.hdr)
			if got := errCode(r); got != tt.code {
				t.Fatalf("got %q (%v), want %q", got, r, tt.code)
			}
		})
	}
	if in, _ := f.Instance(cvmID); in.Reboots != 1 {
		t.Errorf("reboots %d, want 1", in.Reboots)
	}
	if c := f.Calls()[0]; c.StopType != "HARD" || c.Region != "ap-guangzhou" || c.AccessKeyID != "AKIDRAW" || c.Action != "RebootInstances" {
		t.Errorf("first call %+v", c)
	}
}

func TestAdminEndpoints(t *testing.T) {
	var mu sync.Mutex
	var seen []Call
	f := NewCVM(Options{
		Instances: []Instance{{ID: cvmID, Region: "ap-guangzhou"}},
		OnCall: func(c Call) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, c)
		},
	})
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	do := func(method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	if resp := do(http.MethodPost, "/_fake/faults", `{"instanceId":"`+cvmID+`","kind":"throttle","delay":"1ms"}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST faults: %d", resp.StatusCode)
	}
	for _, bad := range []string{`{"instanceId":"x","kind":"meteor"}`, `{"instanceId":"x","delay":"soon"}`, `{"kind":"busy"}`, `{"instanceId":"x","extra":1}`} {
		if resp := do(http.MethodPost, "/_fake/faults", bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST faults %s: %d, want 400", bad, resp.StatusCode)
		}
	}
	if r := cvmRequest(t, srv, "RebootInstances", "ap-guangzhou", `{"InstanceIds":["`+cvmID+`"]}`, nil); errCode(r) != "RequestLimitExceeded" {
		t.Fatalf("fault not applied: %v", r)
	}

	resp := do(http.MethodGet, "/_fake/calls", "")
	var calls []Call
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(calls) != 1 || calls[0].Error != "RequestLimitExceeded" || calls[0].InstanceIDs[0] != cvmID || len(seen) != 1 || seen[0].RequestID != calls[0].RequestID {
		t.Fatalf("calls %+v, OnCall saw %+v", calls, seen)
	}
	mu.Unlock()

	do(http.MethodDelete, "/_fake/faults", "")
	if r := cvmRequest(t, srv, "RebootInstances", "ap-guangzhou", `{"InstanceIds":["`+cvmID+`"]}`, nil); errCode(r) != "" {
		t.Fatalf("fault not cleared: %v", r)
	}
	do(http.MethodDelete, "/_fake/calls", "")
	resp = do(http.MethodGet, "/_fake/calls", "")
	if b, _ := io.ReadAll(resp.Body); strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("calls after DELETE: %s", b)
	}

	if resp := do(http.MethodPost, "/_fake/instances", `{"id":"ins-new00001","region":"ap-shanghai","state":"stopped"}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST instances: %d", resp.StatusCode)
	}
	if in, ok := f.Instance("ins-new00001"); !ok || in.State != "STOPPED" || in.Provider != ProviderTencentCloud {
		t.Fatalf("added instance %+v %v", in, ok)
	}
	do(http.MethodPost, "/_fake/reset", "")
	if _, ok := f.Instance("ins-new00001"); ok || len(f.Calls()) != 0 {
		t.Fatal("reset kept state")
	}
	if in, _ := f.Instance(cvmID); in.Reboots != 0 {
		t.Fatal("reset kept the reboot count")
	}
	if resp := do(http.MethodGet, "/_fake/nothing", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown admin path: %d", resp.StatusCode)
	}
}

func TestDelayIsRecordedFirst(t *testing.T) {
	f := NewEC2(Options{Instances: []Instance{{ID: ec2ID, Region: "us-east-1"}}})
	f.SetFault(ec2ID, Fault{Delay: time.Minute})
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(url.Values{
		"Action": {"RebootInstances"}, "Version": {"2016-11-15"}, "InstanceId.1": {ec2ID},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("ab", 32))
	answered := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	// The call is recorded, and the reboot done, while the answer is held.
	for len(f.Calls()) == 0 {
		select {
		case err := <-answered:
			t.Fatalf("answered (%v) before the call was recorded", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	// A minute's delay: no answer may come in the next moments.
	select {
	case err := <-answered:
		t.Fatalf("a delayed answer came back early (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if calls := f.Calls(); len(calls) != 1 {
		t.Fatalf("calls %+v, want the one delayed call", calls)
	}
	// As in a real cloud, a client that gives up does not undo the reboot.
	cancel()
	<-answered
	if in, _ := f.Instance(ec2ID); in.Reboots != 1 {
		t.Fatalf("reboots %d", in.Reboots)
	}
}

// A client that gives up while an answer is held back must get nothing,
// not an empty success: on loopback an empty 200 can beat the client's
// own cancellation, and an SDK then reads it as a malformed answer. The
// client here half-closes its side, which cancels the request on the
// server as a real cancellation does, and keeps reading. Every fake
// holds its answers back with holdAnswer.
func TestGaveUpClientGetsNoAnswer(t *testing.T) {
	held := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(held)
		holdAnswer(r, time.Minute)
		_, _ = w.Write([]byte("too late"))
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST / HTTP/1.1\r\nHost: fake\r\nContent-Length: 0\r\n\r\n")
	<-held
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn)
	if len(got) != 0 {
		t.Fatalf("a client that gave up got an answer: %q", got)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the connection was neither answered nor closed")
	}
}
