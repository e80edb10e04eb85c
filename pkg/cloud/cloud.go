// Package cloud is the contract between the API server and the clouds. It
// holds only what every cloud shares; everything about one cloud lives in
// that cloud's own package below this one.
//
// # The contract, for the author of a new cloud
//
// A cloud is one package under pkg/cloud (aws, tencentcloud, …) that exports
// one value implementing Provider, and one line in the table of
// pkg/cloud/providers that lists it. Nothing else names a cloud: there is
// no init() registration and no switch on provider names outside the
// cloud's package. The package owns:
//
//   - Name: its config key (providers.<name> in the cloud config) and the
//     provider name in API objects, events and metrics.
//   - Schemes: the providerID schemes it owns ("aws"; "qcloud" and
//     "tencentcloud"). pkg/cloud/providers picks the cloud by scheme and
//     hands it the whole providerID once. A cloud whose providerIDs may
//     also come without a scheme (ACK's <region>.<instance-id>) implements
//     BareProviderIDs as well, and is handed the IDs it claims.
//   - Resolve: providerID, Node labels and the config's default region in,
//     Instance out, in one pass: parse and validate every providerID form
//     the cloud writes, then find the region (labels, zone, default). The
//     errors are *InvalidProviderIDError (use SplitProviderID for the
//     checks every providerID shares) and, for the region, errors wrapping
//     ErrRegionUnknown (use RegionFromLabels, ZoneFromLabels, NoRegionError
//     and BadRegionLabelError). The registry answers both with 422.
//   - Region: what a valid region name is, with any aliases expanded; the
//     config's default region is checked with it.
//   - NewDriver: the Driver, built on the cloud's official SDK from its
//     ProviderConfig. Credentials come from the SDK's standard chain, never
//     from the config.
//
// A Driver implements Reboot and the capability interfaces of what the
// cloud can do: Moder (the modes each action has, the default first; the
// server answers 422 naming them for any other), Stopper, Starter. An
// action the driver lacks is an *UnsupportedError (422), never a silent
// substitute: a cloud never does something harder than it was asked.
// A dry run is a field of each action's options; a cloud without a
// check of its own returns an *UnsupportedError for it.
//
// The driver maps every failure to an *Error of the right ErrorKind (the
// server turns kinds into HTTP codes and decides whether the node's lock is
// kept), and an answer that is not the cloud's own (no request ID, no
// envelope, HTML from a proxy) to ErrBadAnswer, never success. It never
// retries a call the cloud may have acted on, and it sets NotSent on
// failures from before anything was sent (credentials).
//
// What the driver does not own: the per-call timeout and the rate limits
// are the wrapper's in pkg/cloud/providers (one owner each); the driver
// only honours the context it is given and maps its deadline to
// ErrTimeout.
//
// Tests: per-cloud providerID and region tests live in the cloud's
// package; the driver's tests run the real SDK against a wire-level fake in
// pkg/cloud/fakecloud; the fuzz target in pkg/cloud/providers covers every
// cloud of the table by itself.
package cloud

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Names of the clouds built in, for the code outside the cloud packages
// that has to name one (the fake cloud, tests). Each cloud's package is
// the source of its name (aws.Name, tencentcloud.Name); a test in
// pkg/cloud/providers checks that these agree with them.
const (
	ProviderAWS          = "aws"
	ProviderTencentCloud = "tencentcloud"
)

// Instance is a machine at a cloud, as resolved from a Node.
type Instance struct {
	// Provider is the cloud's Name.
	Provider string
	// ID is the cloud's instance ID (i-0abc…, ins-xxxx, a GCE instance name).
	ID string
	// Region is the cloud region the SDK client must be pointed at.
	Region string
	// Zone is the zone as the providerID or node label gave it (may be empty).
	Zone string
	// Project is the account scope the providerID names, for clouds whose
	// providerID carries one (a GCE project); empty when the credentials
	// decide it (AWS, Tencent Cloud).
	Project string
	// Scope is where ID is unique, for a cloud whose IDs are not unique
	// on their own: a GCE instance name is unique in its project and zone
	// only. Empty where the ID alone names one machine (EC2, CVM and ECS
	// IDs; an Azure ID is a whole resource ID).
	Scope string
}

// Machine names the machine within its cloud: its ID, within its Scope.
// Two Nodes whose providerIDs give one Machine claim the same machine.
func (i Instance) Machine() string {
	if i.Scope == "" {
		return i.ID
	}
	return i.Scope + "/" + i.ID
}

func (i Instance) String() string {
	return fmt.Sprintf("%s/%s/%s", i.Provider, i.Region, i.ID)
}

// CheckFor is what a driver asks of an Instance before calling its cloud:
// that it is the driver's own provider's, with a region and an ID.
func (i Instance) CheckFor(provider string) error {
	if i.Provider != provider {
		return fmt.Errorf("%s: instance %s belongs to provider %q", provider, i.ID, i.Provider)
	}
	if i.Region == "" || i.ID == "" {
		return fmt.Errorf("%s: instance %q has no region or ID", provider, i.String())
	}
	return nil
}

// Mode says how an action runs: soft (clean, through the OS) or hard
// (forced). Each cloud lists the modes it has (Moder).
type Mode string

const (
	ModeSoft Mode = "soft"
	ModeHard Mode = "hard"
)

// RebootMode is the Mode of a reboot.
type RebootMode = Mode

const (
	RebootSoft = ModeSoft
	RebootHard = ModeHard
)

// Action names, as the server's subresources spell them.
const (
	ActionRestart = "restart"
	ActionStop    = "stop"
	ActionStart   = "start"
)

// RebootOptions are the knobs of one reboot.
type RebootOptions struct {
	// Mode is one of the cloud's restart modes; "" asks for its default.
	Mode RebootMode
	// DryRun asks the cloud whether the reboot would be allowed, and
	// changes nothing.
	DryRun bool
}

// StopOptions are the knobs of one stop.
type StopOptions struct {
	// Mode is one of the cloud's stop modes; "" asks for its default.
	Mode Mode
	// StopCharging asks a cloud that bills stopped instances by default
	// (Tencent CVM: StoppedMode KEEP_CHARGING) to stop billing the
	// instance's compute (STOP_CHARGING). Clouds that never bill a stopped
	// instance's compute (EC2, GCE) have nothing to do for it.
	StopCharging bool
	// DryRun asks whether the stop would be allowed, and changes nothing.
	DryRun bool
}

// StartOptions are the knobs of one start.
type StartOptions struct {
	// DryRun asks whether the start would be allowed, and changes nothing.
	DryRun bool
}

// Result is what the cloud said about an accepted call.
type Result struct {
	// RequestID is the cloud's own request ID (or operation name), for the
	// audit trail.
	RequestID string
	// Mode is the mode the call used (the cloud's default when none was
	// asked for); empty for an action without modes.
	Mode Mode
}

// Driver drives machines of one cloud. Implementations are safe for
// concurrent use and keep one SDK client per region.
//
// Further actions are the capability interfaces below, so a cloud that
// cannot do them simply does not implement them.
type Driver interface {
	// Name is the provider name (the cloud's Name).
	Name() string
	// Reboot reboots one instance. It must not retry a call the cloud may
	// already have acted on: a retried reboot is a second reboot.
	Reboot(ctx context.Context, inst Instance, opts RebootOptions) (Result, error)
}

// Moder is the capability of telling which modes each action has. The
// first mode is the one used when the caller asks for none. A driver
// without it takes any mode it is given.
type Moder interface {
	// Modes lists the modes of action (ActionRestart, …), default first;
	// nil when the action has no modes or the cloud cannot do it.
	Modes(action string) []Mode
}

// Stopper is the capability of stopping an instance (it keeps its disks
// and identity, and can be started again).
type Stopper interface {
	Stop(ctx context.Context, inst Instance, opts StopOptions) (Result, error)
}

// Starter is the capability of starting a stopped instance.
type Starter interface {
	Start(ctx context.Context, inst Instance, opts StartOptions) (Result, error)
}

// ChooseMode is the mode a call of action uses: the asked one if the cloud
// has it, its default when none is asked, else an *UnsupportedError that
// names the modes it has. modes is the driver's Modes(action), default
// first; with none, the asked mode passes as it is.
func ChooseMode(provider, action string, modes []Mode, asked Mode) (Mode, error) {
	if len(modes) == 0 {
		return asked, nil
	}
	if asked == "" {
		return modes[0], nil
	}
	if slices.Contains(modes, asked) {
		return asked, nil
	}
	return "", &UnsupportedError{Provider: provider, Action: action, Mode: asked, Modes: slices.Clone(modes)}
}

// ModesOf is d's modes for action, nil when d does not say.
func ModesOf(d Driver, action string) []Mode {
	if m, ok := d.(Moder); ok {
		return m.Modes(action)
	}
	return nil
}

// Provider is one cloud as the shared code sees it: its rules and how to
// build its driver. Each cloud's package exports one, and
// pkg/cloud/providers lists them in its one table. All methods but
// NewDriver are pure functions of their arguments (no network), so the
// view can resolve every Node cheaply.
type Provider interface {
	// Name is the config key and the provider name in API objects.
	Name() string
	// Schemes are the providerID schemes (the part before "://") this
	// cloud owns, in lower case. No two clouds share one.
	Schemes() []string
	// Resolve turns a Node's providerID, whose scheme is one of Schemes,
	// its labels and the config's default region ("" for none) into the
	// Instance to act on. Errors are *InvalidProviderIDError or wrap
	// ErrRegionUnknown.
	Resolve(providerID string, labels map[string]string, defaultRegion string) (Instance, error)
	// Region checks a region name as a label or the config may write it,
	// and returns the API's name for it (aliases expanded).
	Region(name string) (string, bool)
	// NewDriver builds the cloud's driver. It reads local files (a CA
	// bundle) now, so a bad config stops the server at start; network
	// work (credentials, clients) waits for the first call.
	NewDriver(ctx context.Context, cfg ProviderConfig) (Driver, error)
}

// BareProviderIDs is the optional capability of a Provider whose
// providerIDs may also be written without a scheme: ACK starts its
// kubelets with --provider-id=<region>.<instance-id>. pkg/cloud/providers
// offers a providerID with no "://" to the clouds that implement it, and
// hands it whole to Resolve of the one that claims it; no two clouds may
// claim the same ID. OwnsBare is a pure function, like Resolve: it claims
// the IDs that are meant as this cloud's (even malformed ones, so that
// Resolve can say what is wrong with them), nothing else.
type BareProviderIDs interface {
	OwnsBare(providerID string) bool
}

// OwnershipChecks is the optional capability of a Provider whose driver
// checks with the cloud, before acting, that an instance is the cluster's
// named in ProviderConfig.Ownership (a second line of defence behind the
// one-machine-one-Node rule: a Node's providerID is written by whoever
// registers it). The driver answers an instance that is not with
// ErrNotOwned.
type OwnershipChecks interface {
	// ValidClusterName checks a cluster name as the cloud's tags can
	// carry it.
	ValidClusterName(name string) error
}

// ModeNames joins modes for a message: "soft, hard".
func ModeNames(modes []Mode) string {
	s := make([]string, len(modes))
	for i, m := range modes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}
