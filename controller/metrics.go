package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// operations counts what the controller did, by verb: create_pod,
// delete_pod, create_claim, delete_claim, expand_claim. It is served with controller-runtime's own
// metrics (workqueue, reconcile counts and durations).
var operations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "petset_operations_total",
	Help: "Pods and claims the ordinal controller created or deleted, by verb.",
}, []string{"verb"})

func init() { metrics.Registry.MustRegister(operations) }
