package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group served by this server.
const GroupName = "infraops.michael.io"

// SchemeGroupVersion is the served version.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1"}

// Resource returns a GroupResource of this group.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

// AddToScheme registers the types for v1 and, with the same Go types, for the
// internal version the generic handlers decode into; this is what lets the
// server work without an internal package or conversions.
func AddToScheme(scheme *runtime.Scheme) error {
	for _, gv := range []schema.GroupVersion{SchemeGroupVersion, {Group: GroupName, Version: runtime.APIVersionInternal}} {
		scheme.AddKnownTypes(gv,
			&Node{},
			&NodeList{},
			&RestartOptions{},
			&StopOptions{},
			&StartOptions{},
			&NodeAction{},
			&Budget{},
			&BudgetList{},
		)
	}
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}

// Kind returns a GroupKind of this group.
func Kind(kind string) schema.GroupKind {
	return SchemeGroupVersion.WithKind(kind).GroupKind()
}
