package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// resourceName is how every line of the plugin names a node of this
// group, -o name included: kind.group/name, as kubectl prints objects of a
// non-core group (deployment.apps/x restarted). node/x would name the core
// Node.
func resourceName(node string) string {
	return "node." + infraopsv1.GroupName + "/" + node
}

// acceptedLine is the default output of an accepted action, e.g.
//
//	node.infraops.michael.io/ip-10-0-1-2 restart requested (aws i-0abc in us-east-1, cloud request 5f3c)
//
// The mode is shown only when it is not soft, so the common case stays
// short and a hard reset stands out.
func acceptedLine(a *infraopsv1.NodeAction) string {
	where := a.Cloud.Provider + " " + a.Cloud.InstanceID
	if a.Cloud.Region != "" {
		where += " in " + a.Cloud.Region
	}
	details := []string{where}
	if a.Mode != "" && a.Mode != string(infraopsv1.RestartModeSoft) {
		details = append(details, "mode "+a.Mode)
	}
	if a.CloudRequestID != "" {
		details = append(details, "cloud request "+a.CloudRequestID)
	}
	s := fmt.Sprintf("%s %s requested (%s)", resourceName(a.NodeName), a.Action, strings.Join(details, ", "))
	if a.DryRun {
		s += " (server dry run)"
	}
	return s
}

// clientDryRunLine says exactly what would be sent.
func clientDryRunLine(action, node string, body runtime.Object) (string, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s requested (dry run): POST %s %s", resourceName(node), action, actionPath(action, node), data), nil
}

// printObjects prints the objects as -o json or yaml does in kubectl: one
// object alone, several as a v1 List.
func printObjects(w io.Writer, format string, objs []runtime.Object) error {
	var p printers.ResourcePrinter
	switch format {
	case OutputJSON:
		p = &printers.JSONPrinter{}
	case OutputYAML:
		p = &printers.YAMLPrinter{}
	default:
		return fmt.Errorf("no printer for output format %q", format)
	}
	if len(objs) == 1 {
		return p.PrintObj(objs[0], w)
	}
	list := &metav1.List{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"},
		Items:    make([]runtime.RawExtension, 0, len(objs)),
	}
	for _, o := range objs {
		list.Items = append(list.Items, runtime.RawExtension{Object: o})
	}
	return p.PrintObj(list, w)
}

// summary is the last line of a run on several nodes.
func summary(total, failed, skipped int) string {
	s := fmt.Sprintf("%d requested, %d failed", total, failed)
	if skipped > 0 {
		s += fmt.Sprintf(", %d not attempted", skipped)
	}
	return s
}
