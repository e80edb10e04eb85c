package cloud

import (
	"errors"
	"fmt"
	"time"
)

// ErrorKind classifies a cloud failure so the API layer can answer with the
// right HTTP status without knowing any SDK.
type ErrorKind string

const (
	// ErrNotFound: the cloud does not know the instance (in that region).
	ErrNotFound ErrorKind = "NotFound"
	// ErrNotOwned: the instance exists but the ownership check (see
	// OwnershipChecks) says it is not this cluster's; nothing was done.
	ErrNotOwned ErrorKind = "NotOwned"
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
	// ErrBadAnswer: an answer came back that is not the cloud's own (no
	// request ID, no envelope, an HTML page from a proxy or captive
	// portal). The call may or may not have reached the cloud, so the
	// outcome is unknown, as for ErrTimeout; it is never a success.
	ErrBadAnswer ErrorKind = "BadAnswer"
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
	// NotSent is true when the call never left this server (no usable
	// credentials, credentials not resolved in time): the cloud surely
	// did nothing, whatever the Kind.
	NotSent bool
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

// NotSent reports whether err says the call never left this server.
func NotSent(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.NotSent
}

// BadAnswer builds the ErrBadAnswer error of a driver: what was wrong with
// the answer, in words a user can pass to whoever runs the network.
func BadAnswer(provider, what string, err error) *Error {
	return &Error{
		Kind: ErrBadAnswer, Provider: provider, Code: "MalformedAnswer",
		Message: what + "; this is not the cloud's own answer (a proxy or a misrouted endpoint?), and whether the cloud acted is unknown",
		Err:     err,
	}
}

// UnsupportedError is a request the cloud cannot do as asked: an action
// its driver lacks, or a mode it does not have. It is the caller's to
// change (422), and nothing was sent.
type UnsupportedError struct {
	Provider string
	Action   string
	// Mode is the mode asked for, when the mode is what is unsupported.
	Mode Mode
	// Modes are the modes the cloud has for Action, default first.
	Modes []Mode
	// Reason says why, when it is not the mode.
	Reason string
}

func (e *UnsupportedError) Error() string {
	switch {
	case e.Mode != "" && len(e.Modes) == 0:
		return fmt.Sprintf("%s has no %s modes; omit the mode", e.Provider, e.Action)
	case e.Mode != "":
		return fmt.Sprintf("%s has no %s mode %q; the modes it has are: %s (default %s)",
			e.Provider, e.Action, e.Mode, ModeNames(e.Modes), e.Modes[0])
	case e.Reason != "":
		return fmt.Sprintf("%s cannot %s: %s", e.Provider, e.Action, e.Reason)
	}
	return fmt.Sprintf("%s cannot %s machines", e.Provider, e.Action)
}

// InvalidProviderIDError says why a providerID cannot name a machine we
// can drive.
type InvalidProviderIDError struct {
	// ProviderID is the rejected input.
	ProviderID string
	// Reason is a sentence fit for a user.
	Reason string
	// Unsupported is true when the ID is well formed but not something we
	// can reboot (another cloud, an EKS Fargate pod); false when it is
	// malformed.
	Unsupported bool
}

func (e *InvalidProviderIDError) Error() string {
	what := "invalid"
	if e.Unsupported {
		what = "unsupported"
	}
	// %q: the input comes from a Node object and ends up in logs.
	return fmt.Sprintf("%s providerID %q: %s", what, e.ProviderID, e.Reason)
}

// ErrRegionUnknown is wrapped by every Resolve error that is about the
// region, so the registry answers "fix the Node's region label or the
// config" rather than "fix the providerID".
var ErrRegionUnknown = errors.New("cannot tell the cloud region")

// NoRegionError is a cloud's answer when neither the labels, nor the
// providerID, nor the config tell the region of instance id.
func NoRegionError(provider, id string) error {
	return fmt.Errorf("%w of %s: set the label %s on the Node, or providers.%s.region in the cloud config",
		ErrRegionUnknown, id, LabelRegion, provider)
}

// BadRegionLabelError is a cloud's answer when a region label holds what
// is not one of its region names.
func BadRegionLabelError(provider, id, label, value string) error {
	return fmt.Errorf("%w of %s: label %s=%q is not a %s region name; set it to the full region name",
		ErrRegionUnknown, id, label, value, provider)
}
