package providers

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/alibabacloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/azure"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/gce"
)

type fakeDriver struct {
	name  string
	calls atomic.Int32
	fn    func(ctx context.Context) (cloud.Result, error)
}

func (f *fakeDriver) Name() string { return f.name }

func (f *fakeDriver) Reboot(ctx context.Context, _ cloud.Instance, _ cloud.RebootOptions) (cloud.Result, error) {
	f.calls.Add(1)
	if f.fn != nil {
		return f.fn(ctx)
	}
	return cloud.Result{RequestID: "req-1"}, nil
}

func factoryOf(d cloud.Driver, seen *cloud.ProviderConfig) Factory {
	return func(_ context.Context, pc cloud.ProviderConfig) (cloud.Driver, error) {
		if seen != nil {
			*seen = pc
		}
		return d, nil
	}
}

func TestNewBuildsEveryKnownProvider(t *testing.T) {
	s, err := New(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Names(), []string{alibabacloud.Name, cloud.ProviderAWS, azure.Name, gce.Name, cloud.ProviderTencentCloud}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, p := range []string{cloud.ProviderAWS, cloud.ProviderTencentCloud, alibabacloud.Name, gce.Name, azure.Name} {
		d, ok := s.Driver(p)
		if !ok || d.Name() != p {
			t.Errorf("Driver(%q) = %v, %v", p, d, ok)
		}
	}
	for _, p := range []string{"openstack", "", "AWS"} {
		if _, ok := s.Driver(p); ok {
			t.Errorf("Driver(%q) found", p)
		}
	}
	// Every name the config accepts has a factory, and no factory is
	// unreachable from the config.
	for name := range DefaultConfig().Providers {
		if _, ok := factories()[name]; !ok {
			t.Errorf("provider %q has no factory", name)
		}
	}
	if len(factories()) != len(DefaultConfig().Providers) {
		t.Errorf("factories %d, known providers %d", len(factories()), len(DefaultConfig().Providers))
	}
}

func TestNewSkipsDisabled(t *testing.T) {
	cfg := DefaultConfig()
	pc := cfg.Providers[cloud.ProviderAWS]
	pc.Enabled = false
	cfg.Providers[cloud.ProviderAWS] = pc
	var seen cloud.ProviderConfig
	s, err := NewWithFactories(context.Background(), cfg, map[string]Factory{
		cloud.ProviderAWS: func(context.Context, cloud.ProviderConfig) (cloud.Driver, error) {
			t.Error("the factory of a disabled provider was called")
			return nil, errors.New("disabled")
		},
		cloud.ProviderTencentCloud: factoryOf(&fakeDriver{name: cloud.ProviderTencentCloud}, &seen),
		alibabacloud.Name:          factoryOf(&fakeDriver{name: alibabacloud.Name}, nil),
		gce.Name:                   factoryOf(&fakeDriver{name: gce.Name}, nil),
		azure.Name:                 factoryOf(&fakeDriver{name: azure.Name}, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Driver(cloud.ProviderAWS); ok {
		t.Error("a disabled provider has a driver")
	}
	if _, ok := s.Driver(cloud.ProviderTencentCloud); !ok {
		t.Error("an enabled provider has no driver")
	}
	if !reflect.DeepEqual(seen, cfg.Providers[cloud.ProviderTencentCloud]) {
		t.Errorf("factory got %+v, want %+v", seen, cfg.Providers[cloud.ProviderTencentCloud])
	}
}

func TestNewErrors(t *testing.T) {
	bad := DefaultConfig()
	bad.Providers["openstack"] = cloud.ProviderConfig{Enabled: true}
	if _, err := New(context.Background(), bad); err == nil {
		t.Error("an invalid config was accepted")
	}
	_, err := NewWithFactories(context.Background(), DefaultConfig(), map[string]Factory{
		cloud.ProviderAWS: func(context.Context, cloud.ProviderConfig) (cloud.Driver, error) {
			return nil, errors.New("boom")
		},
		cloud.ProviderTencentCloud: factoryOf(&fakeDriver{name: cloud.ProviderTencentCloud}, nil),
	})
	if err == nil {
		t.Error("a failing factory was ignored")
	}
	_, err = NewWithFactories(context.Background(), DefaultConfig(), map[string]Factory{
		cloud.ProviderAWS: factoryOf(&fakeDriver{name: cloud.ProviderAWS}, nil),
	})
	if err == nil {
		t.Error("an enabled provider without a factory was accepted")
	}
	var nilSet *Set
	if _, ok := nilSet.Driver(cloud.ProviderAWS); ok || nilSet.Names() != nil {
		t.Error("a nil Set has drivers")
	}
}

func TestWrapRateLimit(t *testing.T) {
	inner := &fakeDriver{name: cloud.ProviderAWS}
	// A refill far slower than the test, so only the burst is available.
	d := Wrap(inner, cloud.ProviderConfig{Timeout: time.Minute, RateLimit: cloud.RateLimit{QPS: 0.001, Burst: 2}})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := d.Reboot(ctx, cloud.Instance{}, cloud.RebootOptions{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := d.Reboot(ctx, cloud.Instance{}, cloud.RebootOptions{})
	var ce *cloud.Error
	if !errors.As(err, &ce) || ce.Kind != cloud.ErrThrottled || ce.Provider != cloud.ProviderAWS || ce.RetryAfter <= 0 {
		t.Fatalf("third call: %v, want ErrThrottled with a RetryAfter", err)
	}
	if n := inner.calls.Load(); n != 2 {
		t.Fatalf("the driver was called %d times, want 2: a throttled call must not reach it", n)
	}
	if d.Name() != cloud.ProviderAWS {
		t.Errorf("Name() = %q", d.Name())
	}
}

func TestWrapTimeout(t *testing.T) {
	inner := &fakeDriver{name: cloud.ProviderTencentCloud, fn: func(ctx context.Context) (cloud.Result, error) {
		<-ctx.Done()
		return cloud.Result{}, &cloud.Error{Kind: cloud.ErrUnavailable, Provider: cloud.ProviderTencentCloud, Err: ctx.Err()}
	}}
	d := Wrap(inner, cloud.ProviderConfig{Timeout: 20 * time.Millisecond, RateLimit: cloud.RateLimit{QPS: 5, Burst: 10}})
	_, err := d.Reboot(context.Background(), cloud.Instance{}, cloud.RebootOptions{})
	if cloud.KindOf(err) != cloud.ErrTimeout {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the cause is lost: %v", err)
	}
}

func TestWrapPassesAnswers(t *testing.T) {
	notFound := &cloud.Error{Kind: cloud.ErrNotFound, Provider: cloud.ProviderAWS, Code: "InvalidInstanceID.NotFound"}
	inner := &fakeDriver{name: cloud.ProviderAWS, fn: func(context.Context) (cloud.Result, error) { return cloud.Result{}, notFound }}
	d := Wrap(inner, cloud.ProviderConfig{Timeout: time.Minute, RateLimit: cloud.RateLimit{QPS: 5, Burst: 10}})
	if _, err := d.Reboot(context.Background(), cloud.Instance{}, cloud.RebootOptions{}); err != notFound {
		t.Fatalf("got %v, want the driver's own error", err)
	}
	inner.fn = nil
	res, err := d.Reboot(context.Background(), cloud.Instance{}, cloud.RebootOptions{})
	if err != nil || res.RequestID != "req-1" {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBucket(2, 3, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if ok, _ := b.take(); !ok {
			t.Fatalf("burst token %d refused", i)
		}
	}
	ok, wait := b.take()
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("empty bucket: ok=%v wait=%v, want refused with 500ms", ok, wait)
	}
	now = now.Add(250 * time.Millisecond)
	if ok, wait := b.take(); ok || wait != 250*time.Millisecond {
		t.Fatalf("half a token: ok=%v wait=%v, want refused with 250ms", ok, wait)
	}
	now = now.Add(250 * time.Millisecond)
	if ok, _ := b.take(); !ok {
		t.Fatal("a refilled token was refused")
	}
	// A long idle time refills only up to the burst.
	now = now.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if ok, _ := b.take(); !ok {
			t.Fatalf("token %d after idle refused", i)
		}
	}
	if ok, _ := b.take(); ok {
		t.Fatal("the bucket held more than its burst")
	}
	if ok, _ := newBucket(0, 0, time.Now).take(); !ok {
		t.Fatal("an unlimited bucket refused")
	}
}

// Dry runs draw on their own bucket: whoever may dry-run a node cannot
// hold off real actions with 429s, and real actions cannot use up the
// dry runs'.
func TestWrapDryRunOwnBudget(t *testing.T) {
	inner := &fakeDriver{name: cloud.ProviderAWS}
	d := Wrap(inner, cloud.ProviderConfig{Timeout: time.Minute,
		RateLimit: cloud.RateLimit{QPS: 0.001, Burst: 2}, DryRunRateLimit: cloud.RateLimit{QPS: 0.001, Burst: 3}})
	ctx := context.Background()
	dry := cloud.RebootOptions{DryRun: true}
	for i := 0; i < 3; i++ {
		if _, err := d.Reboot(ctx, cloud.Instance{}, dry); err != nil {
			t.Fatalf("dry run %d: %v", i, err)
		}
	}
	_, err := d.Reboot(ctx, cloud.Instance{}, dry)
	if cloud.KindOf(err) != cloud.ErrThrottled || !cloud.NotSent(err) || !strings.Contains(err.Error(), "dry runs") {
		t.Fatalf("fourth dry run: %v, want ErrThrottled naming the dry-run limit", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := d.Reboot(ctx, cloud.Instance{}, cloud.RebootOptions{}); err != nil {
			t.Fatalf("real call %d after the dry runs' budget is spent: %v", i, err)
		}
	}
	if _, err := d.Reboot(ctx, cloud.Instance{}, cloud.RebootOptions{}); cloud.KindOf(err) != cloud.ErrThrottled {
		t.Fatalf("third real call: %v, want ErrThrottled", err)
	}
	if n := inner.calls.Load(); n != 5 {
		t.Fatalf("the driver was called %d times, want 5", n)
	}
	// A zero dry-run limit in a config built in code is the default one,
	// not unlimited.
	d = Wrap(inner, cloud.ProviderConfig{Timeout: time.Minute, RateLimit: cloud.RateLimit{QPS: 5, Burst: 10}})
	for i := 0; i < cloud.DefaultDryRunBurst; i++ {
		if _, err := d.Reboot(ctx, cloud.Instance{}, dry); err != nil {
			t.Fatalf("default dry-run budget, call %d: %v", i, err)
		}
	}
	if _, err := d.Reboot(ctx, cloud.Instance{}, dry); cloud.KindOf(err) != cloud.ErrThrottled {
		t.Fatalf("default dry-run budget: %v, want ErrThrottled after %d", err, cloud.DefaultDryRunBurst)
	}
}

type modalDriver struct {
	fakeDriver
	asked []cloud.Mode
}

func (m *modalDriver) Modes(action string) []cloud.Mode {
	if action == cloud.ActionRestart {
		return []cloud.Mode{cloud.ModeHard}
	}
	return nil
}

func (m *modalDriver) Reboot(ctx context.Context, inst cloud.Instance, o cloud.RebootOptions) (cloud.Result, error) {
	m.asked = append(m.asked, o.Mode)
	return cloud.Result{RequestID: "r", Mode: o.Mode}, nil
}

// A mode the cloud does not have is refused before anything is spent or
// sent, naming the modes it has; an omitted one is the cloud's default.
func TestWrapModes(t *testing.T) {
	inner := &modalDriver{fakeDriver: fakeDriver{name: "onemode"}}
	d := Wrap(inner, cloud.ProviderConfig{Timeout: time.Minute, RateLimit: cloud.RateLimit{QPS: 0.001, Burst: 1}})
	_, err := d.Reboot(context.Background(), cloud.Instance{}, cloud.RebootOptions{Mode: cloud.ModeSoft})
	var ue *cloud.UnsupportedError
	if !errors.As(err, &ue) || ue.Mode != cloud.ModeSoft || !strings.Contains(err.Error(), "hard") {
		t.Fatalf("soft on a hard-only cloud: %v", err)
	}
	res, err := d.Reboot(context.Background(), cloud.Instance{}, cloud.RebootOptions{})
	if err != nil || res.Mode != cloud.ModeHard || !reflect.DeepEqual(inner.asked, []cloud.Mode{cloud.ModeHard}) {
		t.Fatalf("omitted mode: %+v, %v; the driver was asked %v", res, err, inner.asked)
	}
	if got := d.Modes(cloud.ActionRestart); !reflect.DeepEqual(got, []cloud.Mode{cloud.ModeHard}) {
		t.Fatalf("Modes() through the wrapper = %v", got)
	}
	// Capabilities the driver lacks are refused by name, not sent.
	if _, err := d.Stop(context.Background(), cloud.Instance{}, cloud.StopOptions{}); !errors.As(err, &ue) || ue.Action != cloud.ActionStop {
		t.Fatalf("Stop on a driver without it: %v", err)
	}
	if _, err := d.Start(context.Background(), cloud.Instance{}, cloud.StartOptions{}); !errors.As(err, &ue) || ue.Action != cloud.ActionStart {
		t.Fatalf("Start on a driver without it: %v", err)
	}
}

type panickyDriver struct{ fakeDriver }

func (p *panickyDriver) Reboot(context.Context, cloud.Instance, cloud.RebootOptions) (cloud.Result, error) {
	var resp *struct{ RequestID *string }
	return cloud.Result{RequestID: *resp.RequestID}, nil // what a missing envelope did
}

// A driver that panics on an answer gives ErrBadAnswer (outcome unknown),
// not a crash of the request.
func TestWrapDriverPanic(t *testing.T) {
	d := Wrap(&panickyDriver{fakeDriver{name: cloud.ProviderTencentCloud}}, cloud.ProviderConfig{Timeout: time.Minute})
	_, err := d.Reboot(context.Background(), cloud.Instance{}, cloud.RebootOptions{})
	if cloud.KindOf(err) != cloud.ErrBadAnswer || cloud.NotSent(err) {
		t.Fatalf("got %v, want ErrBadAnswer", err)
	}
}
