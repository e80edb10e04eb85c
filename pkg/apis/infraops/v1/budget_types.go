package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Budget is one budget of the server's safety policy (--policy-config) and
// its current use: read-only, so an operator can see why an action waits.
type Budget struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the budget as the policy file states it.
	Spec BudgetSpec `json:"spec"`
	// Status is its use now, per group.
	// +optional
	Status BudgetStatus `json:"status,omitempty"`
}

// BudgetSpec is a budget rule of the policy.
type BudgetSpec struct {
	// Selector picks the nodes (label selector syntax); empty: every node.
	// +optional
	Selector string `json:"selector,omitempty"`
	// GroupBy splits the nodes by the value of this label.
	// +optional
	GroupBy string `json:"groupBy,omitempty"`
	// Actions the budget applies to; empty: every action.
	// +optional
	// +listType=atomic
	Actions []string `json:"actions,omitempty"`
	// MaxUnderAction is how many nodes of a group may be under an action at once.
	// +optional
	MaxUnderAction *int32 `json:"maxUnderAction,omitempty"`
	// MinReady is how many (N) or what share (N%) of a group's nodes must stay Ready.
	// +optional
	MinReady string `json:"minReady,omitempty"`
}

// BudgetStatus is a budget's use.
type BudgetStatus struct {
	// UnderActionBound is how long a node counts as under an action at
	// most, when nothing says its action completed sooner.
	// +optional
	UnderActionBound metav1.Duration `json:"underActionBound,omitempty"`
	// Groups are the budget's groups (one without groupBy).
	// +optional
	// +listType=atomic
	Groups []BudgetGroup `json:"groups,omitempty"`
}

// BudgetGroup is the use of one group of a budget.
type BudgetGroup struct {
	// Group is the groupBy label's value ("" without groupBy, or for nodes
	// without the label).
	// +optional
	Group string `json:"group,omitempty"`
	// Nodes is how many nodes the group has.
	Nodes int32 `json:"nodes"`
	// Limit is how many of them may be under an action now (for minReady,
	// computed from the nodes that are Ready now).
	Limit int32 `json:"limit"`
	// InUse is how many are under an action now.
	InUse int32 `json:"inUse"`
	// Holders are the nodes under an action that took this budget.
	// +optional
	// +listType=atomic
	Holders []BudgetHolder `json:"holders,omitempty"`
}

// BudgetHolder is a node that holds a share of a budget.
type BudgetHolder struct {
	// Node is the node's name.
	Node string `json:"node"`
	// Action and User are the accepted action and who asked for it.
	// +optional
	Action string `json:"action,omitempty"`
	// +optional
	User string `json:"user,omitempty"`
	// Since is when the action was accepted.
	// +optional
	Since metav1.Time `json:"since,omitempty"`
	// Until is when the bound releases it, if the action has not completed by then.
	// +optional
	Until metav1.Time `json:"until,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BudgetList is the policy's budgets.
type BudgetList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Budget `json:"items"`
}
