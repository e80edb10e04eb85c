// Package providers holds the one table of clouds, finds a Node's cloud by
// its providerID's scheme, and builds the drivers named in the cloud config,
// each behind the one owner of its timeout and rate limits.
//
// It is separate from package cloud because cloud cannot import the
// cloud packages below it. Registration is explicit, with no init()
// magic: adding a cloud is its package under pkg/cloud and one line in All.
package providers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/alibabacloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/aws"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/azure"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/gce"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/tencentcloud"
)

// All is the table of clouds this server knows, one line each.
var All = []cloud.Provider{
	aws.Provider,
	tencentcloud.Provider,
	alibabacloud.Provider,
	gce.Provider,
	azure.Provider,
}

// bySchemeOf indexes clouds by providerID scheme, and checks the table:
// a scheme owned twice would send one cloud's Nodes to another.
func bySchemeOf(clouds []cloud.Provider) map[string]cloud.Provider {
	m := map[string]cloud.Provider{}
	for _, p := range clouds {
		for _, s := range p.Schemes() {
			if other, ok := m[s]; ok {
				panic(fmt.Sprintf("providerID scheme %q is claimed by both %s and %s", s, other.Name(), p.Name()))
			}
			m[s] = p
		}
	}
	return m
}

var byScheme = bySchemeOf(All)

// bareOwners are the clouds of All that also take providerIDs without a
// scheme, in table order.
var bareOwners = bareOwnersOf(All)

func bareOwnersOf(clouds []cloud.Provider) []cloud.Provider {
	var out []cloud.Provider
	for _, p := range clouds {
		if _, ok := p.(cloud.BareProviderIDs); ok {
			out = append(out, p)
		}
	}
	return out
}

// Lookup returns the cloud named name in All.
func Lookup(name string) (cloud.Provider, bool) {
	for _, p := range All {
		if p.Name() == name {
			return p, true
		}
	}
	return nil, false
}

// Resolve turns a Node's providerID and labels into the machine behind it:
// the scheme picks the cloud, which parses the whole ID and finds the
// region in one pass; a providerID without a scheme goes to the cloud
// that claims it (cloud.BareProviderIDs). defaultRegion gives the cloud
// config's default region of a provider. Errors are
// *cloud.InvalidProviderIDError or wrap cloud.ErrRegionUnknown.
func Resolve(providerID string, labels map[string]string, defaultRegion func(provider string) string) (cloud.Instance, error) {
	resolve := func(p cloud.Provider) (cloud.Instance, error) {
		def := ""
		if defaultRegion != nil {
			def = defaultRegion(p.Name())
		}
		return p.Resolve(providerID, labels, def)
	}
	scheme, _, hasScheme := strings.Cut(providerID, "://")
	if p, ok := byScheme[scheme]; ok && hasScheme {
		return resolve(p)
	}
	if !hasScheme {
		for _, p := range bareOwners {
			if p.(cloud.BareProviderIDs).OwnsBare(providerID) {
				return resolve(p)
			}
		}
	}
	if _, _, err := cloud.SplitProviderID(providerID); err != nil {
		return cloud.Instance{}, err
	}
	if _, ok := byScheme[strings.ToLower(scheme)]; ok {
		return cloud.Instance{}, &cloud.InvalidProviderIDError{ProviderID: providerID,
			Reason: fmt.Sprintf("the scheme must be written in lower case (%q)", strings.ToLower(scheme))}
	}
	return cloud.Instance{}, &cloud.InvalidProviderIDError{ProviderID: providerID, Unsupported: true,
		Reason: fmt.Sprintf("cloud %q is not supported (supported: %s)", scheme, strings.Join(Schemes(), ", "))}
}

// Machine is the provider and the machine (cloud.Instance.Machine) a
// providerID names, whatever its region: no labels, and a placeholder
// default region, so that a providerID whose zone tells no region (TKE's
// numeric zone) still names its machine. false when it names none.
func Machine(providerID string) (provider, machine string, ok bool) {
	inst, err := Resolve(providerID, nil, func(string) string { return "-" })
	if err != nil {
		return "", "", false
	}
	return inst.Provider, inst.Machine(), true
}

// Schemes lists every providerID scheme of All, sorted.
func Schemes() []string {
	s := make([]string, 0, len(byScheme))
	for k := range byScheme {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// DefaultConfig is what runs without --cloud-config: every cloud of All
// enabled, no default region, the default timeout and rate limits.
func DefaultConfig() *cloud.Config { return cloud.DefaultConfig(All...) }

// ParseConfig is cloud.ParseConfig checked against every cloud of All.
func ParseConfig(data []byte) (*cloud.Config, error) { return cloud.ParseConfig(data, All...) }

// LoadConfig is cloud.LoadConfig checked against every cloud of All; an
// empty path gives DefaultConfig.
func LoadConfig(path string) (*cloud.Config, error) { return cloud.LoadConfig(path, All...) }

// Factory builds one cloud's driver from its config.
type Factory = func(ctx context.Context, cfg cloud.ProviderConfig) (cloud.Driver, error)

// factories are the drivers of All by name.
func factories() map[string]Factory {
	fs := map[string]Factory{}
	for _, p := range All {
		fs[p.Name()] = p.NewDriver
	}
	return fs
}

// Set holds the driver of every enabled provider.
type Set struct {
	drivers map[string]cloud.Driver
}

// New builds every enabled provider of cfg once. A nil cfg means
// DefaultConfig().
func New(ctx context.Context, cfg *cloud.Config) (*Set, error) {
	return NewWithFactories(ctx, cfg, factories())
}

// NewWithFactories is New with the drivers built by the given factories,
// for tests that put a fake driver behind the real limits.
func NewWithFactories(ctx context.Context, cfg *cloud.Config, fs map[string]Factory) (*Set, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	if err := cfg.Validate(All...); err != nil {
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

// Wrapped is a driver behind its config's timeout and rate limits. It has
// every capability method; one the inner driver lacks answers an
// *cloud.UnsupportedError, so the server tells the caller rather than
// guessing.
type Wrapped interface {
	cloud.Driver
	cloud.Moder
	cloud.Stopper
	cloud.Starter
}

// Wrap puts d behind pc's timeout and rate limits, their one owner: the
// drivers apply neither. Real actions and dry runs draw on separate
// buckets, so dry runs cannot starve real actions. A call that finds no
// token fails at once with ErrThrottled rather than waiting: the caller (an
// API request) is better told to come back than held open, and a queue
// would let reboots pile up behind a slow cloud. A mode the cloud does not
// have is refused before a token is taken.
func Wrap(d cloud.Driver, pc cloud.ProviderConfig) Wrapped {
	dry := pc.DryRunRateLimit
	if dry == (cloud.RateLimit{}) {
		dry = cloud.RateLimit{QPS: cloud.DefaultDryRunQPS, Burst: cloud.DefaultDryRunBurst}
	}
	return &limited{
		next:    d,
		timeout: pc.Timeout,
		bucket:  newBucket(pc.RateLimit.QPS, pc.RateLimit.Burst, time.Now),
		dryRun:  newBucket(dry.QPS, dry.Burst, time.Now),
	}
}

type limited struct {
	next    cloud.Driver
	timeout time.Duration
	bucket  *bucket
	dryRun  *bucket
}

func (l *limited) Name() string { return l.next.Name() }

func (l *limited) Modes(action string) []cloud.Mode { return cloud.ModesOf(l.next, action) }

func (l *limited) Reboot(ctx context.Context, inst cloud.Instance, opts cloud.RebootOptions) (cloud.Result, error) {
	mode, err := cloud.ChooseMode(l.Name(), cloud.ActionRestart, l.Modes(cloud.ActionRestart), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	opts.Mode = mode
	return l.call(ctx, opts.DryRun, func(ctx context.Context) (cloud.Result, error) {
		return l.next.Reboot(ctx, inst, opts)
	})
}

func (l *limited) Stop(ctx context.Context, inst cloud.Instance, opts cloud.StopOptions) (cloud.Result, error) {
	s, ok := l.next.(cloud.Stopper)
	if !ok {
		return cloud.Result{}, &cloud.UnsupportedError{Provider: l.Name(), Action: cloud.ActionStop}
	}
	mode, err := cloud.ChooseMode(l.Name(), cloud.ActionStop, l.Modes(cloud.ActionStop), opts.Mode)
	if err != nil {
		return cloud.Result{}, err
	}
	opts.Mode = mode
	return l.call(ctx, opts.DryRun, func(ctx context.Context) (cloud.Result, error) {
		return s.Stop(ctx, inst, opts)
	})
}

func (l *limited) Start(ctx context.Context, inst cloud.Instance, opts cloud.StartOptions) (cloud.Result, error) {
	s, ok := l.next.(cloud.Starter)
	if !ok {
		return cloud.Result{}, &cloud.UnsupportedError{Provider: l.Name(), Action: cloud.ActionStart}
	}
	return l.call(ctx, opts.DryRun, func(ctx context.Context) (cloud.Result, error) {
		return s.Start(ctx, inst, opts)
	})
}

// call runs one cloud call within the rate limit and the timeout.
func (l *limited) call(ctx context.Context, dryRun bool, f func(context.Context) (cloud.Result, error)) (cloud.Result, error) {
	b, what := l.bucket, "our own rate limit for this cloud is reached"
	if dryRun {
		b, what = l.dryRun, "our own rate limit for dry runs on this cloud is reached (real actions have their own)"
	}
	if ok, wait := b.take(); !ok {
		return cloud.Result{}, &cloud.Error{
			Kind: cloud.ErrThrottled, Provider: l.Name(), Code: "ClientRateLimited",
			Message: what, RetryAfter: wait, NotSent: true,
		}
	}
	if l.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.timeout)
		defer cancel()
	}
	res, err := safeCall(ctx, l.Name(), f)
	if err == nil {
		return res, nil
	}
	var ce *cloud.Error
	isCloud := errors.As(err, &ce)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && (!isCloud || (ce.Kind == cloud.ErrUnavailable && !ce.NotSent)) {
		// A driver may see the deadline as a transport error; the outcome
		// of a call that was sent is unknown, which is what ErrTimeout
		// says.
		return cloud.Result{}, &cloud.Error{
			Kind: cloud.ErrTimeout, Provider: l.Name(),
			Message: fmt.Sprintf("no answer within %s", l.timeout), Err: err,
		}
	}
	return res, err
}

// safeCall turns a panic in a driver (an SDK meeting an answer it did not
// expect) into ErrBadAnswer: the call may have reached the cloud, so the
// outcome is unknown and the server keeps the node locked.
func safeCall(ctx context.Context, provider string, f func(context.Context) (cloud.Result, error)) (res cloud.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = cloud.Result{}, cloud.BadAnswer(provider, fmt.Sprintf("the driver failed on the answer (%v)", r), nil)
		}
	}()
	return f(ctx)
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
