package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	clientfeatures "k8s.io/client-go/features"
	clientfeaturestesting "k8s.io/client-go/features/testing"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

var viewNodes = schema.GroupVersionResource{Group: "infraops.michael.io", Version: "v1", Resource: "nodes"}

func dynamicClient(t *testing.T) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(env.cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func bootIDOf(obj interface{}) string {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return ""
	}
	s, _, _ := unstructured.NestedString(u.Object, "status", "bootID")
	return s
}

// A client-go informer on the view, as any controller or operator builds
// one, through kube-apiserver: it syncs, then sees an update and a delete.
// With client-go's defaults it opens a watch-list and waits for the
// bookmark that ends the initial events; with watch-list off it lists and
// watches from the list's resourceVersion.
func TestInformerOnTheView(t *testing.T) {
	for _, watchList := range []bool{true, false} {
		t.Run(fmt.Sprintf("watchList=%v", watchList), func(t *testing.T) {
			timed(t)
			if !watchList {
				clientfeaturestesting.SetFeatureDuringTest(t, clientfeatures.WatchListClient, false)
			} else if !clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient) {
				t.Fatal("client-go's WatchListClient is off by default; this test must exercise it")
			}
			m := newMachine(t, cloud.ProviderAWS, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			factory := dynamicinformer.NewDynamicSharedInformerFactory(dynamicClient(t), 0)
			informer := factory.ForResource(viewNodes).Informer()
			events := make(chan string, 1000)
			if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
				UpdateFunc: func(_, obj interface{}) {
					if u, ok := obj.(*unstructured.Unstructured); ok && u.GetName() == m.node {
						events <- "update " + bootIDOf(obj)
					}
				},
				DeleteFunc: func(obj interface{}) {
					if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
						obj = t.Obj
					}
					if u, ok := obj.(*unstructured.Unstructured); ok && u.GetName() == m.node {
						events <- "delete"
					}
				},
			}); err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			factory.Start(ctx.Done())
			defer func() {
				cancel() // Shutdown waits for the informers to stop
				factory.Shutdown()
			}()
			if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
				t.Fatal("the informer on nodes.infraops.michael.io never synced")
			}
			t.Logf("figure: informer synced in %s", time.Since(begin).Round(time.Millisecond))
			if _, ok, _ := informer.GetStore().GetByKey(m.node); !ok {
				t.Fatalf("the synced informer lacks %s", m.node)
			}

			if err := env.cluster.SetNodeStatus(ctx, m.node, true, "rebooted-"+m.node); err != nil {
				t.Fatal(err)
			}
			waitEvent(ctx, t, events, "update rebooted-"+m.node)
			if err := env.kube.CoreV1().Nodes().Delete(ctx, m.node, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			waitEvent(ctx, t, events, "delete")
		})
	}
}

func waitEvent(ctx context.Context, t *testing.T, events <-chan string, want string) {
	t.Helper()
	var seen []string
	for {
		select {
		case e := <-events:
			if e == want {
				return
			}
			seen = append(seen, e)
		case <-ctx.Done():
			t.Fatalf("the informer never saw %q (saw %v)", want, seen)
		}
	}
}

// A watch from a list's resourceVersion sees a change made between the
// list and the watch (or gets 410 Gone, and a list then shows the change).
func TestWatchFromListResourceVersion(t *testing.T) {
	timed(t)
	m := newMachine(t, cloud.ProviderTencentCloud, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := dynamicClient(t).Resource(viewNodes)
	list, err := nodes.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := "between-" + m.node
	if err := env.cluster.SetNodeStatus(ctx, m.node, true, want); err != nil {
		t.Fatal(err)
	}
	w, err := nodes.Watch(ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for {
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended before the change")
			}
			if e.Type == watch.Error {
				if err := apierrors.FromObject(e.Object); !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
					t.Fatalf("watch error: %v", err)
				}
				got, err := nodes.Get(ctx, m.node, metav1.GetOptions{})
				if err != nil || bootIDOf(got) != want {
					t.Fatalf("after 410 the node reads %q (%v)", bootIDOf(got), err)
				}
				t.Log("the watch answered 410 and a fresh read shows the change")
				return
			}
			if e.Type == watch.Modified && bootIDOf(e.Object) == want {
				return
			}
		case <-ctx.Done():
			t.Fatal("the change made between the list and the watch never arrived")
		}
	}
}

// An initial watch over more nodes than any buffer delivers every one of
// them, then the bookmark that ends the initial events.
func TestInitialWatchOfThousandsOfNodes(t *testing.T) {
	timed(t)
	const count = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := env.cluster.RESTConfig()
	cfg.QPS = -1 // the harness client's limit would make this minutes long
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const selector = "e2e-bulk=initial-watch"
	t.Cleanup(func() {
		_ = kube.CoreV1().Nodes().DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: selector})
	})
	begin := time.Now()
	if err := createNodes(ctx, kube, count, "e2e-bulk-%04d", map[string]string{"e2e-bulk": "initial-watch"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("figure: %d Nodes created in %s", count, time.Since(begin).Round(time.Millisecond))

	timeout := int64(300)
	w, err := dynamicClient(t).Resource(viewNodes).Watch(ctx, metav1.ListOptions{
		LabelSelector: selector, SendInitialEvents: func() *bool { b := true; return &b }(),
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true,
		TimeoutSeconds: &timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	seen := map[string]bool{}
	for e := range w.ResultChan() {
		switch e.Type {
		case watch.Added:
			seen[e.Object.(*unstructured.Unstructured).GetName()] = true
			continue
		case watch.Bookmark:
			u := e.Object.(*unstructured.Unstructured)
			if u.GetAnnotations()[metav1.InitialEventsAnnotationKey] != "true" || u.GetResourceVersion() == "" {
				t.Fatalf("bookmark without the initial-events-end annotation: %v", u.Object)
			}
			if len(seen) != count {
				t.Fatalf("the initial events ended after %d of %d nodes", len(seen), count)
			}
			return
		default:
			t.Fatalf("unexpected %s after %d ADDED: %v", e.Type, len(seen), e.Object)
		}
	}
	t.Fatalf("the watch ended after %d of %d ADDED events, without the bookmark", len(seen), count)
}

// createNodes makes count Nodes with several writers at once.
func createNodes(ctx context.Context, kube kubernetes.Interface, count int, nameFormat string, labels map[string]string) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				n := &corev1.Node{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf(nameFormat, i), Labels: labels},
					Spec:       corev1.NodeSpec{ProviderID: fmt.Sprintf("aws:///us-east-1a/i-0b%015x", i)},
				}
				if _, err := kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < count; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return firstErr
}
