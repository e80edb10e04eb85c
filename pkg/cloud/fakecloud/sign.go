package fakecloud

import (
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The signature checks below are written from the published algorithms
// (AWS Signature Version 4, Tencent Cloud TC3-HMAC-SHA256), not with the
// SDKs' signers, so that a signing bug in the client cannot be mirrored
// by the fake.

type sigV4Auth struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
}

// parseSigV4 reads
// "AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/ec2/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseSigV4(h string) (sigV4Auth, error) {
	var a sigV4Auth
	rest, ok := strings.CutPrefix(h, "AWS4-HMAC-SHA256 ")
	if !ok {
		return a, errors.New("Authorization header missing or not AWS4-HMAC-SHA256")
	}
	fields, err := authFields(rest)
	if err != nil {
		return a, err
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[0] == "" || len(scope[1]) != 8 || scope[2] == "" {
		return a, fmt.Errorf("credential scope %q is not KEY/DATE/REGION/SERVICE/aws4_request", fields["Credential"])
	}
	a.accessKey, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	if a.service != "ec2" || scope[4] != "aws4_request" {
		return a, fmt.Errorf("credential scope %q is not for ec2/aws4_request", fields["Credential"])
	}
	a.signedHeaders = strings.Split(fields["SignedHeaders"], ";")
	if !sort.StringsAreSorted(a.signedHeaders) || !contains(a.signedHeaders, "host") || !contains(a.signedHeaders, "x-amz-date") {
		return a, errors.New("SignedHeaders must be sorted and include host and x-amz-date")
	}
	a.signature = fields["Signature"]
	if _, err := hex.DecodeString(a.signature); err != nil || len(a.signature) != 64 {
		return a, errors.New("Signature is not 64 hex digits")
	}
	return a, nil
}

func verifySigV4(r *http.Request, body []byte, a sigV4Auth, secret string) bool {
	amzDate := r.Header.Get("X-Amz-Date")
	if len(amzDate) != len("20060102T150405Z") || amzDate[:8] != a.date {
		return false
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon.WriteString(path + "\n")
	canon.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range a.signedHeaders {
		canon.WriteString(h + ":" + headerValue(r, h) + "\n")
	}
	canon.WriteString("\n" + strings.Join(a.signedHeaders, ";") + "\n")
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = sha256Hex(body)
	}
	canon.WriteString(payload)

	scope := strings.Join([]string{a.date, a.region, a.service, "aws4_request"}, "/")
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + sha256Hex([]byte(canon.String()))
	k := hmacSHA256([]byte("AWS4"+secret), a.date)
	k = hmacSHA256(k, a.region)
	k = hmacSHA256(k, a.service)
	k = hmacSHA256(k, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	return hmac.Equal([]byte(want), []byte(a.signature))
}

// headerValue is a header as SigV4 canonicalises it: values joined with
// commas, trimmed, inner runs of spaces collapsed. Go's server moves Host
// and Content-Length out of the header map.
func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vs := r.Header.Values(name)
	for i, v := range vs {
		vs[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vs, ",")
}

func canonicalQuery(q url.Values) string {
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, uriEncode(k)+"="+uriEncode(v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

// uriEncode is RFC 3986 encoding, which differs from url.QueryEscape on
// space and tilde.
func uriEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	return strings.ReplaceAll(e, "%7E", "~")
}

type tc3Auth struct {
	secretID, date, service string
	signedHeaders           []string
	signature               string
}

// parseTC3 reads
// "TC3-HMAC-SHA256 Credential=ID/DATE/cvm/tc3_request, SignedHeaders=content-type;host, Signature=hex".
func parseTC3(h string) (tc3Auth, error) {
	var a tc3Auth
	rest, ok := strings.CutPrefix(h, "TC3-HMAC-SHA256 ")
	if !ok {
		return a, errors.New("Authorization header missing or not TC3-HMAC-SHA256")
	}
	fields, err := authFields(rest)
	if err != nil {
		return a, err
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 4 || scope[0] == "" || len(scope[1]) != len("2006-01-02") {
		return a, fmt.Errorf("credential scope %q is not ID/DATE/SERVICE/tc3_request", fields["Credential"])
	}
	a.secretID, a.date, a.service = scope[0], scope[1], scope[2]
	if a.service != "cvm" || scope[3] != "tc3_request" {
		return a, fmt.Errorf("credential scope %q is not for cvm/tc3_request", fields["Credential"])
	}
	a.signedHeaders = strings.Split(fields["SignedHeaders"], ";")
	if !contains(a.signedHeaders, "content-type") || !contains(a.signedHeaders, "host") {
		return a, errors.New("SignedHeaders must include content-type and host")
	}
	a.signature = fields["Signature"]
	if _, err := hex.DecodeString(a.signature); err != nil || len(a.signature) != 64 {
		return a, errors.New("Signature is not 64 hex digits")
	}
	return a, nil
}

// checkTC3Date: the scope date must be the UTC date of X-TC-Timestamp.
func checkTC3Date(a tc3Auth, timestamp string) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("X-TC-Timestamp %q is not a Unix time", timestamp)
	}
	if d := time.Unix(ts, 0).UTC().Format("2006-01-02"); d != a.date {
		return fmt.Errorf("credential date %s does not match X-TC-Timestamp (%s)", a.date, d)
	}
	return nil
}

func verifyTC3(r *http.Request, body []byte, a tc3Auth, secret string) bool {
	var canon strings.Builder
	canon.WriteString(r.Method + "\n/\n")
	canon.WriteString(r.URL.RawQuery + "\n")
	for _, h := range a.signedHeaders {
		// TC3 lower-cases header values as well as names.
		canon.WriteString(h + ":" + strings.ToLower(strings.TrimSpace(headerValue(r, h))) + "\n")
	}
	canon.WriteString("\n" + strings.Join(a.signedHeaders, ";") + "\n")
	payload := sha256Hex(body)
	if r.Header.Get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD" {
		payload = sha256Hex([]byte("UNSIGNED-PAYLOAD"))
	}
	canon.WriteString(payload)

	scope := a.date + "/" + a.service + "/tc3_request"
	toSign := "TC3-HMAC-SHA256\n" + r.Header.Get("X-TC-Timestamp") + "\n" + scope + "\n" + sha256Hex([]byte(canon.String()))
	k := hmacSHA256([]byte("TC3"+secret), a.date)
	k = hmacSHA256(k, a.service)
	k = hmacSHA256(k, "tc3_request")
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	return hmac.Equal([]byte(want), []byte(a.signature))
}

// authFields splits "A=x, B=y, C=z".
func authFields(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("malformed Authorization field %q", part)
		}
		m[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if m[k] == "" {
			return nil, fmt.Errorf("Authorization has no %s", k)
		}
	}
	return m, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
