package fakecloud

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// jwtBearerGrant is the OAuth2 grant a service-account key file uses
// (RFC 7523).
const jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// gceScopes are the OAuth2 scopes that reach the Compute API.
var gceScopes = []string{
	"https://www.googleapis.com/auth/compute",
	"https://www.googleapis.com/auth/cloud-platform",
}

// gceTokenLifetime is how long an issued access token is good for, as
// Google's (3600 s).
const gceTokenLifetime = time.Hour

// ServiceAccount is a Google service account the GCE fake trusts: the
// fake checks JWT assertions against the public half of Key.
type ServiceAccount struct {
	Email string
	// KeyID is the key file's private_key_id, sent as the JWT's kid.
	KeyID string
	Key   *rsa.PrivateKey
	// Permissions the account holds on every instance; nil means all of
	// GCEPermissions.
	Permissions []string
}

// NewServiceAccount makes a service account with a fresh 2048-bit key.
func NewServiceAccount(email string) (*ServiceAccount, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	var id [20]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	return &ServiceAccount{Email: email, KeyID: hex.EncodeToString(id[:]), Key: key}, nil
}

// KeyFile renders the account as a service-account key file, as the IAM
// console downloads it, with token_uri pointing at tokenURI (the fake's
// URL plus TokenPath).
func (a *ServiceAccount) KeyFile(project, tokenURI string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(a.Key)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  project,
		"private_key_id":              a.KeyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                a.Email,
		"client_id":                   fmt.Sprint(gceNumericID(a.Email)),
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + a.Email,
		"universe_domain":             "googleapis.com",
	}, "", "  ")
}

// WriteKeyFile writes KeyFile to path, readable by its owner only.
func (a *ServiceAccount) WriteKeyFile(path, project, tokenURI string) error {
	b, err := a.KeyFile(project, tokenURI)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadServiceAccount reads a key file written by WriteKeyFile (or by
// Google), so a fake in another process can trust it.
func ReadServiceAccount(path string) (*ServiceAccount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Type         string `json:"type"`
		PrivateKeyID string `json:"private_key_id"`
		PrivateKey   string `json:"private_key"`
		ClientEmail  string `json:"client_email"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Type != "service_account" || f.ClientEmail == "" {
		return nil, fmt.Errorf("%s: not a service-account key file", path)
	}
	block, _ := pem.Decode([]byte(f.PrivateKey))
	if block == nil {
		return nil, fmt.Errorf("%s: private_key is not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: private_key is not an RSA key", path)
	}
	return &ServiceAccount{Email: f.ClientEmail, KeyID: f.PrivateKeyID, Key: rk}, nil
}

// serveToken is Google's OAuth2 token endpoint for the JWT-bearer grant:
// the assertion must be an RS256 JWT signed by a known account's key,
// issued by that account, for this very endpoint (aud), current, and
// asking for a scope that reaches Compute.
func (g *GCE) serveToken(w http.ResponseWriter, r *http.Request) {
	fail := func(code, desc string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	form, err := parseTokenForm(r)
	if err != nil {
		fail("invalid_request", err.Error())
		return
	}
	if gt := form.Get("grant_type"); gt != jwtBearerGrant {
		fail("unsupported_grant_type", fmt.Sprintf("Invalid grant_type: %s", gt))
		return
	}
	aud := "https://" + r.Host + r.URL.Path
	email, scope, err := g.checkAssertion(form.Get("assertion"), aud)
	if err != nil {
		fail("invalid_grant", err.Error())
		return
	}
	var raw [24]byte
	_, _ = rand.Read(raw[:])
	tok := "ya29.fake-" + base64.RawURLEncoding.EncodeToString(raw[:])
	exp := g.now().Add(gceTokenLifetime)
	g.mu.Lock()
	g.tokens[tok] = gceToken{email: email, expires: exp}
	g.grants = append(g.grants, TokenGrant{Email: email, Scope: scope, Token: tok, Expires: exp})
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_in":   int(gceTokenLifetime.Seconds()) - 1,
		"token_type":   "Bearer",
	})
}

// checkAssertion verifies a JWT-bearer assertion and returns the account
// and the scope it asks for. The messages are Google's where it has one.
func (g *GCE) checkAssertion(assertion, aud string) (email, scope string, err error) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", "", errors.New("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	var claims struct {
		Iss   string `json:"iss"`
		Aud   string `json:"aud"`
		Scope string `json:"scope"`
		Iat   int64  `json:"iat"`
		Exp   int64  `json:"exp"`
		Sub   string `json:"sub"`
	}
	if err := decodeJWTPart(parts[0], &header); err != nil {
		return "", "", fmt.Errorf("Invalid JWT header: %v", err)
	}
	if err := decodeJWTPart(parts[1], &claims); err != nil {
		return "", "", fmt.Errorf("Invalid JWT claims: %v", err)
	}
	if header.Alg != "RS256" {
		return "", "", fmt.Errorf("Invalid JWT: alg %q is not RS256", header.Alg)
	}
	acct, ok := g.accounts[claims.Iss]
	if !ok {
		return "", "", errors.New("Invalid grant: account not found")
	}
	if header.Kid != "" && header.Kid != acct.KeyID {
		return "", "", errors.New("Invalid JWT Signature.")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", "", errors.New("Invalid JWT Signature.")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&acct.Key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return "", "", errors.New("Invalid JWT Signature.")
	}
	now := g.now().Unix()
	switch {
	case claims.Aud != aud:
		return "", "", fmt.Errorf("Invalid JWT: aud %q is not this token endpoint %q", claims.Aud, aud)
	case claims.Iat == 0 || claims.Exp == 0 || claims.Iat > now+60 || claims.Exp <= now || claims.Exp-claims.Iat > 3600:
		return "", "", errors.New("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
	case claims.Sub != "" && claims.Sub != claims.Iss:
		return "", "", errors.New("Invalid grant: domain-wide delegation is not set up for this fake")
	}
	for _, s := range strings.Fields(claims.Scope) {
		for _, want := range gceScopes {
			if s == want {
				return acct.Email, claims.Scope, nil
			}
		}
	}
	return "", "", fmt.Errorf("Invalid OAuth scope or ID token audience provided: %q reaches no Compute API", claims.Scope)
}

func decodeJWTPart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
