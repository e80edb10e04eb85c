package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud"
	"github.com/michael/k8s-cloud-node-manager/test/e2e/cluster"
)

// The release: its names are the ones the harness registers, so the
// chart's objects are what kube-apiserver sees.
const (
	release   = "k8s-cloud-node-manager"
	namespace = cluster.Namespace
	// The node the pod "runs on" (the downward API's spec.nodeName): the
	// server refuses to restart it, so it is not the one restarted.
	podNode = cluster.DemoNodeNoProvider
)

// The fake clouds' keys: the server gets them from Secrets through the
// chart's credentials values, the fakes verify every signature with them.
const (
	awsKeyID      = "AKIAIMAGETESTIMAGETE"
	awsSecret     = "image-test-aws-secret"
	tencentID     = "AKIDimagetestimagetestimagetestimage"
	tencentSecret = "image-test-tencent-secret"
)

// TestVersion: --version of the image is the build's version, the same
// line as the binary make build made.
func TestVersion(t *testing.T) {
	args := append([]string{"run", "--rm", "--pull=never", "--network=none", "--read-only", "--cap-drop=all"}, ulimits()...)
	got := strings.TrimSpace(env.podman.stdout(t, append(args, env.ref, "--version")...))
	out, err := exec.CommandContext(t.Context(), filepath.Join(env.binDir, "k8s-cloud-node-manager"), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(out))
	if got != want || !strings.HasPrefix(got, env.version+" ") {
		t.Fatalf("the image says %q, bin/k8s-cloud-node-manager %q, the build's version is %q", got, want, env.version)
	}
	t.Logf("--version: %s", got)
	// podman load picked the host's image out of the index.
	if arch := strings.TrimSpace(env.podman.stdout(t, "image", "inspect", "--format", "{{.Architecture}}", env.ref)); "linux/"+arch != hostPlatform() {
		t.Fatalf("podman loaded the %s image on a %s machine", arch, hostPlatform())
	}
}

// TestRunsAsTheChart renders the chart, applies it to a real kube-apiserver
// and plays the kubelet for its Deployment: the pod spec becomes podman
// flags (security context, volumes from the Secrets and ConfigMaps the
// chart names, env from the downward API and Secrets, the ServiceAccount
// token, probes, resources). Anything in the pod spec this translation
// does not know fails the test, so the chart cannot drift away from what
// was run. Then it checks the container's process as the kernel sees it,
// and restarts a node through the aggregator against the fake clouds.
func TestRunsAsTheChart(t *testing.T) {
	ctx := t.Context()
	binDir, err := cluster.BinDir(ctx, env.repo, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Start(ctx, cluster.Options{WorkDir: t.TempDir(), BinDir: binDir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last lines of %s ---\n%s", c.APIServer().LogPath(), c.APIServer().LogTail(30))
		}
		c.Stop()
	})
	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// The fake clouds, on the host's loopback like kube-apiserver.
	fakeCert, fakeKey, fakeCA, err := c.NewServingCert([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	instances, err := yaml.Marshal(map[string]any{"instances": cluster.DemoInstances()})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "fake.crt"), fakeCert, 0o644)
	writeFile(t, filepath.Join(dir, "fake.key"), fakeKey, 0o600)
	writeFile(t, filepath.Join(dir, "instances.yaml"), instances, 0o644)
	fake, err := c.StartProcess("fake-cloud", filepath.Join(env.binDir, "fake-cloud"), []string{
		"--ec2-listen", "127.0.0.1:0", "--cvm-listen", "127.0.0.1:0",
		"--tls-cert-file", filepath.Join(dir, "fake.crt"), "--tls-private-key-file", filepath.Join(dir, "fake.key"),
		"--instances", filepath.Join(dir, "instances.yaml"),
		"--aws-access-key-id", awsKeyID, "--aws-secret-access-key", awsSecret,
		"--tencent-secret-id", tencentID, "--tencent-secret-key", tencentSecret,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lineCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	line, err := fake.FirstLine(lineCtx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	endpoints := map[string]string{}
	for f := range strings.FieldsSeq(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			endpoints[k] = v
		}
	}
	if endpoints["ec2"] == "" || endpoints["cvm"] == "" {
		t.Fatalf("fake-cloud's first line %q lacks ec2= and cvm=", line)
	}

	for _, n := range cluster.DemoNodes() {
		if _, err := c.CreateNode(ctx, n.Name, n.ProviderID, n.Labels); err != nil {
			t.Fatal(err)
		}
		if err := c.SetNodeStatus(ctx, n.Name, n.Ready, n.BootID); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.EnsureNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}

	// On the host network every run needs a port of its own: the chart's
	// 6443 is replaced through extraArgs (the last --secure-port wins) and
	// service.port, and the probes' named port follows.
	port := freePort(t)
	apiService := cluster.ProductAPIService(port, fakeCA)
	serverCert, serverKey, _, err := c.NewServingCert(apiService.ServingDNSNames(), []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// What a user creates before installing (docs/install-*.md): the
	// serving certificate, the cloud keys, the CA of private endpoints.
	secrets := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "image-test-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": serverCert, "tls.key": serverKey}},
		{ObjectMeta: metav1.ObjectMeta{Name: "aws-keys"},
			Data: map[string][]byte{"AWS_ACCESS_KEY_ID": []byte(awsKeyID), "AWS_SECRET_ACCESS_KEY": []byte(awsSecret)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tencentcloud-keys"},
			Data: map[string][]byte{"TENCENTCLOUD_SECRET_ID": []byte(tencentID), "TENCENTCLOUD_SECRET_KEY": []byte(tencentSecret)}},
	}
	for _, s := range secrets {
		if _, err := kube.CoreV1().Secrets(namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kube.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cloud-ca"}, Data: map[string]string{"ca.crt": string(fakeCA)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	repo, tag, ok := cutLast(env.ref, ":")
	if !ok {
		t.Fatalf("IMAGE_REF %q has no tag", env.ref)
	}
	values := map[string]any{
		"replicaCount": 1,
		"image":        map[string]any{"repository": repo, "tag": tag},
		"tls": map[string]any{"mode": "existingSecret",
			"existingSecret": map[string]any{"name": "image-test-tls", "caBundle": string(fakeCA)}},
		"service": map[string]any{"port": port},
		"cloudConfig": map[string]any{"providers": map[string]any{
			"aws":          map[string]any{"region": "us-east-1", "endpoint": endpoints["ec2"], "caFile": "/etc/cloud-ca/ca.crt"},
			"tencentcloud": map[string]any{"region": "ap-guangzhou", "endpoint": endpoints["cvm"], "caFile": "/etc/cloud-ca/ca.crt"},
		}},
		"credentials": map[string]any{
			"aws":          map[string]any{"existingSecret": "aws-keys"},
			"tencentcloud": map[string]any{"existingSecret": "tencentcloud-keys"},
		},
		"extraArgs":         []string{"--secure-port=" + strconv.Itoa(port)},
		"extraVolumes":      []any{map[string]any{"name": "cloud-ca", "configMap": map[string]any{"name": "cloud-ca"}}},
		"extraVolumeMounts": []any{map[string]any{"name": "cloud-ca", "mountPath": "/etc/cloud-ca", "readOnly": true}},
	}
	rendered := helmTemplate(t, values)
	applyFile := filepath.Join(t.TempDir(), "chart.yaml")
	writeFile(t, applyFile, rendered, 0o644)
	if out, err := c.Kubectl(ctx, "apply", "-f", applyFile); err != nil {
		t.Fatalf("kubectl apply of the rendered chart: %v\n%s", err, out)
	}
	deploy := renderedDeployment(t, rendered)
	if got := deploy.Spec.Template.Spec.Containers[0].Image; got != env.ref {
		t.Fatalf("the chart deploys %q, the image is %q", got, env.ref)
	}

	// No kube-proxy or pod network here: the aggregator reaches the
	// server through an ExternalName Service to localhost on the same
	// port (the chart's own APIService is kept).
	svcName := deploy.Name
	if err := kube.CoreV1().Services(namespace).Delete(ctx, svcName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Services(namespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svcName},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []corev1.ServicePort{{Name: "https", Port: int32(port), Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	pod := newKubelet(t, c, kube, deploy, port)
	name := "k8s-cloud-node-manager-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	begin := time.Now()
	env.podman.stdout(t, append([]string{"run", "--detach", "--name", name}, pod.podmanArgs...)...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := env.podman.output(context.Background(), "logs", "--tail", "60", name)
			t.Logf("--- last lines of the container's log ---\n%s", out)
		}
		_, _ = env.podman.output(context.Background(), "rm", "--force", "--time", "5", name)
	})
	pod.waitProbes(t, name)
	if _, err := c.WaitAPIServiceAvailable(ctx, apiService.Name(), apiService.GroupVersionPath()); err != nil {
		t.Fatal(err)
	}
	t.Logf("figures: APIService available %s after podman run", time.Since(begin).Round(time.Millisecond))

	checkProcess(t, name, deploy)

	// Through the aggregator: the list, then one restart that reaches the
	// fake EC2 over TLS verified with the mounted CA, signed with the keys
	// from the Secret.
	admin := kube.CoreV1().RESTClient()
	body, err := admin.Get().AbsPath(apiService.GroupVersionPath(), "nodes").DoRaw(ctx)
	if err != nil {
		t.Fatalf("listing nodes through the aggregator: %v", err)
	}
	for _, n := range cluster.DemoNodes() {
		if !bytes.Contains(body, []byte(`"name":"`+n.Name+`"`)) {
			t.Fatalf("node %s missing from the list: %s", n.Name, body)
		}
	}
	var code int
	res := admin.Post().AbsPath(apiService.GroupVersionPath(), "nodes", cluster.DemoNodeEKS, "restart").
		SetHeader("Content-Type", "application/json").Body([]byte(`{"reason":"image test"}`)).Do(ctx)
	res.StatusCode(&code)
	if code != http.StatusAccepted {
		raw, _ := res.Raw()
		t.Fatalf("restart %s: HTTP %d: %v %s", cluster.DemoNodeEKS, code, res.Error(), raw)
	}
	var reboots []fakecloud.Call
	for _, call := range fakeCalls(t, endpoints["ec2"], fakeCA) {
		if call.Action == "RebootInstances" && !call.DryRun && call.Error == "" && call.Region == "us-east-1" &&
			call.AccessKeyID == awsKeyID && len(call.InstanceIDs) == 1 && call.InstanceIDs[0] == cluster.DemoEC2InstanceID {
			reboots = append(reboots, call)
		}
	}
	if len(reboots) != 1 {
		t.Fatalf("want one reboot of %s signed with the Secret's key, the fake EC2 saw %+v", cluster.DemoEC2InstanceID, fakeCalls(t, endpoints["ec2"], fakeCA))
	}

	// The chart's RBAC was enough for all the server did.
	logs := env.podman.stdout(t, "logs", name)
	if strings.Contains(strings.ToLower(logs), "forbidden") {
		t.Errorf("the server met a permission error with the chart's RBAC:\n%s", logs)
	}

	// What the kubelet does on a rollout: SIGTERM, then the grace period.
	// PID 1 in the container is the server itself (no init): it must
	// handle the signal and exit cleanly within it.
	grace := ptr.Deref(deploy.Spec.Template.Spec.TerminationGracePeriodSeconds, 30)
	env.podman.stdout(t, "stop", "--time", strconv.FormatInt(grace, 10), name)
	var state []struct {
		State struct {
			ExitCode  int
			OOMKilled bool
		}
	}
	if err := json.Unmarshal([]byte(env.podman.stdout(t, "inspect", name)), &state); err != nil || len(state) != 1 {
		t.Fatalf("podman inspect: %v", err)
	}
	if state[0].State.ExitCode != 0 {
		t.Fatalf("the server exited with %d on SIGTERM, want 0 (graceful shutdown)", state[0].State.ExitCode)
	}
}

// kubelet turns the chart's pod spec into podman flags.
type kubelet struct {
	podmanArgs []string
	// probes in the order the kubelet runs them before the pod is Ready.
	probes []probeURL
}

type probeURL struct {
	name, url string
}

func newKubelet(t *testing.T, c *cluster.Cluster, kube kubernetes.Interface, d *appsv1.Deployment, port int) *kubelet {
	t.Helper()
	ctx := t.Context()
	spec := d.Spec.Template.Spec.DeepCopy()
	if len(spec.Containers) != 1 {
		t.Fatalf("the pod has %d containers; the test runs one", len(spec.Containers))
	}
	ctr := spec.Containers[0].DeepCopy()
	podSC := spec.SecurityContext
	sc := ctr.SecurityContext
	if podSC == nil || sc == nil {
		t.Fatal("the chart sets no security context")
	}
	k := &kubelet{}
	add := func(args ...string) { k.podmanArgs = append(k.podmanArgs, args...) }
	add("--pull=never", "--network=host")
	add(ulimits()...)

	// The user: the container's settings over the pod's.
	uid := ptr.Deref(sc.RunAsUser, ptr.Deref(podSC.RunAsUser, -1))
	gid := ptr.Deref(sc.RunAsGroup, ptr.Deref(podSC.RunAsGroup, -1))
	if uid < 0 || gid < 0 {
		t.Fatal("the chart leaves the user to the image; the test runs what the chart says")
	}
	if ptr.Deref(sc.RunAsNonRoot, ptr.Deref(podSC.RunAsNonRoot, false)) && uid == 0 {
		t.Fatal("runAsNonRoot with runAsUser 0: the kubelet would refuse the pod")
	}
	add(fmt.Sprintf("--user=%d:%d", uid, gid))
	fsGroup := ptr.Deref(podSC.FSGroup, -1)
	if fsGroup >= 0 {
		add(fmt.Sprintf("--group-add=%d", fsGroup))
	}
	for _, g := range podSC.SupplementalGroups {
		add(fmt.Sprintf("--group-add=%d", g))
	}
	for _, s := range []*corev1.SeccompProfile{podSC.SeccompProfile, sc.SeccompProfile} {
		// RuntimeDefault is podman's default profile; anything else would
		// need its own flags.
		if s != nil && s.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Fatalf("seccomp profile %s: not translated", s.Type)
		}
	}
	if ptr.Deref(sc.ReadOnlyRootFilesystem, false) {
		// Without --read-only-tmpfs=false podman would add writable
		// /tmp, /run and /var/tmp the pod does not have.
		add("--read-only", "--read-only-tmpfs=false")
	}
	if !ptr.Deref(sc.AllowPrivilegeEscalation, true) {
		add("--security-opt=no-new-privileges")
	}
	// Podman grants a default set of capabilities, as container runtimes
	// do for Kubernetes: only what the chart drops and adds changes it.
	if sc.Capabilities != nil {
		for _, cp := range sc.Capabilities.Drop {
			add("--cap-drop=" + strings.ToLower(string(cp)))
		}
		for _, cp := range sc.Capabilities.Add {
			add("--cap-add=" + strings.ToLower(string(cp)))
		}
	}
	if ptr.Deref(sc.Privileged, false) {
		add("--privileged")
	}
	// Fields handled above; any other one is a setting this test would
	// silently not run.
	scRest := sc.DeepCopy()
	scRest.RunAsUser, scRest.RunAsGroup, scRest.RunAsNonRoot, scRest.SeccompProfile = nil, nil, nil, nil
	scRest.ReadOnlyRootFilesystem, scRest.AllowPrivilegeEscalation, scRest.Capabilities, scRest.Privileged = nil, nil, nil, nil
	mustBeEmpty(t, "container securityContext", scRest, &corev1.SecurityContext{})
	podRest := podSC.DeepCopy()
	podRest.RunAsUser, podRest.RunAsGroup, podRest.RunAsNonRoot, podRest.FSGroup = nil, nil, nil, nil
	podRest.SupplementalGroups, podRest.SeccompProfile = nil, nil
	mustBeEmpty(t, "pod securityContext", podRest, &corev1.PodSecurityContext{})

	// Resources, as the kubelet maps them onto cgroups.
	if m, ok := ctr.Resources.Limits[corev1.ResourceMemory]; ok {
		add(fmt.Sprintf("--memory=%db", m.Value()))
	}
	if cpu, ok := ctr.Resources.Limits[corev1.ResourceCPU]; ok {
		add(fmt.Sprintf("--cpus=%.3f", float64(cpu.MilliValue())/1000))
	}
	if cpu, ok := ctr.Resources.Requests[corev1.ResourceCPU]; ok {
		add(fmt.Sprintf("--cpu-shares=%d", max(2, cpu.MilliValue()*1024/1000)))
	}

	// Volumes: the files the kubelet would write, owned by root and the
	// fsGroup, with the modes the volume asks for.
	volDir := t.TempDir()
	volumes := map[string]string{}
	tmpfs := map[string]int64{}
	groupOwner := max(fsGroup, 0)
	for _, v := range spec.Volumes {
		vd := filepath.Join(volDir, v.Name)
		switch {
		case v.Secret != nil:
			s, err := kube.CoreV1().Secrets(d.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("volume %s: %v", v.Name, err)
			}
			if len(v.Secret.Items) > 0 {
				t.Fatalf("volume %s: items are not translated", v.Name)
			}
			writeVolume(t, vd, s.Data, ptr.Deref(v.Secret.DefaultMode, 0o644), groupOwner, fsGroup >= 0)
		case v.ConfigMap != nil:
			cm, err := kube.CoreV1().ConfigMaps(d.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("volume %s: %v", v.Name, err)
			}
			if len(v.ConfigMap.Items) > 0 {
				t.Fatalf("volume %s: items are not translated", v.Name)
			}
			data := map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			writeVolume(t, vd, data, ptr.Deref(v.ConfigMap.DefaultMode, 0o644), groupOwner, fsGroup >= 0)
		case v.EmptyDir != nil:
			size := int64(0)
			if v.EmptyDir.SizeLimit != nil {
				size = v.EmptyDir.SizeLimit.Value()
			}
			tmpfs[v.Name] = size
			continue
		default:
			t.Fatalf("volume %s: this kind of volume is not translated", v.Name)
		}
		volumes[v.Name] = vd
	}
	for _, m := range ctr.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" || m.MountPropagation != nil {
			t.Fatalf("volume mount %s: subPath and propagation are not translated", m.Name)
		}
		if size, ok := tmpfs[m.Name]; ok {
			opt := "type=tmpfs,destination=" + m.MountPath
			if size > 0 {
				opt += ",tmpfs-size=" + strconv.FormatInt(size, 10)
			}
			add("--mount=" + opt)
			continue
		}
		src, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volume mount %s names no volume", m.Name)
		}
		opt := "type=bind,source=" + src + ",destination=" + m.MountPath
		if m.ReadOnly {
			opt += ",ro=true"
		}
		add("--mount=" + opt)
	}

	// The ServiceAccount token and the in-cluster address, which the
	// kubelet provides to every pod with automountServiceAccountToken.
	envVars := []string{}
	if ptr.Deref(spec.AutomountServiceAccountToken, true) {
		tr, err := kube.CoreV1().ServiceAccounts(d.Namespace).CreateToken(ctx, spec.ServiceAccountName, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token of ServiceAccount %s: %v", spec.ServiceAccountName, err)
		}
		sa := filepath.Join(volDir, "kube-api-access")
		writeVolume(t, sa, map[string][]byte{
			"token": []byte(tr.Status.Token), "ca.crt": c.RESTConfig().CAData, "namespace": []byte(d.Namespace),
		}, 0o644, groupOwner, fsGroup >= 0)
		add("--mount=type=bind,source=" + sa + ",destination=/var/run/secrets/kubernetes.io/serviceaccount,ro=true")
		u, err := url.Parse(c.APIServerURL())
		if err != nil {
			t.Fatal(err)
		}
		envVars = append(envVars, "KUBERNETES_SERVICE_HOST="+u.Hostname(), "KUBERNETES_SERVICE_PORT="+u.Port())
	}

	// Environment: values, the downward API, Secrets.
	defined := map[string]string{}
	for _, e := range ctr.Env {
		var val string
		switch {
		case e.ValueFrom == nil:
			val = expand(e.Value, defined)
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "spec.nodeName":
				val = podNode
			case "metadata.namespace":
				val = d.Namespace
			default:
				t.Fatalf("env %s: field %s is not translated", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := kube.CoreV1().Secrets(d.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("env %s: %v", e.Name, err)
			}
			b, ok := s.Data[ref.Key]
			if !ok {
				t.Fatalf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			val = string(b)
		default:
			t.Fatalf("env %s: this source is not translated", e.Name)
		}
		if strings.Contains(val, "\n") {
			t.Fatalf("env %s: a value with a newline cannot go into an env file", e.Name)
		}
		defined[e.Name] = val
		envVars = append(envVars, e.Name+"="+val)
	}
	envFile := filepath.Join(t.TempDir(), "env")
	writeFile(t, envFile, []byte(strings.Join(envVars, "\n")+"\n"), 0o600)
	add("--env-file=" + envFile)

	if ctr.ImagePullPolicy == corev1.PullAlways {
		t.Fatal("imagePullPolicy Always: the chart would pull on every start")
	}
	if len(ctr.Command) > 0 {
		t.Fatal("the chart overrides the image's entrypoint; the test runs the image's")
	}
	if grace := spec.TerminationGracePeriodSeconds; grace != nil {
		add(fmt.Sprintf("--stop-timeout=%d", *grace))
	}
	add(ctr.Image)
	for _, a := range ctr.Args {
		add(expand(a, defined))
	}

	// Probes: HTTPS GETs on the container's named port, which moved with
	// --secure-port.
	ports := map[string]int{}
	for _, p := range ctr.Ports {
		ports[p.Name] = port
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"startup", ctr.StartupProbe}, {"readiness", ctr.ReadinessProbe}, {"liveness", ctr.LivenessProbe}} {
		if p.probe == nil {
			continue
		}
		g := p.probe.HTTPGet
		if g == nil || g.Scheme != corev1.URISchemeHTTPS || g.Port.StrVal == "" {
			t.Fatalf("%s probe %+v: only HTTPS GETs on a named port are translated", p.name, p.probe.ProbeHandler)
		}
		pp, ok := ports[g.Port.StrVal]
		if !ok {
			t.Fatalf("%s probe: no container port named %s", p.name, g.Port.StrVal)
		}
		k.probes = append(k.probes, probeURL{p.name, fmt.Sprintf("https://127.0.0.1:%d%s", pp, g.Path)})
	}

	// Everything else in the container and pod spec: settings this test
	// does not run. Scheduling and metadata-only fields are fine.
	ctrRest := ctr.DeepCopy()
	ctrRest.Name, ctrRest.Image, ctrRest.ImagePullPolicy, ctrRest.Args, ctrRest.Env = "", "", "", nil, nil
	ctrRest.Ports, ctrRest.StartupProbe, ctrRest.ReadinessProbe, ctrRest.LivenessProbe = nil, nil, nil, nil
	ctrRest.Resources, ctrRest.SecurityContext, ctrRest.VolumeMounts = corev1.ResourceRequirements{}, nil, nil
	mustBeEmpty(t, "container", ctrRest, &corev1.Container{})
	specRest := spec.DeepCopy()
	specRest.Containers, specRest.Volumes, specRest.SecurityContext = nil, nil, nil
	specRest.ServiceAccountName, specRest.AutomountServiceAccountToken, specRest.TerminationGracePeriodSeconds = "", nil, nil
	specRest.Affinity, specRest.NodeSelector, specRest.Tolerations, specRest.TopologySpreadConstraints = nil, nil, nil, nil
	specRest.PriorityClassName, specRest.ImagePullSecrets = "", nil
	// Service links are the docker-link variables; the chart turns them
	// off, and the test sets none.
	if ptr.Deref(specRest.EnableServiceLinks, true) {
		t.Fatal("enableServiceLinks: the test sets no service link variables")
	}
	specRest.EnableServiceLinks = nil
	mustBeEmpty(t, "pod spec", specRest, &corev1.PodSpec{})
	return k
}

// waitProbes polls the probes as the kubelet does until each succeeds,
// without verifying the certificate (the kubelet does not either).
func (k *kubelet) waitProbes(t *testing.T, container string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet's HTTPS probes
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, p := range k.probes {
		for {
			var last string
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 200 && resp.StatusCode < 400 {
					break
				}
				last = resp.Status
			} else {
				last = err.Error()
			}
			if out, _ := env.podman.output(ctx, "inspect", "--format", "{{.State.Running}}", container); strings.TrimSpace(out) == "false" {
				t.Fatalf("the container exited before its %s probe passed (%s)", p.name, last)
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s probe %s never passed: %s", p.name, p.url, last)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// checkProcess reads the container's process from /proc: the user, no
// capabilities, no privilege escalation, seccomp on, the root read-only.
func checkProcess(t *testing.T, container string, d *appsv1.Deployment) {
	t.Helper()
	pid := strings.TrimSpace(env.podman.stdout(t, "inspect", "--format", "{{.State.Pid}}", container))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, l := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	sc := d.Spec.Template.Spec.SecurityContext
	uid, gid := strconv.FormatInt(*sc.RunAsUser, 10), strconv.FormatInt(*sc.RunAsGroup, 10)
	want := map[string]string{
		"Uid": strings.Repeat(uid+" ", 3) + uid, "Gid": strings.Repeat(gid+" ", 3) + gid,
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("/proc/%s/status %s: %q, want %q", pid, k, fields[k], v)
		}
	}
	if g := fields["Groups"]; !slices.Contains(strings.Fields(g), strconv.FormatInt(*sc.FSGroup, 10)) {
		t.Errorf("supplementary groups %q lack the fsGroup %d", g, *sc.FSGroup)
	}
	mounts, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	rootRO := false
	var writable []string
	for _, l := range strings.Split(strings.TrimSpace(string(mounts)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		opts := strings.Split(f[5], ",")
		if f[4] == "/" {
			rootRO = slices.Contains(opts, "ro")
		} else if slices.Contains(opts, "rw") && !strings.HasPrefix(f[4], "/proc") && !strings.HasPrefix(f[4], "/sys") && !strings.HasPrefix(f[4], "/dev") {
			writable = append(writable, f[4])
		}
	}
	if !rootRO {
		t.Errorf("the container's root is not mounted read-only:\n%s", mounts)
	}
	t.Logf("process %s: Uid %s, Groups %s, CapEff %s, NoNewPrivs %s, Seccomp %s; writable mounts besides /proc, /sys, /dev: %v",
		pid, fields["Uid"], fields["Groups"], fields["CapEff"], fields["NoNewPrivs"], fields["Seccomp"], writable)
}

func helmTemplate(t *testing.T, values map[string]any) []byte {
	t.Helper()
	helm := os.Getenv("HELM_BIN")
	if helm == "" {
		cmd := exec.CommandContext(t.Context(), filepath.Join(env.repo, "hack", "build-helm.sh"))
		cmd.Dir = env.repo
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hack/build-helm.sh: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		helm = lines[len(lines)-1]
	}
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	valuesFile := filepath.Join(t.TempDir(), "values.yaml")
	writeFile(t, valuesFile, data, 0o644)
	cmd := exec.CommandContext(t.Context(), helm, "template", release, filepath.Join(env.repo, "config", "chart", "k8s-cloud-node-manager"),
		"--namespace", namespace, "--values", valuesFile)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	return out
}

func renderedDeployment(t *testing.T, rendered []byte) *appsv1.Deployment {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(rendered)))
	var found *appsv1.Deployment
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Kind != "Deployment" {
			continue
		}
		if found != nil {
			t.Fatal("the chart renders two Deployments")
		}
		found = &appsv1.Deployment{}
		if err := yaml.UnmarshalStrict(doc, found); err != nil {
			t.Fatal(err)
		}
	}
	if found == nil {
		t.Fatal("the chart renders no Deployment")
	}
	if found.Namespace == "" {
		found.Namespace = namespace
	}
	return found
}

// writeVolume writes a Secret or ConfigMap volume as the kubelet does:
// root-owned, group the fsGroup with group read added, when there is one.
func writeVolume(t *testing.T, dir string, data map[string][]byte, mode int32, group int64, withGroup bool) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := os.FileMode(mode)
	if withGroup {
		m |= 0o040
	}
	for k, v := range data {
		p := filepath.Join(dir, k)
		writeFile(t, p, v, m)
		if err := os.Chown(p, 0, int(group)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, 0, int(group)); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expand resolves $(VAR) in args and env values as the kubelet does: from
// the variables defined so far, $$ escaping a $, unknown references kept.
func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func mustBeEmpty(t *testing.T, what string, got, zero any) {
	t.Helper()
	if !reflect.DeepEqual(got, zero) {
		data, _ := json.Marshal(got)
		t.Fatalf("the chart's %s has settings this test does not translate into podman flags: %s", what, data)
	}
}

func fakeCalls(t *testing.T, endpoint string, caPEM []byte) []fakecloud.Call {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate for the fake cloud")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get(strings.TrimSuffix(endpoint, "/") + "/_fake/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var calls []fakecloud.Call
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatal(err)
	}
	return calls
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 || strings.Contains(s[i:], "/") {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
