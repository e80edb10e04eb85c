package fakecloud

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const ecsVersion = "2014-05-26"

// ECS is a fake of the Alibaba Cloud ECS API (RebootInstance,
// StopInstance, StartInstance, DescribeInstances): RPC style, parameters
// in the query, x-acs-* headers signed with ACS3-HMAC-SHA256, JSON
// answers with the HTTP status ECS uses (a passing dry run is a 400
// DryRunOperation). Instances keep their state: a stop makes one Stopped,
// a start Running again.
//
// The mutating calls carry no region (ECS has one endpoint per region);
// DescribeInstances' RegionId is checked and recorded.
type ECS struct {
	*store
	nonces nonces
	now    func() time.Time
}

// NewECS returns a fake ECS endpoint.
func NewECS(opts Options) *ECS {
	e := &ECS{store: newStore(ProviderAlibabaCloud, opts, ecsState), now: time.Now}
	e.store.faultKinds = []string{FaultLocked}
	return e
}

// ecsState canonicalises a state name as ECS spells it: Running,
// Stopped, Starting, Stopping, Pending.
func ecsState(s string) string {
	if s == "" {
		return "Running"
	}
	return strings.ToUpper(s[:1]) + strings.ToLower(s[1:])
}

type ecsAnswer struct {
	status        int
	code, message string
	// result is the body of a success, without RequestId.
	result map[string]any
	// denied is a Forbidden.RAM answer's AccessDeniedDetail.
	denied map[string]any
}

func (e *ECS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		e.serveAdmin(w, r, ecsState)
		return
	}
	reqID := strings.ToUpper(newRequestID())
	body, err := readBody(r)
	if err != nil {
		writeECS(w, reqID, ecsAnswer{status: http.StatusBadRequest, code: "InvalidParameter", message: err.Error()})
		return
	}
	params := r.URL.Query()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			writeECS(w, reqID, ecsAnswer{status: http.StatusBadRequest, code: "InvalidParameter", message: "the body is not form-encoded"})
			return
		}
		for k, vs := range form {
			params[k] = append(params[k], vs...)
		}
	}
	call := Call{
		Provider:  ProviderAlibabaCloud,
		Action:    r.Header.Get("x-acs-action"),
		Region:    params.Get("RegionId"),
		DryRun:    params.Get("DryRun") == "true",
		ForceStop: params.Get("ForceStop") == "true",
		RequestID: reqID,
		Time:      time.Now(),
	}
	if id := params.Get("InstanceId"); id != "" {
		call.InstanceIDs = []string{id}
	}
	auth, authErr := parseACS3(r.Header.Get("Authorization"))
	call.AccessKeyID = auth.accessKey

	e.mu.Lock()
	a, delay := e.decide(r, body, params, auth, authErr, &call)
	call.Error = a.code
	e.record(call)
	e.mu.Unlock()
	if e.opts.OnCall != nil {
		e.opts.OnCall(call)
	}
	holdAnswer(r, delay)
	switch a.code {
	case FaultMalformed:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "<html><body>Welcome to the network. Please log in.</body></html>")
	case FaultNoRequestID:
		writeJSON(w, http.StatusOK, map[string]any{})
	default:
		writeECS(w, reqID, a)
	}
}

// decide computes the answer and applies its effect. Call with e.mu held.
func (e *ECS) decide(r *http.Request, body []byte, params url.Values, auth acs3Auth, authErr error, call *Call) (ecsAnswer, time.Duration) {
	fail := func(status int, code, format string, args ...any) (ecsAnswer, time.Duration) {
		return ecsAnswer{status: status, code: code, message: fmt.Sprintf(format, args...)}, 0
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return fail(http.StatusBadRequest, "UnsupportedHTTPMethod", "the method %s is not supported", r.Method)
	}
	if authErr != nil {
		return fail(http.StatusBadRequest, "IncompleteSignature", "%v", authErr)
	}
	if err := checkACS3(r, body, auth, &e.nonces, e.now()); err != nil {
		return fail(err.status, err.code, "%s", err.message)
	}
	if len(e.opts.Secrets) > 0 {
		secret, ok := e.opts.Secrets[auth.accessKey]
		if !ok {
			return fail(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
		}
		if !verifyACS3(r, auth, secret) {
			return fail(http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
		}
	}
	if v := r.Header.Get("x-acs-version"); v != ecsVersion {
		return fail(http.StatusBadRequest, "InvalidVersion", "Specified parameter Version is not valid: %q.", v)
	}
	switch call.Action {
	case "RebootInstance", "StopInstance", "StartInstance":
		if params.Get("StoppedMode") != "" {
			call.StoppedMode = params.Get("StoppedMode")
		}
		return e.act(call)
	case "DescribeInstances":
		var ids []string
		if s := params.Get("InstanceIds"); s != "" {
			if err := json.Unmarshal([]byte(s), &ids); err != nil {
				return fail(http.StatusBadRequest, "InvalidInstanceIds.Malformed", "The specified parameter InstanceIds is not valid.")
			}
		}
		call.InstanceIDs = ids
		if call.Region == "" {
			return fail(http.StatusBadRequest, "MissingRegionId", "RegionId is mandatory for this action.")
		}
		return e.describe(call)
	case "":
		return fail(http.StatusBadRequest, "MissingParameter", "The header x-acs-action is missing.")
	default:
		return fail(http.StatusNotFound, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")
	}
}

// act is RebootInstance, StopInstance and StartInstance: the checks in
// ECS's order, then the effect (none for a dry run).
func (e *ECS) act(call *Call) (ecsAnswer, time.Duration) {
	fail := func(delay time.Duration, status int, code, format string, args ...any) (ecsAnswer, time.Duration) {
		return ecsAnswer{status: status, code: code, message: fmt.Sprintf(format, args...)}, delay
	}
	if len(call.InstanceIDs) == 0 {
		return fail(0, http.StatusBadRequest, "MissingInstanceId", "InstanceId is mandatory for this action.")
	}
	switch call.StoppedMode {
	case "", "KeepCharging", "StopCharging":
	default:
		return fail(0, http.StatusBadRequest, "InvalidStoppedMode", "The specified StoppedMode %q is not valid.", call.StoppedMode)
	}
	id := call.InstanceIDs[0]
	f := e.faults[id]
	switch f.Kind {
	case FaultMalformed, FaultNoRequestID:
		// Not ECS's answer: nothing happens to the instance.
		return ecsAnswer{code: f.Kind}, f.Delay
	case FaultThrottle:
		return fail(f.Delay, http.StatusBadRequest, "Throttling.User", "Request was denied due to user flow control.")
	case FaultAuth:
		a := ecsAnswer{status: http.StatusForbidden, code: "Forbidden.RAM",
			message: "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
			denied: map[string]any{
				"AuthAction": "ecs:" + call.Action, "NoPermissionType": "ImplicitDeny",
				"PolicyType": "AccountLevelIdentityBasedPolicy", "AuthPrincipalType": "SubUser",
				"AuthPrincipalDisplayName": "k8s-cloud-node-manager",
			}}
		return a, f.Delay
	}
	in, ok := e.instances[id]
	if !ok || f.Kind == FaultNotFound {
		return fail(f.Delay, http.StatusNotFound, "InvalidInstanceId.NotFound", "The specified InstanceId does not exist.")
	}
	if f.Kind == FaultLocked && call.Action != "StopInstance" {
		// A security lock refuses reboots and starts; stops go through.
		return fail(f.Delay, http.StatusForbidden, "InstanceLockedForSecurity", "The specified operation is denied as your instance is locked for security reasons.")
	}
	need := "Running"
	if call.Action == "StartInstance" {
		need = "Stopped"
	}
	if f.Kind == FaultBusy || in.State != need {
		return fail(f.Delay, http.StatusForbidden, "IncorrectInstanceStatus", "The current status of the resource does not support this operation.")
	}
	if call.DryRun {
		return fail(f.Delay, http.StatusBadRequest, "DryRunOperation", "Request validation has been passed with DryRun flag set.")
	}
	switch call.Action {
	case "RebootInstance":
		in.Reboots++
	case "StopInstance":
		in.State = "Stopped"
	case "StartInstance":
		in.State = "Running"
	}
	return ecsAnswer{status: http.StatusOK, result: map[string]any{}}, f.Delay
}

func (e *ECS) describe(call *Call) (ecsAnswer, time.Duration) {
	f, _ := e.faultFor(call.InstanceIDs)
	switch f.Kind {
	case FaultMalformed, FaultNoRequestID:
		return ecsAnswer{code: f.Kind}, f.Delay
	case FaultThrottle:
		return ecsAnswer{status: http.StatusBadRequest, code: "Throttling.User", message: "Request was denied due to user flow control."}, f.Delay
	}
	set := []map[string]any{}
	add := func(in *Instance) {
		// Unknown IDs are not an error for DescribeInstances: they are
		// just absent from the set, as in the real API.
		if in == nil || in.Region != call.Region || e.faults[in.ID].Kind == FaultNotFound {
			return
		}
		status := in.State
		if e.faults[in.ID].Kind == FaultBusy {
			status = "Starting"
		}
		locks := []map[string]string{}
		if e.faults[in.ID].Kind == FaultLocked {
			locks = append(locks, map[string]string{"LockReason": "security", "LockMsg": "The instance is locked for violating the security policy."})
		}
		set = append(set, map[string]any{
			"InstanceId":     in.ID,
			"RegionId":       in.Region,
			"ZoneId":         in.Region + "-a",
			"Status":         status,
			"OperationLocks": map[string]any{"LockReason": locks},
		})
	}
	if len(call.InstanceIDs) > 0 {
		for _, id := range call.InstanceIDs {
			add(e.instances[id])
		}
	} else {
		for _, in := range e.instances {
			add(in)
		}
	}
	return ecsAnswer{status: http.StatusOK, result: map[string]any{
		"TotalCount": len(set), "PageNumber": 1, "PageSize": 10,
		"Instances": map[string]any{"Instance": set},
	}}, f.Delay
}

// writeECS answers as ECS does: the result or an error object (Code,
// Message, HostId, Recommend), always with the RequestId, in the body and
// the x-acs-request-id header.
func writeECS(w http.ResponseWriter, reqID string, a ecsAnswer) {
	resp := map[string]any{}
	for k, v := range a.result {
		resp[k] = v
	}
	if a.code != "" {
		resp = map[string]any{
			"Code": a.code, "Message": a.message, "HostId": "ecs.aliyuncs.com",
			"Recommend": "https://api.aliyun.com/troubleshoot?q=" + a.code,
		}
		if a.denied != nil {
			resp["AccessDeniedDetail"] = a.denied
		}
	}
	resp["RequestId"] = reqID
	w.Header().Set("x-acs-request-id", reqID)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(resp)
}
