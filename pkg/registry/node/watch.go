package node

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/tools/cache"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

var _ rest.Watcher = &REST{}

// watchBuffer bounds the events queued for a slow watcher. When it is full
// the watch ends, and the client lists and watches again, as it does after
// any broken watch: a blocked handler would stall the shared informer.
const watchBuffer = 256

// Watch streams changes of the view from the informer. A watch without a
// resourceVersion (or "0") starts with an ADDED event per node; one from a
// list's resourceVersion starts with the changes after it.
func (r *REST) Watch(ctx context.Context, opts *metainternalversion.ListOptions) (watch.Interface, error) {
	labelSel, fieldSel := labels.Everything(), fields.Everything()
	initial := true
	if opts != nil {
		if opts.LabelSelector != nil {
			labelSel = opts.LabelSelector
		}
		if opts.FieldSelector != nil {
			fieldSel = opts.FieldSelector
		}
		initial = opts.ResourceVersion == "" || opts.ResourceVersion == "0"
	}
	w := &nodeWatch{
		result: make(chan watch.Event, watchBuffer),
		done:   make(chan struct{}),
	}
	match := func(n *corev1.Node) (*infraopsv1.Node, bool) {
		if !labelSel.Matches(labels.Set(n.Labels)) {
			return nil, false
		}
		v := toView(n, r.defaultRegion)
		return v, fieldSel.Matches(FieldSet(v))
	}
	reg, err := r.informer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj interface{}, inInitialList bool) {
			n, ok := obj.(*corev1.Node)
			if !ok || (inInitialList && !initial) {
				return
			}
			if v, ok := match(n); ok {
				w.send(watch.Event{Type: watch.Added, Object: v})
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 {
				return
			}
			_, was := match(o)
			v, is := match(n)
			switch {
			case is && was:
				w.send(watch.Event{Type: watch.Modified, Object: v})
			case is:
				w.send(watch.Event{Type: watch.Added, Object: v})
			case was:
				w.send(watch.Event{Type: watch.Deleted, Object: toView(n, r.defaultRegion)})
			}
		},
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				if v, ok := match(n); ok {
					w.send(watch.Event{Type: watch.Deleted, Object: v})
				}
			}
		},
	})
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	w.mu.Lock()
	w.stopHandler = func() { _ = r.informer.RemoveEventHandler(reg) }
	if w.stopped { // overflowed while the initial list was being sent
		go w.stopHandler()
	}
	w.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.done:
		}
	}()
	return w, nil
}

type nodeWatch struct {
	result      chan watch.Event
	done        chan struct{}
	once        sync.Once
	mu          sync.Mutex // guards sends against the close in Stop
	stopped     bool
	stopHandler func()
}

func (w *nodeWatch) send(e watch.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	select {
	case w.result <- e:
	default:
		// Too slow a reader: end the watch rather than stall the informer.
		w.stopLocked()
	}
}

func (w *nodeWatch) ResultChan() <-chan watch.Event { return w.result }

func (w *nodeWatch) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopLocked()
}

func (w *nodeWatch) stopLocked() {
	w.once.Do(func() {
		w.stopped = true
		close(w.done)
		close(w.result)
		if w.stopHandler != nil {
			go w.stopHandler() // not under our lock: the informer may be calling send
		}
	})
}
