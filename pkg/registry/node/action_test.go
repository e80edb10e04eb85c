package node

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// A second action built only from an Action value and a capability
// interface, as a platform team would add stop or start: the shared
// machinery must give it locking, events, answers and error codes.

type stopper interface {
	Stop(ctx context.Context, inst cloud.Instance) (cloud.Result, error)
}

var stopAction = Action{
	Name:       "stop",
	NewOptions: func() Options { return &infraopsv1.RestartOptions{} }, // any kind embedding ActionOptions
	Run: func(ctx context.Context, d cloud.Driver, inst cloud.Instance, _ Options) (cloud.Result, error) {
		s, ok := d.(stopper)
		if !ok {
			return cloud.Result{}, ErrUnsupported
		}
		return s.Stop(ctx, inst)
	},
}

type fakeDriver struct {
	name  string
	stops []string
}

func (d *fakeDriver) Name() string { return d.name }
func (d *fakeDriver) Reboot(context.Context, cloud.Instance, cloud.RebootOptions) (cloud.Result, error) {
	return cloud.Result{}, errors.New("not this test")
}

type stoppingDriver struct{ fakeDriver }

func (d *stoppingDriver) Stop(_ context.Context, inst cloud.Instance) (cloud.Result, error) {
	d.stops = append(d.stops, inst.ID)
	return cloud.Result{RequestID: "req-1"}, nil
}

type drivers map[string]cloud.Driver

func (d drivers) Driver(p string) (cloud.Driver, bool) { v, ok := d[p]; return v, ok }

type recordedAnswer struct {
	code int
	obj  runtime.Object
	err  error
}

func (a *recordedAnswer) Object(code int, obj runtime.Object) { a.code, a.obj = code, obj }
func (a *recordedAnswer) Error(err error)                     { a.err = err }

func TestNewActionSharesTheMachinery(t *testing.T) {
	kube := fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "aws-1", UID: "u1"}, Spec: corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-0123456789abcdef0"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "tc-1", UID: "u2", Labels: map[string]string{"topology.kubernetes.io/region": "gz"}}, Spec: corev1.NodeSpec{ProviderID: "qcloud:///100003/ins-abcd1234"}},
	)
	aws := &stoppingDriver{fakeDriver{name: cloud.ProviderAWS}}
	recorder := record.NewFakeRecorder(10)
	rest := NewActionREST(stopAction, ActionConfig{
		Client:        kube,
		Drivers:       drivers{cloud.ProviderAWS: aws, cloud.ProviderTencentCloud: &fakeDriver{name: cloud.ProviderTencentCloud}},
		Locker:        &LeaseLocker{Client: kube, Namespace: "ops", Identity: "test"},
		Recorder:      recorder,
		DefaultRegion: func(string) string { return "" },
		Cooldown:      time.Minute,
	})
	ctx := genericapirequest.WithUser(context.Background(), &user.DefaultInfo{Name: "bob"})
	call := func(node, body string) *recordedAnswer {
		t.Helper()
		a := &recordedAnswer{}
		h, err := rest.Connect(ctx, node, nil, a)
		if err != nil {
			t.Fatal(err)
		}
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		return a
	}

	a := call("aws-1", `{"reason":"maintenance"}`)
	if a.err != nil || a.code != http.StatusAccepted {
		t.Fatalf("want 202, got %d %v", a.code, a.err)
	}
	got := a.obj.(*infraopsv1.NodeAction)
	if got.Action != "stop" || got.User != "bob" || got.CloudRequestID != "req-1" || len(aws.stops) != 1 {
		t.Fatalf("unexpected answer %+v, stops %v", got, aws.stops)
	}
	if e := <-recorder.Events; !strings.HasPrefix(e, "Normal StopRequested stop of aws i-0123456789abcdef0") || !strings.Contains(e, "bob") {
		t.Fatalf("unexpected event %q", e)
	}
	// The node lock is the same for every action.
	if a := call("aws-1", ""); !apierrors.IsConflict(a.err) || len(aws.stops) != 1 {
		t.Fatalf("want 409 while locked, got %v", a.err)
	}
	// A cloud whose driver lacks the capability: 422, and the lock is freed.
	a = call("tc-1", "")
	if !apierrors.IsInvalid(a.err) || !strings.Contains(a.err.Error(), "cannot stop machines") {
		t.Fatalf("want 422 for a driver without Stop, got %v", a.err)
	}
	if _, err := kube.CoordinationV1().Leases("ops").Get(ctx, leaseName("tc-1"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the lock of a refused action was kept: %v", err)
	}
}
