// Package fakecloud holds wire-level fakes of the EC2 Query API, the
// Tencent Cloud CVM API (TC3), the Alibaba Cloud ECS API (ACS3) and the
// Compute Engine REST API with its OAuth2 token endpoint. The real SDKs
// talk to them over TLS, so a test exercises request building, signing,
// error decoding and retry
// behaviour exactly as in production.
//
// Each fake is an http.Handler that also serves admin endpoints under
// /_fake/ (no signature needed), for tests that run it in another process:
//
//	GET    /_fake/calls       JSON array of Call
//	DELETE /_fake/calls       forget the calls
//	POST   /_fake/faults      {"instanceId": "i-…", "kind": "throttle", "delay": "5s"}
//	DELETE /_fake/faults      remove every fault (?instanceId=… for one)
//	GET    /_fake/instances   JSON array of Instance
//	POST   /_fake/instances   {"id": "i-…", "region": "us-east-1", "state": "stopped"} (add or replace)
//	POST   /_fake/reset       back to the initial instances, no calls, no faults
package fakecloud

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Provider names used in Call.Provider.
const (
	ProviderAWS          = "aws"
	ProviderTencentCloud = "tencentcloud"
	ProviderAlibabaCloud = "alibabacloud"
	ProviderGCE          = "gce"
)

// Fault kinds.
const (
	// FaultThrottle answers the cloud's rate-limit error.
	FaultThrottle = "throttle"
	// FaultAuth answers "not authorized for this operation".
	FaultAuth = "auth"
	// FaultNotFound answers as if the instance did not exist.
	FaultNotFound = "notfound"
	// FaultBusy answers as if another operation were running on the
	// instance.
	FaultBusy = "busy"
	// FaultMalformed answers 200 with what a proxy or captive portal in
	// front of the cloud would (an HTML page for EC2, JSON without the
	// Response envelope for CVM); the call has no effect.
	FaultMalformed = "malformed"
	// FaultNoRequestID answers 200 in the cloud's own format but without
	// a request ID; the call has no effect.
	FaultNoRequestID = "norequestid"
	// FaultLocked makes the cloud lock the instance for security reasons
	// (ECS: OperationLocks with LockReason security); only the ECS fake
	// has such locks, the others refuse the kind.
	FaultLocked = "locked"
)

// Fault changes the answer for calls naming one instance.
type Fault struct {
	// Kind is one of the Fault* constants, or "" for a delay alone.
	Kind string
	// Delay holds the answer back, to test timeouts. The call is
	// recorded, and takes effect, before the delay: as in a real cloud,
	// a client that gives up does not undo it.
	Delay time.Duration
}

// Instance is a machine known to a fake.
type Instance struct {
	// Provider is used by instance files that feed both fakes.
	Provider string `json:"provider,omitempty"`
	ID       string `json:"id"`
	Region   string `json:"region"`
	// Project and Zone place a GCE instance (its Region is the zone's).
	Project string `json:"project,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// State is the cloud's state name (running, stopped, … for EC2;
	// RUNNING, STOPPED, … for CVM, case-insensitive on input). Empty
	// means running.
	State string `json:"state,omitempty"`
	// Tags are the instance's tags (EC2 DescribeInstances answers them).
	Tags map[string]string `json:"tags,omitempty"`
	// Reboots counts accepted reboots.
	Reboots int `json:"reboots"`
}

// Call is one API request the fake received.
type Call struct {
	Provider    string   `json:"provider"`
	Action      string   `json:"action"`
	Region      string   `json:"region"`
	InstanceIDs []string `json:"instanceIds"`
	StopType    string   `json:"stopType,omitempty"`
	// Force is EC2 StopInstances' Force (a hard stop).
	Force bool `json:"force,omitempty"`
	// StoppedMode is CVM StopInstances' StoppedMode (KEEP_CHARGING,
	// STOP_CHARGING) or ECS StopInstance's (KeepCharging, StopCharging),
	// as sent.
	StoppedMode string    `json:"stoppedMode,omitempty"`
	DryRun      bool      `json:"dryRun,omitempty"`
	AccessKeyID string    `json:"accessKeyId"`
	RequestID   string    `json:"requestId"`
	Time        time.Time `json:"time"`
	// Error is the error code answered, "" for success.
	Error string `json:"error,omitempty"`

	// ForceStop is ECS RebootInstance's or StopInstance's ForceStop.
	ForceStop bool `json:"forceStop,omitempty"`

	// GCE: where the instance is, the client's idempotency key
	// (requestId), whether the key was seen before (nothing done again),
	// the bearer token presented, the permissions a testIamPermissions
	// asked about, and a stop's noGracefulShutdown. RequestID is the
	// operation's name; AccessKeyID the token's service account.
	Project            string   `json:"project,omitempty"`
	Zone               string   `json:"zone,omitempty"`
	ClientRequestID    string   `json:"clientRequestId,omitempty"`
	Replay             bool     `json:"replay,omitempty"`
	Token              string   `json:"token,omitempty"`
	Permissions        []string `json:"permissions,omitempty"`
	NoGracefulShutdown bool     `json:"noGracefulShutdown,omitempty"`
	// changes are an EC2 stop's or start's state changes, for its answer.
	changes []instanceStateChange
	// described are the instances an EC2 DescribeInstances answers.
	described []ec2Instance
}

// Options configure a fake.
type Options struct {
	// Instances the fake knows at start and after Reset.
	Instances []Instance
	// Secrets maps access key IDs (SecretIds) to their secrets. When it
	// is empty any key is accepted and only the form of the signature is
	// checked; otherwise the key must be in it and the signature must
	// verify.
	Secrets map[string]string
	// OnCall, if set, is called with every recorded call, after the
	// answer is decided.
	OnCall func(Call)
}

// store is the state both fakes share the shape of.
type store struct {
	provider string
	opts     Options

	// fill completes an instance added through the admin API (GCE
	// derives the region from the zone); nil for none.
	fill func(*Instance) error
	// faultKinds are the cloud's own fault kinds besides the shared ones.
	faultKinds []string

	mu        sync.Mutex
	instances map[string]*Instance
	faults    map[string]Fault
	calls     []Call
}

func newStore(provider string, opts Options, normState func(string) string) *store {
	s := &store{provider: provider, opts: opts}
	s.opts.Instances = slices.Clone(opts.Instances)
	for i := range s.opts.Instances {
		s.opts.Instances[i].State = normState(s.opts.Instances[i].State)
		s.opts.Instances[i].Provider = provider
	}
	s.reset()
	return s
}

func (s *store) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances = map[string]*Instance{}
	for _, in := range s.opts.Instances {
		s.instances[in.ID] = &in
	}
	s.faults = map[string]Fault{}
	s.calls = nil
}

// Calls returns a copy of the calls received so far, oldest first.
func (s *store) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.InstanceIDs = slices.Clone(c.InstanceIDs)
		c.Permissions = slices.Clone(c.Permissions)
		out[i] = c
	}
	return out
}

// Reset restores the initial instances and forgets calls and faults.
func (s *store) Reset() { s.reset() }

// ClearCalls forgets the calls.
func (s *store) ClearCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// SetFault makes calls naming id answer with f until cleared.
func (s *store) SetFault(id string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[id] = f
}

// ClearFaults removes the faults of the given IDs, or all with none.
func (s *store) ClearFaults(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ids) == 0 {
		s.faults = map[string]Fault{}
		return
	}
	for _, id := range ids {
		delete(s.faults, id)
	}
}

// Instance returns the current state of one instance.
func (s *store) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return *in, true
}

// Instances returns every instance, sorted by ID.
func (s *store) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, 0, len(s.instances))
	for _, in := range s.instances {
		out = append(out, *in)
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// faultFor returns the first fault among ids. Call with s.mu held.
func (s *store) faultFor(ids []string) (Fault, bool) {
	for _, id := range ids {
		if f, ok := s.faults[id]; ok {
			return f, true
		}
	}
	return Fault{}, false
}

func (s *store) record(c Call) {
	s.calls = append(s.calls, c)
}

// serveAdmin handles /_fake/…; normState canonicalises a state name for
// this cloud.
func (s *store) serveAdmin(w http.ResponseWriter, r *http.Request, normState func(string) string) {
	switch path := strings.TrimPrefix(r.URL.Path, "/_fake/"); {
	case path == "calls" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Calls())
	case path == "calls" && r.Method == http.MethodDelete:
		s.ClearCalls()
		w.WriteHeader(http.StatusNoContent)
	case path == "faults" && r.Method == http.MethodPost:
		var in struct {
			InstanceID string `json:"instanceId"`
			Kind       string `json:"kind"`
			Delay      string `json:"delay"`
		}
		if err := decodeStrict(r.Body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f := Fault{Kind: in.Kind}
		if in.Delay != "" {
			d, err := time.ParseDuration(in.Delay)
			if err != nil || d < 0 {
				http.Error(w, fmt.Sprintf("bad delay %q", in.Delay), http.StatusBadRequest)
				return
			}
			f.Delay = d
		}
		shared := []string{"", FaultThrottle, FaultAuth, FaultNotFound, FaultBusy, FaultMalformed, FaultNoRequestID}
		if !slices.Contains(shared, f.Kind) && !slices.Contains(s.faultKinds, f.Kind) {
			http.Error(w, fmt.Sprintf("unknown fault kind %q", f.Kind), http.StatusBadRequest)
			return
		}
		if in.InstanceID == "" {
			http.Error(w, "instanceId is required", http.StatusBadRequest)
			return
		}
		s.SetFault(in.InstanceID, f)
		w.WriteHeader(http.StatusNoContent)
	case path == "faults" && r.Method == http.MethodDelete:
		if id := r.URL.Query().Get("instanceId"); id != "" {
			s.ClearFaults(id)
		} else {
			s.ClearFaults()
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "instances" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Instances())
	case path == "instances" && r.Method == http.MethodPost:
		var in Instance
		err := decodeStrict(r.Body, &in)
		if err == nil && s.fill != nil {
			err = s.fill(&in)
		}
		if err != nil || in.ID == "" || in.Region == "" {
			http.Error(w, fmt.Sprintf("want {\"id\", \"region\", \"state\"}: %v", err), http.StatusBadRequest)
			return
		}
		in.Provider = s.provider
		in.State = normState(in.State)
		s.mu.Lock()
		s.instances[in.ID] = &in
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case path == "reset" && r.Method == http.MethodPost:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unknown admin endpoint", http.StatusNotFound)
	}
}

// holdAnswer holds an answer back for d. If the client gives up
// meanwhile, it gets no answer at all, as when a cloud's answer is lost:
// the response is aborted (connection closed on HTTP/1, stream reset on
// HTTP/2). Returning from the handler instead would send an empty 200,
// which on loopback can beat the client's own cancellation and reach the
// SDK as a malformed success. The call stays recorded and in effect.
func holdAnswer(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		panic(http.ErrAbortHandler)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// newRequestID gives a UUID-shaped ID, as both clouds do.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// maxBody bounds request bodies; real API requests are a few KB.
const maxBody = 1 << 20

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("body larger than %d bytes", maxBody)
	}
	return b, nil
}

// WriteCAFile writes the certificate of a TLS test server as PEM into dir
// and returns the file's path, for a driver config's caFile.
func WriteCAFile(srv *httptest.Server, dir string) (string, error) {
	cert := srv.Certificate()
	if cert == nil {
		return "", fmt.Errorf("server %s does not serve TLS", srv.URL)
	}
	path := filepath.Join(dir, "fakecloud-ca.crt")
	return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600)
}
