package node

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/rest"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

var _ rest.Watcher = &REST{}

// DefaultBookmarkInterval is how often a watch that allows bookmarks gets
// one when it is idle, as kube-apiserver sends them about once a minute.
const DefaultBookmarkInterval = time.Minute

// ringBatch bounds how many changes a watcher copies per visit to the
// ring, so the lock is held briefly.
const ringBatch = 256

// Watch serves the Kubernetes watch contract from the cache:
//
//   - sendInitialEvents=true (client-go's watch-list; also what a watch
//     without a resourceVersion, or "0", means): an ADDED event per node,
//     then, with allowWatchBookmarks, a BOOKMARK annotated
//     k8s.io/initial-events-end carrying the state's resourceVersion; then
//     the changes after it. The initial events come from a snapshot, not
//     from a buffer, so any number of nodes is delivered.
//   - a resourceVersion the cache can replay: exactly the changes after it.
//     One older than the ring: an ERROR event 410 Gone (Expired), so the
//     client relists.
//   - allowWatchBookmarks: a BOOKMARK when idle, every BookmarkInterval.
//
// A watcher that falls more than the ring behind is ended (the client
// watches again from its last resourceVersion); the reflector filling the
// cache never waits for a client.
func (r *REST) Watch(ctx context.Context, opts *metainternalversion.ListOptions) (watch.Interface, error) {
	if opts == nil {
		opts = &metainternalversion.ListOptions{}
	}
	if err := validateListOptions(opts, true); err != nil {
		return nil, err
	}
	rv, err := parseResourceVersion(opts.ResourceVersion)
	if err != nil {
		return nil, err
	}
	legacyInitial := opts.ResourceVersion == "" || opts.ResourceVersion == "0"
	initial := legacyInitial
	if opts.SendInitialEvents != nil {
		initial = *opts.SendInitialEvents
	}
	w := &cacheWatcher{
		c:         r.cache,
		result:    make(chan watch.Event),
		done:      make(chan struct{}),
		match:     matcher(opts.LabelSelector, opts.FieldSelector),
		bookmarks: opts.AllowWatchBookmarks,
		interval:  r.bookmarkInterval,
	}
	// The cache must hold at least the state asked for; before its first
	// list nothing can be served.
	wait := func() error { return r.cache.waitFresh(ctx, 0) }
	if initial { // at least rv (NotOlderThan), or without one the most recent state
		wait = func() error { return r.waitFor(ctx, opts.ResourceVersion, rv) }
	}
	if err := wait(); err != nil {
		return errWatcher(err), nil
	}
	c := r.cache
	c.mu.RLock()
	w.gen = c.gen
	switch {
	case initial:
		w.initial = make([]*infraopsv1.Node, 0, len(c.items))
		for _, v := range c.items {
			w.initial = append(w.initial, v)
		}
		w.cursor, w.from = c.end, c.rv
		w.initialEnd = opts.AllowWatchBookmarks
	case legacyInitial: // sendInitialEvents=false without a resourceVersion: from now
		w.cursor, w.from = c.end, c.rv
	case rv < c.floor:
		floor := c.floor
		c.mu.RUnlock()
		return errWatcher(apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", rv, floor))), nil
	default:
		w.from = rv
		n := int(c.end - c.start)
		first := sort.Search(n, func(i int) bool { return c.ring[(c.start+uint64(i))%uint64(len(c.ring))].rv > rv })
		w.cursor = c.start + uint64(first)
	}
	c.mu.RUnlock()
	sort.Slice(w.initial, func(i, j int) bool { return w.initial[i].Name < w.initial[j].Name })
	go w.run(ctx)
	return w, nil
}

// matcher is nil when every node matches.
func matcher(l labels.Selector, f fields.Selector) func(*infraopsv1.Node) bool {
	if (l == nil || l.Empty()) && (f == nil || f.Empty()) {
		return nil
	}
	if l == nil {
		l = labels.Everything()
	}
	if f == nil {
		f = fields.Everything()
	}
	return func(v *infraopsv1.Node) bool {
		return l.Matches(labels.Set(v.Labels)) && (f.Empty() || f.Matches(FieldSet(v)))
	}
}

type cacheWatcher struct {
	c         *Cache
	result    chan watch.Event
	done      chan struct{}
	stopOnce  sync.Once
	match     func(*infraopsv1.Node) bool
	bookmarks bool
	interval  time.Duration

	gen     uint64
	initial []*infraopsv1.Node
	// initialEnd sends the bookmark that ends the initial events.
	initialEnd bool
	// cursor numbers the next change to read from the ring; from is the
	// resourceVersion the watch starts after.
	cursor uint64
	from   uint64
}

func (w *cacheWatcher) ResultChan() <-chan watch.Event { return w.result }

func (w *cacheWatcher) Stop() { w.stopOnce.Do(func() { close(w.done) }) }

func (w *cacheWatcher) send(ctx context.Context, e watch.Event) bool {
	select {
	case w.result <- e:
		return true
	case <-w.done:
	case <-ctx.Done():
	}
	return false
}

func (w *cacheWatcher) matches(v *infraopsv1.Node) bool { return w.match == nil || w.match(v) }

func (w *cacheWatcher) run(ctx context.Context) {
	defer close(w.result)
	for _, v := range w.initial {
		if w.matches(v) && !w.send(ctx, watch.Event{Type: watch.Added, Object: emit(v)}) {
			return
		}
	}
	w.initial = nil
	if w.initialEnd && !w.send(ctx, watch.Event{Type: watch.Bookmark, Object: bookmark(w.from, true)}) {
		return
	}
	// delivered: every change up to it has been sent (or did not match).
	delivered := w.from
	var tick <-chan time.Time
	if w.bookmarks && w.interval > 0 {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]change, 0, ringBatch)
	for {
		c := w.c
		c.mu.RLock()
		if c.gen != w.gen || w.cursor < c.start {
			// A relist dropped the history, or this watcher fell a whole
			// ring behind: end it; the client watches again.
			c.mu.RUnlock()
			return
		}
		batch = batch[:0]
		for i := w.cursor; i < c.end && len(batch) < ringBatch; i++ {
			batch = append(batch, c.ring[i%uint64(len(c.ring))])
		}
		caughtUp := w.cursor+uint64(len(batch)) == c.end
		stateRV, wake := c.rv, c.wake
		c.mu.RUnlock()

		for i := range batch {
			w.cursor++
			ch := &batch[i]
			if ch.rv <= w.from {
				continue
			}
			if e, ok := w.event(ch); ok && !w.send(ctx, e) {
				return
			}
			delivered = ch.rv
		}
		if caughtUp {
			delivered = max(delivered, stateRV)
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-wake:
		case <-tick:
			if !w.send(ctx, watch.Event{Type: watch.Bookmark, Object: bookmark(max(delivered, w.from), false)}) {
				return
			}
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// event is what this watcher sees of a change, given its selectors: a
// node that starts matching is ADDED, one that stops is DELETED.
func (w *cacheWatcher) event(ch *change) (watch.Event, bool) {
	if w.match == nil {
		return watch.Event{Type: ch.typ, Object: emit(ch.obj)}, true
	}
	cur := ch.typ != watch.Deleted && w.match(ch.obj)
	old := ch.prev != nil && w.match(ch.prev)
	switch {
	case cur && old:
		return watch.Event{Type: watch.Modified, Object: emit(ch.obj)}, true
	case cur:
		return watch.Event{Type: watch.Added, Object: emit(ch.obj)}, true
	case old && ch.typ == watch.Deleted:
		return watch.Event{Type: watch.Deleted, Object: emit(ch.obj)}, true
	case old:
		// Left the selection: the last state it matched in, at the
		// change's resourceVersion, as kube-apiserver sends it.
		v := emit(ch.prev)
		v.ResourceVersion = ch.obj.ResourceVersion
		return watch.Event{Type: watch.Deleted, Object: v}, true
	}
	return watch.Event{}, false
}

// emit copies a cached view for one response: the encoder sets the kind on
// the object it writes, so watchers and requests must not share one. The
// maps inside are shared and only read.
func emit(v *infraopsv1.Node) *infraopsv1.Node {
	cp := *v
	return &cp
}

func bookmark(rv uint64, initialEventsEnd bool) *infraopsv1.Node {
	b := &infraopsv1.Node{ObjectMeta: metav1.ObjectMeta{ResourceVersion: strconv.FormatUint(rv, 10)}}
	if initialEventsEnd {
		b.Annotations = map[string]string{metav1.InitialEventsAnnotationKey: "true"}
	}
	return b
}

// errWatcher answers a watch with one ERROR event, as kube-apiserver does
// for errors found after the request was accepted (410 Gone above all):
// client-go's reflector reads it and relists.
func errWatcher(err error) watch.Interface {
	status := apierrors.NewInternalError(err).ErrStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		status = s.Status()
	}
	ch := make(chan watch.Event, 1)
	ch <- watch.Event{Type: watch.Error, Object: &status}
	close(ch)
	return &staticWatcher{ch: ch}
}

type staticWatcher struct{ ch chan watch.Event }

func (w *staticWatcher) ResultChan() <-chan watch.Event { return w.ch }
func (w *staticWatcher) Stop()                          {}
