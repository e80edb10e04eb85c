package plugin

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/clientcmd"
)

// errReported ends a run whose failures were already printed: only the
// exit code is left to give.
var errReported = errors.New("failures were reported")

// FormatError renders err the way kubectl's cmdutil.CheckErr does
// (k8s.io/kubectl/pkg/cmd/util), so `kubectl restart` fails like any
// kubectl command: "Error from server (Forbidden): …", "The Node "x" is
// invalid: …", "error: …". It is reproduced rather than imported because
// that package pulls in most of kubectl. The result has no trailing
// newline.
func FormatError(err error) string {
	if agg, ok := err.(utilerrors.Aggregate); ok && len(agg.Errors()) == 1 {
		err = agg.Errors()[0]
	}
	if err == nil {
		return ""
	}
	var msg string
	switch {
	case isInvalidReasonStatusError(err):
		msg = invalidMessage(err.(*apierrors.StatusError).Status())
	case clientcmd.IsConfigurationInvalid(err):
		msg = multilineError("Error in configuration: ", err)
	default:
		if agg, ok := err.(utilerrors.Aggregate); ok {
			var b strings.Builder
			for _, e := range agg.Errors() {
				fmt.Fprintf(&b, "%s\n", messageForError(e))
			}
			msg = b.String()
			break
		}
		var ok bool
		if msg, ok = standardErrorMessage(err); !ok {
			msg = err.Error()
			if !strings.HasPrefix(msg, "error: ") {
				msg = "error: " + msg
			}
		}
	}
	return strings.TrimRight(msg, "\n")
}

func isInvalidReasonStatusError(err error) bool {
	se, ok := err.(*apierrors.StatusError)
	return ok && apierrors.IsInvalid(err) && se.Status().Reason == metav1.StatusReasonInvalid
}

func invalidMessage(status metav1.Status) string {
	details := status.Details
	s := "The request is invalid"
	if details == nil {
		if status.Message != "" {
			s += ": " + status.Message
		}
		return s
	}
	if details.Kind != "" || details.Name != "" {
		s = fmt.Sprintf("The %s %q is invalid", details.Kind, details.Name)
	} else if status.Message != "" && len(details.Causes) == 0 {
		s += ": " + status.Message
	}
	if len(details.Causes) == 0 {
		return s
	}
	var errs []error
	seen := sets.New[string]()
	for _, c := range details.Causes {
		m := fmt.Sprintf("%s: %s", c.Field, c.Message)
		if !seen.Has(m) {
			seen.Insert(m)
			errs = append(errs, errors.New(m))
		}
	}
	return multilineError(s+": ", utilerrors.NewAggregate(errs))
}

func standardErrorMessage(err error) (string, bool) {
	if status, ok := err.(apierrors.APIStatus); ok {
		s := status.Status()
		switch {
		case s.Reason == metav1.StatusReasonUnauthorized:
			return fmt.Sprintf("error: You must be logged in to the server (%s)", s.Message), true
		case s.Reason != "":
			return fmt.Sprintf("Error from server (%s): %s", s.Reason, err.Error()), true
		default:
			return fmt.Sprintf("Error from server: %s", err.Error()), true
		}
	}
	if apierrors.IsUnexpectedObjectError(err) {
		return fmt.Sprintf("Server returned an unexpected response: %s", err.Error()), true
	}
	if t, ok := err.(*url.Error); ok {
		if strings.Contains(t.Err.Error(), "connection refused") {
			host := t.URL
			if server, err := url.Parse(t.URL); err == nil {
				host = server.Host
			}
			return fmt.Sprintf("The connection to the server %s was refused - did you specify the right host or port?", host), true
		}
		return fmt.Sprintf("Unable to connect to the server: %v", t.Err), true
	}
	return "", false
}

func messageForError(err error) string {
	if msg, ok := standardErrorMessage(err); ok {
		return msg
	}
	return err.Error()
}

func multilineError(prefix string, err error) string {
	agg, ok := err.(utilerrors.Aggregate)
	if !ok {
		return fmt.Sprintf("%s%s\n", prefix, err)
	}
	errs := utilerrors.Flatten(agg).Errors()
	switch len(errs) {
	case 0:
		return fmt.Sprintf("%s%v\n", prefix, err)
	case 1:
		return fmt.Sprintf("%s%v\n", prefix, messageForError(errs[0]))
	}
	var b strings.Builder
	fmt.Fprintln(&b, prefix)
	for _, e := range errs {
		fmt.Fprintf(&b, "* %v\n", messageForError(e))
	}
	return b.String()
}
