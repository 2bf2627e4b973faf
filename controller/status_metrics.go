package controller

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// The status metrics describe each PetSet as its status says, read from the
// cache at scrape time; every replica serves them, so aggregate with max by
// (namespace, petset).
var (
	descReplicas      = prometheus.NewDesc("petset_spec_replicas", "Pets a PetSet asks for (spec.replicas).", []string{"namespace", "petset"}, nil)
	descReadyReplicas = prometheus.NewDesc("petset_status_ready_replicas", "Ready pets of a PetSet (status.readyReplicas).", []string{"namespace", "petset"}, nil)
	descReady         = prometheus.NewDesc("petset_status_ready", "1 when a PetSet's Ready condition is True, else 0.", []string{"namespace", "petset"}, nil)
	descResizeBlocked = prometheus.NewDesc("petset_claims_resize_blocked", "1 when a PetSet's claims cannot grow (ClaimsResized False, reason ExpansionNotAllowed), else 0.", []string{"namespace", "petset"}, nil)
	descResizing      = prometheus.NewDesc("petset_claims_resizing", "1 while a PetSet waits for claims to grow (ClaimsResized False, reason Resizing), else 0.", []string{"namespace", "petset"}, nil)
)

// StatusCollector exports the status metrics of the PetSets a reader
// (the manager's cached client) sees.
type StatusCollector struct {
	Reader client.Reader
}

// RegisterStatusMetrics serves the status metrics of r's PetSets with
// controller-runtime's metrics.
func RegisterStatusMetrics(r client.Reader) error {
	return metrics.Registry.Register(StatusCollector{Reader: r})
}

// Describe implements prometheus.Collector.
func (c StatusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReplicas, descReadyReplicas, descReady, descResizeBlocked, descResizing} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A failed list reports an
// invalid metric, so the scrape shows the error instead of stale data.
func (c StatusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list v1alpha1.PetSetList
	if err := c.Reader.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(descReady, err)
		return
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for i := range list.Items {
		ps := &list.Items[i]
		l := []string{ps.Namespace, ps.Name}
		replicas := int32(1)
		if ps.Spec.Replicas != nil {
			replicas = *ps.Spec.Replicas
		}
		resized := meta.FindStatusCondition(ps.Status.Conditions, ConditionClaimsResized)
		notResized := resized != nil && resized.Status == metav1.ConditionFalse
		ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(replicas), l...)
		ch <- prometheus.MustNewConstMetric(descReadyReplicas, prometheus.GaugeValue, float64(ps.Status.ReadyReplicas), l...)
		ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, b(meta.IsStatusConditionTrue(ps.Status.Conditions, "Ready")), l...)
		ch <- prometheus.MustNewConstMetric(descResizeBlocked, prometheus.GaugeValue, b(notResized && resized.Reason == "ExpansionNotAllowed"), l...)
		ch <- prometheus.MustNewConstMetric(descResizing, prometheus.GaugeValue, b(notResized && resized.Reason == "Resizing"), l...)
	}
}
