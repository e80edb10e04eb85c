package main

import (
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud/fakecloud/kubelet"
)

// newKubelets connects the kubelet simulator to the cluster of kubeconfig.
func newKubelets(kubeconfig string, delay time.Duration, logf func(string, ...any)) (*kubelet.Simulator, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	cfg.UserAgent = "fake-cloud-kubelet"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	return kubelet.New(cs.CoreV1().Nodes(), delay, logf), nil
}
