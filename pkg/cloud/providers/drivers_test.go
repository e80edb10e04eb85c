package providers

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/alibabacloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
)

// realDriver builds the named cloud's real driver against its wire-level
// fake, with credentials only from the variables set here.
func realDriver(t *testing.T, name string, pc cloud.ProviderConfig, instances ...fakecloud.Instance) (cloud.Driver, interface {
	Calls() []fakecloud.Call
	SetFault(string, fakecloud.Fault)
}) {
	t.Helper()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{
		"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"TKE_ROLE_ARN", "TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE",
		"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
		"ALIBABA_CLOUD_SECURITY_TOKEN", "ALIBABA_CLOUD_CREDENTIALS_URI", "ALIBABA_CLOUD_PROFILE",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("HOME", dir)
	t.Setenv("TENCENTCLOUD_CREDENTIALS_FILE", empty)
	t.Setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", empty)
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	opts := fakecloud.Options{Instances: instances}
	var fake interface {
		http.Handler
		Calls() []fakecloud.Call
		SetFault(string, fakecloud.Fault)
	}
	switch name {
	case cloud.ProviderAWS:
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
		opts.Secrets = map[string]string{"AKIDFAKE": "secret"}
		fake = fakecloud.NewEC2(opts)
	case cloud.ProviderTencentCloud:
		t.Setenv("TENCENTCLOUD_SECRET_ID", "AKIDFAKE")
		t.Setenv("TENCENTCLOUD_SECRET_KEY", "secret")
		opts.Secrets = map[string]string{"AKIDFAKE": "secret"}
		fake = fakecloud.NewCVM(opts)
	case alibabacloud.Name:
		t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIFAKE")
		t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret")
		opts.Secrets = map[string]string{"LTAIFAKE": "secret"}
		fake = fakecloud.NewECS(opts)
	}
	srv := httptest.NewUnstartedServer(fake)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca, err := fakecloud.WriteCAFile(srv, dir)
	if err != nil {
		t.Fatal(err)
	}
	pc.Enabled, pc.Endpoint, pc.CAFile = true, srv.URL, ca
	p, _ := Lookup(name)
	d, err := p.NewDriver(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	return d, fake
}

var testInstances = map[string]fakecloud.Instance{
	cloud.ProviderAWS:          {ID: "i-0123456789abcdef0", Region: "us-east-1"},
	cloud.ProviderTencentCloud: {ID: "ins-abcd1234", Region: "ap-guangzhou"},
	alibabacloud.Name:          {ID: "i-bp1abcdefghij0000001", Region: "cn-hangzhou"},
}

// The config's timeout bounds a real driver's call, in the wrapper: the
// answer is ErrTimeout (outcome unknown), after exactly one call.
func TestWrapTimeoutRealDrivers(t *testing.T) {
	for _, name := range []string{cloud.ProviderAWS, cloud.ProviderTencentCloud, alibabacloud.Name} {
		t.Run(name, func(t *testing.T) {
			in := testInstances[name]
			pc := cloud.ProviderConfig{Timeout: 200 * time.Millisecond, RateLimit: cloud.RateLimit{QPS: 5, Burst: 10}}
			d, fake := realDriver(t, name, pc, in)
			fake.SetFault(in.ID, fakecloud.Fault{Delay: time.Minute})
			_, err := Wrap(d, pc).Reboot(context.Background(), cloud.Instance{Provider: name, ID: in.ID, Region: in.Region}, cloud.RebootOptions{})
			fakecloud.WantCloudError(t, name, err, cloud.ErrTimeout, "")
			fakecloud.OneCall(t, fake)
		})
	}
}
