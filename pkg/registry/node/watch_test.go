package node

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

func coreNode(name string, rv uint64, lbls map[string]string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: strconv.FormatUint(rv, 10), Labels: lbls},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-0123456789abcdef0"},
	}
}

// newTestREST is a synced cache of n nodes (node-0000 …) listed at rv.
func newTestREST(t *testing.T, history, n int, rv uint64) (*REST, *Cache) {
	t.Helper()
	c := NewCache(history, nil)
	list := make([]interface{}, 0, n)
	for i := 0; i < n; i++ {
		list = append(list, coreNode(fmt.Sprintf("node-%04d", i), rv-1, nil))
	}
	if err := c.Replace(list, strconv.FormatUint(rv, 10)); err != nil {
		t.Fatal(err)
	}
	return NewREST(c, time.Hour), c
}

func pointer[T any](v T) *T { return &v }

func watchList() *metainternalversion.ListOptions {
	return &metainternalversion.ListOptions{
		Watch: true, SendInitialEvents: pointer(true), AllowWatchBookmarks: true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
	}
}

func startWatch(t *testing.T, r *REST, opts *metainternalversion.ListOptions) watch.Interface {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	w, err := r.Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	e, ok := <-w.ResultChan()
	if !ok {
		t.Fatal("the watch ended")
	}
	return e
}

func rvOf(t *testing.T, e watch.Event) string {
	t.Helper()
	if s, ok := e.Object.(*metav1.Status); ok {
		t.Fatalf("error event: %+v", s)
	}
	return e.Object.(*infraopsv1.Node).ResourceVersion
}

func nameOf(e watch.Event) string { return e.Object.(*infraopsv1.Node).Name }

// The initial events of a watch-list are any number of nodes (far more
// than the history ring), then the bookmark client-go's reflector waits
// for, then the changes made meanwhile.
func TestWatchListSendsEveryNodeThenTheBookmark(t *testing.T) {
	const nodes = 3000
	r, c := newTestREST(t, 4, nodes, 100)
	w := startWatch(t, r, watchList())
	// Changes while nobody reads: they must follow the bookmark.
	if err := c.Update(coreNode("node-0001", 101, map[string]string{"x": "1"})); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(coreNode("node-new", 102, nil)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < nodes; i++ {
		e := next(t, w)
		if e.Type != watch.Added || nameOf(e) != fmt.Sprintf("node-%04d", i) {
			t.Fatalf("event %d: %s %s", i, e.Type, nameOf(e))
		}
	}
	e := next(t, w)
	b := e.Object.(*infraopsv1.Node)
	if e.Type != watch.Bookmark || b.Annotations[metav1.InitialEventsAnnotationKey] != "true" || b.ResourceVersion != "100" {
		t.Fatalf("want the initial-events-end bookmark at 100, got %s %+v", e.Type, b.ObjectMeta)
	}
	if e := next(t, w); e.Type != watch.Modified || nameOf(e) != "node-0001" || rvOf(t, e) != "101" {
		t.Fatalf("got %s %s", e.Type, nameOf(e))
	}
	if e := next(t, w); e.Type != watch.Added || nameOf(e) != "node-new" || rvOf(t, e) != "102" {
		t.Fatalf("got %s %s", e.Type, nameOf(e))
	}
}

// Without allowWatchBookmarks the initial events are sent (the legacy
// watch from "" or "0") and no bookmark is.
func TestWatchWithoutResourceVersionStartsWithTheState(t *testing.T) {
	r, c := newTestREST(t, 4, 3, 10)
	w := startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "0"})
	for i := 0; i < 3; i++ {
		if e := next(t, w); e.Type != watch.Added {
			t.Fatalf("got %s", e.Type)
		}
	}
	if err := c.Delete(coreNode("node-0002", 11, nil)); err != nil {
		t.Fatal(err)
	}
	if e := next(t, w); e.Type != watch.Deleted || nameOf(e) != "node-0002" || rvOf(t, e) != "11" {
		t.Fatalf("got %s %s", e.Type, nameOf(e))
	}
}

// A watch from a resourceVersion gets exactly the changes after it; one
// older than the history gets 410 Gone (Expired).
func TestWatchFromResourceVersion(t *testing.T) {
	r, c := newTestREST(t, 3, 2, 10)
	for _, step := range []func() error{
		func() error { return c.Update(coreNode("node-0000", 11, map[string]string{"a": "1"})) },
		func() error { return c.Add(coreNode("node-0002", 12, nil)) },
		func() error { return c.Delete(coreNode("node-0001", 13, nil)) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	for from, want := range map[string][]string{
		"10": {"MODIFIED node-0000 11", "ADDED node-0002 12", "DELETED node-0001 13"},
		"11": {"ADDED node-0002 12", "DELETED node-0001 13"},
		"13": {},
	} {
		w := startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: from})
		for _, s := range want {
			e := next(t, w)
			if got := fmt.Sprintf("%s %s %s", e.Type, nameOf(e), rvOf(t, e)); got != s {
				t.Fatalf("from %s: got %q, want %q", from, got, s)
			}
		}
	}
	// One more change pushes the change at 11 out of the ring: 10 can no
	// longer be replayed, 11 still can.
	if err := c.Add(coreNode("node-0003", 14, nil)); err != nil {
		t.Fatal(err)
	}
	e := next(t, startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "10"}))
	status, ok := e.Object.(*metav1.Status)
	if e.Type != watch.Error || !ok || status.Code != http.StatusGone || status.Reason != metav1.StatusReasonExpired {
		t.Fatalf("want 410 Expired, got %s %+v", e.Type, e.Object)
	}
	if e := next(t, startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "11"})); nameOf(e) != "node-0002" {
		t.Fatalf("from 11: got %s %s", e.Type, nameOf(e))
	}
}

// A list's resourceVersion is the state it shows: a watch from it gets a
// change made between the list and the watch.
func TestListThenWatchLosesNothing(t *testing.T) {
	r, c := newTestREST(t, 16, 2, 10)
	obj, err := r.List(context.Background(), &metainternalversion.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list := obj.(*infraopsv1.NodeList)
	if len(list.Items) != 2 || list.ResourceVersion != "10" {
		t.Fatalf("list: %d items at %q", len(list.Items), list.ResourceVersion)
	}
	if err := c.Update(coreNode("node-0001", 15, map[string]string{"changed": "yes"})); err != nil {
		t.Fatal(err)
	}
	e := next(t, startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: list.ResourceVersion}))
	if e.Type != watch.Modified || nameOf(e) != "node-0001" || e.Object.(*infraopsv1.Node).Labels["changed"] != "yes" {
		t.Fatalf("got %s %+v", e.Type, e.Object)
	}
}

// Selectors: a node that starts matching is ADDED, one that stops is
// DELETED, others are not sent.
func TestWatchSelectorTransitions(t *testing.T) {
	r, c := newTestREST(t, 16, 1, 10)
	opts := &metainternalversion.ListOptions{Watch: true, ResourceVersion: "10", LabelSelector: labels.SelectorFromSet(labels.Set{"pool": "a"})}
	w := startWatch(t, r, opts)
	for _, n := range []*corev1.Node{
		coreNode("node-0000", 11, map[string]string{"pool": "b"}),
		coreNode("node-0000", 12, map[string]string{"pool": "a"}),
		coreNode("node-0000", 13, map[string]string{"pool": "a", "x": "y"}),
		coreNode("node-0000", 14, map[string]string{"pool": "b"}),
	} {
		if err := c.Update(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"ADDED 12", "MODIFIED 13", "DELETED 14"} {
		e := next(t, w)
		if got := fmt.Sprintf("%s %s", e.Type, rvOf(t, e)); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// An idle watch that allows bookmarks gets them, with the resourceVersion
// kube-apiserver's bookmarks moved the cache to.
func TestWatchPeriodicBookmarks(t *testing.T) {
	_, c := newTestREST(t, 16, 1, 10)
	r := NewREST(c, 10*time.Millisecond)
	opts := &metainternalversion.ListOptions{Watch: true, ResourceVersion: "10", AllowWatchBookmarks: true}
	w := startWatch(t, r, opts)
	if e := next(t, w); e.Type != watch.Bookmark || rvOf(t, e) != "10" || len(e.Object.(*infraopsv1.Node).Annotations) != 0 {
		t.Fatalf("got %s %+v", e.Type, e.Object)
	}
	if err := c.Bookmark("50"); err != nil {
		t.Fatal(err)
	}
	for {
		e := next(t, w)
		if e.Type != watch.Bookmark {
			t.Fatalf("got %s", e.Type)
		}
		if rvOf(t, e) == "50" {
			break
		}
	}
	// A watch without allowWatchBookmarks never gets one: its first event
	// is the next change.
	w = startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "50"})
	time.Sleep(50 * time.Millisecond) // several bookmark intervals
	if err := c.Add(coreNode("node-0001", 51, nil)); err != nil {
		t.Fatal(err)
	}
	if e := next(t, w); e.Type != watch.Added {
		t.Fatalf("got %s", e.Type)
	}
}

// A reader that falls a whole ring behind is cut off; the cache is never
// held up by it.
func TestSlowWatcherIsCutOff(t *testing.T) {
	r, c := newTestREST(t, 4, 1, 10)
	w := startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "10"})
	for i := uint64(11); i <= 30; i++ {
		if err := c.Update(coreNode("node-0000", i, nil)); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for range w.ResultChan() {
		got++
	}
	if got >= 20 {
		t.Fatalf("a reader 20 changes behind a ring of 4 got all %d events", got)
	}
}

// A relist drops the history: watches end, and a resourceVersion from
// before it gets 410.
func TestRelistEndsWatches(t *testing.T) {
	r, c := newTestREST(t, 16, 1, 10)
	w := startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "10"})
	if err := c.Replace([]interface{}{coreNode("node-0000", 20, nil)}, "25"); err != nil {
		t.Fatal(err)
	}
	for e := range w.ResultChan() {
		t.Fatalf("unexpected event %s", e.Type)
	}
	e := next(t, startWatch(t, r, &metainternalversion.ListOptions{Watch: true, ResourceVersion: "10"}))
	if s, ok := e.Object.(*metav1.Status); !ok || s.Code != http.StatusGone {
		t.Fatalf("want 410, got %+v", e.Object)
	}
}

func TestListAndWatchOptionsAreValidated(t *testing.T) {
	r, c := newTestREST(t, 16, 1, 10)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		watch bool
		opts  metainternalversion.ListOptions
		code  int
	}{
		"sendInitialEvents on a list":            {false, metainternalversion.ListOptions{SendInitialEvents: pointer(true)}, 422},
		"sendInitialEvents without NotOlderThan": {true, metainternalversion.ListOptions{SendInitialEvents: pointer(true)}, 422},
		"resourceVersionMatch on a plain watch":  {true, metainternalversion.ListOptions{ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan}, 422},
		"resourceVersionMatch without rv":        {false, metainternalversion.ListOptions{ResourceVersionMatch: metav1.ResourceVersionMatchExact}, 422},
		"unknown resourceVersionMatch":           {false, metainternalversion.ListOptions{ResourceVersion: "1", ResourceVersionMatch: "Newest"}, 422},
		"bad resourceVersion on a list":          {false, metainternalversion.ListOptions{ResourceVersion: "abc"}, 400},
		"bad resourceVersion on a watch":         {true, metainternalversion.ListOptions{ResourceVersion: "abc"}, 400},
		"a continue token never issued":          {false, metainternalversion.ListOptions{Continue: "xyz"}, 400},
		"an exact old resourceVersion":           {false, metainternalversion.ListOptions{ResourceVersion: "5", ResourceVersionMatch: metav1.ResourceVersionMatchExact}, 410},
	} {
		var err error
		if tc.watch {
			_, err = r.Watch(ctx, &tc.opts)
		} else {
			_, err = r.List(ctx, &tc.opts)
		}
		if code := codeOf(err); code != tc.code {
			t.Errorf("%s: want %d, got %d (%v)", name, tc.code, code, err)
		}
	}
	// The exact current resourceVersion is served.
	if _, err := r.List(ctx, &metainternalversion.ListOptions{ResourceVersion: "10", ResourceVersionMatch: metav1.ResourceVersionMatchExact}); err != nil {
		t.Fatal(err)
	}
	// A resourceVersion the cache has not reached: 504 ResourceVersionTooLarge
	// after the wait, for lists, gets and watch-lists alike.
	defer func(d time.Duration) { freshWait = d }(freshWait)
	freshWait = 10 * time.Millisecond
	_, err := r.List(ctx, &metainternalversion.ListOptions{ResourceVersion: "99"})
	if code := codeOf(err); code != http.StatusGatewayTimeout {
		t.Fatalf("too large rv: got %d (%v)", code, err)
	}
	if _, err := r.Get(ctx, "node-0000", &metav1.GetOptions{ResourceVersion: "99"}); codeOf(err) != http.StatusGatewayTimeout {
		t.Fatalf("get, too large rv: %v", err)
	}
	opts := watchList()
	opts.ResourceVersion = "99"
	w, err := r.Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if e := <-w.ResultChan(); e.Type != watch.Error || e.Object.(*metav1.Status).Code != http.StatusGatewayTimeout {
		t.Fatalf("watch-list, too large rv: %s %+v", e.Type, e.Object)
	}
	// …and one the cache reaches meanwhile is served.
	freshWait = time.Minute
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = c.Add(coreNode("node-0001", 99, nil))
	}()
	obj, err := r.List(ctx, &metainternalversion.ListOptions{ResourceVersion: "99"})
	if err != nil || obj.(*infraopsv1.NodeList).ResourceVersion != "99" {
		t.Fatalf("list at 99: %v", err)
	}
}

func codeOf(err error) int {
	if err == nil {
		return 200
	}
	if s, ok := err.(apierrors.APIStatus); ok {
		return int(s.Status().Code)
	}
	return 500
}

// A name no node can have is answered before any lookup: 400 for a name
// that is not a path segment, 404 for any other name a Node cannot have.
func TestNodeNames(t *testing.T) {
	r, _ := newTestREST(t, 16, 1, 10)
	for name, code := range map[string]int{
		"a%b": 400, ".": 400, "..": 400, "a/b": 400,
		"Foo_Bar": 404, "-x": 404,
		"node-0000": 200, "no-such-node": 404,
	} {
		if err := checkName(name); name != "no-such-node" && codeOf(err) != code && !(code == 200 && err == nil) {
			t.Errorf("checkName(%q): want %d, got %v", name, code, err)
		}
		_, err := r.Get(context.Background(), name, &metav1.GetOptions{})
		if got := codeOf(err); got != code {
			t.Errorf("Get(%q): want %d, got %d (%v)", name, code, got, err)
		}
	}
}

// The claims index follows the Nodes: a providerID changed away from a
// machine, or a deleted Node, no longer claims it; a relist rebuilds it.
func TestCacheClaimsFollowTheNodes(t *testing.T) {
	c := NewCache(0, nil)
	a, b := coreNode("a", 1, nil), coreNode("b", 2, nil)
	b.Spec.ProviderID = "aws:////i-0123456789abcdef0" // another spelling of a's machine
	if err := c.Replace([]interface{}{a, b}, "2"); err != nil {
		t.Fatal(err)
	}
	claims := func() string { return fmt.Sprint(c.NodesClaiming("aws", "i-0123456789abcdef0")) }
	if got := claims(); got != "[a b]" {
		t.Fatalf("after the list: %s", got)
	}
	b2 := b.DeepCopy()
	b2.ResourceVersion, b2.Spec.ProviderID = "3", "aws:///us-east-1a/i-0fedcba9876543210"
	if err := c.Update(b2); err != nil {
		t.Fatal(err)
	}
	if got := claims(); got != "[a]" {
		t.Fatalf("after b moved to another machine: %s", got)
	}
	if got := fmt.Sprint(c.NodesClaiming("aws", "i-0fedcba9876543210")); got != "[b]" {
		t.Fatalf("b's new machine: %s", got)
	}
	a2 := a.DeepCopy()
	a2.ResourceVersion = "4"
	if err := c.Delete(a2); err != nil {
		t.Fatal(err)
	}
	if got := claims(); got != "[]" {
		t.Fatalf("after a was deleted: %s", got)
	}
}

// A list or a watch-list without a resourceVersion asks for the most recent
// state: while Node changes kube-apiserver had committed are still on their
// way to the cache, the read waits for them; when the rest of the
// resourceVersions were other resources' writes, it answers once the cache
// is quiet.
func TestReadsWithoutResourceVersionAreConsistent(t *testing.T) {
	defer func(q, m time.Duration) { catchUpQuiet, catchUpMax = q, m }(catchUpQuiet, catchUpMax)
	catchUpQuiet, catchUpMax = time.Hour, time.Hour
	r, c := newTestREST(t, 0, 2, 5)
	asked := make(chan struct{}, 10)
	r.WithConsistentReads(func(context.Context) (uint64, error) {
		asked <- struct{}{}
		return 7, nil // two Node changes the cache has not seen yet
	})
	ctx := context.Background()
	lateNodes := func() {
		<-asked
		for i, name := range []string{"late-1", "late-2"} {
			if err := c.Add(coreNode(name, uint64(6+i), nil)); err != nil {
				t.Error(err)
			}
		}
	}

	go lateNodes()
	obj, err := r.List(ctx, &metainternalversion.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := obj.(*infraopsv1.NodeList); len(l.Items) != 4 || l.ResourceVersion != "7" {
		t.Fatalf("list: %d items at %s, want the 4 nodes at 7", len(l.Items), l.ResourceVersion)
	}

	r2, c2 := newTestREST(t, 0, 2, 5)
	c = c2
	r2.WithConsistentReads(func(context.Context) (uint64, error) { asked <- struct{}{}; return 7, nil })
	go lateNodes()
	w := startWatch(t, r2, watchList())
	added := 0
	for e := next(t, w); e.Type == watch.Added; e = next(t, w) {
		added++
	}
	if added != 4 {
		t.Fatalf("watch-list sent %d nodes before its bookmark, want 4", added)
	}

	// kube-apiserver is at 100 because of other resources' writes: the
	// cache answers once nothing more arrives.
	catchUpQuiet = 10 * time.Millisecond
	r.WithConsistentReads(func(context.Context) (uint64, error) { return 100, nil })
	if obj, err := r.List(ctx, &metainternalversion.ListOptions{}); err != nil || len(obj.(*infraopsv1.NodeList).Items) != 4 {
		t.Fatalf("list on a quiet cache behind kube-apiserver: %v, %v", obj, err)
	}

	r.WithConsistentReads(func(context.Context) (uint64, error) { return 0, fmt.Errorf("connection refused") })
	if _, err := r.List(ctx, &metainternalversion.ListOptions{}); !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("list when kube-apiserver cannot tell its resourceVersion: %v, want 503", err)
	}
}
