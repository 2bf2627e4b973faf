package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// fixture is a reconciler over a fake API holding objs.
type fixture struct {
	t   *testing.T
	c   client.Client
	r   *Reconciler
	rec *events.FakeRecorder
	ctx context.Context
}

func testScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	return scheme
}

func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(objs...).Build()
	rec := events.NewFakeRecorder(100)
	return &fixture{t: t, c: c, rec: rec, ctx: context.Background(),
		r: newLabelCacheReconciler(c, rec)}
}

var setKey = types.NamespacedName{Namespace: "ns", Name: "db"}

func (f *fixture) reconcile() error {
	f.t.Helper()
	_, err := f.r.Reconcile(f.ctx, ctrl.Request{NamespacedName: setKey})
	return err
}

func (f *fixture) mustReconcile() {
	f.t.Helper()
	if err := f.reconcile(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) pod(name string) *corev1.Pod {
	f.t.Helper()
	p := &corev1.Pod{}
	if err := f.c.Get(f.ctx, types.NamespacedName{Namespace: "ns", Name: name}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) claim(name string) *corev1.PersistentVolumeClaim {
	f.t.Helper()
	c := &corev1.PersistentVolumeClaim{}
	if err := f.c.Get(f.ctx, types.NamespacedName{Namespace: "ns", Name: name}, c); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) set() *v1alpha1.PetSet {
	f.t.Helper()
	ps := &v1alpha1.PetSet{}
	if err := f.c.Get(f.ctx, setKey, ps); err != nil {
		f.t.Fatal(err)
	}
	return ps
}

func (f *fixture) markReady(name string) {
	f.t.Helper()
	p := f.pod(name)
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := f.c.Status().Update(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
}

// events drains the recorder into one string.
func (f *fixture) events() string {
	var seen []string
	for len(f.rec.Events) > 0 {
		seen = append(seen, <-f.rec.Events)
	}
	return strings.Join(seen, "\n")
}

// pod builds a pod named name with labels and containers of image.
func testPod(name, image string, labels map[string]string, owner *metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: image}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}}},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

func setRef(uid types.UID) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: "petset.dev/v1alpha1", Kind: "PetSet", Name: "db", UID: uid, Controller: ptrTo(true)}
}

func controllerUID(o metav1.Object) types.UID {
	if ref := metav1.GetControllerOf(o); ref != nil {
		return ref.UID
	}
	return ""
}

func testSet(replicas int32) *v1alpha1.PetSet {
	return &v1alpha1.PetSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", UID: "uid-db", Generation: 1},
		Spec: v1alpha1.PetSetSpec{
			Replicas:    &replicas,
			ServiceName: "db",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// writes counts the writes a fake client was asked for, by verb and kind.
type writes struct{ n map[string]int }

func (w *writes) add(verb string, obj client.Object) {
	w.n[verb+" "+typeName(obj)]++
}

// failingFixture is a fixture whose client runs funcs, counting creates
// and deletes in w.
func failingFixture(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) (*fixture, *writes) {
	t.Helper()
	w := &writes{n: map[string]int{}}
	create, del := funcs.Create, funcs.Delete
	funcs.Create = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		w.add("create", obj)
		if create != nil {
			return create(ctx, c, obj, opts...)
		}
		return c.Create(ctx, obj, opts...)
	}
	funcs.Delete = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
		w.add("delete", obj)
		if del != nil {
			return del(ctx, c, obj, opts...)
		}
		return c.Delete(ctx, obj, opts...)
	}
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithStatusSubresource(&v1alpha1.PetSet{}).
		WithObjects(objs...).WithInterceptorFuncs(funcs).Build()
	rec := events.NewFakeRecorder(100)
	return &fixture{t: t, c: c, rec: rec, ctx: context.Background(),
		r: &Reconciler{Client: c, APIReader: c, Recorder: rec, Pets: NewPetControl(c, rec)}}, w
}

func reconcileRequest(key client.ObjectKey) ctrl.Request { return ctrl.Request{NamespacedName: key} }
