package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
	"github.com/michael/k8s-cloud-node-manager/pkg/policy"
	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

// The suite's policy: each rule selects the nodes of one test by the
// e2e-policy label. The windows are computed around the real time the
// suite starts: one open for hours, one that opens hours from now.
const policyLabel = "e2e-policy"

func e2ePolicy(now time.Time) string {
	hm := func(d time.Duration) string { return now.UTC().Add(d).Format("15:04") }
	return fmt.Sprintf(`apiVersion: infraops.michael.io/v1
kind: PolicyConfig
underActionBound: 5m
budgets:
  - name: e2e-burst
    selector: %[1]s=burst
    maxUnderAction: 3
  - name: e2e-zones
    selector: %[1]s=zones
    groupBy: topology.kubernetes.io/zone
    maxUnderAction: 1
  - name: e2e-ready
    selector: %[1]s=ready
    minReady: 3
  - name: e2e-dry
    selector: %[1]s=dry
    maxUnderAction: 1
windows:
  - name: e2e-open
    selector: %[1]s=window-open
    schedule: ["Daily %[2]s-%[3]s UTC"]
  - name: e2e-closed
    selector: %[1]s=window-closed
    actions: [restart]
    schedule: ["Daily %[4]s-%[5]s UTC"]
`, policyLabel, hm(-time.Hour), hm(3*time.Hour), hm(5*time.Hour), hm(6*time.Hour))
}

// policyAnswer is one action's answer from one replica.
type policyAnswer struct {
	code       int
	retryAfter string
	status     metav1.Status
	action     infraopsv1.NodeAction
	via        string
}

func (a policyAnswer) String() string {
	if a.code == http.StatusAccepted {
		return fmt.Sprintf("%d via %s", a.code, a.via)
	}
	return fmt.Sprintf("%d via %s: %s", a.code, a.via, a.status.Message)
}

// replicas are the two replicas of the server: the registered one, reached
// through kube-apiserver's aggregator, and a second one with the same flags
// (and the same policy), reached as the aggregator reaches it: the
// front-proxy client certificate and the user in X-Remote-User.
type replicas struct {
	second string
	client *http.Client
}

const policyUser = "e2e-policy-user"

var (
	secondReplicaOnce sync.Once
	secondReplica     *replicas
	secondReplicaErr  error
)

func policyReplicas(t *testing.T) *replicas {
	t.Helper()
	secondReplicaOnce.Do(func() {
		proc, port, err := env.product.StartReplica(nil)
		if err != nil {
			secondReplicaErr = err
			return
		}
		cert, err := env.cluster.FrontProxyClientCert()
		if err != nil {
			secondReplicaErr = err
			return
		}
		r := &replicas{second: fmt.Sprintf("https://127.0.0.1:%d", port), client: env.product.ServerHTTPClient(cert)}
		r.client.Timeout = time.Minute
		probe := env.product.ServerHTTPClient()
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				secondReplicaErr = fmt.Errorf("the second replica never became ready%s", proc.LogTail(20))
				return
			}
			resp, err := probe.Get(r.second + "/readyz")
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		secondReplica = r
	})
	if secondReplicaErr != nil {
		t.Fatal(secondReplicaErr)
	}
	return secondReplica
}

// post sends an action to replica i: 0 through kube-apiserver (as admin),
// 1 to the second replica directly (as policyUser).
func (r *replicas) post(t *testing.T, i int, node, body string) policyAnswer {
	var (
		req *http.Request
		err error
		via string
	)
	if i%2 == 0 {
		via = "the aggregator"
		cfg := env.cluster.RESTConfig()
		tr, terr := restTransport(cfg)
		if terr != nil {
			t.Error(terr)
			return policyAnswer{}
		}
		req, err = http.NewRequest(http.MethodPost, cfg.Host+restartPath(node), strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return policyAnswer{}
		}
		req.Header.Set("Content-Type", "application/json")
		return doPolicyRequest(t, &http.Client{Transport: tr, Timeout: time.Minute}, req, via)
	}
	via = "the second replica"
	req, err = http.NewRequest(http.MethodPost, r.second+restartPath(node), strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return policyAnswer{}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Remote-User", policyUser)
	req.Header.Set("X-Remote-Group", "system:masters")
	return doPolicyRequest(t, r.client, req, via)
}

func doPolicyRequest(t *testing.T, c *http.Client, req *http.Request, via string) policyAnswer {
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return policyAnswer{via: via}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := policyAnswer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), via: via}
	if resp.StatusCode == http.StatusAccepted {
		_ = json.Unmarshal(body, &a.action)
	} else if err := json.Unmarshal(body, &a.status); err != nil {
		t.Errorf("%s: not a Status: %s", via, body)
	}
	return a
}

func policyMachines(t *testing.T, n int, rule string, labels func(i int) map[string]string) []machine {
	t.Helper()
	var out []machine
	for i := range n {
		l := map[string]string{policyLabel: rule}
		if labels != nil {
			for k, v := range labels(i) {
				l[k] = v
			}
		}
		out = append(out, newMachine(t, cloud.ProviderAWS, l))
	}
	return out
}

// burst sends one restart per machine, all at once, alternating between
// the two replicas.
func burst(t *testing.T, r *replicas, ms []machine, body string) []policyAnswer {
	answers := make([]policyAnswer, len(ms))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, m := range ms {
		wg.Go(func() {
			<-start
			answers[i] = r.post(t, i, m.node, body)
		})
	}
	close(start)
	wg.Wait()
	return answers
}

// Issue 13: 100 restarts of 100 distinct nodes at the same instant, half
// through each replica, with a cluster-wide budget of 3: exactly 3 are
// accepted and 97 get 429 with Retry-After naming the budget, while the
// three are under their action (their locks' cooldown).
func TestPolicyBudgetAcrossReplicas(t *testing.T) {
	timed(t)
	r := policyReplicas(t)
	ms := policyMachines(t, 100, "burst", nil)
	begin := time.Now()
	answers := burst(t, r, ms, `{"reason":"budget burst"}`)
	t.Logf("figure: 100 concurrent restarts answered in %s", time.Since(begin).Round(time.Millisecond))
	accepted, refused := 0, 0
	var acceptedNodes []machine
	vias := map[string]int{}
	for i, a := range answers {
		switch a.code {
		case http.StatusAccepted:
			accepted++
			acceptedNodes = append(acceptedNodes, ms[i])
			vias[a.via]++
		case http.StatusTooManyRequests:
			refused++
			vias[a.via]++
			if !strings.Contains(a.status.Message, `Budget "e2e-burst"`) || a.retryAfter == "" || a.status.Reason != metav1.StatusReasonTooManyRequests {
				t.Errorf("429 without the budget's name or Retry-After: %+v (Retry-After %q)", a.status, a.retryAfter)
			}
		default:
			t.Errorf("unexpected answer %s", a)
		}
	}
	if accepted != 3 || refused != 97 {
		t.Fatalf("want exactly 3 accepted and 97 refused, got %d and %d", accepted, refused)
	}
	if vias["the aggregator"] != 50 || vias["the second replica"] != 50 {
		t.Fatalf("answers by replica: %v", vias)
	}
	total := 0
	for _, m := range ms {
		total += reboots(t, m)
	}
	if total != 3 {
		t.Fatalf("want 3 reboots at the cloud, got %d", total)
	}

	// The budget's use, through the aggregator with kubectl: the three
	// holders, and the table.
	out, err := kubectl(t, "", "", "get", "--raw", "/apis/infraops.michael.io/v1/budgets/e2e-burst")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var b infraopsv1.Budget
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Status.Groups) != 1 || b.Status.Groups[0].InUse != 3 || b.Status.Groups[0].Limit != 3 || len(b.Status.Groups[0].Holders) != 3 {
		t.Fatalf("budget view: %s", out)
	}
	held := map[string]bool{}
	for _, h := range b.Status.Groups[0].Holders {
		held[h.Node] = true
	}
	for _, m := range acceptedNodes {
		if !held[m.node] {
			t.Fatalf("%s was accepted but does not hold the budget: %s", m.node, out)
		}
	}
	if out, err := kubectl(t, "", "", "get", "budgets.infraops.michael.io", "e2e-burst"); err != nil || !strings.Contains(out, "IN-USE") || !regexpMatch(`e2e-burst\s+<none>\s+3\s+3\s+100\s`, out) {
		t.Fatalf("kubectl get budgets: %v\n%s", err, out)
	}

	// Each accepted action's Event names the budget it took; a refusal
	// leaves a Warning naming the user.
	waitNodeEvent(t, acceptedNodes[0].node, "PolicyBudgetTaken", "took budget e2e-burst")
	for i, a := range answers {
		if a.code == http.StatusTooManyRequests && a.via == "the second replica" {
			waitNodeEvent(t, ms[i].node, "PolicyRefused", "requested by "+policyUser)
			break
		}
	}
	// The refusals are counted by rule.
	if m := replicaMetrics(t, r); !strings.Contains(m, `infraops_policy_refusals_total{action="restart",dry_run="false",kind="Budget",rule="e2e-burst"}`) {
		t.Fatalf("no refusal metric for e2e-burst:\n%s", grepLines(m, "policy"))
	}
}

// Issue 13: a budget of 1 per zone, 3 zones of 2 nodes, all 6 at once: one
// accepted per zone.
func TestPolicyBudgetPerZone(t *testing.T) {
	timed(t)
	r := policyReplicas(t)
	ms := policyMachines(t, 6, "zones", func(i int) map[string]string {
		return map[string]string{"topology.kubernetes.io/zone": fmt.Sprintf("us-east-1%c", 'a'+i%3)}
	})
	answers := burst(t, r, ms, `{"reason":"zones"}`)
	perZone := map[byte]int{}
	for i, a := range answers {
		zone := byte('a' + i%3)
		switch a.code {
		case http.StatusAccepted:
			perZone[zone]++
		case http.StatusTooManyRequests:
			if !strings.Contains(a.status.Message, fmt.Sprintf("topology.kubernetes.io/zone=us-east-1%c", zone)) {
				t.Errorf("the 429 does not name the zone: %s", a.status.Message)
			}
		default:
			t.Errorf("unexpected answer %s", a)
		}
	}
	if perZone['a'] != 1 || perZone['b'] != 1 || perZone['c'] != 1 {
		t.Fatalf("want one per zone, got %v (%v)", perZone, answers)
	}
}

// Issue 13: minReady 3 of 4 Ready nodes: one action, then the one that
// would leave 2 Ready is refused (the first node is under its action, so
// not counted as Ready though its Node still says Ready).
func TestPolicyMinReady(t *testing.T) {
	timed(t)
	r := policyReplicas(t)
	ms := policyMachines(t, 4, "ready", nil)
	if a := r.post(t, 0, ms[0].node, `{}`); a.code != http.StatusAccepted {
		t.Fatalf("first: %s", a)
	}
	a := r.post(t, 1, ms[1].node, `{}`)
	if a.code != http.StatusTooManyRequests || !strings.Contains(a.status.Message, `MinReady "e2e-ready"`) || !strings.Contains(a.status.Message, "fewer than minReady 3 of the 4 nodes") {
		t.Fatalf("want 429 naming minReady, got %s", a)
	}
	if n := reboots(t, ms[1]); n != 0 {
		t.Fatalf("refused, yet %d reboots", n)
	}
}

// Issue 13: a window open now allows; one that opens in five hours refuses
// with 403, naming when it opens, and Retry-After until then.
func TestPolicyMaintenanceWindows(t *testing.T) {
	timed(t)
	r := policyReplicas(t)
	open := policyMachines(t, 1, "window-open", nil)[0]
	closed := policyMachines(t, 1, "window-closed", nil)[0]
	if a := r.post(t, 1, open.node, `{}`); a.code != http.StatusAccepted {
		t.Fatalf("inside the window: %s", a)
	}
	for i := range 2 {
		a := r.post(t, i, closed.node, `{}`)
		if a.code != http.StatusForbidden || !strings.Contains(a.status.Message, `MaintenanceWindow "e2e-closed"`) || !strings.Contains(a.status.Message, "the next one opens at") {
			t.Fatalf("outside the window: %s", a)
		}
		secs, _ := strconv.Atoi(a.retryAfter)
		if secs < 3*3600 || secs > 6*3600 {
			t.Fatalf("Retry-After %q, want the hours until the window opens", a.retryAfter)
		}
	}
	if n := reboots(t, closed); n != 0 {
		t.Fatalf("refused, yet %d reboots", n)
	}
	// The window names restart only: a stop is not restricted by it.
	raw, err := env.kube.Discovery().RESTClient().Post().AbsPath("/apis/infraops.michael.io/v1/nodes/"+closed.node+"/stop").
		SetHeader("Content-Type", "application/json").Body([]byte(`{"reason":"not a restart"}`)).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("stop outside the restart window: %v %s", err, raw)
	}
}

// Issue 13: the protect annotation refuses every action, on both replicas,
// with a Warning Event naming the user.
func TestPolicyProtectAnnotation(t *testing.T) {
	timed(t)
	r := policyReplicas(t)
	m := policyMachines(t, 1, "protect", nil)[0]
	ctx := context.Background()
	n, err := env.kube.CoreV1().Nodes().Get(ctx, m.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Annotations = map[string]string{policy.ProtectAnnotation: "true"}
	if _, err := env.kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		a := r.post(t, i, m.node, `{"reason":"should not happen"}`)
		if a.code != http.StatusForbidden || !strings.Contains(a.status.Message, policy.ProtectAnnotation) {
			t.Fatalf("want 403 naming the annotation, got %s", a)
		}
	}
	waitNodeEvent(t, m.node, "PolicyRefused", "requested by "+policyUser)
	if n := reboots(t, m); n != 0 {
		t.Fatalf("protected, yet %d reboots", n)
	}
}

// Issue 13: a dry run reports what the real request would meet, without
// taking budget: dry runs leave no slot; once the budget is full, a dry
// run says it would be refused.
func TestPolicyDryRunTakesNoBudget(t *testing.T) {
	timed(t)
	r := policyReplicas(t)
	ms := policyMachines(t, 2, "dry", nil)
	const dry = `{"dryRun":["All"]}`
	for i := range 4 {
		if a := r.post(t, i, ms[i%2].node, dry); a.code != http.StatusAccepted || !a.action.DryRun {
			t.Fatalf("dry run %d: %s", i, a)
		}
	}
	slots := func() int {
		l, err := env.kube.CoordinationV1().Leases(cluster.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: policy.BudgetLabel + "=e2e-dry"})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	if n := slots(); n != 0 {
		t.Fatalf("dry runs took %d slots", n)
	}
	if a := r.post(t, 0, ms[0].node, `{}`); a.code != http.StatusAccepted {
		t.Fatalf("real: %s", a)
	}
	for i := range 2 {
		a := r.post(t, i, ms[1].node, dry)
		if a.code != http.StatusTooManyRequests || !strings.HasPrefix(a.status.Message, "dry run: would be refused because") || !strings.Contains(a.status.Message, `"e2e-dry"`) {
			t.Fatalf("dry run on a full budget: %s", a)
		}
	}
	if n := slots(); n != 1 {
		t.Fatalf("want the real request's slot only, got %d", n)
	}
	if n := reboots(t, ms[1]); n != 0 {
		t.Fatalf("%d reboots of the dry-run node", n)
	}
}

func waitNodeEvent(t *testing.T, node, reason, text string) {
	t.Helper()
	var seen []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		events, err := env.kube.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + node})
		if err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for _, e := range events.Items {
			if e.Reason == reason && strings.Contains(e.Message, text) {
				return
			}
			seen = append(seen, e.Reason+": "+e.Message)
		}
	}
	t.Fatalf("no %s Event with %q on %s; saw %v", reason, text, node, seen)
}

func replicaMetrics(t *testing.T, r *replicas) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.second+"/metrics", nil)
	req.Header.Set("X-Remote-User", policyUser)
	req.Header.Set("X-Remote-Group", "system:masters")
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func restTransport(cfg *rest.Config) (http.RoundTripper, error) { return rest.TransportFor(cfg) }

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
