package node

import (
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// Metrics on /metrics, for the SREs who run this: how many actions were
// asked for and how they ended, and how the clouds answer.
var (
	actionRequests = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "infraops",
		Name:           "node_action_requests_total",
		Help:           "Node action requests by action, HTTP status code and dry run.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"action", "code", "dry_run"})
	cloudCallDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace:      "infraops",
		Name:           "cloud_call_duration_seconds",
		Help:           "Duration of cloud calls by provider, action and outcome (ok or the cloud error kind).",
		Buckets:        []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		StabilityLevel: metrics.ALPHA,
	}, []string{"provider", "action", "outcome"})

	registerMetrics sync.Once
)

// RegisterMetrics adds the metrics to the legacy registry served on /metrics.
func RegisterMetrics() {
	registerMetrics.Do(func() {
		legacyregistry.MustRegister(actionRequests, cloudCallDuration)
	})
}

func observeRequest(action string, dryRun bool, code int, err error) {
	if s, ok := err.(apierrors.APIStatus); ok {
		code = int(s.Status().Code)
	} else if err != nil {
		code = 500 // as the responder will answer it
	}
	actionRequests.WithLabelValues(action, strconv.Itoa(code), strconv.FormatBool(dryRun)).Inc()
}

func observeCloudCall(provider, action string, elapsed time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = string(cloud.KindOf(err))
		if outcome == "" {
			outcome = "error"
		}
	}
	cloudCallDuration.WithLabelValues(provider, action, outcome).Observe(elapsed.Seconds())
}
