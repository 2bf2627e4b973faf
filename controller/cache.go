package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// CacheOptions keeps in the manager's cache only the pods, claims and revisions
// labelled LabelSetName, without managed fields, so memory does not grow with
// unrelated pods; what the set must see beyond them, outsideCache reads.
func CacheOptions() (cache.Options, error) {
	sel, err := OwnedSelector()
	if err != nil {
		return cache.Options{}, err
	}
	owned := cache.ByObject{Label: sel}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                   owned,
			&corev1.PersistentVolumeClaim{}: owned,
			&appsv1.ControllerRevision{}:    owned,
		},
	}, nil
}

// OwnedSelector selects the objects the controller keeps in its cache:
// those with a LabelSetName label, whatever its value.
func OwnedSelector() (labels.Selector, error) {
	req, err := labels.NewRequirement(LabelSetName, selection.Exists, nil)
	if err != nil {
		return nil, fmt.Errorf("cache selector: %w", err)
	}
	return labels.NewSelector().Add(*req), nil
}

var descCached = prometheus.NewDesc("petset_cache_objects", "Objects of a kind in the controller's cache, counted at scrape time: pods, persistentvolumeclaims, controllerrevisions.", []string{"resource"}, nil)

// CacheCollector exports how many objects of each label-selected kind
// the manager's cache holds, so that what the cache costs can be watched
// (and tested: unrelated pods must not be in it).
type CacheCollector struct {
	Reader client.Reader
}

// RegisterCacheMetrics serves petset_cache_objects from r (the manager's
// cached client) with controller-runtime's metrics.
func RegisterCacheMetrics(r client.Reader) error {
	return metrics.Registry.Register(CacheCollector{Reader: r})
}

// Describe implements prometheus.Collector.
func (c CacheCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCached }

// Collect implements prometheus.Collector. It lists the cache without
// copying the objects (they are only counted, never changed; metadata
// lists would start informers of their own) and keeps only the lengths.
func (c CacheCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, k := range []struct {
		resource string
		list     client.ObjectList
	}{
		{"pods", &corev1.PodList{}},
		{"persistentvolumeclaims", &corev1.PersistentVolumeClaimList{}},
		{"controllerrevisions", &appsv1.ControllerRevisionList{}},
	} {
		if err := c.Reader.List(ctx, k.list, client.UnsafeDisableDeepCopy); err != nil {
			ch <- prometheus.NewInvalidMetric(descCached, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(descCached, prometheus.GaugeValue, float64(meta.LenList(k.list)), k.resource)
	}
}
