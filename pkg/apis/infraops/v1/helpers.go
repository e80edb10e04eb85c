package v1

// Common returns the fields every action's options share; the options kinds
// embed ActionOptions, so they all have it.
func (o *ActionOptions) Common() *ActionOptions { return o }

// Status cause types in the details of this API's errors, for clients that
// must tell refusals apart without reading messages.
const (
	// CauseNodeLocked marks the 409 of a node whose lock is held: another
	// action on it is in flight or in its cooldown. Retrying once
	// Retry-After has passed would act on the node again. The cause's
	// message names the action and the user that hold the lock.
	CauseNodeLocked = "NodeLocked"
	// CauseCloudErrorCode carries the cloud's own error code.
	CauseCloudErrorCode = "CloudErrorCode"
	// CauseCloudRequestID carries the cloud's request ID.
	CauseCloudRequestID = "CloudRequestID"
)
