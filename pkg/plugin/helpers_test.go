package plugin

import (
	"errors"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

func errorString(s string) error { return errors.New(s) }

func metav1Status(code int32, reason, msg string) metav1.Status {
	return metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: metav1.StatusReason(reason), Message: msg}
}

// lockedBuilder is a strings.Builder safe for the client's warning writer
// and the runner writing at once.
type lockedBuilder struct {
	mu sync.Mutex
	strings.Builder
}

func (b *lockedBuilder) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Builder.Write(p)
}

func (b *lockedBuilder) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Builder.String()
}

func testStreams() genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: strings.NewReader(""), Out: &lockedBuilder{}, ErrOut: &lockedBuilder{}}
}

// testDeps serves --wait from nodes (nil: any use fails the run) and
// keeps the clock still, so progress lines are stable.
func testDeps(nodes corev1client.NodeInterface) deps {
	return deps{
		nodes: func(*rest.Config) (corev1client.NodeInterface, error) {
			if nodes == nil {
				return nil, errors.New("this test has no core Nodes")
			}
			return nodes, nil
		},
		now: func() time.Time { return time.Unix(0, 0) },
	}
}
