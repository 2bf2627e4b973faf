package headless

import (
	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// servedObjects counts what the current snapshot serves, by kind:
	// service (headless services), endpoint (ready addresses) and name
	// (owner names, forward and reverse).
	servedObjects = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "served_objects",
		Help:      "Objects in the current snapshot, by kind: service, endpoint, name.",
	}, []string{"kind"})

	// snapshotBuild is how long publishing a change took.
	snapshotBuild = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "snapshot_build_duration_seconds",
		Help:      "Time to rebuild the changed services and publish a new snapshot.",
		Buckets:   prometheus.ExponentialBuckets(0.00001, 4, 10), // 10µs .. ~2.6s
	})

	// programming is the DNS programming latency: from the change that
	// triggered an EndpointSlice update (its last-change-trigger-time
	// annotation) to the moment the plugin serves it.
	programming = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "dns_programming_duration_seconds",
		Help:      "Time from an endpoint change (EndpointSlice last-change-trigger-time) to its DNS answers being served.",
		Buckets:   prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. ~33s
	})

	// kubeNXDomain counts the NXDOMAIN answers given for the kubernetes
	// plugin (see kubeNX).
	kubeNXDomain = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "kubernetes_nxdomain_total",
		Help:      "NXDOMAIN answers given for the kubernetes plugin after this one, for names under services it does not have.",
	})

	// sourceErrors counts failed loads and lost watches, by source:
	// manifests or kubernetes.
	sourceErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "source_errors_total",
		Help:      "Errors reading Services and EndpointSlices, by source (manifests, kubernetes).",
	}, []string{"source"})
)
