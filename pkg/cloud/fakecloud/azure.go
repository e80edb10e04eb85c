package fakecloud

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ProviderAzure is Azure's name in Call.Provider.
const ProviderAzure = "azure"

// Azure fault kinds, besides the shared ones (throttle 429, auth 403
// AuthorizationFailed, notfound 404 ResourceNotFound, busy 409
// OperationNotAllowed, malformed an HTML 200, norequestid a 202 without
// x-ms-request-id).
const (
	// FaultOpFailed accepts the call (202) and ends its operation Failed.
	FaultOpFailed = "opfailed"
	// FaultOpStuck accepts the call and never ends its operation.
	FaultOpStuck = "opstuck"
)

// Names of the calls the Azure fake records (Call.Action), as the SDK's
// operations are named. ActionScaleSetWide is the one no driver must ever
// send: an action on a whole scale set, which with an empty instance list
// acts on every instance.
const (
	AzureVMAction       = "VirtualMachines."           // + restart, powerOff, deallocate, start
	AzureVMSSVMAction   = "VirtualMachineScaleSetVMs." // + restart, …
	AzureInstanceView   = "InstanceView"
	AzureGetOperation   = "Operations.Get"
	ActionScaleSetWide  = "VirtualMachineScaleSets."
	azureAPIVersionHint = "api-version"
)

// AzureOptions configure the Azure fake.
type AzureOptions struct {
	// Instances: ID is the ARM resource ID of a VM or a scale-set
	// instance (compared case-insensitively, as ARM does), Region its
	// location, State its power state (running, stopped, deallocated;
	// empty means running).
	Instances []Instance
	// TenantID, ClientID and ClientSecret are the one service principal
	// the token endpoint knows.
	TenantID, ClientID, ClientSecret string
	// FederatedToken, if set, is also accepted as a client assertion of
	// ClientID (workload identity's token file).
	FederatedToken string
	// Audience is what a token's scope must name (<audience>/.default);
	// ARM refuses tokens for anything else. Empty means the fake's own
	// https://host:port, a custom cloud's audience.
	Audience string
	OnCall   func(Call)
}

// Azure is a fake of Entra ID's token endpoint (client credentials) and of
// ARM's Compute API for VMs and VMSS Uniform instances, with long-running
// operations answered 202 + Azure-AsyncOperation/Location and polled. ARM
// accepts only the tokens its token endpoint issued.
//
// Its paths: /{tenant}/oauth2/v2.0/token, /{tenant}/v2.0/.well-known/
// openid-configuration, /common/discovery/instance (what MSAL fetches),
// /subscriptions/… (ARM), /_fake/… (admin, as for the other fakes).
type Azure struct {
	*store
	aopts AzureOptions

	amu        sync.Mutex
	tokens     map[string]azureToken
	ops        map[string]*azureOp
	tokenCalls int
	discovery  int
}

type azureToken struct {
	clientID string
	scope    string
	expires  time.Time
}

type azureOp struct {
	id       string
	instance string // the stored instance ID
	action   string // restart, powerOff, …
	polls    int
	failed   bool
	stuck    bool
	done     bool
}

// NewAzure returns the fake; serve it on one listener, or AAD and ARM on
// two (it is one handler either way).
func NewAzure(o AzureOptions) *Azure {
	a := &Azure{
		store:  newStore(ProviderAzure, Options{Instances: o.Instances, OnCall: o.OnCall}, azureState),
		aopts:  o,
		tokens: map[string]azureToken{},
		ops:    map[string]*azureOp{},
	}
	a.store.faultKinds = []string{FaultOpFailed, FaultOpStuck}
	return a
}

func azureState(s string) string {
	if s == "" {
		return "running"
	}
	return strings.ToLower(s)
}

// TokenRequests counts the token requests the fake answered with a token.
func (a *Azure) TokenRequests() int {
	a.amu.Lock()
	defer a.amu.Unlock()
	return a.tokenCalls
}

// Instance returns one instance, its ID compared case-insensitively.
func (a *Azure) Instance(id string) (Instance, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if in := a.find(id); in != nil {
		return *in, true
	}
	return Instance{}, false
}

// find looks an instance up as ARM does, case-insensitively. Call with
// a.mu held.
func (a *Azure) find(id string) *Instance {
	for k, in := range a.instances {
		if strings.EqualFold(k, id) {
			return in
		}
	}
	return nil
}

func (a *Azure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/_fake/"):
		a.serveAdmin(w, r, azureState)
	case strings.HasPrefix(strings.ToLower(p), "/subscriptions/"):
		a.serveARM(w, r)
	default:
		a.serveAAD(w, r)
	}
}

// --- Entra ID ---

func aadError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": desc, "trace_id": newRequestID(), "correlation_id": newRequestID()})
}

func (a *Azure) serveAAD(w http.ResponseWriter, r *http.Request) {
	base := "https://" + r.Host
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/common/discovery/instance":
		a.amu.Lock()
		a.discovery++
		a.amu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"tenant_discovery_endpoint": base + "/" + a.aopts.TenantID + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata":                  []map[string]any{{"preferred_network": r.Host, "preferred_cache": r.Host, "aliases": []string{r.Host}}},
		})
	case r.Method == http.MethodGet && len(parts) == 4 && parts[1] == "v2.0" && parts[2] == ".well-known" && parts[3] == "openid-configuration":
		if parts[0] != a.aopts.TenantID {
			aadError(w, http.StatusBadRequest, "invalid_tenant", fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", parts[0]))
			return
		}
		t := base + "/" + parts[0]
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":         t + "/oauth2/v2.0/token",
			"authorization_endpoint": t + "/oauth2/v2.0/authorize",
			"issuer":                 t + "/v2.0",
			"jwks_uri":               t + "/discovery/v2.0/keys",
		})
	case r.Method == http.MethodPost && len(parts) == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" && parts[3] == "token":
		a.token(w, r, parts[0])
	default:
		aadError(w, http.StatusNotFound, "invalid_request", "AADSTS900561: this fake has no such endpoint: "+r.Method+" "+r.URL.Path)
	}
}

func (a *Azure) token(w http.ResponseWriter, r *http.Request, tenant string) {
	body, err := readBody(r)
	if err != nil {
		aadError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		aadError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if tenant != a.aopts.TenantID {
		aadError(w, http.StatusBadRequest, "invalid_tenant", fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", tenant))
		return
	}
	if form.Get("grant_type") != "client_credentials" {
		aadError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: this fake takes client_credentials only")
		return
	}
	if form.Get("client_id") != a.aopts.ClientID {
		aadError(w, http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory.", form.Get("client_id")))
		return
	}
	ok := false
	if s := form.Get("client_secret"); s != "" {
		ok = a.aopts.ClientSecret != "" && subtle.ConstantTimeCompare([]byte(s), []byte(a.aopts.ClientSecret)) == 1
	} else if as := form.Get("client_assertion"); as != "" {
		ok = a.aopts.FederatedToken != "" && form.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" &&
			subtle.ConstantTimeCompare([]byte(as), []byte(a.aopts.FederatedToken)) == 1
	}
	if !ok {
		aadError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	// MSAL adds openid, profile and offline_access to the resource's
	// scope; the token is for the one <resource>/.default.
	scope := ""
	for _, sc := range strings.Fields(form.Get("scope")) {
		if strings.HasSuffix(sc, "/.default") {
			scope = sc
		}
	}
	if scope == "" {
		aadError(w, http.StatusBadRequest, "invalid_scope", "AADSTS70011: the scope must be <resource>/.default")
		return
	}
	tok := "fake-aad." + strings.ReplaceAll(newRequestID()+newRequestID(), "-", "")
	a.amu.Lock()
	a.tokens[tok] = azureToken{clientID: a.aopts.ClientID, scope: scope, expires: time.Now().Add(time.Hour)}
	a.tokenCalls++
	a.amu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})
}

// --- ARM ---

type armAnswer struct {
	status  int
	code    string
	message string
	body    any
	header  map[string]string
}

func armErr(status int, code, msg string) armAnswer {
	return armAnswer{status: status, code: code, message: msg}
}

func (a *Azure) serveARM(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	call := Call{Provider: ProviderAzure, RequestID: reqID, Time: time.Now()}
	ans, delay := a.decideARM(r, &call)
	if ans.code != "" {
		call.Error = ans.code
	}
	if call.Action != "" {
		a.mu.Lock()
		a.record(call)
		a.mu.Unlock()
		if a.opts.OnCall != nil {
			a.opts.OnCall(call)
		}
	}
	holdAnswer(r, delay)
	switch ans.code {
	case FaultMalformed:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<html><body>Please sign in to the network</body></html>"))
		return
	case FaultNoRequestID:
	default:
		w.Header().Set("x-ms-request-id", reqID)
	}
	for k, v := range ans.header {
		w.Header().Set(k, v)
	}
	switch {
	case ans.code != "" && ans.code != FaultNoRequestID:
		writeJSON(w, ans.status, map[string]any{"error": map[string]any{"code": ans.code, "message": ans.message}})
	case ans.body != nil:
		writeJSON(w, ans.status, ans.body)
	default:
		w.WriteHeader(ans.status)
	}
}

// decideARM authenticates, routes and answers one ARM request.
func (a *Azure) decideARM(r *http.Request, call *Call) (armAnswer, time.Duration) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.amu.Lock()
	t, issued := a.tokens[tok]
	a.amu.Unlock()
	switch {
	case !ok || tok == "":
		return armErr(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."), 0
	case !issued:
		return armErr(http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid."), 0
	case time.Now().After(t.expires):
		return armErr(http.StatusUnauthorized, "ExpiredAuthenticationToken", "The access token expiry has passed."), 0
	case !audienceOK(t.scope, a.aopts.Audience, "https://"+r.Host):
		return armErr(http.StatusUnauthorized, "InvalidAuthenticationTokenAudience", fmt.Sprintf("The access token has been obtained for wrong audience or resource '%s'.", t.scope)), 0
	}
	call.AccessKeyID = t.clientID
	if r.URL.Query().Get(azureAPIVersionHint) == "" {
		return armErr(http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests."), 0
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	low := strings.Split(strings.ToLower(strings.Trim(r.URL.Path, "/")), "/")
	// /subscriptions/{s}/providers/Microsoft.Compute/locations/{l}/operations/{id}
	if r.Method == http.MethodGet && len(low) == 8 && low[2] == "providers" && low[3] == "microsoft.compute" && low[4] == "locations" && low[6] == "operations" {
		return a.operation(r, call, parts[7])
	}
	if len(low) < 8 || low[2] != "resourcegroups" || low[4] != "providers" || low[5] != "microsoft.compute" {
		return armErr(http.StatusNotFound, "InvalidResourceType", "this fake serves Microsoft.Compute VMs and scale-set VMs only"), 0
	}
	rg := parts[3]
	var id, verb, prefix string
	switch {
	case low[6] == "virtualmachines" && len(low) == 9:
		id, verb, prefix = strings.Join(parts[:8], "/"), parts[8], AzureVMAction
	case low[6] == "virtualmachinescalesets" && len(low) == 11 && low[8] == "virtualmachines":
		id, verb, prefix = strings.Join(parts[:10], "/"), parts[10], AzureVMSSVMAction
	case low[6] == "virtualmachinescalesets" && len(low) == 9 && r.Method == http.MethodPost:
		// What ARM does with it: the action on every instance of the
		// scale set (the listed ones, or all with an empty list).
		call.Action = ActionScaleSetWide + verbName(parts[8])
		return a.scaleSetWide(r, call, strings.Join(parts[:8], "/"))
	default:
		return armErr(http.StatusNotFound, "InvalidResourceType", "this fake serves Microsoft.Compute VMs and scale-set VMs only"), 0
	}
	id = "/" + id
	a.mu.Lock()
	defer a.mu.Unlock()
	in := a.find(id)
	call.InstanceIDs = []string{id}
	if in != nil {
		call.Region = in.Region
		call.InstanceIDs = []string{in.ID}
	}
	kind := "virtualMachines"
	if prefix == AzureVMSSVMAction {
		kind = "virtualMachineScaleSets/virtualMachines"
	}
	notFound := armErr(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The Resource 'Microsoft.Compute/%s/%s' under resource group '%s' was not found.", kind, parts[len(parts)-2], rg))
	if r.Method == http.MethodGet && strings.EqualFold(verb, "instanceView") {
		call.Action = AzureInstanceView
		call.DryRun = true
		if in == nil {
			return notFound, 0
		}
		if f, ok := a.faultFor(call.InstanceIDs); ok {
			if ans, hit := a.faultAnswer(f, call, id, "read"); hit {
				return ans, f.Delay
			}
		}
		return armAnswer{status: http.StatusOK, body: map[string]any{
			"statuses": []map[string]any{
				{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
				{"code": "PowerState/" + in.State, "level": "Info", "displayStatus": "VM " + in.State},
			},
		}}, 0
	}
	if r.Method != http.MethodPost {
		return armErr(http.StatusMethodNotAllowed, "MethodNotAllowed", "this fake answers POST actions and GET instanceView"), 0
	}
	call.Action = prefix + verbName(verb)
	if r.URL.Query().Get("skipShutdown") == "true" {
		call.StopType = "skipShutdown"
	}
	if body, _ := readBody(r); len(body) > 0 {
		return armErr(http.StatusBadRequest, "InvalidRequestContent", "an action on one instance takes no body"), 0
	}
	switch verbName(verb) {
	case "restart", "powerOff", "deallocate", "start":
	default:
		return armErr(http.StatusBadRequest, "InvalidRequestUri", fmt.Sprintf("no action %q", verb)), 0
	}
	if in == nil {
		return notFound, 0
	}
	f, hasFault := a.faultFor(call.InstanceIDs)
	if hasFault {
		if ans, hit := a.faultAnswer(f, call, id, verbName(verb)); hit {
			return ans, f.Delay
		}
	}
	if verbName(verb) == "restart" && in.State != "running" {
		return armErr(http.StatusConflict, "OperationNotAllowed", fmt.Sprintf("Operation 'restart' is not allowed on VM '%s' since the VM is %s.", parts[len(parts)-2], in.State)), f.Delay
	}
	op := &azureOp{id: newRequestID(), instance: in.ID, action: verbName(verb), failed: f.Kind == FaultOpFailed, stuck: f.Kind == FaultOpStuck}
	a.amu.Lock()
	a.ops[op.id] = op
	a.amu.Unlock()
	loc := in.Region
	if loc == "" {
		loc = "eastus"
	}
	opURL := fmt.Sprintf("https://%s/subscriptions/%s/providers/Microsoft.Compute/locations/%s/operations/%s?p=%s&api-version=%s",
		r.Host, parts[1], loc, op.id, newRequestID(), url.QueryEscape(r.URL.Query().Get(azureAPIVersionHint)))
	return armAnswer{status: http.StatusAccepted, header: map[string]string{
		"Azure-AsyncOperation": opURL,
		"Location":             opURL + "&monitor=true",
		"Retry-After":          "0",
	}}, f.Delay
}

func audienceOK(scope, audience, self string) bool {
	if audience == "" {
		audience = self
	}
	return scope == strings.TrimSuffix(audience, "/")+"/.default" || scope == audience+"/.default"
}

// verbName is the action's canonical spelling.
func verbName(v string) string {
	for _, n := range []string{"restart", "powerOff", "deallocate", "start"} {
		if strings.EqualFold(v, n) {
			return n
		}
	}
	return v
}

// faultAnswer answers a fault that refuses the call; hit is false for the
// faults that let it be accepted (operation faults, a bare delay).
func (a *Azure) faultAnswer(f Fault, call *Call, id, verb string) (armAnswer, bool) {
	switch f.Kind {
	case FaultThrottle:
		ans := armErr(http.StatusTooManyRequests, "TooManyRequests", "The request is being throttled as the limit has been reached for operation type - HighCostGet30Min.")
		ans.header = map[string]string{"Retry-After": "7"}
		return ans, true
	case FaultAuth:
		return armErr(http.StatusForbidden, "AuthorizationFailed", fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/%s/action' over scope '%s' or the scope is invalid.", call.AccessKeyID, call.AccessKeyID, verb, id)), true
	case FaultNotFound:
		return armErr(http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The Resource '%s' was not found.", id)), true
	case FaultBusy:
		return armErr(http.StatusConflict, "OperationNotAllowed", "Operation '"+verb+"' is not allowed since another operation is in progress on the VM."), true
	case FaultMalformed:
		return armAnswer{status: http.StatusOK, code: FaultMalformed}, true
	case FaultNoRequestID:
		return armAnswer{status: http.StatusAccepted, code: FaultNoRequestID, header: map[string]string{
			"Azure-AsyncOperation": "https://example.invalid/operations/x?api-version=1"}}, true
	}
	return armAnswer{}, false
}

func (a *Azure) scaleSetWide(r *http.Request, call *Call, scaleSet string) (armAnswer, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prefix := "/" + strings.ToLower(scaleSet) + "/virtualmachines/"
	for id, in := range a.instances {
		if strings.HasPrefix(strings.ToLower(id), prefix) {
			call.InstanceIDs = append(call.InstanceIDs, id)
			if verbName(call.Action[len(ActionScaleSetWide):]) == "restart" {
				in.Reboots++
			}
		}
	}
	return armAnswer{status: http.StatusOK}, 0
}

// operation answers a poll of Azure-AsyncOperation (or, with
// monitor=true, of Location). An operation ends at its second poll, with
// its effect applied then; a failed one changes nothing.
func (a *Azure) operation(r *http.Request, call *Call, id string) (armAnswer, time.Duration) {
	call.Action = AzureGetOperation
	a.amu.Lock()
	op, ok := a.ops[id]
	a.amu.Unlock()
	if !ok {
		return armErr(http.StatusNotFound, "NotFound", "no such operation"), 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	call.InstanceIDs = []string{op.instance}
	if in := a.instances[op.instance]; in != nil {
		call.Region = in.Region
	}
	monitor := r.URL.Query().Get("monitor") == "true"
	if !op.done && !op.stuck {
		op.polls++
		if op.polls >= 2 {
			op.done = true
			if !op.failed {
				a.apply(op)
			}
		}
	}
	status := "InProgress"
	switch {
	case op.done && op.failed:
		status = "Failed"
	case op.done:
		status = "Succeeded"
	}
	if monitor {
		if !op.done {
			return armAnswer{status: http.StatusAccepted, header: map[string]string{"Retry-After": "0"}}, 0
		}
		return armAnswer{status: http.StatusOK}, 0
	}
	body := map[string]any{"name": op.id, "status": status, "startTime": time.Now().UTC().Format(time.RFC3339)}
	if op.done && op.failed {
		body["error"] = map[string]any{"code": "InternalExecutionError", "message": "An internal execution error occurred. Please retry later."}
	}
	return armAnswer{status: http.StatusOK, body: body, header: map[string]string{"Retry-After": "0"}}, 0
}

// apply makes an operation's effect. Call with a.mu held.
func (a *Azure) apply(op *azureOp) {
	in := a.instances[op.instance]
	if in == nil {
		return
	}
	switch op.action {
	case "restart":
		in.Reboots++
		in.State = "running"
	case "powerOff":
		in.State = "stopped"
	case "deallocate":
		in.State = "deallocated"
	case "start":
		in.State = "running"
	}
}
