package controller

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"petset.dev/petset/api/v1alpha1"
)

// The cache selects pods, claims and revisions by the set-name label
// (any value), and strips managed fields from every object.
func TestCacheOptions(t *testing.T) {
	opts, err := CacheOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opts.DefaultTransform == nil {
		t.Error("no default transform")
	} else {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "x"}}}}
		out, err := opts.DefaultTransform(pod)
		if err != nil || len(out.(*corev1.Pod).ManagedFields) != 0 {
			t.Errorf("transform kept managed fields: %v %v", out, err)
		}
	}
	selectors := map[string]labels.Selector{}
	for obj, by := range opts.ByObject {
		selectors[typeName(obj)] = by.Label
	}
	if len(selectors) != 3 {
		t.Errorf("cache options for %d kinds, want 3 (Pod, PersistentVolumeClaim, ControllerRevision)", len(selectors))
	}
	for _, tc := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{LabelSetName: "db"}, true},
		{map[string]string{LabelSetName: ""}, true},
		{map[string]string{"app": "db"}, false},
		{nil, false},
	} {
		for _, kind := range []string{"Pod", "PersistentVolumeClaim", "ControllerRevision"} {
			sel := selectors[kind]
			if sel == nil {
				t.Fatalf("no label selector for %s", kind)
			}
			if got := sel.Matches(labels.Set(tc.labels)); got != tc.want {
				t.Errorf("%s with labels %v: cached %v, want %v", kind, tc.labels, got, tc.want)
			}
		}
	}
}

func typeName(o client.Object) string {
	switch o.(type) {
	case *corev1.Pod:
		return "Pod"
	case *corev1.PersistentVolumeClaim:
		return "PersistentVolumeClaim"
	case *appsv1.ControllerRevision:
		return "ControllerRevision"
	case *v1alpha1.PetSet:
		return "PetSet"
	}
	return "?"
}

// petset_cache_objects counts what the reader holds, by resource.
func TestCacheCollector(t *testing.T) {
	lab := map[string]string{LabelSetName: "db"}
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(
		testPod("db-0", "db:1", lab, nil), testPod("db-1", "db:1", lab, nil), testPod("web-0", "db:1", nil, nil),
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-0", Labels: lab}},
	).Build()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(CacheCollector{Reader: labelCache{c}})
	want := `
# HELP petset_cache_objects Objects of a kind in the controller's cache, counted at scrape time: pods, persistentvolumeclaims, controllerrevisions.
# TYPE petset_cache_objects gauge
petset_cache_objects{resource="controllerrevisions"} 0
petset_cache_objects{resource="persistentvolumeclaims"} 1
petset_cache_objects{resource="pods"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "petset_cache_objects"); err != nil {
		t.Error(err)
	}
}
