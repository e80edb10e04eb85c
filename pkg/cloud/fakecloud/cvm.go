package fakecloud

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const cvmVersion = "2017-03-12"

// CVM is a fake of the Tencent Cloud CVM API (RebootInstances,
// StopInstances, StartInstances, DescribeInstances), API 3.0 with
// TC3-HMAC-SHA256 and JSON bodies. A stop leaves the instance STOPPED at
// once and a start RUNNING (real CVM passes through STOPPING and
// STARTING); each refuses an instance in another state with CVM's
// UnsupportedOperation.InstanceState<State>, as a reboot of a stopped one
// is refused.
type CVM struct {
	*store
	webIdentityToken string // guarded by store.mu
	assumed          int
}

// NewCVM returns a fake CVM endpoint. The region of a call is its
// X-TC-Region header.
func NewCVM(opts Options) *CVM {
	return &CVM{store: newStore(ProviderTencentCloud, opts, cvmState)}
}

func cvmState(s string) string {
	if s == "" {
		return "RUNNING"
	}
	return strings.ToUpper(s)
}

type cvmAnswer struct {
	code, message string
	// result is the Response object of a success, without RequestId.
	result map[string]any
}

func (c *CVM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		c.serveAdmin(w, r, cvmState)
		return
	}
	reqID := newRequestID()
	if r.Method != http.MethodPost {
		writeCVM(w, reqID, cvmAnswer{code: "UnsupportedProtocol", message: "this fake only takes POST requests"})
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeCVM(w, reqID, cvmAnswer{code: "InvalidParameter", message: err.Error()})
		return
	}
	if r.Header.Get("X-TC-Action") == "AssumeRoleWithWebIdentity" {
		c.assumeRole(w, reqID, body)
		return
	}
	call := Call{
		Provider:  ProviderTencentCloud,
		Action:    r.Header.Get("X-TC-Action"),
		Region:    r.Header.Get("X-TC-Region"),
		RequestID: reqID,
		Time:      time.Now(),
	}
	auth, authErr := parseTC3(r.Header.Get("Authorization"))
	call.AccessKeyID = auth.secretID

	c.mu.Lock()
	a, delay := c.decide(r, body, auth, authErr, &call)
	call.Error = a.code
	c.record(call)
	c.mu.Unlock()
	if c.opts.OnCall != nil {
		c.opts.OnCall(call)
	}
	holdAnswer(r, delay)
	switch a.code {
	case FaultMalformed:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	case FaultNoRequestID:
		writeJSON(w, http.StatusOK, map[string]any{"Response": map[string]any{}})
	default:
		writeCVM(w, reqID, a)
	}
}

// decide computes the answer and applies its effect. Call with c.mu held.
func (c *CVM) decide(r *http.Request, body []byte, auth tc3Auth, authErr error, call *Call) (cvmAnswer, time.Duration) {
	fail := func(code, format string, args ...any) (cvmAnswer, time.Duration) {
		return cvmAnswer{code: code, message: fmt.Sprintf(format, args...)}, 0
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fail("InvalidParameter", "Content-Type must be application/json for TC3-HMAC-SHA256, got %q", ct)
	}
	if authErr != nil {
		return fail("AuthFailure.InvalidAuthorization", "%v", authErr)
	}
	if err := checkTC3Date(auth, r.Header.Get("X-TC-Timestamp")); err != nil {
		return fail("AuthFailure.SignatureFailure", "%v", err)
	}
	if len(c.opts.Secrets) > 0 {
		secret, ok := c.opts.Secrets[auth.secretID]
		if !ok {
			return fail("AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that your SecretId is correct.")
		}
		if !verifyTC3(r, body, auth, secret) {
			return fail("AuthFailure.SignatureFailure", "The provided credentials could not be validated. Please check your signature is correct.")
		}
	}
	if v := r.Header.Get("X-TC-Version"); v != cvmVersion {
		return fail("NoSuchVersion", "The requested version %q of API is not supported.", v)
	}
	if call.Region == "" {
		return fail("MissingParameter", "The request is missing a required parameter `Region`.")
	}

	switch call.Action {
	case "RebootInstances":
		var req struct {
			InstanceIds []string
			ForceReboot *bool
			StopType    *string
		}
		if err := decodeCVMBody(body, &req); err != nil {
			return fail("UnknownParameter", "%v", err)
		}
		call.InstanceIDs = req.InstanceIds
		if req.StopType != nil {
			call.StopType = *req.StopType
		}
		return c.reboot(call, req.ForceReboot != nil)
	case "StopInstances":
		var req struct {
			InstanceIds []string
			ForceStop   *bool
			StopType    *string
			StoppedMode *string
		}
		if err := decodeCVMBody(body, &req); err != nil {
			return fail("UnknownParameter", "%v", err)
		}
		call.InstanceIDs = req.InstanceIds
		if req.StopType != nil {
			call.StopType = *req.StopType
		}
		if req.StoppedMode != nil {
			call.StoppedMode = *req.StoppedMode
		}
		return c.stopStart(call, req.ForceStop != nil)
	case "StartInstances":
		var req struct{ InstanceIds []string }
		if err := decodeCVMBody(body, &req); err != nil {
			return fail("UnknownParameter", "%v", err)
		}
		call.InstanceIDs = req.InstanceIds
		return c.stopStart(call, false)
	case "DescribeInstances":
		var req struct {
			InstanceIds []string
			Filters     []json.RawMessage
			Offset      *int64
			Limit       *int64
		}
		if err := decodeCVMBody(body, &req); err != nil {
			return fail("UnknownParameter", "%v", err)
		}
		call.InstanceIDs = req.InstanceIds
		return c.describe(call)
	case "":
		return fail("MissingParameter", "The request is missing a required parameter `Action`.")
	default:
		return fail("InvalidAction", "The requested action `%s` does not exist.", call.Action)
	}
}

func (c *CVM) reboot(call *Call, forceReboot bool) (cvmAnswer, time.Duration) {
	fail := func(delay time.Duration, code, format string, args ...any) (cvmAnswer, time.Duration) {
		return cvmAnswer{code: code, message: fmt.Sprintf(format, args...)}, delay
	}
	ids := call.InstanceIDs
	switch {
	case len(ids) == 0:
		return fail(0, "MissingParameter", "The request is missing a required parameter `InstanceIds`.")
	case len(ids) > 100:
		return fail(0, "InvalidParameterValue.LimitExceeded", "At most 100 instances per request.")
	case forceReboot && call.StopType != "":
		return fail(0, "InvalidParameterCombination", "ForceReboot and StopType cannot be used together.")
	}
	switch call.StopType {
	case "", "SOFT", "HARD", "SOFT_FIRST":
	default:
		return fail(0, "InvalidParameterValue", "StopType `%s` is not one of SOFT, HARD, SOFT_FIRST.", call.StopType)
	}
	for _, id := range ids {
		if !validCVMID(id) {
			return fail(0, "InvalidInstanceId.Malformed", "The instance ID `%s` is malformed.", id)
		}
	}
	f, _ := c.faultFor(ids)
	switch f.Kind {
	case FaultMalformed, FaultNoRequestID:
		// Not CVM's answer: nothing happens to the instance.
		return cvmAnswer{code: f.Kind}, f.Delay
	case FaultThrottle:
		return fail(f.Delay, "RequestLimitExceeded", "Your current request times equals to `10` in a second, which exceeds the frequency limit `10` for a second. Please reduce the frequency of calls.")
	case FaultAuth:
		return fail(f.Delay, "AuthFailure.UnauthorizedOperation", "The request is not authorized by CAM.")
	}
	for _, id := range ids {
		in, ok := c.instances[id]
		if !ok || in.Region != call.Region || c.faults[id].Kind == FaultNotFound {
			return fail(f.Delay, "InvalidInstanceId.NotFound", "The instance `%s` does not exist.", id)
		}
	}
	for _, id := range ids {
		in := c.instances[id]
		if c.faults[id].Kind == FaultBusy {
			return fail(f.Delay, "OperationDenied.InstanceOperationInProgress", "The instance `%s` is being operated on. Please try again later.", id)
		}
		if in.State != "RUNNING" {
			return fail(f.Delay, "UnsupportedOperation.InstanceState"+camel(in.State), "The instance `%s` is %s and cannot be rebooted.", id, in.State)
		}
	}
	for _, id := range ids {
		c.instances[id].Reboots++
	}
	return cvmAnswer{result: map[string]any{}}, f.Delay
}

// stopStart is StopInstances (RUNNING → STOPPED) and StartInstances
// (STOPPED → RUNNING).
func (c *CVM) stopStart(call *Call, forceStop bool) (cvmAnswer, time.Duration) {
	fail := func(delay time.Duration, code, format string, args ...any) (cvmAnswer, time.Duration) {
		return cvmAnswer{code: code, message: fmt.Sprintf(format, args...)}, delay
	}
	stop := call.Action == "StopInstances"
	ids := call.InstanceIDs
	switch {
	case len(ids) == 0:
		return fail(0, "MissingParameter", "The request is missing a required parameter `InstanceIds`.")
	case len(ids) > 100:
		return fail(0, "InvalidParameterValue.LimitExceeded", "At most 100 instances per request.")
	case forceStop && call.StopType != "":
		return fail(0, "InvalidParameterCombination", "ForceStop and StopType cannot be used together.")
	}
	switch call.StopType {
	case "", "SOFT", "HARD", "SOFT_FIRST":
	default:
		return fail(0, "InvalidParameterValue", "StopType `%s` is not one of SOFT, HARD, SOFT_FIRST.", call.StopType)
	}
	switch call.StoppedMode {
	case "", "KEEP_CHARGING", "STOP_CHARGING":
	default:
		return fail(0, "InvalidParameterValue", "StoppedMode `%s` is not one of KEEP_CHARGING, STOP_CHARGING.", call.StoppedMode)
	}
	for _, id := range ids {
		if !validCVMID(id) {
			return fail(0, "InvalidInstanceId.Malformed", "The instance ID `%s` is malformed.", id)
		}
	}
	f, _ := c.faultFor(ids)
	switch f.Kind {
	case FaultMalformed, FaultNoRequestID:
		return cvmAnswer{code: f.Kind}, f.Delay
	case FaultThrottle:
		return fail(f.Delay, "RequestLimitExceeded", "Your current request times exceed the frequency limit.")
	case FaultAuth:
		return fail(f.Delay, "AuthFailure.UnauthorizedOperation", "The request is not authorized by CAM.")
	}
	from, to, verb := "STOPPED", "RUNNING", "started"
	if stop {
		from, to, verb = "RUNNING", "STOPPED", "stopped"
	}
	for _, id := range ids {
		in, ok := c.instances[id]
		if !ok || in.Region != call.Region || c.faults[id].Kind == FaultNotFound {
			return fail(f.Delay, "InvalidInstanceId.NotFound", "The instance `%s` does not exist.", id)
		}
		if c.faults[id].Kind == FaultBusy {
			return fail(f.Delay, "OperationDenied.InstanceOperationInProgress", "The instance `%s` is being operated on. Please try again later.", id)
		}
		if in.State != from {
			return fail(f.Delay, "UnsupportedOperation.InstanceState"+camel(in.State), "The instance `%s` is %s and cannot be %s.", id, in.State, verb)
		}
	}
	for _, id := range ids {
		c.instances[id].State = to
	}
	return cvmAnswer{result: map[string]any{}}, f.Delay
}

func (c *CVM) describe(call *Call) (cvmAnswer, time.Duration) {
	for _, id := range call.InstanceIDs {
		if !validCVMID(id) {
			return cvmAnswer{code: "InvalidInstanceId.Malformed", message: fmt.Sprintf("The instance ID `%s` is malformed.", id)}, 0
		}
	}
	f, _ := c.faultFor(call.InstanceIDs)
	switch f.Kind {
	case FaultMalformed, FaultNoRequestID:
		return cvmAnswer{code: f.Kind}, f.Delay
	case FaultThrottle:
		return cvmAnswer{code: "RequestLimitExceeded", message: "Your current request times exceed the frequency limit."}, f.Delay
	case FaultAuth:
		return cvmAnswer{code: "AuthFailure.UnauthorizedOperation", message: "The request is not authorized by CAM."}, f.Delay
	}
	set := []map[string]any{}
	add := func(in *Instance) {
		// Unknown IDs are not an error for DescribeInstances: they are
		// just absent from the set, as in the real API.
		if in == nil || in.Region != call.Region || c.faults[in.ID].Kind == FaultNotFound {
			return
		}
		op, opState := "RebootInstances", "SUCCESS"
		if c.faults[in.ID].Kind == FaultBusy {
			op, opState = "StopInstances", "OPERATING"
		}
		set = append(set, map[string]any{
			"InstanceId":           in.ID,
			"InstanceState":        in.State,
			"Placement":            map[string]any{"Zone": in.Region + "-1"},
			"LatestOperation":      op,
			"LatestOperationState": opState,
		})
	}
	if len(call.InstanceIDs) > 0 {
		for _, id := range call.InstanceIDs {
			add(c.instances[id])
		}
	} else {
		for _, in := range c.instances {
			add(in)
		}
	}
	return cvmAnswer{result: map[string]any{"TotalCount": len(set), "InstanceSet": set}}, f.Delay
}

func decodeCVMBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// writeCVM answers as API 3.0 does: HTTP 200 whatever happened, with
// either the result or an Error object, and the RequestId.
func writeCVM(w http.ResponseWriter, reqID string, a cvmAnswer) {
	resp := map[string]any{}
	for k, v := range a.result {
		resp[k] = v
	}
	if a.code != "" {
		resp = map[string]any{"Error": map[string]string{"Code": a.code, "Message": a.message}}
	}
	resp["RequestId"] = reqID
	writeJSON(w, http.StatusOK, map[string]any{"Response": resp})
}

func validCVMID(id string) bool {
	rest, ok := strings.CutPrefix(id, "ins-")
	if !ok || len(rest) != 8 {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

func camel(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.ToLower(s), "_") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// SetWebIdentityToken makes the fake's STS (AssumeRoleWithWebIdentity,
// served on the same endpoint, as TKE OIDC calls it) accept only token,
// as a real OIDC provider accepts only an unexpired ServiceAccount token.
// The temporary keys it issues are added to Secrets, and expire at once,
// so every call of a client makes it assume the role again.
func (c *CVM) SetWebIdentityToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.webIdentityToken = token
}

// AssumedRoles counts the role credentials STS issued.
func (c *CVM) AssumedRoles() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.assumed
}

func (c *CVM) assumeRole(w http.ResponseWriter, reqID string, body []byte) {
	var req struct {
		ProviderId, WebIdentityToken, RoleArn, RoleSessionName string
		DurationSeconds                                        int64
	}
	if err := decodeCVMBody(body, &req); err != nil {
		writeCVM(w, reqID, cvmAnswer{code: "InvalidParameter", message: err.Error()})
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.webIdentityToken == "" || req.WebIdentityToken != c.webIdentityToken || req.RoleArn == "" || req.ProviderId == "" {
		writeCVM(w, reqID, cvmAnswer{code: "InvalidParameter.WebIdentityTokenError", message: "the web identity token is not valid"})
		return
	}
	c.assumed++
	id, key := fmt.Sprintf("AKIDsts%06d", c.assumed), newRequestID()
	if c.opts.Secrets == nil {
		c.opts.Secrets = map[string]string{}
	}
	c.opts.Secrets[id] = key
	writeCVM(w, reqID, cvmAnswer{result: map[string]any{
		"Credentials": map[string]string{"Token": "token-" + id, "TmpSecretId": id, "TmpSecretKey": key},
		"ExpiredTime": time.Now().Unix(),
		"Expiration":  time.Now().UTC().Format(time.RFC3339),
	}})
}
