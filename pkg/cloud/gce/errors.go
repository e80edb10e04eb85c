package gce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"cloud.google.com/go/auth"
	"google.golang.org/api/googleapi"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// throttleRetryAfter is the hint given with ErrThrottled when GCE sends no
// Retry-After: Compute's rate limits are per minute, refilled gradually.
const throttleRetryAfter = 5 * time.Second

// mapError classifies an SDK error; perm is the permission the call
// needed, named in a 403's message. An answer from GCE is trusted before
// the state of ctx: a code that came back is what happened.
func mapError(ctx context.Context, perm string, err error) *cloud.Error {
	e := &cloud.Error{Provider: Name, Err: err}

	var ce *credentialsError
	if errors.As(err, &ce) {
		// Nothing reached compute: the token could not be had.
		e.NotSent = true
		var ae *auth.Error
		switch {
		case errors.As(err, &ae):
			e.Kind, e.Code = cloud.ErrUnauthorized, "TokenRefused"
			e.Message = "the OAuth2 token endpoint refused this server's Application Default Credentials: " + truncate(ae.Error(), 512)
		case timedOut(ctx, err):
			e.Kind, e.Code = cloud.ErrUnavailable, "CredentialsTimeout"
			e.Message = "Application Default Credentials not resolved in time: " + err.Error()
		default:
			e.Kind, e.Code = cloud.ErrUnauthorized, "CredentialsError"
			e.Message = "no usable Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's file or the metadata server): " + err.Error()
		}
		return e
	}

	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Message == "" && len(ge.Errors) == 0 {
			// Google always answers errors in its JSON envelope; a bare
			// status (an HTML page, a proxy's 404) is not GCE speaking.
			return cloud.BadAnswer(Name, fmt.Sprintf("HTTP %d without Google's error envelope", ge.Code), err)
		}
		reason := ""
		if len(ge.Errors) > 0 {
			reason = ge.Errors[0].Reason
		}
		e.Code, e.Message = reason, ge.Message
		if e.Code == "" {
			e.Code = strconv.Itoa(ge.Code)
		}
		switch {
		case ge.Code == http.StatusTooManyRequests || reason == "rateLimitExceeded" || reason == "userRateLimitExceeded" || reason == "RATE_LIMIT_EXCEEDED":
			e.Kind, e.RetryAfter = cloud.ErrThrottled, retryAfter(ge.Header)
		case ge.Code == http.StatusNotFound:
			e.Kind = cloud.ErrNotFound
		case ge.Code == http.StatusUnauthorized:
			e.Kind = cloud.ErrUnauthorized
			e.Message = "the compute API refused this server's access token: " + ge.Message
		case ge.Code == http.StatusForbidden:
			e.Kind = cloud.ErrUnauthorized
			e.Message = fmt.Sprintf("permission denied (this server's service account needs %s on the instance): %s", perm, ge.Message)
		case reason == "resourceNotReady" || reason == "resourceInUseByAnotherResource" ||
			ge.Code == http.StatusConflict || ge.Code == http.StatusPreconditionFailed:
			e.Kind = cloud.ErrInvalidState
		default:
			// 5xx, and a 400 this driver should not have caused.
			e.Kind = cloud.ErrUnavailable
		}
		return e
	}

	if timedOut(ctx, err) {
		e.Kind, e.Code = cloud.ErrTimeout, "Timeout"
		e.Message = "no answer from GCE in time; the call may or may not have been accepted"
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		e.Kind, e.Code = cloud.ErrUnavailable, "NetworkError"
		e.Message = err.Error()
		return e
	}
	// Not the network and not Google's error: an answer the SDK could not
	// read (a 200 that is not JSON, a proxy's page).
	return cloud.BadAnswer(Name, "an answer the Compute SDK could not read: "+truncate(err.Error(), 256), err)
}

// lostAnswer: the call failed in the network before any answer (a
// connection reset or closed mid-call), with time left to ask again.
// Timeouts are not: their time is up.
func lostAnswer(ctx context.Context, err error) bool {
	var ue *url.Error
	var ce *credentialsError
	return errors.As(err, &ue) && !errors.As(err, &ce) && !timedOut(ctx, err)
}

// retryableWait: a wait that failed this way may be tried again (waiting
// only reads the operation).
func retryableWait(err error) bool {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code >= 500 || ge.Code == http.StatusTooManyRequests
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

func timedOut(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryAfter honours a Retry-After in seconds, else gives the default hint.
func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 && s < 3600 {
		return time.Duration(s) * time.Second
	}
	return throttleRetryAfter
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
