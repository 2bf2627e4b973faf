package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// operations counts the controller's writes to pods and claims, by verb, beside
// controller-runtime's own metrics.
var operations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "petset_operations_total",
	Help: "Pods and claims the ordinal controller created, deleted, adopted, released or updated, by verb.",
}, []string{"verb"})

// uncachedReads counts the reads that bypass the cache, by verb (get,
// list) and resource: pods outside the cache (outsideCache), claims the
// cache does not hold, StorageClasses when a claim must grow.
var uncachedReads = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "petset_uncached_reads_total",
	Help: "Reads the ordinal controller made from the API server rather than its cache, by verb and resource.",
}, []string{"verb", "resource"})

func init() { metrics.Registry.MustRegister(operations, uncachedReads) }
