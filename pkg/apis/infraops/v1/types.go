package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Node is a read-only view of a core Node and the cloud machine behind it.
type Node struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata, copied from the core Node (name, uid, labels, …).
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Status is the node's cloud identity and readiness.
	// +optional
	Status NodeStatus `json:"status,omitempty"`
}

// NodeStatus is what the server resolved about a Node.
type NodeStatus struct {
	// ProviderID is the core Node's spec.providerID.
	// +optional
	ProviderID string `json:"providerID,omitempty"`
	// Cloud is the machine behind the node; empty when the providerID cannot
	// be resolved (see CloudError).
	// +optional
	Cloud *CloudInstance `json:"cloud,omitempty"`
	// CloudError says why the providerID could not be resolved to a machine
	// this server can drive. Actions on such a node are refused with 422.
	// +optional
	CloudError string `json:"cloudError,omitempty"`
	// Ready is the status of the node's Ready condition: True, False or Unknown.
	// +optional
	Ready string `json:"ready,omitempty"`
	// BootID is the core Node's status.nodeInfo.bootID; it changes when the
	// machine has rebooted.
	// +optional
	BootID string `json:"bootID,omitempty"`
	// LastAction is the last action taken on the node through this API
	// (dry runs aside), followed from the request to its end.
	// +optional
	LastAction *LastAction `json:"lastAction,omitempty"`
}

// ActionPhase is how far an action on a node has come.
type ActionPhase string

const (
	// ActionRequested: the cloud accepted the call (or its outcome is not
	// known yet, see message); the node has not yet shown the result.
	ActionRequested ActionPhase = "Requested"
	// ActionCompleted: the node shows the result (restart: a new boot ID
	// and Ready; stop: not Ready; start: Ready).
	ActionCompleted ActionPhase = "Completed"
	// ActionFailed: the cloud refused the call; nothing was done.
	ActionFailed ActionPhase = "Failed"
	// ActionTimedOut: the node did not show the result within the
	// server's completion timeout (--action-completion-timeout).
	ActionTimedOut ActionPhase = "TimedOut"
)

// LastAction is one action taken on a node and how far it has come.
type LastAction struct {
	// Action is the subresource: restart, stop, start.
	Action string `json:"action"`
	// Mode is the mode the cloud used, for actions that have one.
	// +optional
	Mode string `json:"mode,omitempty"`
	// User is who asked.
	User string `json:"user"`
	// Reason is the reason given in the request.
	// +optional
	Reason string `json:"reason,omitempty"`
	// RequestedAt is when the cloud answered the call.
	RequestedAt metav1.Time `json:"requestedAt"`
	// CloudRequestID is the cloud's ID of the call.
	// +optional
	CloudRequestID string `json:"cloudRequestID,omitempty"`
	// Phase is Requested, Completed, Failed or TimedOut.
	Phase ActionPhase `json:"phase"`
	// CompletedAt is when the phase left Requested.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// Message says why the phase is what it is (the cloud's error for
	// Failed, an unknown outcome for Requested).
	// +optional
	Message string `json:"message,omitempty"`
	// BootIDAtRequest and ReadyAtRequest are the Node's
	// status.nodeInfo.bootID and Ready condition when the action was
	// requested; BootID and Ready are what they were when the phase was
	// last judged. The phase is judged from them.
	// +optional
	BootIDAtRequest string `json:"bootIDAtRequest,omitempty"`
	// +optional
	ReadyAtRequest string `json:"readyAtRequest,omitempty"`
	// +optional
	BootID string `json:"bootID,omitempty"`
	// +optional
	Ready string `json:"ready,omitempty"`
}

// CloudInstance identifies a machine at a cloud.
type CloudInstance struct {
	// Provider is the cloud, by its config key: aws, tencentcloud, gce,
	// azure or alibabacloud (the table in pkg/cloud/providers).
	Provider string `json:"provider"`
	// Region is the cloud region the machine is in.
	// +optional
	Region string `json:"region,omitempty"`
	// Zone is the availability zone, as the node label or providerID gives it.
	// +optional
	Zone string `json:"zone,omitempty"`
	// InstanceID is the machine as its cloud names it: EC2's and ECS's
	// i-…, CVM's ins-…, a GCE instance name, the ARM resource ID of an
	// Azure VM or scale-set instance.
	InstanceID string `json:"instanceID"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// NodeList is a list of Nodes.
type NodeList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`

	// Items are the nodes.
	Items []Node `json:"items"`
}

// RestartMode says how the machine is rebooted.
type RestartMode string

const (
	// RestartModeSoft asks the operating system to reboot cleanly.
	RestartModeSoft RestartMode = "soft"
	// RestartModeHard resets the machine. On EC2 it is the same as soft:
	// EC2 itself forces the reboot when the OS does not shut down in time.
	RestartModeHard RestartMode = "hard"
)

// DryRunAll is the only value dryRun takes, as in the Kubernetes API.
const DryRunAll = "All"

// ActionOptions are the fields every node action takes in its request body.
type ActionOptions struct {
	// DryRun, when ["All"], checks the request with the cloud and changes
	// nothing. It is a body field, not a query parameter, because the
	// connect handler refuses a dryRun query parameter.
	// +optional
	// +listType=atomic
	DryRun []string `json:"dryRun,omitempty"`
	// Reason is free text recorded in the Event and the audit log.
	// +optional
	Reason string `json:"reason,omitempty"`
	// NodeUID is a precondition: the action is refused with 409 when the
	// node's UID differs (the node was deleted and recreated).
	// +optional
	NodeUID types.UID `json:"nodeUID,omitempty"`
}

// IsDryRun reports whether the request asks for a dry run.
func (o *ActionOptions) IsDryRun() bool {
	return len(o.DryRun) > 0
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// RestartOptions is the optional JSON body of POST nodes/{name}/restart.
type RestartOptions struct {
	metav1.TypeMeta `json:",inline"`

	ActionOptions `json:",inline"`

	// Mode is soft (default) or hard.
	// +optional
	Mode RestartMode `json:"mode,omitempty"`
}

// StopMode says how the machine is stopped.
type StopMode string

const (
	// StopModeSoft shuts the operating system down cleanly.
	StopModeSoft StopMode = "soft"
	// StopModeHard powers the machine off (EC2 Force, CVM StopType HARD).
	StopModeHard StopMode = "hard"
	// StopModeDeallocate is Azure's deallocate: the VM is shut down and
	// its compute released, so it is no longer billed (a powered-off VM
	// is). Other clouds refuse it with a 422 naming their modes.
	StopModeDeallocate StopMode = "deallocate"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// StopOptions is the optional JSON body of POST nodes/{name}/stop.
type StopOptions struct {
	metav1.TypeMeta `json:",inline"`
	ActionOptions   `json:",inline"`
	// Mode is soft (the cloud's default: a clean OS shutdown), hard, or
	// deallocate (Azure only).
	// +optional
	Mode StopMode `json:"mode,omitempty"`
	// StopCharging asks Tencent CVM (StoppedMode STOP_CHARGING) and
	// Alibaba ECS (StoppedMode StopCharging) to stop billing the instance
	// while it is stopped (pay-as-you-go instances with cloud disks only).
	// EC2 and GCE never bill a stopped instance's compute and ignore it;
	// on Azure, use mode deallocate.
	// +optional
	StopCharging bool `json:"stopCharging,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// StartOptions is the optional JSON body of POST nodes/{name}/start.
type StartOptions struct {
	metav1.TypeMeta `json:",inline"`
	ActionOptions   `json:",inline"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// NodeAction is the answer (202 Accepted) to an accepted action on a node:
// what was asked of which machine, by whom, and the cloud's request ID.
type NodeAction struct {
	metav1.TypeMeta `json:",inline"`

	// Action is the action taken, e.g. restart.
	Action string `json:"action"`
	// NodeName is the node's name.
	NodeName string `json:"nodeName"`
	// NodeUID is the node's UID when the action was taken.
	NodeUID types.UID `json:"nodeUID"`
	// Cloud is the machine the action went to.
	Cloud CloudInstance `json:"cloud"`
	// Mode is the restart mode, for actions that have one.
	// +optional
	Mode string `json:"mode,omitempty"`
	// DryRun is true when nothing was changed.
	DryRun bool `json:"dryRun"`
	// Reason is the reason given in the request.
	// +optional
	Reason string `json:"reason,omitempty"`
	// CloudRequestID is the cloud's ID of the call, for its own audit trail.
	// +optional
	CloudRequestID string `json:"cloudRequestID,omitempty"`
	// User is the user who asked.
	User string `json:"user"`
	// Time is when the cloud accepted the call.
	Time metav1.Time `json:"time"`
}
