package azure

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"

	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// environment is the Azure cloud the driver talks to: where ARM is, which
// audience its tokens need, and where Entra ID (the authority) is.
type environment struct {
	cloud   azcloud.Configuration
	armHost string
	// disableInstanceDiscovery is set for an authority that is not one
	// of Microsoft's: MSAL would otherwise ask login.microsoftonline.com
	// to validate it, which a disconnected Azure Stack cannot reach and
	// which would send our tenant to a host we were not told to use.
	disableInstanceDiscovery bool
}

// The sovereign clouds, by their ARM host.
var knownClouds = map[string]azcloud.Configuration{
	"management.azure.com":         azcloud.AzurePublic,
	"management.chinacloudapi.cn":  azcloud.AzureChina,
	"management.usgovcloudapi.net": azcloud.AzureGovernment,
}

// microsoftAuthorities are the authority hosts MSAL trusts without
// instance discovery.
var microsoftAuthorities = []string{
	"login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net",
	"login.chinacloudapi.cn", "login.microsoftonline.us", "login-us.microsoftonline.com", "login.microsoftonline.de",
}

func lookupEnv(k string) string { return os.Getenv(k) }

// environmentFor picks the cloud from the config's endpoint and
// AZURE_AUTHORITY_HOST, so that the config needs no field of its own:
//
//   - no endpoint: Azure public cloud;
//   - the ARM endpoint of Azure China or Azure US Government: that cloud,
//     its authority and audience;
//   - any other endpoint with a Microsoft authority (or none set): a
//     private endpoint or proxy in front of that authority's cloud (public
//     by default), whose audience the tokens keep;
//   - any other endpoint with a non-Microsoft AZURE_AUTHORITY_HOST (Azure
//     Stack Hub, a test's fake): a custom cloud whose token audience is the
//     endpoint itself, with instance discovery off.
//
// AZURE_AUTHORITY_HOST, when set, is always the authority.
func environmentFor(endpoint string, getenv func(string) string) (environment, error) {
	base, known := azcloud.AzurePublic, false
	armEndpoint := base.Services[azcloud.ResourceManager].Endpoint
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return environment{}, fmt.Errorf("endpoint %q: want https://host[:port]", endpoint)
		}
		armEndpoint = strings.TrimSuffix(endpoint, "/")
		base, known = knownClouds[strings.ToLower(u.Host)]
		if !known {
			base = azcloud.AzurePublic
		}
	} else {
		known = true
	}
	authority := base.ActiveDirectoryAuthorityHost
	if a := getenv("AZURE_AUTHORITY_HOST"); a != "" {
		u, err := url.Parse(a)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return environment{}, fmt.Errorf("AZURE_AUTHORITY_HOST %q: want https://host[:port]/ (Entra ID refuses anything but https)", a)
		}
		authority = a
		if !strings.HasSuffix(authority, "/") {
			authority += "/"
		}
	}
	au, _ := url.Parse(authority)
	microsoft := slices.Contains(microsoftAuthorities, strings.ToLower(au.Hostname()))
	audience := base.Services[azcloud.ResourceManager].Audience
	if !known && !microsoft {
		audience = armEndpoint
	}
	if !known && microsoft {
		// A proxy in front of the cloud whose authority this is.
		for _, c := range knownClouds {
			if strings.EqualFold(c.ActiveDirectoryAuthorityHost, authority) {
				audience = c.Services[azcloud.ResourceManager].Audience
			}
		}
	}
	u, _ := url.Parse(armEndpoint)
	return environment{
		cloud: azcloud.Configuration{
			ActiveDirectoryAuthorityHost: authority,
			Services: map[azcloud.ServiceName]azcloud.ServiceConfiguration{
				azcloud.ResourceManager: {Endpoint: armEndpoint, Audience: audience},
			},
		},
		armHost:                  u.Host,
		disableInstanceDiscovery: !microsoft,
	}, nil
}

// guard is the last word on what the driver sends, placed in every
// client's pipeline: a POST on one VM or one scale-set instance, with no
// body, or a GET (an instance view, a poll), on the ARM endpoint's host
// only (a poll URL on another host would get our bearer token). A
// scale-set-wide action, whose empty instance list means every instance,
// cannot pass it.
type guard struct{ host string }

var instanceAction = regexp.MustCompile(`^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.compute/` +
	`(virtualmachines/[^/]+|virtualmachinescalesets/[^/]+/virtualmachines/[0-9]+)/(restart|poweroff|deallocate|start)$`)

type guardError struct{ reason string }

func (e *guardError) Error() string {
	return "azure: request refused before sending: " + e.reason
}

func (g guard) Do(req *policy.Request) (*http.Response, error) {
	if err := g.check(req.Raw()); err != nil {
		return nil, err
	}
	return req.Next()
}

func (g guard) check(r *http.Request) error {
	if r.URL.Scheme != "https" || !strings.EqualFold(r.URL.Host, g.host) {
		return &guardError{fmt.Sprintf("%s %s is not on the ARM endpoint https://%s", r.Method, r.URL.Redacted(), g.host)}
	}
	switch r.Method {
	case http.MethodGet:
		return nil
	case http.MethodPost:
		if !instanceAction.MatchString(strings.ToLower(r.URL.Path)) {
			return &guardError{fmt.Sprintf("POST %s is not an action on one VM or one scale-set instance", r.URL.Path)}
		}
		if r.ContentLength > 0 || (r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0) {
			return &guardError{fmt.Sprintf("POST %s has a body (an instance list?)", r.URL.Path)}
		}
		return nil
	}
	return &guardError{fmt.Sprintf("%s %s: the driver only reads and acts on one instance", r.Method, r.URL.Path)}
}
