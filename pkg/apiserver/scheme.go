package apiserver

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

var (
	// Scheme holds this server's API types.
	Scheme = runtime.NewScheme()
	// Codecs serialize them.
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	utilruntime.Must(infraopsv1.AddToScheme(Scheme))
	utilruntime.Must(Scheme.AddFieldLabelConversionFunc(infraopsv1.SchemeGroupVersion.WithKind("Node"), nodeFieldLabel))

	// The unversioned meta types every API server answers with (Status,
	// APIVersions, WatchEvent, …), as sample-apiserver registers them.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	Scheme.AddUnversionedTypes(unversioned,
		&metav1.Status{},
		&metav1.APIVersions{},
		&metav1.APIGroupList{},
		&metav1.APIGroup{},
		&metav1.APIResourceList{},
	)
}

// nodeFieldLabel lets list requests carry field selectors on the fields the
// node storage matches (node.FieldLabels).
func nodeFieldLabel(label, value string) (string, string, error) {
	for _, l := range node.FieldLabels {
		if l == label {
			return label, value, nil
		}
	}
	return "", "", &unsupportedFieldError{label: label}
}

type unsupportedFieldError struct{ label string }

func (e *unsupportedFieldError) Error() string {
	return "field label not supported: " + e.label
}
