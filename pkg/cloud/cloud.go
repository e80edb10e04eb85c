// Package cloud is the narrow seam between the API server and the clouds:
// it turns a Node's spec.providerID into an Instance, and drives a machine
// through a Driver built on the cloud's official SDK. One package per cloud
// lives below it (aws, tencentcloud); package providers wires them by name.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Provider names as they appear in the cloud config and in API objects.
const (
	ProviderAWS          = "aws"
	ProviderTencentCloud = "tencentcloud"
)

// Instance is a machine at a cloud, as resolved from a Node.
type Instance struct {
	// Provider is ProviderAWS or ProviderTencentCloud.
	Provider string
	// ID is the cloud's instance ID (i-0abc…, ins-xxxx).
	ID string
	// Region is the cloud region the SDK client must be pointed at.
	Region string
	// Zone is the zone as the providerID or node label gave it (may be empty).
	Zone string
}

func (i Instance) String() string {
	return fmt.Sprintf("%s/%s/%s", i.Provider, i.Region, i.ID)
}

// CheckFor is what a driver asks of an Instance before calling its cloud:
// that it is the driver's own provider's, with a region and an ID.
func (i Instance) CheckFor(provider string) error {
	if i.Provider != provider {
		return fmt.Errorf("%s: instance %s belongs to provider %q", provider, i.ID, i.Provider)
	}
	if i.Region == "" || i.ID == "" {
		return fmt.Errorf("%s: instance %q has no region or ID", provider, i.String())
	}
	return nil
}

// RebootMode asks for a clean OS reboot (soft) or a forced one (hard).
// Clouds without the choice (EC2) treat both the same.
type RebootMode string

const (
	RebootSoft RebootMode = "soft"
	RebootHard RebootMode = "hard"
)

// RebootOptions are the knobs of one reboot.
type RebootOptions struct {
	Mode RebootMode
	// DryRun asks the cloud whether the reboot would be allowed, and
	// changes nothing.
	DryRun bool
}

// Result is what the cloud said about an accepted call.
type Result struct {
	// RequestID is the cloud's own request ID, for the audit trail.
	RequestID string
}

// Driver drives machines of one cloud. Implementations are safe for
// concurrent use and keep one SDK client per region.
//
// Further actions (stop, start, …) are optional capability interfaces next
// to this one, so a cloud that cannot do them simply does not implement them.
type Driver interface {
	// Name is the provider name (ProviderAWS, …).
	Name() string
	// Reboot reboots one instance. It must not retry a call the cloud may
	// already have acted on: a retried reboot is a second reboot.
	Reboot(ctx context.Context, inst Instance, opts RebootOptions) (Result, error)
}

// ErrorKind classifies a cloud failure so the API layer can answer with the
// right HTTP status without knowing any SDK.
type ErrorKind string

const (
	// ErrNotFound: the cloud does not know the instance (in that region).
	ErrNotFound ErrorKind = "NotFound"
	// ErrInvalidState: the instance exists but cannot do this now
	// (stopped, busy with another operation).
	ErrInvalidState ErrorKind = "InvalidState"
	// ErrThrottled: the cloud refused the call for rate limiting; it did
	// nothing and the call may be retried after RetryAfter.
	ErrThrottled ErrorKind = "Throttled"
	// ErrUnauthorized: the cloud refused our credentials or permissions.
	ErrUnauthorized ErrorKind = "Unauthorized"
	// ErrTimeout: no answer in time; the outcome is unknown.
	ErrTimeout ErrorKind = "Timeout"
	// ErrUnavailable: any other failure of the cloud or the network.
	ErrUnavailable ErrorKind = "Unavailable"
)

// Error is the one error type drivers return for a cloud failure.
type Error struct {
	Kind ErrorKind
	// Provider is the cloud that failed.
	Provider string
	// Code is the cloud's own error code (InvalidInstanceID.NotFound, …).
	Code string
	// Message is the cloud's own message.
	Message string
	// RequestID is the cloud's request ID when it answered.
	RequestID string
	// RetryAfter is a hint for ErrThrottled.
	RetryAfter time.Duration
	// Err is the underlying SDK error.
	Err error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Provider, e.Kind)
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " [request " + e.RequestID + "]"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the ErrorKind of err, or "" when err is not a *Error.
func KindOf(err error) ErrorKind {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Kind
	}
	return ""
}
