// Package providers builds the cloud drivers named in the cloud config and
// wraps each with the config's rate limit and timeout.
//
// It is separate from package cloud because cloud cannot import the
// driver packages below it. Registration is explicit, with no init()
// magic: adding a cloud is one new package under pkg/cloud that provides
// a Factory, plus one line in factories below (and its name in
// cloud.knownProviders so the config accepts it).
package providers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/aws"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/tencentcloud"
)

// Factory builds one cloud's driver from its config.
type Factory = func(ctx context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error)

var factories = map[string]Factory{
	cloud.ProviderAWS:          aws.New,
	cloud.ProviderTencentCloud: tencentcloud.New,
}

// Set holds the driver of every enabled provider.
type Set struct {
	drivers map[string]cloud.Driver
}

// New builds every enabled provider of cfg once. A nil cfg means
// cloud.DefaultConfig().
func New(ctx context.Context, cfg *cloud.Config) (*Set, error) {
	return NewWithFactories(ctx, cfg, factories)
}

// NewWithFactories is New with the drivers built by the given factories,
// for tests that put a fake driver behind the real limits.
func NewWithFactories(ctx context.Context, cfg *cloud.Config, fs map[string]Factory) (*Set, error) {
	if cfg == nil {
		cfg = cloud.DefaultConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Set{drivers: map[string]cloud.Driver{}}
	for name, pc := range cfg.Providers {
		if !pc.Enabled {
			continue
		}
		f, ok := fs[name]
		if !ok {
			return nil, fmt.Errorf("provider %q has no driver", name)
		}
		d, err := f(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", name, err)
		}
		s.drivers[name] = Wrap(d, pc)
	}
	return s, nil
}

// Driver returns the driver of provider, false when the provider is
// unknown or disabled.
func (s *Set) Driver(provider string) (cloud.Driver, bool) {
	if s == nil {
		return nil, false
	}
	d, ok := s.drivers[provider]
	return d, ok
}

// Names lists the enabled providers, sorted.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	names := make([]string, 0, len(s.drivers))
	for n := range s.drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Wrap puts d behind pc's rate limit and timeout. A call that finds no
// token fails at once with ErrThrottled rather than waiting: the caller
// (an API request) is better told to come back than held open, and a
// queue would let reboots pile up behind a slow cloud.
func Wrap(d cloud.Driver, pc cloud.ProviderConfig) cloud.Driver {
	return &limited{
		next:    d,
		timeout: pc.Timeout,
		bucket:  newBucket(pc.RateLimit.QPS, pc.RateLimit.Burst, time.Now),
	}
}

type limited struct {
	next    cloud.Driver
	timeout time.Duration
	bucket  *bucket
}

func (l *limited) Name() string { return l.next.Name() }

func (l *limited) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	if ok, wait := l.bucket.take(); !ok {
		return cloud.Result{}, &cloud.Error{
			Kind: cloud.ErrThrottled, Provider: l.next.Name(), Code: "ClientRateLimited",
			Message:    "our own rate limit for this cloud is reached",
			RetryAfter: wait,
		}
	}
	if l.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.timeout)
		defer cancel()
	}
	res, err := l.next.Reboot(ctx, inst, opts)
	if err == nil {
		return res, nil
	}
	var ce *cloud.Error
	isCloud := errors.As(err, &ce)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && (!isCloud || ce.Kind == cloud.ErrUnavailable) {
		// Drivers see the deadline as a transport error; the outcome of
		// the call is unknown, which is what ErrTimeout says.
		return cloud.Result{}, &cloud.Error{
			Kind: cloud.ErrTimeout, Provider: l.next.Name(),
			Message: fmt.Sprintf("no answer within %s", l.timeout), Err: err,
		}
	}
	return res, err
}

// bucket is a token bucket. It is written here rather than taken from
// golang.org/x/time/rate because only a non-blocking take with a wait
// hint is needed.
type bucket struct {
	mu     sync.Mutex
	qps    float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newBucket(qps float64, burst int, now func() time.Time) *bucket {
	if qps <= 0 || burst < 1 {
		return nil // unlimited
	}
	return &bucket{qps: qps, burst: float64(burst), tokens: float64(burst), last: now(), now: now}
}

// take consumes a token if one is there; otherwise it reports how long
// until the next one.
func (b *bucket) take() (bool, time.Duration) {
	if b == nil {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(b.burst, b.tokens+el.Seconds()*b.qps)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / b.qps * float64(time.Second))
	return false, max(wait, time.Millisecond)
}
