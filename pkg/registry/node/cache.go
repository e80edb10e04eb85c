package node

import (
	"context"
	"fmt"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/client-go/tools/cache"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// DefaultHistory is how many recent changes the cache keeps for watches
// that start from a resourceVersion, and how far a watcher may fall behind
// before it is cut off. A slot is a few pointers, so this costs little; it
// covers a burst of updates of every node of a large cluster at once.
const DefaultHistory = 8192

// Cache is the view's state: the store a client-go Reflector on core Nodes
// writes to (it implements cache.ReflectorStore and the optional
// bookmark and resourceVersion interfaces), holding each node as its view,
// with a ring of recent changes keyed by kube-apiserver's resourceVersions.
//
// Get, List and Watch read only this state, under one lock, so a list's
// resourceVersion is exactly the state it shows and a watch from it starts
// with the first change after it: nothing falls between a list and a watch.
// This is the shape of kube-apiserver's own watch cache.
type Cache struct {
	defaultRegion func(provider string) string

	mu    sync.RWMutex
	items map[string]*infraopsv1.Node
	// actions are the nodes' last actions (status.lastAction), kept apart
	// from items so they survive a relist of Nodes and can arrive before
	// their Node.
	actions map[string]*infraopsv1.LastAction
	// onNode is told the name of every node that changed.
	onNode func(name string)
	// rv is the resourceVersion of the state: of the last change, the list
	// or a bookmark from kube-apiserver, whichever is newest.
	rv uint64
	// floor is the oldest resourceVersion a watch can start from: every
	// change after it is still in the ring.
	floor uint64
	ring  []change
	// start and end number the changes in the ring: [start, end).
	start, end uint64
	// gen changes when a relist drops the history; watchers of an older
	// generation end, and their clients come back with a resourceVersion
	// that either is still valid or gets 410 Gone.
	gen    uint64
	synced bool
	// claims indexes the nodes by the machine their providerID names
	// (machineKey), so an action can see another Node claiming its machine.
	claims map[string]map[string]struct{}
	// wake is closed (and replaced) on every change of the state.
	wake chan struct{}
}

// change is one event in the ring. prev is the view before it (nil for an
// addition), for watchers whose selectors decide ADDED/DELETED.
type change struct {
	typ       watch.EventType
	obj, prev *infraopsv1.Node
	rv        uint64
}

var (
	_ cache.ReflectorStore         = &Cache{}
	_ cache.ReflectorBookmarkStore = &Cache{}
	_ cache.ResourceVersionUpdater = &Cache{}
	_ cache.TransformingStore      = &Cache{}
)

// NewCache returns an empty cache keeping history changes (DefaultHistory
// when 0). defaultRegion gives the cloud config's default region of a
// provider.
func NewCache(history int, defaultRegion func(provider string) string) *Cache {
	if history <= 0 {
		history = DefaultHistory
	}
	if defaultRegion == nil {
		defaultRegion = func(string) string { return "" }
	}
	return &Cache{
		defaultRegion: defaultRegion,
		items:         map[string]*infraopsv1.Node{},
		claims:        map[string]map[string]struct{}{},
		actions:       map[string]*infraopsv1.LastAction{},
		ring:          make([]change, history),
		wake:          make(chan struct{}),
	}
}

// HasSynced reports whether the first list has arrived.
func (c *Cache) HasSynced() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.synced
}

// Transformer lets the reflector trim the nodes it holds while it lists.
func (c *Cache) Transformer() cache.TransformFunc { return TrimNode }

func (c *Cache) view(obj interface{}) (*infraopsv1.Node, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return nil, false
	}
	trimmed, _ := TrimNode(n)
	return toView(trimmed.(*corev1.Node), c.defaultRegion), true
}

// Add, Update and Delete are the reflector's watch events, in
// kube-apiserver's order.
func (c *Cache) Add(obj interface{}) error    { return c.apply(obj, false) }
func (c *Cache) Update(obj interface{}) error { return c.apply(obj, false) }
func (c *Cache) Delete(obj interface{}) error { return c.apply(obj, true) }

func (c *Cache) apply(obj interface{}, deleted bool) error {
	v, ok := c.view(obj)
	if !ok {
		return fmt.Errorf("not a Node: %T", obj)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rv := c.nextRV(v.ResourceVersion)
	// The view's resourceVersion is the cache's for this change, which is
	// the Node's unless a lastAction change took a later one first.
	v.ResourceVersion = strconv.FormatUint(rv, 10)
	v.Status.LastAction = c.actions[v.Name]
	if c.onNode != nil {
		c.onNode(v.Name)
	}
	prev := c.items[v.Name]
	if prev != nil {
		c.unclaimLocked(prev)
	}
	if !deleted {
		c.claimLocked(v)
	}
	ch := change{obj: v, prev: prev, rv: rv}
	switch {
	case deleted && prev == nil:
		return nil
	case deleted:
		delete(c.items, v.Name)
		ch.typ = watch.Deleted
	case prev == nil:
		c.items[v.Name] = v
		ch.typ = watch.Added
	default:
		c.items[v.Name] = v
		ch.typ = watch.Modified
	}
	c.push(ch)
	return nil
}

// NodesClaiming lists, sorted, the Nodes whose providerID names the
// machine (cloud.Instance.Machine) of provider.
func (c *Cache) NodesClaiming(provider, machine string) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := make([]string, 0, len(c.claims[machineKey(provider, machine)]))
	for n := range c.claims[machineKey(provider, machine)] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (c *Cache) claimLocked(v *infraopsv1.Node) {
	key, ok := machineKeyOf(v.Status.ProviderID)
	if !ok {
		return
	}
	if c.claims[key] == nil {
		c.claims[key] = map[string]struct{}{}
	}
	c.claims[key][v.Name] = struct{}{}
}

func (c *Cache) unclaimLocked(v *infraopsv1.Node) {
	key, ok := machineKeyOf(v.Status.ProviderID)
	if !ok {
		return
	}
	delete(c.claims[key], v.Name)
	if len(c.claims[key]) == 0 {
		delete(c.claims, key)
	}
}

// nextRV is the change's resourceVersion. kube-apiserver always sets one,
// strictly growing; a client without them (a fake clientset) gets
// synthetic ones so the ring stays ordered.
func (c *Cache) nextRV(s string) uint64 {
	if rv, err := strconv.ParseUint(s, 10, 64); err == nil && rv > c.rv {
		return rv
	}
	return c.rv + 1
}

func (c *Cache) push(ch change) {
	capacity := uint64(len(c.ring))
	if c.end-c.start == capacity {
		c.floor = max(c.floor, c.ring[c.start%capacity].rv)
		c.ring[c.start%capacity] = change{}
		c.start++
	}
	c.ring[c.end%capacity] = ch
	c.end++
	c.rv = ch.rv
	c.notifyLocked()
}

func (c *Cache) notifyLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// Replace is a list from kube-apiserver. The first one fills the cache; a
// later one (a relist after the reflector lost its watch) cannot tell which
// changes it skipped, so it drops the history and ends every watch, as
// kube-apiserver's watch cache does.
func (c *Cache) Replace(list []interface{}, resourceVersion string) error {
	items := make(map[string]*infraopsv1.Node, len(list))
	for _, obj := range list {
		if v, ok := c.view(obj); ok {
			items[v.Name] = v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rv, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil || rv < c.rv {
		rv = c.rv + 1
	}
	c.items = items
	c.claims = map[string]map[string]struct{}{}
	for _, v := range items {
		v.Status.LastAction = c.actions[v.Name]
		c.claimLocked(v)
	}
	if c.onNode != nil {
		for name := range items {
			c.onNode(name)
		}
	}
	c.rv, c.floor = rv, rv
	for i := range c.ring {
		c.ring[i] = change{}
	}
	c.start, c.end = 0, 0
	if c.synced {
		c.gen++
	}
	c.synced = true
	c.notifyLocked()
	return nil
}

// Bookmark and UpdateResourceVersion move the state's resourceVersion on
// when kube-apiserver says nothing changed up to it, so lists and bookmarks
// carry a current resourceVersion on a quiet cluster.
func (c *Cache) Bookmark(resourceVersion string) error {
	c.UpdateResourceVersion(resourceVersion)
	return nil
}

func (c *Cache) UpdateResourceVersion(resourceVersion string) {
	rv, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rv > c.rv && c.synced {
		c.rv = rv
		c.notifyLocked()
	}
}

// Resync is part of the reflector's store; there is nothing to resync.
func (c *Cache) Resync() error { return nil }

// freshWait bounds how long a read for a resourceVersion newer than the
// cache waits for it, as kube-apiserver's watch cache does.
var freshWait = 3 * time.Second

// catchUpQuiet and catchUpMax bound waitCaughtUp: kube-apiserver's
// current resourceVersion counts every write of the cluster (Leases,
// Events), not only Nodes, so on a quiet cluster the cache may never reach
// it. The Node events written before it are on their way within
// milliseconds; once none has come for catchUpQuiet, the cache holds them.
var (
	catchUpQuiet = 20 * time.Millisecond
	catchUpMax   = 2 * time.Second
)

// waitCaughtUp waits until the cache holds every Node change kube-apiserver
// had committed at resourceVersion latest: until its state reaches latest,
// or no change has arrived for catchUpQuiet (the rest of the revisions were
// other resources'), at most catchUpMax. It fails only as waitFresh does
// before the first list.
func (c *Cache) waitCaughtUp(ctx context.Context, latest uint64) error {
	if err := c.waitFresh(ctx, 0); err != nil {
		return err
	}
	limit := time.NewTimer(catchUpMax)
	defer limit.Stop()
	quiet := time.NewTimer(catchUpQuiet)
	defer quiet.Stop()
	for {
		c.mu.RLock()
		cur, wake := c.rv, c.wake
		c.mu.RUnlock()
		if cur >= latest {
			return nil
		}
		select {
		case <-wake:
			quiet.Reset(catchUpQuiet)
		case <-quiet.C:
			return nil
		case <-limit.C:
			return nil
		case <-ctx.Done():
			return apierrors.NewTimeoutError("the request ended while waiting for the node cache", 1)
		}
	}
}

// waitFresh waits until the state is at least rv. The error is the
// Status kube-apiserver answers in the same case: 429 while the first list
// has not arrived, 504 with ResourceVersionTooLarge when rv never arrives.
func (c *Cache) waitFresh(ctx context.Context, rv uint64) error {
	timer := time.NewTimer(freshWait)
	defer timer.Stop()
	for {
		c.mu.RLock()
		synced, cur, wake := c.synced, c.rv, c.wake
		c.mu.RUnlock()
		if synced && cur >= rv {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return apierrors.NewTimeoutError("the request ended while waiting for the node cache", 1)
		case <-timer.C:
			if !synced {
				return apierrors.NewTooManyRequests("the node cache is still loading from kube-apiserver", 1)
			}
			return tooLargeResourceVersion(rv, cur)
		}
	}
}

// snapshot is the state at one resourceVersion, sorted by name.
func (c *Cache) snapshot() ([]*infraopsv1.Node, uint64) {
	c.mu.RLock()
	items := make([]*infraopsv1.Node, 0, len(c.items))
	for _, v := range c.items {
		items = append(items, v)
	}
	rv := c.rv
	c.mu.RUnlock()
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	return items, rv
}

func (c *Cache) get(name string) (*infraopsv1.Node, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.items[name]
	return v, ok
}

// ResourceVersion is the state's resourceVersion.
func (c *Cache) ResourceVersion() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rv
}

func tooLargeResourceVersion(want, current uint64) error {
	return storage.NewTooLargeResourceVersionError(want, current, 1)
}

// OnNodeChange registers f to be told the name of every node that changes
// (the Follower judges lastAction from it). f is called with the cache's
// lock held: it must not block or call the cache.
func (c *Cache) OnNodeChange(f func(name string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onNode = f
}

// SetLastAction sets a node's status.lastAction (nil removes it), from
// the record Lease whose resourceVersion is rv. A change of a node the
// cache holds is a MODIFIED event of its view like any other, at the
// record's resourceVersion when it is newer than the state's (kube-apiserver
// numbers Leases and Nodes from one sequence), else at the next one, so a
// watch's resourceVersions keep growing and one resumed from any of them
// misses nothing.
func (c *Cache) SetLastAction(node string, la *infraopsv1.LastAction, rv string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if apiequality.Semantic.DeepEqual(c.actions[node], la) {
		return
	}
	if la == nil {
		delete(c.actions, node)
	} else {
		c.actions[node] = la
	}
	prev, ok := c.items[node]
	if !ok {
		return
	}
	next := rvNum(c.nextRV(rv))
	v := emit(prev)
	v.Status = *prev.Status.DeepCopy()
	v.Status.LastAction = la
	v.ResourceVersion = next.String()
	c.items[node] = v
	c.push(change{typ: watch.Modified, obj: v, prev: prev, rv: uint64(next)})
}

type rvNum uint64

func (r rvNum) String() string { return strconv.FormatUint(uint64(r), 10) }
