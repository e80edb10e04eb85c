package fakecloud

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

const ec2Version = "2016-11-15"

// EC2 is a fake of the EC2 Query API (RebootInstances, StopInstances,
// StartInstances), with the instance states they change: a stop leaves
// the instance stopped at once (real EC2 passes through stopping), a start
// leaves it running, and a stopped instance refuses a reboot as EC2 does.
type EC2 struct {
	*store
}

// NewEC2 returns a fake EC2 endpoint. The region of a call is the one in
// its SigV4 credential scope, as real EC2 has one endpoint per region.
func NewEC2(opts Options) *EC2 {
	return &EC2{store: newStore(ProviderAWS, opts, ec2State)}
}

func ec2State(s string) string {
	if s == "" {
		return "running"
	}
	return strings.ToLower(s)
}

type ec2Answer struct {
	status  int
	code    string
	message string
}

func (e *EC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_fake/") {
		e.serveAdmin(w, r, ec2State)
		return
	}
	reqID := newRequestID()
	fail := func(a ec2Answer) { writeEC2Error(w, reqID, a) }

	if r.Method != http.MethodPost {
		fail(ec2Answer{http.StatusBadRequest, "InvalidAction", "this fake only takes POST requests"})
		return
	}
	body, err := readBody(r)
	if err != nil {
		fail(ec2Answer{http.StatusBadRequest, "InvalidRequest", err.Error()})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		fail(ec2Answer{http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("unexpected Content-Type %q", ct)})
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		fail(ec2Answer{http.StatusBadRequest, "InvalidRequest", "body is not form-encoded: " + err.Error()})
		return
	}

	call := Call{
		Provider:    ProviderAWS,
		Action:      form.Get("Action"),
		InstanceIDs: numberedList(form, "InstanceId"),
		DryRun:      form.Get("DryRun") == "true",
		Force:       form.Get("Force") == "true",
		RequestID:   reqID,
		Time:        time.Now(),
	}
	auth, authErr := parseSigV4(r.Header.Get("Authorization"))
	call.AccessKeyID, call.Region = auth.accessKey, auth.region

	e.mu.Lock()
	a, delay := e.decide(r, body, form, auth, authErr, &call)
	call.Error = a.code
	e.record(call)
	e.mu.Unlock()
	if e.opts.OnCall != nil {
		e.opts.OnCall(call)
	}

	holdAnswer(r, delay)
	switch a.code {
	case "":
	case FaultMalformed:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Sign in to continue</title></head><body><p>Welcome to the guest network.</p></body></html>"))
		return
	case FaultNoRequestID:
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(xml.Header))
		_ = xml.NewEncoder(w).Encode(ec2Success(call, ""))
		return
	default:
		fail(a)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(ec2Success(call, reqID))
}

// ec2Success is the answer of an accepted call, in the action's own shape.
func ec2Success(call Call, reqID string) any {
	switch call.Action {
	case "StopInstances", "StartInstances":
		r := stateChangeResponse{XMLName: xml.Name{Space: "http://ec2.amazonaws.com/doc/2016-11-15/", Local: call.Action + "Response"}, RequestID: reqID}
		for _, ch := range call.changes {
			r.Instances = append(r.Instances, ch)
		}
		return r
	case "DescribeInstances":
		return describeInstancesResponse{RequestID: reqID, Reservations: []ec2Reservation{{
			ReservationID: "r-" + strings.ReplaceAll(reqID, "-", "")[:17], OwnerID: "123456789012", Instances: call.described,
		}}}
	}
	return rebootInstancesResponse{RequestID: reqID, Return: true}
}

// decide computes the answer and applies its effect. Call with e.mu held.
func (e *EC2) decide(r *http.Request, body []byte, form url.Values, auth sigV4Auth, authErr error, call *Call) (ec2Answer, time.Duration) {
	const authFailure = "AWS was not able to validate the provided access credentials"
	if authErr != nil {
		return ec2Answer{http.StatusUnauthorized, "AuthFailure", authErr.Error()}, 0
	}
	if len(e.opts.Secrets) > 0 {
		secret, ok := e.opts.Secrets[auth.accessKey]
		if !ok || !verifySigV4(r, body, auth, secret) {
			return ec2Answer{http.StatusUnauthorized, "AuthFailure", authFailure}, 0
		}
	}
	if v := form.Get("Version"); v != ec2Version {
		return ec2Answer{http.StatusBadRequest, "NoSuchVersion", fmt.Sprintf("An invalid API version %q was specified.", v)}, 0
	}
	switch call.Action {
	case "RebootInstances", "StopInstances", "StartInstances", "DescribeInstances":
	case "":
		return ec2Answer{http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action."}, 0
	default:
		return ec2Answer{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", call.Action)}, 0
	}
	ids := call.InstanceIDs
	if len(ids) == 0 {
		return ec2Answer{http.StatusBadRequest, "MissingParameter", "The request must contain the parameter InstanceId."}, 0
	}
	for _, id := range ids {
		if !validEC2ID(id) {
			return ec2Answer{http.StatusBadRequest, "InvalidInstanceID.Malformed", fmt.Sprintf("Invalid id: %q", id)}, 0
		}
	}

	f, _ := e.faultFor(ids)
	switch f.Kind {
	case FaultMalformed, FaultNoRequestID:
		// Not EC2's answer: nothing happens to the instance.
		return ec2Answer{code: f.Kind}, f.Delay
	case FaultThrottle:
		return ec2Answer{http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."}, f.Delay
	case FaultAuth:
		return ec2Answer{http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation."}, f.Delay
	}
	var missing []string
	for _, id := range ids {
		in, ok := e.instances[id]
		if !ok || in.Region != call.Region || e.faults[id].Kind == FaultNotFound {
			missing = append(missing, id)
		}
	}
	switch {
	case len(missing) == 1:
		return ec2Answer{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", missing[0])}, f.Delay
	case len(missing) > 1:
		return ec2Answer{http.StatusBadRequest, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", "))}, f.Delay
	}
	// EC2 checks permissions, not states, on a dry run.
	if call.DryRun {
		return ec2Answer{http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."}, f.Delay
	}
	switch call.Action {
	case "DescribeInstances":
		for _, id := range ids {
			call.described = append(call.described, describe(e.instances[id]))
		}
		return ec2Answer{}, f.Delay
	case "StopInstances":
		return e.changeState(call, f, "stopped", "stopped", []string{"running", "stopping", "stopped"}), f.Delay
	case "StartInstances":
		return e.changeState(call, f, "started", "running", []string{"stopped", "pending", "running"}), f.Delay
	}
	for _, id := range ids {
		in := e.instances[id]
		if e.faults[id].Kind == FaultBusy || (in.State != "running" && in.State != "terminated") {
			return ec2Answer{http.StatusBadRequest, "IncorrectInstanceState", fmt.Sprintf("The instance '%s' is not in a state from which it can be rebooted.", id)}, f.Delay
		}
	}
	for _, id := range ids {
		// EC2 silently ignores the reboot of a terminated instance.
		if in := e.instances[id]; in.State == "running" {
			in.Reboots++
		}
	}
	return ec2Answer{}, f.Delay
}

// changeState is StopInstances and StartInstances: EC2 answers both for
// an instance already in (or on its way to) the target state with success
// and no change, and refuses the others with IncorrectInstanceState.
func (e *EC2) changeState(call *Call, f Fault, verb, target string, from []string) ec2Answer {
	for _, id := range call.InstanceIDs {
		in := e.instances[id]
		if f.Kind == FaultBusy || !slices.Contains(from, in.State) {
			return ec2Answer{http.StatusBadRequest, "IncorrectInstanceState", fmt.Sprintf("The instance '%s' is not in a state from which it can be %s.", id, verb)}
		}
	}
	for _, id := range call.InstanceIDs {
		in := e.instances[id]
		call.changes = append(call.changes, instanceStateChange{
			InstanceID:    id,
			CurrentState:  ec2InstanceState{Code: ec2StateCode(target), Name: target},
			PreviousState: ec2InstanceState{Code: ec2StateCode(in.State), Name: in.State},
		})
		in.State = target
	}
	return ec2Answer{}
}

func ec2StateCode(s string) int {
	return map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}[s]
}

type stateChangeResponse struct {
	XMLName   xml.Name
	RequestID string                `xml:"requestId"`
	Instances []instanceStateChange `xml:"instancesSet>item"`
}

type instanceStateChange struct {
	InstanceID    string           `xml:"instanceId"`
	CurrentState  ec2InstanceState `xml:"currentState"`
	PreviousState ec2InstanceState `xml:"previousState"`
}

type ec2InstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

// numberedList reads Name.1, Name.2, … in order.
func numberedList(form url.Values, name string) []string {
	type kv struct {
		n int
		v string
	}
	var items []kv
	for k, vs := range form {
		rest, ok := strings.CutPrefix(k, name+".")
		if !ok || len(vs) == 0 {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			continue
		}
		items = append(items, kv{n, vs[0]})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].n < items[j].n })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

func validEC2ID(id string) bool {
	h, ok := strings.CutPrefix(id, "i-")
	if !ok || (len(h) != 8 && len(h) != 17) {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// describe is an instance as DescribeInstances answers it, with the fields
// a driver reads.
func describe(in *Instance) ec2Instance {
	out := ec2Instance{
		InstanceID:     in.ID,
		State:          ec2InstanceState{Code: ec2StateCode(in.State), Name: in.State},
		PrivateDNSName: "ip-10-0-0-1." + in.Region + ".compute.internal",
	}
	keys := make([]string, 0, len(in.Tags))
	for k := range in.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out.Tags = append(out.Tags, ec2Tag{Key: k, Value: in.Tags[k]})
	}
	return out
}

type describeInstancesResponse struct {
	XMLName      xml.Name         `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
	RequestID    string           `xml:"requestId"`
	Reservations []ec2Reservation `xml:"reservationSet>item"`
}

type ec2Reservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []ec2Instance `xml:"instancesSet>item"`
}

type ec2Instance struct {
	InstanceID     string           `xml:"instanceId"`
	State          ec2InstanceState `xml:"instanceState"`
	PrivateDNSName string           `xml:"privateDnsName"`
	Tags           []ec2Tag         `xml:"tagSet>item"`
}

type ec2Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type rebootInstancesResponse struct {
	XMLName   xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ RebootInstancesResponse"`
	RequestID string   `xml:"requestId"`
	Return    bool     `xml:"return"`
}

type ec2ErrorResponse struct {
	XMLName   xml.Name   `xml:"Response"`
	Errors    []ec2Error `xml:"Errors>Error"`
	RequestID string     `xml:"RequestID"`
}

type ec2Error struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeEC2Error(w http.ResponseWriter, reqID string, a ec2Answer) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(ec2ErrorResponse{
		Errors:    []ec2Error{{Code: a.code, Message: a.message}},
		RequestID: reqID,
	})
}
