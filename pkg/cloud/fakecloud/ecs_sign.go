package fakecloud

import (
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// ACS3-HMAC-SHA256, Alibaba Cloud's V3 request signature, checked from
// the published algorithm rather than with the SDK's signer, so that a
// signing bug in the client cannot be mirrored by the fake:
//
//	CanonicalRequest = Method \n CanonicalURI \n CanonicalQuery \n
//	                   CanonicalHeaders \n SignedHeaders \n HashedPayload
//	StringToSign     = "ACS3-HMAC-SHA256" \n hex(sha256(CanonicalRequest))
//	Signature        = hex(hmac-sha256(AccessKeySecret, StringToSign))
//
// CanonicalHeaders are the signed headers, lower-cased and sorted, each
// "name:trimmed value\n"; every x-acs-* header, host and content-type
// must be signed. HashedPayload is x-acs-content-sha256, which must be the
// body's hash.

// acs3Window is how far x-acs-date may be from the fake's clock, as ECS
// allows (15 minutes), and how long a nonce is remembered.
const acs3Window = 15 * time.Minute

type acs3Auth struct {
	accessKey     string
	signedHeaders []string
	signature     string
}

// acs3Error is a signature failure, with the ECS code to answer.
type acs3Error struct {
	status        int
	code, message string
}

func (e *acs3Error) Error() string { return e.code + ": " + e.message }

func acs3Fail(status int, code, format string, args ...any) *acs3Error {
	return &acs3Error{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// parseACS3 reads
// "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;x-acs-…,Signature=hex".
func parseACS3(h string) (acs3Auth, error) {
	var a acs3Auth
	rest, ok := strings.CutPrefix(h, "ACS3-HMAC-SHA256 ")
	if !ok {
		return a, errors.New("the Authorization header is missing or not ACS3-HMAC-SHA256")
	}
	fields, err := authFields(rest)
	if err != nil {
		return a, err
	}
	a.accessKey = fields["Credential"]
	a.signedHeaders = strings.Split(fields["SignedHeaders"], ";")
	if !sort.StringsAreSorted(a.signedHeaders) {
		return a, errors.New("SignedHeaders must be sorted")
	}
	for _, sh := range a.signedHeaders {
		if sh == "" || sh != strings.ToLower(sh) {
			return a, fmt.Errorf("SignedHeaders entry %q is empty or not lower case", sh)
		}
	}
	a.signature = fields["Signature"]
	if _, err := hex.DecodeString(a.signature); err != nil || len(a.signature) != 64 {
		return a, errors.New("Signature is not 64 hex digits")
	}
	return a, nil
}

// nonces remembers the x-acs-signature-nonce values seen within the
// window: ECS refuses a replayed request.
type nonces struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// use records n, false if it was seen within the window.
func (ns *nonces) use(n string, now time.Time) bool {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.seen == nil {
		ns.seen = map[string]time.Time{}
	}
	for k, t := range ns.seen {
		if now.Sub(t) > acs3Window {
			delete(ns.seen, k)
		}
	}
	if _, ok := ns.seen[n]; ok {
		return false
	}
	ns.seen[n] = now
	return true
}

// checkACS3 verifies everything of a request's signature but the secret
// (the form, the signed headers, the payload hash, the date window, the
// nonce); verifyACS3 then checks the signature with the secret.
func checkACS3(r *http.Request, body []byte, a acs3Auth, ns *nonces, now time.Time) *acs3Error {
	for _, h := range []string{"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"} {
		if !contains(a.signedHeaders, h) {
			return acs3Fail(http.StatusBadRequest, "IncompleteSignature", "the header %s is not signed", h)
		}
		if headerValue(r, h) == "" {
			return acs3Fail(http.StatusBadRequest, "MissingParameter", "the header %s is missing", h)
		}
	}
	for name := range r.Header {
		l := strings.ToLower(name)
		if (strings.HasPrefix(l, "x-acs-") || l == "content-type") && !contains(a.signedHeaders, l) {
			return acs3Fail(http.StatusBadRequest, "IncompleteSignature", "the header %s is sent but not signed", l)
		}
	}
	if got, want := r.Header.Get("x-acs-content-sha256"), sha256Hex(body); got != want {
		return acs3Fail(http.StatusBadRequest, "SignatureDoesNotMatch", "x-acs-content-sha256 %q is not the hash of the body", got)
	}
	date, err := time.Parse("2006-01-02T15:04:05Z", r.Header.Get("x-acs-date"))
	if err != nil {
		return acs3Fail(http.StatusBadRequest, "InvalidTimeStamp.Format", "x-acs-date %q is not yyyy-MM-ddTHH:mm:ssZ", r.Header.Get("x-acs-date"))
	}
	if d := now.Sub(date); d > acs3Window || d < -acs3Window {
		return acs3Fail(http.StatusBadRequest, "InvalidTimeStamp.Expired", "x-acs-date %s is more than %s from the server's time", date.Format(time.RFC3339), acs3Window)
	}
	if !ns.use(r.Header.Get("x-acs-signature-nonce"), now) {
		return acs3Fail(http.StatusBadRequest, "SignatureNonceUsed", "the nonce %s has been used", r.Header.Get("x-acs-signature-nonce"))
	}
	return nil
}

func verifyACS3(r *http.Request, a acs3Auth, secret string) bool {
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon.WriteString(path + "\n")
	canon.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range a.signedHeaders {
		vs := slices.Clone(r.Header.Values(h))
		if h == "host" {
			vs = []string{r.Host}
		}
		for i := range vs {
			vs[i] = strings.TrimSpace(vs[i])
		}
		sort.Strings(vs)
		canon.WriteString(h + ":" + strings.Join(vs, ",") + "\n")
	}
	canon.WriteString("\n" + strings.Join(a.signedHeaders, ";") + "\n")
	canon.WriteString(r.Header.Get("x-acs-content-sha256"))
	toSign := "ACS3-HMAC-SHA256\n" + sha256Hex([]byte(canon.String()))
	want := hex.EncodeToString(hmacSHA256([]byte(secret), toSign))
	return hmac.Equal([]byte(want), []byte(a.signature))
}
