package node

import (
	"errors"
	"fmt"
	"math"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// The status reasons this server adds to the Kubernetes ones, for the codes
// metav1 has no reason for. Clients that do not know them go by the code.
const (
	// StatusReasonBadGateway (502): the cloud failed or refused our own
	// credentials; the caller cannot fix it, an operator must.
	StatusReasonBadGateway metav1.StatusReason = "BadGateway"
)

// ErrUnsupported is what an Action's Run returns when the node's cloud
// driver lacks the capability.
var ErrUnsupported = errors.New("this cloud's driver cannot do this action")

func invalidNode(name string, errs ...*field.Error) error {
	return apierrors.NewInvalid(infraopsv1.Kind("Node"), name, errs)
}

// unresolvableNode answers 422 for a node whose providerID is missing,
// malformed, of an unsupported cloud, not a machine (Fargate), or whose
// region cannot be told.
func unresolvableNode(name string, n *corev1.Node, err error) error {
	var pidErr *cloud.InvalidProviderIDError
	if errors.As(err, &pidErr) {
		if n.Spec.ProviderID == "" {
			return invalidNode(name, field.Required(field.NewPath("spec", "providerID"), "the node has no providerID, so the machine behind it is unknown"))
		}
		return invalidNode(name, field.Invalid(field.NewPath("spec", "providerID"), n.Spec.ProviderID, pidErr.Reason))
	}
	if errors.Is(err, cloud.ErrRegionUnknown) {
		return invalidNode(name, field.Required(field.NewPath("metadata", "labels").Key(cloud.LabelRegion), err.Error()))
	}
	return invalidNode(name, field.Invalid(field.NewPath("spec", "providerID"), n.Spec.ProviderID, err.Error()))
}

// cloudError turns a driver failure into the Status the caller sees.
//
//	NotFound      422: the providerID names an instance the cloud does not have (in that region)
//	InvalidState  409: the instance cannot do it now (stopped, another operation running)
//	Throttled     429 with Retry-After: the cloud's or our own rate limit; nothing was done
//	Unauthorized  502: the cloud refused this server's credentials or permissions
//	Timeout       504: no answer in time; the outcome is unknown and the node stays locked
//	Unavailable   502: any other cloud or network failure
func cloudError(name, action string, inst cloud.Instance, err error) error {
	var ce *cloud.Error
	if errors.Is(err, ErrUnsupported) {
		return invalidNode(name, field.Invalid(field.NewPath("spec", "providerID"), inst.Provider,
			fmt.Sprintf("the %s driver cannot %s machines", inst.Provider, action)))
	}
	var ue *cloud.UnsupportedError
	if errors.As(err, &ue) {
		if ue.Mode != "" {
			// The caller's to change: 422 on the body's field, naming
			// the modes this cloud has.
			return apierrors.NewInvalid(infraopsv1.Kind(eventReason(action, "Options")), name,
				field.ErrorList{field.Invalid(field.NewPath("mode"), ue.Mode, ue.Error())})
		}
		return invalidNode(name, field.Invalid(field.NewPath("spec", "providerID"), inst.Provider, ue.Error()))
	}
	if !errors.As(err, &ce) {
		ce = &cloud.Error{Kind: cloud.ErrUnavailable, Provider: inst.Provider, Message: err.Error(), Err: err}
	}
	msg := fmt.Sprintf("%s of %s instance %s in %s: %s", action, inst.Provider, inst.ID, inst.Region, ce.Error())
	var status *apierrors.StatusError
	switch ce.Kind {
	case cloud.ErrNotFound:
		return invalidNode(name, field.Invalid(field.NewPath("spec", "providerID"), inst.ID,
			fmt.Sprintf("the cloud has no such instance in region %s: %s", inst.Region, ce.Error())))
	case cloud.ErrNotOwned:
		return invalidNode(name, field.Invalid(field.NewPath("spec", "providerID"), inst.ID,
			"the cloud's ownership check refused the instance: "+ce.Error()))
	case cloud.ErrInvalidState:
		status = apierrors.NewConflict(infraopsv1.Resource("nodes"), name, errors.New(msg))
	case cloud.ErrThrottled:
		secs := int(math.Ceil(ce.RetryAfter.Seconds()))
		if secs < 1 {
			secs = 1
		}
		status = apierrors.NewTooManyRequests(msg, secs)
	case cloud.ErrTimeout:
		status = apierrors.NewTimeoutError(msg+"; the outcome is unknown, the node stays locked until the cooldown ends", 0)
	default:
		status = &apierrors.StatusError{ErrStatus: metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusBadGateway,
			Reason:  StatusReasonBadGateway,
			Message: msg,
		}}
	}
	if status.ErrStatus.Details == nil {
		status.ErrStatus.Details = &metav1.StatusDetails{}
	}
	d := status.ErrStatus.Details
	d.Name, d.Group, d.Kind = name, infraopsv1.GroupName, "nodes"
	if ce.Code != "" {
		d.Causes = append(d.Causes, metav1.StatusCause{Type: infraopsv1.CauseCloudErrorCode, Message: ce.Code})
	}
	if ce.RequestID != "" {
		d.Causes = append(d.Causes, metav1.StatusCause{Type: infraopsv1.CauseCloudRequestID, Message: ce.RequestID})
	}
	return status
}

// cloudDidNothing reports whether the cloud surely did not act, so the node
// lock can be released for an immediate retry. Timeouts and unknown
// failures keep the lock: the reboot may have happened.
func cloudDidNothing(err error) bool {
	var ue *cloud.UnsupportedError
	if errors.Is(err, ErrUnsupported) || errors.As(err, &ue) || cloud.NotSent(err) {
		return true
	}
	switch cloud.KindOf(err) {
	case cloud.ErrNotFound, cloud.ErrNotOwned, cloud.ErrInvalidState, cloud.ErrThrottled, cloud.ErrUnauthorized:
		return true
	}
	return false
}

func requestIDOf(err error) string {
	var ce *cloud.Error
	if errors.As(err, &ce) {
		return ce.RequestID
	}
	return ""
}

// kubeAPIError answers for a failed call this server made to kube-apiserver
// (what is being done: "read the node", "lock the node"). Throttling and
// timeouts keep kube-apiserver's own Status. A 401/403/404 there is this
// server's misconfiguration (its ServiceAccount's RBAC, a missing lock
// namespace), not the caller's: passing it on would read as if the caller
// were forbidden or the node missing, so it becomes a 503 that says so.
func kubeAPIError(doing string, err error) error {
	switch {
	case apierrors.IsTooManyRequests(err), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsServiceUnavailable(err):
		return err
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return apierrors.NewServiceUnavailable(fmt.Sprintf("this server is not allowed to %s (check its ServiceAccount's RBAC): %v", doing, err))
	case apierrors.IsNotFound(err):
		return apierrors.NewServiceUnavailable(fmt.Sprintf("cannot %s: %v (does --lock-namespace exist?)", doing, err))
	}
	return apierrors.NewServiceUnavailable(fmt.Sprintf("cannot %s: %v", doing, err))
}
