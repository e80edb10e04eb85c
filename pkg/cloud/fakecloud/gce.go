package fakecloud

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// GCE fault kinds, besides the shared ones (throttle, auth, notfound, busy).
const (
	// FaultUnavailable answers 503 backendError.
	FaultUnavailable = "unavailable"
	// FaultOperationError accepts a mutating call, then ends its
	// operation in an error, as GCE does when the work itself fails.
	FaultOperationError = "operror"
	// FaultStuck accepts a mutating call whose operation never ends.
	FaultStuck = "stuck"
	// FaultDrop accepts a mutating call and drops the connection before
	// answering, as a network failure does; a retry with the same
	// requestId is answered (with the first call's operation).
	FaultDrop = "drop"
)

// The permissions the fake's compute methods need, by method. Method names
// are the Compute API's own, which are also the permission names for the
// instance methods.
var gceMethodPermission = map[string]string{
	GCEMethodGet:           "compute.instances.get",
	GCEMethodReset:         "compute.instances.reset",
	GCEMethodStop:          "compute.instances.stop",
	GCEMethodStart:         "compute.instances.start",
	GCEMethodOperationGet:  "compute.zoneOperations.get",
	GCEMethodOperationWait: "compute.zoneOperations.get",
	// testIamPermissions needs no permission: it says what the caller has.
	GCEMethodTestPermissions: "",
}

// Call.Action values of the GCE fake.
const (
	GCEMethodGet             = "compute.instances.get"
	GCEMethodReset           = "compute.instances.reset"
	GCEMethodStop            = "compute.instances.stop"
	GCEMethodStart           = "compute.instances.start"
	GCEMethodTestPermissions = "compute.instances.testIamPermissions"
	GCEMethodOperationGet    = "compute.zoneOperations.get"
	GCEMethodOperationWait   = "compute.zoneOperations.wait"
)

// GCEPermissions is every permission the fake knows; a service account
// with no Permissions list has all of them.
func GCEPermissions() []string {
	var out []string
	for _, p := range gceMethodPermission {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// GCE is a fake of the Compute Engine REST API (instances get, reset,
// stop, start and testIamPermissions; zone operations get and wait) and of
// Google's OAuth2 token endpoint at TokenPath. The token endpoint takes
// only the JWT-bearer grant of a known service account, signed with its
// key; the compute API takes only bearer tokens this fake issued.
//
// Mutating calls return a RUNNING zone operation that is DONE at the next
// get or wait. A requestId seen before in the project returns the first
// operation again and changes nothing, as GCE's idempotency keys do.
//
// Besides the shared admin endpoints it serves GET /_fake/tokens (the
// grants it made).
type GCE struct {
	*store
	accounts map[string]*ServiceAccount

	// Guarded by store.mu.
	tokens     map[string]gceToken
	grants     []TokenGrant
	operations map[string]*gceOperation // by project/zone/name
	byRequest  map[string]*gceOperation // by project/requestId
	opSeq      atomic.Int64
	now        func() time.Time
}

// TokenPath is where the fake's OAuth2 token endpoint listens; a key
// file's token_uri is the fake's URL plus this path.
const TokenPath = "/token"

// TokenGrant is one access token the fake issued.
type TokenGrant struct {
	Email   string    `json:"email"`
	Scope   string    `json:"scope"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

type gceToken struct {
	email   string
	expires time.Time
}

type gceOperation struct {
	project, zone, name string
	method              string
	instance            string
	requestID           string
	user                string
	insert              time.Time
	// fault decides how it ends: "" done, FaultOperationError, FaultStuck.
	fault string
	// polled: the operation is DONE once it has been looked at.
	polled bool
}

// NewGCE returns a fake Compute Engine API and token endpoint that trusts
// the given service accounts. Options.Secrets is not used: identity comes
// from the accounts' keys. Instances need Project and Zone; their Region
// is filled from the zone.
func NewGCE(opts Options, accounts ...*ServiceAccount) *GCE {
	opts.Instances = slices.Clone(opts.Instances)
	for i := range opts.Instances {
		opts.Instances[i].Region = gceRegion(opts.Instances[i].Zone)
	}
	g := &GCE{
		store:    newStore(ProviderGCE, opts, gceState),
		accounts: map[string]*ServiceAccount{},
		now:      time.Now,
	}
	g.store.fill = func(in *Instance) error {
		if in.Project == "" || in.Zone == "" {
			return fmt.Errorf("a GCE instance needs a project and a zone")
		}
		in.Region = gceRegion(in.Zone)
		return nil
	}
	g.store.faultKinds = []string{FaultUnavailable, FaultOperationError, FaultStuck, FaultDrop}
	for _, a := range accounts {
		g.accounts[a.Email] = a
	}
	g.resetGCE()
	return g
}

// Reset restores the initial instances and forgets calls, faults, tokens
// and operations.
func (g *GCE) Reset() {
	g.store.Reset()
	g.resetGCE()
}

func (g *GCE) resetGCE() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens = map[string]gceToken{}
	g.grants = nil
	g.operations = map[string]*gceOperation{}
	g.byRequest = map[string]*gceOperation{}
}

// Grants returns the tokens issued so far, oldest first.
func (g *GCE) Grants() []TokenGrant {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.grants)
}

// RevokeTokens makes every issued token invalid, as if they had expired.
func (g *GCE) RevokeTokens() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tokens = map[string]gceToken{}
}

// gceState canonicalises a GCE instance status: RUNNING, TERMINATED (a
// stopped instance), STOPPING, SUSPENDED, …
func gceState(s string) string {
	if s == "" {
		return "RUNNING"
	}
	return strings.ToUpper(s)
}

// gceRegion is the region of a zone: us-central1-a → us-central1.
func gceRegion(zone string) string {
	if i := strings.LastIndexByte(zone, '-'); i > 0 {
		return zone[:i]
	}
	return zone
}

// gceAnswer is an answer of the compute API: an object, or an error.
type gceAnswer struct {
	status  int
	reason  string
	message string
	body    any
	// drop closes the connection instead of answering.
	drop bool
}

func (g *GCE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_fake/tokens" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, g.Grants())
		return
	case r.URL.Path == "/_fake/reset" && r.Method == http.MethodPost:
		g.Reset()
		w.WriteHeader(http.StatusNoContent)
		return
	case strings.HasPrefix(r.URL.Path, "/_fake/"):
		g.serveAdmin(w, r, gceState)
		return
	case r.URL.Path == TokenPath:
		g.serveToken(w, r)
		return
	}
	call := Call{Provider: ProviderGCE, Time: g.now(), RequestID: newRequestID()}
	g.mu.Lock()
	a, delay, wait := g.decide(r, &call)
	call.Error = a.reason
	g.record(call)
	g.mu.Unlock()
	if g.opts.OnCall != nil {
		g.opts.OnCall(call)
	}
	holdAnswer(r, delay)
	if wait != nil {
		a = wait()
	}
	if a.drop {
		// Aborts the response on HTTP/1 and HTTP/2 alike.
		panic(http.ErrAbortHandler)
	}
	writeGCE(w, a)
}

// route splits /compute/v1/projects/P/zones/Z/{instances|operations}/N[/verb].
func gceRoute(r *http.Request) (project, zone, collection, name, verb string, ok bool) {
	rest, found := strings.CutPrefix(r.URL.Path, "/compute/v1/projects/")
	if !found {
		return "", "", "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 5 || len(parts) > 6 || parts[1] != "zones" {
		return "", "", "", "", "", false
	}
	for _, p := range parts {
		if p == "" {
			return "", "", "", "", "", false
		}
	}
	if len(parts) == 6 {
		verb = parts[5]
	}
	return parts[0], parts[2], parts[3], parts[4], verb, true
}

// decide computes the answer and applies its effect. Call with g.mu held.
// wait, when set, is run after the lock is released and gives the answer
// (a zone operation wait that blocks).
func (g *GCE) decide(r *http.Request, call *Call) (a gceAnswer, delay time.Duration, wait func() gceAnswer) {
	project, zone, collection, name, verb, ok := gceRoute(r)
	if !ok {
		return gceError(http.StatusNotFound, "notFound", "The requested URL %s was not found on this server.", r.URL.Path), 0, nil
	}
	call.Project, call.Zone, call.Region = project, zone, gceRegion(zone)
	q := r.URL.Query()
	call.ClientRequestID = q.Get("requestId")
	switch {
	case collection == "instances" && verb == "" && r.Method == http.MethodGet:
		call.Action = GCEMethodGet
	case collection == "instances" && verb == "reset" && r.Method == http.MethodPost:
		call.Action = GCEMethodReset
	case collection == "instances" && verb == "stop" && r.Method == http.MethodPost:
		call.Action = GCEMethodStop
		call.NoGracefulShutdown = q.Get("noGracefulShutdown") == "true"
	case collection == "instances" && verb == "start" && r.Method == http.MethodPost:
		call.Action = GCEMethodStart
	case collection == "instances" && verb == "testIamPermissions" && r.Method == http.MethodPost:
		call.Action = GCEMethodTestPermissions
	case collection == "operations" && verb == "" && r.Method == http.MethodGet:
		call.Action = GCEMethodOperationGet
	case collection == "operations" && verb == "wait" && r.Method == http.MethodPost:
		call.Action = GCEMethodOperationWait
	default:
		return gceError(http.StatusNotFound, "notFound", "The requested URL %s was not found on this server.", r.URL.Path), 0, nil
	}
	if collection == "instances" {
		call.InstanceIDs = []string{name}
	}

	// Authentication: only a bearer token this fake issued, not expired.
	tok, hasBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	call.Token = tok
	t, known := g.tokens[tok]
	if !hasBearer || !known || !g.now().Before(t.expires) {
		return gceAnswer{status: http.StatusUnauthorized, reason: "authError",
			message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."}, 0, nil
	}
	call.AccessKeyID = t.email
	acct := g.accounts[t.email]

	resource := fmt.Sprintf("projects/%s/zones/%s/%s/%s", project, zone, collection, name)
	var f Fault
	if collection == "instances" {
		f = g.faults[name]
	}
	if perm := gceMethodPermission[call.Action]; perm != "" && (!acct.has(perm) || (f.Kind == FaultAuth && collection == "instances")) {
		return gceError(http.StatusForbidden, "forbidden", "Required '%s' permission for '%s'", perm, resource), f.Delay, nil
	}

	if collection == "operations" {
		op, ok := g.operations[project+"/"+zone+"/"+name]
		if !ok {
			return gceError(http.StatusNotFound, "notFound", "The resource '%s' was not found", resource), 0, nil
		}
		call.InstanceIDs = []string{op.instance}
		call.RequestID = op.name
		call.ClientRequestID = op.requestID
		if call.Action == GCEMethodOperationGet || op.fault != FaultStuck {
			g.complete(op)
			return gceAnswer{status: http.StatusOK, body: g.operationJSON(r, op)}, 0, nil
		}
		// A stuck operation's wait blocks until the client gives up, as
		// a real wait does for up to two minutes.
		return gceAnswer{}, 0, func() gceAnswer {
			holdAnswer(r, 2*time.Minute)
			g.mu.Lock()
			defer g.mu.Unlock()
			return gceAnswer{status: http.StatusOK, body: g.operationJSON(r, op)}
		}
	}

	switch f.Kind {
	case FaultThrottle:
		return gceError(http.StatusTooManyRequests, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com'."), f.Delay, nil
	case FaultUnavailable:
		return gceError(http.StatusServiceUnavailable, "backendError", "Internal error. Please try again or contact Google Support."), f.Delay, nil
	}
	in, exists := g.instances[name]
	if !exists || in.Project != project || in.Zone != zone || f.Kind == FaultNotFound {
		return gceError(http.StatusNotFound, "notFound", "The resource '%s' was not found", resource), f.Delay, nil
	}

	switch call.Action {
	case GCEMethodGet:
		return gceAnswer{status: http.StatusOK, body: g.instanceJSON(r, in)}, f.Delay, nil
	case GCEMethodTestPermissions:
		var req struct {
			Permissions []string `json:"permissions"`
		}
		body, err := readBody(r)
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			return gceError(http.StatusBadRequest, "parseError", "Invalid JSON payload received: %v", err), 0, nil
		}
		call.Permissions = req.Permissions
		granted := []string{}
		for _, p := range req.Permissions {
			if acct.has(p) && f.Kind != FaultAuth {
				granted = append(granted, p)
			}
		}
		out := map[string]any{}
		if len(granted) > 0 {
			out["permissions"] = granted
		}
		return gceAnswer{status: http.StatusOK, body: out}, f.Delay, nil
	}

	// A mutating call: reset, stop or start.
	if id := call.ClientRequestID; id != "" {
		if !validGCERequestID(id) {
			return gceError(http.StatusBadRequest, "invalid", "Invalid value for field 'requestId': '%s'. The requestId must be a valid UUID with the exception that zero UUID is not supported.", id), 0, nil
		}
		if op, seen := g.byRequest[project+"/"+id]; seen {
			// GCE's idempotency: the same key answers the first
			// operation and does nothing again.
			call.Replay = true
			call.RequestID = op.name
			return gceAnswer{status: http.StatusOK, body: g.operationJSON(r, op)}, f.Delay, nil
		}
	}
	if f.Kind == FaultBusy {
		return gceError(http.StatusBadRequest, "resourceNotReady", "The resource '%s' is not ready", resource), f.Delay, nil
	}
	var apply func()
	switch call.Action {
	case GCEMethodReset:
		if in.State != "RUNNING" {
			return gceError(http.StatusBadRequest, "resourceNotReady", "The resource '%s' is not ready", resource), f.Delay, nil
		}
		apply = func() { in.Reboots++ }
	case GCEMethodStop:
		// Stopping a stopped instance is a no-op that succeeds.
		apply = func() { in.State = "TERMINATED" }
	case GCEMethodStart:
		apply = func() { in.State = "RUNNING" }
	}
	op := &gceOperation{
		project: project, zone: zone, method: call.Action, instance: name,
		requestID: call.ClientRequestID, user: t.email, insert: g.now(),
		name:  fmt.Sprintf("operation-%d-%s", g.now().UnixMilli(), strings.ReplaceAll(newRequestID(), "-", "")[:16]),
		fault: f.Kind,
	}
	if f.Kind != FaultOperationError && f.Kind != FaultStuck {
		// The effect is there as soon as the cloud accepted the call; the
		// operation only reports it. A failing or stuck one has none.
		apply()
	}
	g.operations[project+"/"+zone+"/"+op.name] = op
	if op.requestID != "" {
		g.byRequest[project+"/"+op.requestID] = op
	}
	call.RequestID = op.name
	return gceAnswer{status: http.StatusOK, body: g.operationJSON(r, op), drop: f.Kind == FaultDrop}, f.Delay, nil
}

// complete marks an operation as looked at, so it reports DONE (unless
// stuck). Call with g.mu held.
func (g *GCE) complete(op *gceOperation) {
	if op.fault == FaultStuck {
		return
	}
	op.polled = true
}

func (a *ServiceAccount) has(perm string) bool {
	if a == nil {
		return false
	}
	return a.Permissions == nil || slices.Contains(a.Permissions, perm)
}

func validGCERequestID(id string) bool {
	if len(id) != 36 || id == "00000000-0000-0000-0000-000000000000" {
		return false
	}
	for i, c := range id {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
				return false
			}
		}
	}
	return true
}

func gceBase(r *http.Request) string { return "https://" + r.Host + "/compute/v1/" }

func (g *GCE) instanceJSON(r *http.Request, in *Instance) map[string]any {
	zoneURL := gceBase(r) + "projects/" + in.Project + "/zones/" + in.Zone
	return map[string]any{
		"kind":     "compute#instance",
		"id":       strconv.FormatUint(gceNumericID(in.Project+"/"+in.ID), 10),
		"name":     in.ID,
		"zone":     zoneURL,
		"status":   in.State,
		"selfLink": zoneURL + "/instances/" + in.ID,
	}
}

// operationJSON renders op. Call with g.mu held.
func (g *GCE) operationJSON(r *http.Request, op *gceOperation) map[string]any {
	zoneURL := gceBase(r) + "projects/" + op.project + "/zones/" + op.zone
	verb := op.method[strings.LastIndexByte(op.method, '.')+1:]
	out := map[string]any{
		"kind":          "compute#operation",
		"id":            strconv.FormatUint(gceNumericID(op.name), 10),
		"name":          op.name,
		"zone":          zoneURL,
		"operationType": verb,
		"targetLink":    zoneURL + "/instances/" + op.instance,
		"targetId":      strconv.FormatUint(gceNumericID(op.project+"/"+op.instance), 10),
		"user":          op.user,
		"insertTime":    op.insert.Format(time.RFC3339Nano),
		"startTime":     op.insert.Format(time.RFC3339Nano),
		"selfLink":      zoneURL + "/operations/" + op.name,
		"status":        "RUNNING",
		"progress":      0,
	}
	if op.requestID != "" {
		out["clientOperationId"] = op.requestID
	}
	if !op.polled {
		return out
	}
	out["status"], out["progress"] = "DONE", 100
	out["endTime"] = g.now().Format(time.RFC3339Nano)
	if op.fault == FaultOperationError {
		out["error"] = map[string]any{"errors": []map[string]any{{
			"code": "INTERNAL_ERROR", "message": "Internal error. Please try again or contact Google Support.",
		}}}
		out["httpErrorStatusCode"] = http.StatusInternalServerError
		out["httpErrorMessage"] = "INTERNAL SERVER ERROR"
	}
	return out
}

// gceNumericID gives the stable 64-bit numeric ID GCE puts next to names.
func gceNumericID(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h >> 1
}

func gceError(status int, reason, format string, args ...any) gceAnswer {
	return gceAnswer{status: status, reason: reason, message: fmt.Sprintf(format, args...)}
}

// writeGCE writes an object, or an error in Google's JSON error format
// (what googleapi.CheckResponse decodes).
func writeGCE(w http.ResponseWriter, a gceAnswer) {
	if a.reason == "" {
		writeJSON(w, a.status, a.body)
		return
	}
	status := map[int]string{
		http.StatusBadRequest: "INVALID_ARGUMENT", http.StatusUnauthorized: "UNAUTHENTICATED",
		http.StatusForbidden: "PERMISSION_DENIED", http.StatusNotFound: "NOT_FOUND",
		http.StatusTooManyRequests: "RESOURCE_EXHAUSTED", http.StatusServiceUnavailable: "UNAVAILABLE",
	}[a.status]
	writeJSON(w, a.status, map[string]any{"error": map[string]any{
		"code":    a.status,
		"message": a.message,
		"errors":  []map[string]any{{"message": a.message, "domain": "global", "reason": a.reason}},
		"status":  status,
	}})
}

// parseTokenForm is the token endpoint's form reading, bounded like every
// body the fakes read.
func parseTokenForm(r *http.Request) (url.Values, error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, fmt.Errorf("unexpected Content-Type %q", ct)
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return url.ParseQuery(string(body))
}
