package tencentcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
)

// Credentials are resolved here rather than by the SDK's providers, for
// two reasons found in tencentcloud-sdk-go:
//   - its role credentials (CVM role, TKE OIDC) refresh themselves inside
//     the signing of a request, synchronously, with no context and, for
//     the CVM role, an http.Get with no timeout, holding the credential's
//     lock: one hung metadata server would hang every later call;
//   - a failed refresh is only logged, and the expired credential is used.
// Here every resolution is bounded, the SDK only ever sees a static
// snapshot, and a snapshot is replaced before it expires.

// refreshMargin renews a role credential this long before it expires.
const refreshMargin = 5 * time.Minute

// defaultMetadataURL is the CVM metadata server's role credential path.
const defaultMetadataURL = "http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials/"

// defaultSTSEndpoint serves TKE OIDC's AssumeRoleWithWebIdentity.
const defaultSTSEndpoint = "sts.tencentcloudapi.com"

// snapshot is one set of credentials; a zero expires never expires
// (keys from the environment or the profile file).
type snapshot struct {
	id, key, token string
	expires        time.Time
	cred           common.CredentialIface
}

func (s *snapshot) fresh(now time.Time) bool {
	return s != nil && (s.expires.IsZero() || s.expires.Sub(now) > refreshMargin)
}

// credAttempt is one resolution, shared by the calls that wait for it.
type credAttempt struct {
	done chan struct{}
	snap *snapshot
	err  error
}

// credential returns a fresh snapshot, resolving one if needed. The
// resolution runs aside, bounded by the driver's per-call timeout, and ctx
// bounds the wait; a caller that gives up drops the attempt, so the next
// call tries again rather than joining one that hangs.
func (d *Driver) credential(ctx context.Context) (*snapshot, error) {
	d.mu.Lock()
	if d.snap.fresh(time.Now()) {
		s := d.snap
		d.mu.Unlock()
		return s, nil
	}
	a := d.credInFlight
	if a == nil {
		a = &credAttempt{done: make(chan struct{})}
		d.credInFlight = a
		go d.resolve(a)
	}
	d.mu.Unlock()
	select {
	case <-a.done:
		return a.snap, a.err
	case <-ctx.Done():
		d.mu.Lock()
		if d.credInFlight == a {
			d.credInFlight = nil
		}
		d.mu.Unlock()
		return nil, fmt.Errorf("credentials not resolved in time: %w", ctx.Err())
	}
}

func (d *Driver) resolve(a *credAttempt) {
	bound := d.cfg.Timeout
	if bound <= 0 {
		bound = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	snap, err := d.fetch(ctx)
	if err == nil {
		snap.cred = common.NewTokenCredential(snap.id, snap.key, snap.token)
	}
	a.snap, a.err = snap, err
	d.mu.Lock()
	if err == nil {
		d.snap = snap
	}
	if d.credInFlight == a {
		d.credInFlight = nil
	}
	d.mu.Unlock()
	close(a.done)
}

// fetch walks the chain: TKE OIDC when TKE_ROLE_ARN is set (and then only
// it: its misconfiguration must not fall back to other keys silently),
// else the environment, the profile file, the CVM role.
func (d *Driver) fetch(ctx context.Context) (*snapshot, error) {
	if os.Getenv("TKE_ROLE_ARN") != "" {
		s, err := d.fetchOIDC(ctx)
		if err != nil {
			return nil, fmt.Errorf("TKE_ROLE_ARN is set but TKE OIDC is not usable: %w", err)
		}
		return s, nil
	}
	var errs []error
	for _, p := range []common.Provider{common.DefaultEnvProvider(), common.DefaultProfileProvider()} {
		c, err := safeGet(p)
		if err == nil {
			id, key, token := c.GetCredential()
			return &snapshot{id: id, key: key, token: token}, nil
		}
		errs = append(errs, err)
	}
	s, err := d.fetchCVMRole(ctx)
	if err != nil {
		return nil, fmt.Errorf("no Tencent Cloud credentials (environment, profile file, CVM role): %w", errors.Join(append(errs, err)...))
	}
	return s, nil
}

// fetchOIDC exchanges the projected ServiceAccount token for a role
// credential. The token file is read at every resolution: the kubelet
// rotates it, and a token read once expires with it.
func (d *Driver) fetchOIDC(ctx context.Context) (*snapshot, error) {
	env := map[string]string{}
	for _, v := range []string{"TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN"} {
		if env[v] = os.Getenv(v); env[v] == "" {
			return nil, fmt.Errorf("%s is not set", v)
		}
	}
	token, err := os.ReadFile(env["TKE_WEB_IDENTITY_TOKEN_FILE"])
	if err != nil {
		return nil, err
	}
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint = d.stsEndpoint()
	cpf.HttpProfile.Scheme = d.scheme
	cpf.HttpProfile.ReqMethod = "POST"
	cpf.HttpProfile.ReqTimeout = 0 // ctx bounds it
	cpf.NetworkFailureMaxRetries, cpf.RateLimitExceededMaxRetries = 0, 0
	cpf.DisableRegionBreaker = true
	client := common.NewCommonClient(nil, env["TKE_REGION"], cpf)
	if d.transport != nil {
		client.WithHttpTransport(d.transport)
	}
	req := tchttp.NewCommonRequest("sts", "2018-08-13", "AssumeRoleWithWebIdentity")
	req.SetSkipSign(true)
	req.SetContext(ctx)
	if err := req.SetActionParameters(map[string]any{
		"ProviderId":       env["TKE_PROVIDER_ID"],
		"WebIdentityToken": strings.TrimSpace(string(token)),
		"RoleArn":          env["TKE_ROLE_ARN"],
		"RoleSessionName":  "k8s-cloud-node-manager-" + strconv.FormatInt(time.Now().UnixNano()/1000, 10),
		"DurationSeconds":  7200,
	}); err != nil {
		return nil, err
	}
	resp := tchttp.NewCommonResponse()
	if err := client.Send(req, resp); err != nil {
		return nil, err
	}
	var out struct {
		Response *struct {
			Credentials struct{ Token, TmpSecretId, TmpSecretKey string }
			ExpiredTime int64
			RequestId   string
		}
	}
	if err := json.Unmarshal(resp.GetBody(), &out); err != nil || out.Response == nil || out.Response.Credentials.TmpSecretId == "" {
		return nil, fmt.Errorf("AssumeRoleWithWebIdentity answered no credentials (%v)", err)
	}
	c := out.Response.Credentials
	return &snapshot{id: c.TmpSecretId, key: c.TmpSecretKey, token: c.Token, expires: time.Unix(out.Response.ExpiredTime, 0)}, nil
}

// stsEndpoint is where AssumeRoleWithWebIdentity goes: STS's public
// endpoint; with an endpoint override, the STS sibling of a cvm.* host
// (cvm.internal.tencentcloudapi.com → sts.internal…), or the override
// itself when it names no service (a gateway, the tests' fake).
func (d *Driver) stsEndpoint() string {
	switch {
	case d.endpoint == "":
		return defaultSTSEndpoint
	case strings.HasPrefix(d.endpoint, "cvm."):
		return "sts." + strings.TrimPrefix(d.endpoint, "cvm.")
	}
	return d.endpoint
}

// fetchCVMRole reads the instance role's credential from the metadata
// server, bounded by ctx (the SDK's provider has no timeout at all).
func (d *Driver) fetchCVMRole(ctx context.Context) (*snapshot, error) {
	base := d.metadataURL
	if base == "" {
		base = defaultMetadataURL
	}
	get := func(url string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("metadata server answered %s", resp.Status)
		}
		return body, err
	}
	role, err := get(base)
	if err != nil {
		return nil, fmt.Errorf("no CVM role: %w", err)
	}
	name := strings.TrimSpace(strings.SplitN(string(role), "\n", 2)[0])
	if name == "" {
		return nil, errors.New("no CVM role is bound to this instance")
	}
	body, err := get(base + name)
	if err != nil {
		return nil, fmt.Errorf("CVM role %s: %w", name, err)
	}
	var out struct {
		TmpSecretId, TmpSecretKey, Token, Code string
		ExpiredTime                            int64
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Code != "Success" || out.TmpSecretId == "" {
		return nil, fmt.Errorf("CVM role %s: the metadata server answered no credential (code %q, %v)", name, out.Code, err)
	}
	return &snapshot{id: out.TmpSecretId, key: out.TmpSecretKey, token: out.Token, expires: time.Unix(out.ExpiredTime, 0)}, nil
}

// safeGet calls an SDK provider, which may panic: the profile provider
// does on an empty credentials file. A panic in the resolving goroutine
// would end the server.
func safeGet(p common.Provider) (c common.CredentialIface, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%T failed: %v", p, r)
		}
	}()
	return p.GetCredential()
}
