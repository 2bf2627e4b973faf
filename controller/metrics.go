package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// operations counts what the controller did, by verb: create_pod,
// delete_pod, adopt_pod, release_pod, create_claim, expand_claim,
// update_claim_owners. It is served with controller-runtime's own
// metrics (workqueue, reconcile counts and durations).
var operations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "petset_operations_total",
	Help: "Pods and claims the ordinal controller created, deleted, adopted, released or updated, by verb.",
}, []string{"verb"})

func init() { metrics.Registry.MustRegister(operations) }
