package policy

import (
	"strconv"
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var (
	refusals = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      "infraops",
		Name:           "policy_refusals_total",
		Help:           "Actions the safety policy refused, by rule (the budget's or window's name, or protect), kind, action and dry run.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"rule", "kind", "action", "dry_run"})

	registerMetrics sync.Once
)

// RegisterMetrics adds the metrics to the legacy registry served on /metrics.
func RegisterMetrics() {
	registerMetrics.Do(func() { legacyregistry.MustRegister(refusals) })
}

func observeRefusal(rule, kind, action string, dryRun bool) {
	refusals.WithLabelValues(rule, kind, action, strconv.FormatBool(dryRun)).Inc()
}
