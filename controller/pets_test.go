package controller

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// StatefulSet's TestStatefulPodControlCreatePodPVCError and ...PvcGetFailure:
// a claim that cannot be read or made fails the pass (a Warning for a failed
// create) and no pod is made without it; once the API answers, the pet is.
func TestClaimFailureMakesNoPod(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		funcs func(fail *bool) interceptor.Funcs
		event string
	}{
		{"claim create fails", func(fail *bool) interceptor.Funcs {
			return interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*corev1.PersistentVolumeClaim); ok && *fail {
					return boom
				}
				return c.Create(ctx, obj, opts...)
			}}
		}, "Warning FailedCreate claim data-db-0 for pod db-0: boom"},
		{"claim get fails", func(fail *bool) interceptor.Funcs {
			return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.PersistentVolumeClaim); ok && *fail {
					return apierrors.NewInternalError(boom)
				}
				return c.Get(ctx, key, obj, opts...)
			}}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fail := true
			f, w := failingFixture(t, tc.funcs(&fail), testSet(1))
			err := f.reconcile()
			if err == nil || !strings.Contains(err.Error(), "boom") {
				t.Fatalf("reconcile error %v, want the claim failure", err)
			}
			if f.pod("db-0") != nil || w.n["create Pod"] != 0 {
				t.Fatalf("a pod was made without its claim (%d pod creates)", w.n["create Pod"])
			}
			if ev := f.events(); tc.event != "" && !strings.Contains(ev, tc.event) {
				t.Errorf("no event %q in:\n%s", tc.event, ev)
			}
			fail = false
			f.mustReconcile()
			if f.pod("db-0") == nil || f.claim("data-db-0") == nil {
				t.Errorf("db-0 and its claim not made once the API answers")
			}
		})
	}
}

// Creating a pod that already exists is an error the reconciler returns,
// as for the StatefulSet controller.
func TestCreateAlreadyExists(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	f := newFixture(t, ps, testPod("db-0", "db:1", map[string]string{"app": "db"}, setRef("uid-db")))
	err := f.r.Pets.CreatePet(f.ctx, ps, 0, "r")
	if !apierrors.IsAlreadyExists(err) {
		t.Errorf("CreatePet over an existing pod: %v, want AlreadyExists", err)
	}
}
