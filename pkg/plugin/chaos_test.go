package plugin

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

func candidates(n int) []target {
	var out []target
	for i := range n {
		out = append(out, target{Name: fmt.Sprintf("node-%02d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))})
	}
	return out
}

func TestPickIsDeterministic(t *testing.T) {
	all := candidates(10)
	shuffled := slices.Clone(all)
	slices.Reverse(shuffled)
	a, b := newPicker(42), newPicker(42)
	for round := range 5 {
		pa, err := a.pick(all, 3, "pool=a")
		if err != nil {
			t.Fatal(err)
		}
		// The order the server lists in does not change the pick.
		pb, err := b.pick(shuffled, 3, "pool=a")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(pa, pb) {
			t.Fatalf("round %d: seed 42 picked %v, then %v", round, targetNames(pa), targetNames(pb))
		}
		names := targetNames(pa)
		if len(names) != 3 || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != 3 {
			t.Fatalf("round %d: pick %v, want 3 distinct nodes in name order", round, names)
		}
	}
	// The seed matters: over a few seeds the first picks are not all alike.
	first, _ := newPicker(1).pick(all, 3, "")
	differs := false
	for seed := uint64(2); seed < 10; seed++ {
		p, _ := newPicker(seed).pick(all, 3, "")
		differs = differs || !reflect.DeepEqual(p, first)
	}
	if !differs {
		t.Error("seeds 1 to 9 all picked the same nodes")
	}
}

func TestPickRefusals(t *testing.T) {
	if _, err := newPicker(1).pick(nil, 1, "pool=x"); err == nil || !strings.Contains(err.Error(), `the selector "pool=x" matches no nodes`) {
		t.Errorf("no candidates: %v", err)
	}
	if _, err := newPicker(1).pick(candidates(2), 3, "pool=x"); err == nil || !strings.Contains(err.Error(), `--random 3: the selector "pool=x" matches only 2 nodes (node-00, node-01)`) {
		t.Errorf("too few candidates: %v", err)
	}
}

func TestValidateDrainAndChaosFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		action  Action
		args    []string
		wantErr string
	}{
		{name: "drain", args: []string{"n1", "--drain"}},
		{name: "drain flags", args: []string{"n1", "--drain", "--delete-emptydir-data", "--force", "--grace-period", "30", "--pod-selector", "app=web", "--drain-timeout", "1m", "--keep-cordoned"}},
		{name: "drain flag without --drain", args: []string{"n1", "--delete-emptydir-data"}, wantErr: "--delete-emptydir-data is a --drain flag: add --drain"},
		{name: "force-undrained without --drain", args: []string{"n1", "--force-undrained"}, wantErr: "--force-undrained is a --drain flag"},
		{name: "drain timeout zero", args: []string{"n1", "--drain", "--drain-timeout", "0s"}, wantErr: "--drain-timeout must be positive"},
		{name: "bad pod selector", args: []string{"n1", "--drain", "--pod-selector", "app in (a"}, wantErr: "invalid --pod-selector"},
		{name: "drain an action that does not take the machine down", action: discoveredAction("snapshot", ""), args: []string{"n1", "--drain"}, wantErr: "unknown flag: --drain"},
		{name: "drain stop, found through discovery", action: discoveredAction("stop", "StopOptions"), args: []string{"n1", "--drain"}},
		{name: "generic command, drain a served action without drain", action: Action{Name: ""}, args: []string{"n1", "--drain"}, wantErr: "--drain is not supported for snapshot"},
		{name: "timeout zero", args: []string{"n1", "--timeout", "0s"}, wantErr: "--timeout must be positive"},
		{name: "random", args: []string{"-l", "pool=a", "--random", "2", "--seed", "7"}},
		{name: "random rounds", args: []string{"-l", "pool=a", "--random", "1", "--count", "3", "--interval", "10m"}},
		{name: "random without selector", args: []string{"--random", "2", "n1"}, wantErr: "--random picks from the nodes a selector matches: add -l SELECTOR"},
		{name: "random negative", args: []string{"-l", "pool=a", "--random", "-1"}, wantErr: "--random must be at least 1"},
		{name: "rounds without interval", args: []string{"-l", "pool=a", "--random", "1", "--count", "2"}, wantErr: "--count 2 needs --interval"},
		{name: "count zero", args: []string{"-l", "pool=a", "--random", "1", "--count", "0"}, wantErr: "--count must be at least 1"},
		{name: "seed without random", args: []string{"-l", "pool=a", "--seed", "3"}, wantErr: "--seed is a --random flag"},
		{name: "interval without random", args: []string{"n1", "--interval", "1m"}, wantErr: "--interval is a --random flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.action
			if a.Name == "" && tc.action.Kind == "" && !strings.HasPrefix(tc.name, "generic") {
				a = Restart
			}
			o := NewOptions(a, testStreams())
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			err := fs.Parse(tc.args)
			if err == nil {
				if strings.HasPrefix(tc.name, "generic") {
					o.Action = discoveredAction("snapshot", "")
				}
				err = o.Complete(fs.Args())
			}
			if err == nil {
				err = o.Validate()
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// --drain on a restart waits for the node to be back: it is uncordoned
// only then.
func TestDrainImpliesWaitForARestart(t *testing.T) {
	o := NewOptions(Restart, testStreams())
	o.Drain.Enabled = true
	if err := o.Complete([]string{"n1"}); err != nil {
		t.Fatal(err)
	}
	if !o.Wait {
		t.Error("--drain on restart does not wait")
	}
}

func TestChaosRestartsThePickAndAsksFirst(t *testing.T) {
	c := newDrainCluster(t, "n1", "n2", "n3", "n4", "n5")
	want, err := newPicker(7).pick([]target{{Name: "n1"}, {Name: "n2"}, {Name: "n3"}, {Name: "n4"}, {Name: "n5"}}, 2, "pool=a")
	if err != nil {
		t.Fatal(err)
	}
	names := targetNames(want)

	r := c.f.run(t, c.deps(), "n\n", "kubectl-restart", "-l", "pool=a", "--random", "2", "--seed", "7")
	prompt := `About to restart 2 nodes picked at random (--seed 7) from the 5 matching "pool=a":` + "\n  " + strings.Join(names, "\n  ") + "\nContinue? [y/N]: "
	if r.code != 1 || !strings.HasPrefix(r.errOut, prompt) || len(c.f.Posts()) != 0 {
		t.Fatalf("answered no: exit %d, posts %+v, stderr:\n%s\nwant the prompt:\n%s", r.code, c.f.Posts(), r.errOut, prompt)
	}

	r = c.f.run(t, c.deps(), "", "kubectl-restart", "-l", "pool=a", "--random", "2", "--seed", "7", "--yes")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.errOut)
	}
	var acted []string
	for _, p := range c.f.Posts() {
		acted = append(acted, p.Node)
	}
	if !reflect.DeepEqual(acted, names) {
		t.Errorf("restarted %q, want the pick %q", acted, names)
	}
	if !strings.HasPrefix(r.errOut, fmt.Sprintf(`Round 1 of 1: picked 2 of 5 nodes matching "pool=a" at random (--seed 7): %s`, strings.Join(names, ", "))) {
		t.Errorf("stderr:\n%s", r.errOut)
	}
}

func TestChaosRefusesMoreThanMatch(t *testing.T) {
	c := newDrainCluster(t, "n1", "n2")
	r := c.f.run(t, c.deps(), "", "kubectl-restart", "-l", "pool=a", "--random", "3", "--yes")
	if r.code != 1 || !strings.Contains(r.errOut, `--random 3: the selector "pool=a" matches only 2 nodes`) || len(c.f.Posts()) != 0 {
		t.Errorf("exit %d, posts %+v, stderr:\n%s", r.code, c.f.Posts(), r.errOut)
	}
	r = c.f.run(t, c.deps(), "", "kubectl-restart", "-l", "pool=none", "--random", "1", "--yes")
	if r.code != 1 || !strings.Contains(r.errOut, `the selector "pool=none" matches no nodes`) {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.errOut)
	}
}

// Chaos rounds: each picks anew with the same generator, so a replay with
// the seed makes the same picks.
func TestChaosRounds(t *testing.T) {
	runRounds := func() []string {
		c := newDrainCluster(t, "n1", "n2", "n3", "n4")
		r := c.f.run(t, c.deps(), "", "kubectl-restart", "-l", "pool=a", "--random", "1", "--seed", "99", "--count", "3", "--interval", "10ms", "--yes")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.errOut)
		}
		var acted []string
		for _, p := range c.f.Posts() {
			acted = append(acted, p.Node)
		}
		return acted
	}
	first := runRounds()
	if len(first) != 3 {
		t.Fatalf("3 rounds of 1 restarted %q", first)
	}
	if again := runRounds(); !reflect.DeepEqual(first, again) {
		t.Errorf("replayed with --seed 99: %q, then %q", first, again)
	}
}

func TestRetryAfter(t *testing.T) {
	lock := apierrors.NewConflict(infraopsv1.Resource("nodes"), "n1", errorString("a restart of this node requested by bob is in progress or in its cooldown; retry after 40s"))
	lock.ErrStatus.Details.RetryAfterSeconds = 40
	// The lock as this server sends it: told by its cause, whatever the message.
	lockByCause := apierrors.NewConflict(infraopsv1.Resource("nodes"), "n1", errorString("locked"))
	lockByCause.ErrStatus.Details.RetryAfterSeconds = 40
	lockByCause.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: infraopsv1.CauseNodeLocked, Message: "restart by bob"}}
	window := apierrors.NewConflict(infraopsv1.Resource("nodes"), "n1", errorString("outside the maintenance window"))
	window.ErrStatus.Details.RetryAfterSeconds = 60
	for _, tc := range []struct {
		name  string
		err   error
		want  time.Duration
		retry bool
	}{
		{"budget 429", apierrors.NewTooManyRequests("over budget zone", 12), 12 * time.Second, true},
		{"429 without a time", apierrors.NewTooManyRequests("throttled", 0), defaultRetryAfter, true},
		{"policy 409 with Retry-After", window, time.Minute, true},
		{"the node's own lock (older server, message only): never again", lock, 0, false},
		{"the node's own lock (NodeLocked cause): never again", lockByCause, 0, false},
		{"409 without Retry-After", apierrors.NewConflict(infraopsv1.Resource("nodes"), "n1", errorString("instance stopped")), 0, false},
		{"403", apierrors.NewForbidden(infraopsv1.Resource("nodes"), "n1", errorString("no")), 0, false},
		{"not a status", errorString("connection reset"), 0, false},
	} {
		got, retry := retryAfter(tc.err)
		if got != tc.want || retry != tc.retry {
			t.Errorf("%s: retryAfter = %s, %v; want %s, %v", tc.name, got, retry, tc.want, tc.retry)
		}
	}
}

// A budget refusal is waited out and the request sent again.
func TestRefusalWithRetryAfterIsRetried(t *testing.T) {
	f := newFakeServer(t, node("n1", "uid-1", nil))
	over := apierrors.NewTooManyRequests("over the budget zone=a (1 of 1 in use)", 1)
	f.fail["n1"] = over
	f.onPost = func(*http.Request, post) {
		f.mu.Lock()
		delete(f.fail, "n1")
		f.mu.Unlock()
	}
	r := f.run(t, testDeps(nil), "", "kubectl-restart", "n1")
	if r.code != 0 || len(f.Posts()) != 2 {
		t.Fatalf("exit %d, posts %d\n%s", r.code, len(f.Posts()), r.errOut)
	}
	if want := "Waiting 1s to ask again to restart node.infraops.michael.io/n1 (try 1): Error from server (TooManyRequests): over the budget zone=a (1 of 1 in use)\n"; r.errOut != want {
		t.Errorf("stderr %q, want %q", r.errOut, want)
	}

	// Within --timeout only.
	f = newFakeServer(t, node("n1", "uid-1", nil))
	f.fail["n1"] = over
	r = f.run(t, testDeps(nil), "", "kubectl-restart", "n1", "--timeout", "500ms")
	if r.code != 1 || len(f.Posts()) != 1 || !strings.Contains(r.errOut, "gave up after 1 tries in 500ms (--timeout)") {
		t.Errorf("exit %d, posts %d\n%s", r.code, len(f.Posts()), r.errOut)
	}
}
