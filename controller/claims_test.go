package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// A claim not yet bound has no capacity: it is not being resized, so a
// new pet's claim does not turn ClaimsResized False (and back, a status
// write each). A bound claim with less capacity than asked for is.
func TestClaimsResizedIgnoresUnbound(t *testing.T) {
	tests := []struct {
		name     string
		phase    corev1.PersistentVolumeClaimPhase
		capacity string // "" for none
		status   metav1.ConditionStatus
		reason   string
	}{
		{"pending, no capacity", corev1.ClaimPending, "", metav1.ConditionTrue, "AllClaimsResized"},
		{"bound, full capacity", corev1.ClaimBound, "1Gi", metav1.ConditionTrue, "AllClaimsResized"},
		{"bound, smaller capacity", corev1.ClaimBound, "512Mi", metav1.ConditionFalse, "Resizing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			clientgoscheme.AddToScheme(scheme)
			v1alpha1.AddToScheme(scheme)
			ps := testSet(1)
			ps.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
			claim := NewClaims(ps, 0)[0]
			claim.Status.Phase = tc.phase
			if tc.capacity != "" {
				claim.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(tc.capacity)}
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ps, claim).Build()
			r := &Reconciler{Client: c}
			cond, err := r.expandClaims(context.Background(), ps, wantOf(ps, time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			if cond == nil || cond.Status != tc.status || cond.Reason != tc.reason {
				t.Errorf("condition %+v, want %s %s", cond, tc.status, tc.reason)
			}
		})
	}
}
