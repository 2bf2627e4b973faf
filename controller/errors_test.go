package controller

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// A status write that meets a conflict is not dropped: Reconcile returns
// it, so the set is requeued, and the next pass writes the status. Every
// error of a pass is returned, not only the first.
func TestReconcileReturnsEveryError(t *testing.T) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	statusConflicts, podFailures := 1, 1
	boom := errors.New("boom")
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(ps).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if _, ok := obj.(*v1alpha1.PetSet); ok && statusConflicts > 0 {
					statusConflicts--
					return apierrors.NewConflict(schema.GroupResource{Group: "petset.dev", Resource: "petsets"}, obj.GetName(), errors.New("the object has been modified"))
				}
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if _, ok := obj.(*corev1.Pod); ok && podFailures > 0 {
					podFailures--
					return boom
				}
				return c.Create(ctx, obj, opts...)
			},
		}).Build()
	r := &Reconciler{Client: c, Pets: NewPetControl(c, events.NewFakeRecorder(100))}
	ctx := context.Background()
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(ps)}

	_, err := r.Reconcile(ctx, req)
	if err == nil {
		t.Fatal("no error from a pass whose pod create and status write failed")
	}
	if !errors.Is(err, boom) {
		t.Errorf("error %v does not carry the pod create failure", err)
	}
	if !apierrors.IsConflict(err) {
		t.Errorf("error %v does not carry the status conflict", err)
	}
	var got v1alpha1.PetSet
	c.Get(ctx, req.NamespacedName, &got)
	if got.Status.UpdateRevision != "" {
		t.Fatalf("status written despite the conflict: %+v", got.Status)
	}

	// The requeued pass makes the pod and writes the status.
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	c.Get(ctx, req.NamespacedName, &got)
	if got.Status.UpdateRevision == "" || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("status after the retry: %+v", got.Status)
	}
	var pod corev1.Pod
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "db-0"}, &pod); err != nil {
		t.Errorf("db-0 after the retry: %v", err)
	}
}
