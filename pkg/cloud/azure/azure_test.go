package azure

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v7"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

const (
	tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	client = "11111111-2222-3333-4444-555555555555"
	secret = "fake-client-secret"
	sub    = "0a1b2c3d-0000-1111-2222-333344445555"
)

var (
	vmID      = "/subscriptions/" + sub + "/resourceGroups/mc_rg_aks_eastus/providers/Microsoft.Compute/virtualMachines/vm-0"
	stoppedVM = "/subscriptions/" + sub + "/resourceGroups/mc_rg_aks_eastus/providers/Microsoft.Compute/virtualMachines/vm-stopped"
	vmssID    = "/subscriptions/" + sub + "/resourceGroups/mc_rg_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-123-vmss/virtualMachines/3"
	vmssOther = "/subscriptions/" + sub + "/resourceGroups/mc_rg_aks_eastus/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-123-vmss/virtualMachines/4"
)

type env struct {
	fake *fakecloud.Azure
	srv  *httptest.Server
	cfg  cloud.ProviderConfig
}

// isolate keeps the host's Azure set-up out of a test: only the
// environment credential set here can succeed.
func isolate(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("AZURE_CONFIG_DIR", dir)
	t.Setenv("PATH", dir) // no az, azd or pwsh to fall back to
	for _, v := range []string{"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
		"IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_TOKEN_CREDENTIALS", "AZURE_REGIONAL_AUTHORITY_NAME"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	t.Setenv("AZURE_TENANT_ID", tenant)
	t.Setenv("AZURE_CLIENT_ID", client)
	t.Setenv("AZURE_CLIENT_SECRET", secret)
}

// setup starts the fake (Entra ID and ARM on one TLS listener) and points
// DefaultAzureCredential's environment credential at it through
// AZURE_AUTHORITY_HOST: the real SDK fetches the OpenID metadata and a
// client-credentials token, then calls ARM with it.
func setup(t *testing.T) *env {
	t.Helper()
	isolate(t)
	fake := fakecloud.NewAzure(fakecloud.AzureOptions{
		Instances: []fakecloud.Instance{
			{ID: vmID, Region: "eastus"},
			{ID: stoppedVM, Region: "eastus", State: "stopped"},
			{ID: vmssID, Region: "eastus"},
			{ID: vmssOther, Region: "eastus"},
		},
		TenantID: tenant, ClientID: client, ClientSecret: secret,
	})
	srv := httptest.NewUnstartedServer(fake)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca, err := fakecloud.WriteCAFile(srv, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_AUTHORITY_HOST", srv.URL+"/")
	return &env{fake: fake, srv: srv, cfg: cloud.ProviderConfig{Enabled: true, Endpoint: srv.URL, CAFile: ca, Timeout: 10 * time.Second}}
}

func (e *env) driver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d.(*Driver)
}

func resolve(t *testing.T, providerID string) cloud.Instance {
	t.Helper()
	inst, err := Provider.Resolve(providerID, map[string]string{cloud.LabelRegion: "eastus"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// mutating returns the calls that are not reads or polls.
func mutating(calls []fakecloud.Call) []fakecloud.Call {
	var out []fakecloud.Call
	for _, c := range calls {
		if c.Action != fakecloud.AzureGetOperation && c.Action != fakecloud.AzureInstanceView {
			out = append(out, c)
		}
	}
	return out
}

func oneAction(t *testing.T, f *fakecloud.Azure, action, id string) fakecloud.Call {
	t.Helper()
	calls := f.Calls()
	m := mutating(calls)
	if len(m) != 1 || m[0].Action != action || len(m[0].InstanceIDs) != 1 || !strings.EqualFold(m[0].InstanceIDs[0], id) {
		t.Fatalf("want exactly one %s on %s, got %+v", action, id, calls)
	}
	if m[0].AccessKeyID != client {
		t.Fatalf("the call carried the token of %q, want %q", m[0].AccessKeyID, client)
	}
	polls := 0
	for _, c := range calls {
		if c.Action == fakecloud.AzureGetOperation {
			polls++
		}
	}
	if polls == 0 {
		t.Fatalf("the operation was never polled: %+v", calls)
	}
	return m[0]
}

func TestRestartVMAndScaleSetInstance(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	for _, tc := range []struct{ id, action string }{
		{vmID, fakecloud.AzureVMAction + "restart"},
		{vmssID, fakecloud.AzureVMSSVMAction + "restart"},
	} {
		e.fake.ClearCalls()
		res, err := d.Reboot(ctx(t), resolve(t, "azure://"+tc.id), cloud.RebootOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		if res.Mode != cloud.ModeSoft || res.RequestID == "" {
			t.Fatalf("%s: result %+v, want soft with the operation ID", tc.id, res)
		}
		oneAction(t, e.fake, tc.action, tc.id)
		if in, _ := e.fake.Instance(tc.id); in.Reboots != 1 {
			t.Fatalf("%s rebooted %d times, want 1", tc.id, in.Reboots)
		}
	}
	if in, _ := e.fake.Instance(vmssOther); in.Reboots != 0 {
		t.Fatalf("the other instance of the scale set was rebooted")
	}
	if n := e.fake.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests, want 1 (the token is cached)", n)
	}
}

// The resource group of a providerID may be written in any case; ARM
// compares it case-insensitively and the driver sends the canonical one.
func TestResourceGroupCase(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	upper := strings.Replace(vmID, "mc_rg_aks_eastus", "MC_RG_AKS_EastUS", 1)
	upper = strings.Replace(upper, sub, strings.ToUpper(sub), 1)
	inst := resolve(t, "azure://"+upper)
	if inst.ID != vmID {
		t.Fatalf("ID %q, want the canonical %q", inst.ID, vmID)
	}
	if _, err := d.Reboot(ctx(t), inst, cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	oneAction(t, e.fake, fakecloud.AzureVMAction+"restart", vmID)
}

func TestHardRestartRefused(t *testing.T) {
	e := setup(t)
	_, err := e.driver(t).Reboot(ctx(t), resolve(t, "azure://"+vmID), cloud.RebootOptions{Mode: cloud.ModeHard})
	var ue *cloud.UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(ue.Error(), "soft") {
		t.Fatalf("err = %v, want an UnsupportedError naming soft", err)
	}
	if c := e.fake.Calls(); len(c) != 0 {
		t.Fatalf("calls were sent: %+v", c)
	}
}

// No request that acts on a whole scale set can leave the driver: the
// scale-set client's own restart with no instance IDs, through the
// driver's pipeline, is refused before sending, and no instance of the
// driver can name a scale set without an instance.
func TestNeverScaleSetWide(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	cred, err := d.credential()
	if err != nil {
		t.Fatal(err)
	}
	ss, err := armcompute.NewVirtualMachineScaleSetsClient(sub, cred, d.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, err = ss.BeginRestart(ctx(t), "mc_rg_aks_eastus", "aks-nodepool1-123-vmss", nil)
	var ge *guardError
	if !errors.As(err, &ge) {
		t.Fatalf("scale-set-wide restart: err = %v, want refused by the guard", err)
	}
	_, err = ss.BeginRestart(ctx(t), "mc_rg_aks_eastus", "aks-nodepool1-123-vmss", &armcompute.VirtualMachineScaleSetsClientBeginRestartOptions{
		VMInstanceIDs: &armcompute.VirtualMachineScaleSetVMInstanceIDs{InstanceIDs: []*string{to.Ptr("3")}}})
	if !errors.As(err, &ge) {
		t.Fatalf("scale-set restart with an instance list: err = %v, want refused by the guard", err)
	}
	for _, id := range []string{
		"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss",
		"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/",
		"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines",
	} {
		_, err := d.Reboot(ctx(t), cloud.Instance{Provider: Name, ID: id, Region: "eastus"}, cloud.RebootOptions{})
		if err == nil {
			t.Fatalf("Reboot(%s) succeeded", id)
		}
		for _, stop := range []cloud.Mode{cloud.ModeSoft, cloud.ModeHard, ModeDeallocate} {
			if _, err := d.Stop(ctx(t), cloud.Instance{Provider: Name, ID: id, Region: "eastus"}, cloud.StopOptions{Mode: stop}); err == nil {
				t.Fatalf("Stop(%s) succeeded", id)
			}
		}
		if _, err := d.Start(ctx(t), cloud.Instance{Provider: Name, ID: id, Region: "eastus"}, cloud.StartOptions{}); err == nil {
			t.Fatalf("Start(%s) succeeded", id)
		}
	}
	// Every action on a scale-set instance goes to that instance alone.
	inst := resolve(t, "azure://"+vmssID)
	for _, f := range []func() error{
		func() error { _, err := d.Stop(ctx(t), inst, cloud.StopOptions{Mode: cloud.ModeHard}); return err },
		func() error { _, err := d.Start(ctx(t), inst, cloud.StartOptions{}); return err },
		func() error { _, err := d.Stop(ctx(t), inst, cloud.StopOptions{Mode: ModeDeallocate}); return err },
		func() error { _, err := d.Start(ctx(t), inst, cloud.StartOptions{}); return err },
		func() error { _, err := d.Reboot(ctx(t), inst, cloud.RebootOptions{}); return err },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range e.fake.Calls() {
		if strings.HasPrefix(c.Action, fakecloud.ActionScaleSetWide) || len(c.InstanceIDs) != 1 || (c.Action != fakecloud.AzureGetOperation && !strings.EqualFold(c.InstanceIDs[0], vmssID)) {
			t.Fatalf("a call reached beyond the one instance: %+v", c)
		}
	}
	if in, _ := e.fake.Instance(vmssOther); in.Reboots != 0 || in.State != "running" {
		t.Fatalf("another instance of the scale set was touched: %+v", in)
	}
}

func TestGuard(t *testing.T) {
	g := guard{host: "management.azure.com"}
	base := "https://management.azure.com/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/"
	for _, tc := range []struct {
		method, url string
		ok          bool
	}{
		{"POST", base + "virtualMachines/vm/restart?api-version=1", true},
		{"POST", base + "virtualMachineScaleSets/ss/virtualMachines/3/powerOff?skipShutdown=true", true},
		{"POST", base + "virtualMachineScaleSets/ss/virtualMachines/3/deallocate", true},
		{"GET", base + "virtualMachines/vm/instanceView", true},
		{"GET", "https://management.azure.com/subscriptions/x/providers/Microsoft.Compute/locations/eastus/operations/1", true},
		{"POST", base + "virtualMachineScaleSets/ss/restart", false},
		{"POST", base + "virtualMachineScaleSets/ss/powerOff", false},
		{"POST", base + "virtualMachineScaleSets/ss/virtualMachines//restart", false},
		{"POST", base + "virtualMachineScaleSets/ss/virtualMachines/3/reimage", false},
		{"POST", base + "virtualMachines/vm/redeploy", false},
		{"DELETE", base + "virtualMachines/vm", false},
		{"PUT", base + "virtualMachines/vm", false},
		{"GET", "https://evil.example/subscriptions/x/operations/1", false},
		{"GET", "http://management.azure.com/subscriptions/x", false},
	} {
		r, _ := http.NewRequest(tc.method, tc.url, nil)
		if err := g.check(r); (err == nil) != tc.ok {
			t.Errorf("%s %s: err = %v, want ok=%v", tc.method, tc.url, err, tc.ok)
		}
	}
	r, _ := http.NewRequest("POST", base+"virtualMachines/vm/restart", strings.NewReader(`{"instanceIds":[]}`))
	if g.check(r) == nil {
		t.Error("a POST with a body passed")
	}
}

func TestStopStart(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	for _, id := range []string{vmID, vmssID} {
		inst := resolve(t, "azure://"+id)
		prefix := fakecloud.AzureVMAction
		if strings.Contains(id, "ScaleSets") {
			prefix = fakecloud.AzureVMSSVMAction
		}
		for _, step := range []struct {
			do       func() (cloud.Result, error)
			action   string
			skip     bool
			state    string
			wantMode cloud.Mode
		}{
			{func() (cloud.Result, error) { return d.Stop(ctx(t), inst, cloud.StopOptions{}) }, "powerOff", false, "stopped", cloud.ModeSoft},
			{func() (cloud.Result, error) { return d.Start(ctx(t), inst, cloud.StartOptions{}) }, "start", false, "running", ""},
			{func() (cloud.Result, error) { return d.Stop(ctx(t), inst, cloud.StopOptions{Mode: cloud.ModeHard}) }, "powerOff", true, "stopped", cloud.ModeHard},
			{func() (cloud.Result, error) { return d.Start(ctx(t), inst, cloud.StartOptions{}) }, "start", false, "running", ""},
			{func() (cloud.Result, error) { return d.Stop(ctx(t), inst, cloud.StopOptions{Mode: ModeDeallocate}) }, "deallocate", false, "deallocated", ModeDeallocate},
			{func() (cloud.Result, error) { return d.Start(ctx(t), inst, cloud.StartOptions{}) }, "start", false, "running", ""},
		} {
			e.fake.ClearCalls()
			res, err := step.do()
			if err != nil {
				t.Fatalf("%s %s: %v", step.action, id, err)
			}
			c := oneAction(t, e.fake, prefix+step.action, id)
			if (c.StopType == "skipShutdown") != step.skip || res.Mode != step.wantMode || res.RequestID == "" {
				t.Fatalf("%s %s: call %+v result %+v", step.action, id, c, res)
			}
			if in, _ := e.fake.Instance(id); in.State != step.state {
				t.Fatalf("%s %s: state %s, want %s", step.action, id, in.State, step.state)
			}
		}
	}
}

func TestDryRun(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	res, err := d.Reboot(ctx(t), resolve(t, "azure://"+vmssID), cloud.RebootOptions{DryRun: true})
	if err != nil || res.RequestID == "" || res.Mode != cloud.ModeSoft {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	calls := e.fake.Calls()
	if len(calls) != 1 || calls[0].Action != fakecloud.AzureInstanceView {
		t.Fatalf("a dry run must read the instance view and nothing else: %+v", calls)
	}
	if in, _ := e.fake.Instance(vmssID); in.Reboots != 0 {
		t.Fatal("a dry run rebooted")
	}
	// A stopped VM cannot restart: the dry run says so (409), and that
	// it is a check of the instance view.
	_, err = d.Reboot(ctx(t), resolve(t, "azure://"+stoppedVM), cloud.RebootOptions{DryRun: true})
	ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrInvalidState, "PowerState/stopped")
	if !strings.Contains(ce.Message, "ARM has none") {
		t.Fatalf("message %q does not say how the dry run was done", ce.Message)
	}
	if _, err := d.Start(ctx(t), resolve(t, "azure://"+stoppedVM), cloud.StartOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	_, err = d.Reboot(ctx(t), resolve(t, "azure://"+strings.Replace(vmID, "vm-0", "nope", 1)), cloud.RebootOptions{DryRun: true})
	fakecloud.WantCloudError(t, Name, err, cloud.ErrNotFound, "ResourceNotFound")
}

func TestErrors(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	inst := resolve(t, "azure://"+vmID)
	for _, tc := range []struct {
		fault string
		kind  cloud.ErrorKind
		code  string
		check func(*cloud.Error) string
	}{
		{fakecloud.FaultNotFound, cloud.ErrNotFound, "ResourceNotFound", nil},
		{fakecloud.FaultAuth, cloud.ErrUnauthorized, "AuthorizationFailed", func(ce *cloud.Error) string {
			if !strings.Contains(ce.Message, "Microsoft.Compute/virtualMachines/restart/action") {
				return "the message does not name the permission"
			}
			return ""
		}},
		{fakecloud.FaultBusy, cloud.ErrInvalidState, "OperationNotAllowed", nil},
		{fakecloud.FaultThrottle, cloud.ErrThrottled, "TooManyRequests", func(ce *cloud.Error) string {
			if ce.RetryAfter != 7*time.Second {
				return "Retry-After not honoured: " + ce.RetryAfter.String()
			}
			return ""
		}},
		{fakecloud.FaultMalformed, cloud.ErrBadAnswer, "MalformedAnswer", nil},
		{fakecloud.FaultNoRequestID, cloud.ErrBadAnswer, "MalformedAnswer", nil},
		// A failed operation is a failure, with the operation's own code,
		// and keeps the node locked (the operation ran).
		{fakecloud.FaultOpFailed, cloud.ErrUnavailable, "InternalExecutionError", func(ce *cloud.Error) string {
			if ce.RequestID == "" || ce.NotSent {
				return "no operation ID, or marked not sent"
			}
			return ""
		}},
	} {
		e.fake.ClearCalls()
		e.fake.SetFault(vmID, fakecloud.Fault{Kind: tc.fault})
		res, err := d.Reboot(ctx(t), inst, cloud.RebootOptions{})
		if err == nil {
			t.Fatalf("%s: success %+v", tc.fault, res)
		}
		ce := fakecloud.WantCloudError(t, Name, err, tc.kind, tc.code)
		if tc.check != nil {
			if msg := tc.check(ce); msg != "" {
				t.Fatalf("%s: %s: %v", tc.fault, msg, ce)
			}
		}
		if m := mutating(e.fake.Calls()); len(m) != 1 {
			t.Fatalf("%s: %d mutating calls, want 1 (never retried): %+v", tc.fault, len(m), m)
		}
		e.fake.ClearFaults()
	}
	if in, _ := e.fake.Instance(vmID); in.Reboots != 0 {
		t.Fatalf("rebooted %d times through faults", in.Reboots)
	}
}

// An operation still running at the deadline is a timeout whose outcome
// is unknown, never a success.
func TestOperationStuckIsTimeout(t *testing.T) {
	e := setup(t)
	d := e.driver(t)
	e.fake.SetFault(vmID, fakecloud.Fault{Kind: fakecloud.FaultOpStuck})
	c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := d.Reboot(c, resolve(t, "azure://"+vmID), cloud.RebootOptions{})
	ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrTimeout, "")
	if ce.RequestID == "" {
		t.Fatal("the timeout does not name the operation")
	}
	if m := mutating(e.fake.Calls()); len(m) != 1 {
		t.Fatalf("%d mutating calls, want 1: %+v", len(m), m)
	}
}

func TestBadCredentialsNothingSent(t *testing.T) {
	e := setup(t)
	t.Setenv("AZURE_CLIENT_SECRET", "wrong")
	_, err := e.driver(t).Reboot(ctx(t), resolve(t, "azure://"+vmID), cloud.RebootOptions{})
	ce := fakecloud.WantCloudError(t, Name, err, cloud.ErrUnauthorized, "CredentialsError")
	if !ce.NotSent {
		t.Fatal("NotSent is false")
	}
	if c := e.fake.Calls(); len(c) != 0 {
		t.Fatalf("ARM was called: %+v", c)
	}
}

// AKS workload identity: the federated token file's content is the client
// assertion, read by DefaultAzureCredential's workload identity credential.
func TestWorkloadIdentity(t *testing.T) {
	e := setup(t)
	os.Unsetenv("AZURE_CLIENT_SECRET")
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("projected-sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", tok)
	fake := fakecloud.NewAzure(fakecloud.AzureOptions{
		Instances: []fakecloud.Instance{{ID: vmID, Region: "eastus"}},
		TenantID:  tenant, ClientID: client, FederatedToken: "projected-sa-token",
	})
	e.srv.Config.Handler = fake
	if _, err := e.driver(t).Reboot(ctx(t), resolve(t, "azure://"+vmID), cloud.RebootOptions{}); err != nil {
		t.Fatal(err)
	}
	oneAction(t, fake, fakecloud.AzureVMAction+"restart", vmID)
}

// ARM answers the driver maps without the fake's help.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		kind   cloud.ErrorKind
	}{
		{500, "InternalServerError", cloud.ErrUnavailable},
		{503, "", cloud.ErrUnavailable},
		{401, "InvalidAuthenticationToken", cloud.ErrUnauthorized},
		{403, "AuthorizationFailed", cloud.ErrUnauthorized},
		{404, "ResourceGroupNotFound", cloud.ErrNotFound},
		{409, "Conflict", cloud.ErrInvalidState},
		{400, "OperationNotAllowed", cloud.ErrInvalidState},
		{429, "TooManyRequests", cloud.ErrThrottled},
		{400, "InvalidParameter", cloud.ErrUnavailable},
	} {
		req, _ := http.NewRequest("POST", "https://management.azure.com"+vmID+"/restart", nil)
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{"X-Ms-Request-Id": {"r1"}}, Request: req,
			Body: io.NopCloser(strings.NewReader(`{"error":{"code":"` + tc.code + `","message":"m"}}`))}
		err := mapError(context.Background(), runtime.NewResponseError(resp), cloud.ActionRestart)
		ce := fakecloud.WantCloudError(t, Name, err, tc.kind, "")
		if ce.RequestID != "r1" || ce.NotSent {
			t.Errorf("%d %s: %+v", tc.status, tc.code, ce)
		}
	}
	c, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-c.Done()
	fakecloud.WantCloudError(t, Name, mapError(c, c.Err(), cloud.ActionRestart), cloud.ErrTimeout, "")
}
