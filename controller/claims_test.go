package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

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

// A larger claim template grows each bound claim whose StorageClass allows it
// (ClaimsResized Resizing until the volume grows) and no other (False,
// ExpansionNotAllowed, naming it).
func TestReconcileExpandsClaims(t *testing.T) {
	for _, tc := range []struct {
		name    string
		class   *storagev1.StorageClass
		grown   bool
		reason  string
		message string
	}{
		{"expandable class", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "x", AllowVolumeExpansion: ptrTo(true)},
			true, "Resizing", "waiting for the volumes of data-db-0 to grow"},
		{"class forbids expansion", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "x", AllowVolumeExpansion: ptrTo(false)},
			false, "ExpansionNotAllowed", "the StorageClass of data-db-0 does not allow volume expansion"},
		{"class unset on the class", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "x"},
			false, "ExpansionNotAllowed", "the StorageClass of data-db-0 does not allow volume expansion"},
		{"no such class", nil, false, "ExpansionNotAllowed", "the StorageClass of data-db-0 does not allow volume expansion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := testSet(1)
			ps.Spec.VolumeClaimTemplates[0].Spec.StorageClassName = ptrTo("sc")
			ps.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
			objs := []client.Object{ps}
			if tc.class != nil {
				objs = append(objs, tc.class)
			}
			f, _ := failingFixture(t, interceptor.Funcs{}, objs...)
			f.mustReconcile()
			claim := f.claim("data-db-0")
			claim.Status.Phase = corev1.ClaimBound
			claim.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
			if err := f.c.Status().Update(f.ctx, claim); err != nil {
				t.Fatal(err)
			}
			f.markReady("db-0")
			f.mustReconcile()
			if c := meta.FindStatusCondition(f.set().Status.Conditions, ConditionClaimsResized); c == nil || c.Status != metav1.ConditionTrue {
				t.Fatalf("ClaimsResized %+v before the change, want True", c)
			}

			cur := f.set()
			cur.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
			if err := f.c.Update(f.ctx, cur); err != nil {
				t.Fatal(err)
			}
			f.mustReconcile()
			req := f.claim("data-db-0").Spec.Resources.Requests[corev1.ResourceStorage]
			if grown := req.Cmp(resource.MustParse("2Gi")) == 0; grown != tc.grown {
				t.Errorf("claim request %s, want grown %v", req.String(), tc.grown)
			}
			if !tc.grown && req.Cmp(resource.MustParse("1Gi")) != 0 {
				t.Errorf("claim request %s changed, want 1Gi", req.String())
			}
			c := meta.FindStatusCondition(f.set().Status.Conditions, ConditionClaimsResized)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tc.reason || c.Message != tc.message {
				t.Errorf("ClaimsResized %+v, want False %s %q", c, tc.reason, tc.message)
			}
			if tc.grown {
				// The volume grows: the condition turns True.
				claim := f.claim("data-db-0")
				claim.Status.Capacity[corev1.ResourceStorage] = resource.MustParse("2Gi")
				if err := f.c.Status().Update(f.ctx, claim); err != nil {
					t.Fatal(err)
				}
				f.mustReconcile()
				if c := meta.FindStatusCondition(f.set().Status.Conditions, ConditionClaimsResized); c == nil || c.Status != metav1.ConditionTrue {
					t.Errorf("ClaimsResized %+v after the volume grew, want True", c)
				}
				if ev := f.events(); !strings.Contains(ev, "Normal SuccessfulUpdate claim data-db-0 from 1Gi to 2Gi") {
					t.Errorf("no expansion event in:\n%s", ev)
				}
			}
		})
	}
}
