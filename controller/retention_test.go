package controller

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// The owner references each retention policy asks for, StatefulSet's
// table.
func TestClaimOwners(t *testing.T) {
	for _, tc := range []struct {
		deleted, scaled v1alpha1.RetentionPolicyType
		condemned       bool
		bySet, byPod    bool
	}{
		{v1alpha1.Retain, v1alpha1.Retain, false, false, false},
		{v1alpha1.Retain, v1alpha1.Retain, true, false, false},
		{v1alpha1.Delete, v1alpha1.Retain, false, true, false},
		{v1alpha1.Delete, v1alpha1.Retain, true, true, false},
		{v1alpha1.Retain, v1alpha1.Delete, false, false, false},
		{v1alpha1.Retain, v1alpha1.Delete, true, false, true},
		{v1alpha1.Delete, v1alpha1.Delete, false, true, false},
		{v1alpha1.Delete, v1alpha1.Delete, true, false, true},
		{"", "", true, false, false}, // unset: Retain
	} {
		ps := testSet(1)
		ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenDeleted: tc.deleted, WhenScaled: tc.scaled}
		bySet, byPod := claimOwners(ps, tc.condemned)
		if bySet != tc.bySet || byPod != tc.byPod {
			t.Errorf("whenDeleted %s whenScaled %s condemned %v: by set %v by pod %v, want %v %v",
				tc.deleted, tc.scaled, tc.condemned, bySet, byPod, tc.bySet, tc.byPod)
		}
	}
}

func refUIDs(o metav1.Object) []string {
	var out []string
	for _, r := range o.GetOwnerReferences() {
		c := ""
		if r.Controller != nil && *r.Controller {
			c = "*"
		}
		out = append(out, r.Kind+"/"+string(r.UID)+c)
	}
	return out
}

// Claims carry the retention policy as owner references, from creation and
// before a condemned pet's pod goes, and follow a policy change; the
// controller deletes no claim, and never touches an earlier set's.
func TestClaimRetentionRefs(t *testing.T) {
	ps := testSet(2)
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenDeleted: v1alpha1.Delete, WhenScaled: v1alpha1.Delete}
	earlier := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-5",
		Labels: map[string]string{LabelSetName: "db", LabelPodIndex: "5", "app": "db"}}}
	f := newFixture(t, ps, earlier)
	f.mustReconcile()
	if got := refUIDs(f.claim("data-db-0")); strings.Join(got, ",") != "PetSet/uid-db*" {
		t.Fatalf("data-db-0 created with refs %v, want the set as controller", got)
	}
	f.markReady("db-0")
	f.mustReconcile()
	f.markReady("db-1")
	f.mustReconcile()
	db1 := f.pod("db-1")
	f.c.Get(f.ctx, setKey, ps)
	ps.Spec.Replicas = ptrTo(int32(1))
	if err := f.c.Update(f.ctx, ps); err != nil {
		t.Fatal(err)
	}
	f.mustReconcile()
	if f.pod("db-1") != nil {
		t.Fatal("db-1 not deleted on scale-down")
	}
	c1 := f.claim("data-db-1")
	if c1 == nil {
		t.Fatal("data-db-1 deleted by the controller; the garbage collector does that")
	}
	if got := strings.Join(refUIDs(c1), ","); got != "Pod/"+string(db1.UID)+"*" {
		t.Errorf("data-db-1 refs %v, want only its pod %s as controller", got, db1.UID)
	}
	if got := strings.Join(refUIDs(f.claim("data-db-0")), ","); got != "PetSet/uid-db*" {
		t.Errorf("data-db-0 refs %v", got)
	}

	// whenDeleted back to Retain: the set's reference goes.
	f.c.Get(f.ctx, setKey, ps)
	ps.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted = v1alpha1.Retain
	if err := f.c.Update(f.ctx, ps); err != nil {
		t.Fatal(err)
	}
	f.mustReconcile()
	if got := refUIDs(f.claim("data-db-0")); len(got) != 0 {
		t.Errorf("data-db-0 refs %v under Retain, want none", got)
	}
	if c := f.claim("data-db-5"); c == nil || len(c.OwnerReferences) != 0 {
		t.Errorf("data-db-5 of an earlier set touched: %+v", c)
	}
}

// A claim with another controller gets no reference from the set, with a
// Warning event; a claim with a stale reference is left to the garbage
// collector.
func TestClaimRefsLeftAlone(t *testing.T) {
	ps := testSet(1)
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenDeleted: v1alpha1.Delete}
	pod := testPod("db-0", "db:1", map[string]string{"app": "db"}, setRef("uid-db"))
	other := &metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "uid-x", Controller: ptrTo(true)}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-0",
		OwnerReferences: []metav1.OwnerReference{*other}}}
	f := newFixture(t, ps, pod, claim)
	f.mustReconcile()
	if got := f.claim("data-db-0"); strings.Join(refUIDs(got), ",") != "ConfigMap/uid-x*" || len(got.Labels) != 0 {
		t.Errorf("refs %v labels %v, want only the other controller and no labels of ours", refUIDs(got), got.Labels)
	}
	if ev := f.events(); !strings.Contains(ev, "Warning ConflictingController claim data-db-0") {
		t.Errorf("no ConflictingController event in:\n%s", ev)
	}
	if c := meta.FindStatusCondition(f.set().Status.Conditions, ConditionRetentionApplied); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "data-db-0") {
		t.Errorf("RetentionApplied condition %+v, want False naming data-db-0", c)
	}
	// Once said, not said again on every pass (the first replaces db-0,
	// which has no revision label, the others look at its claim again).
	for range 3 {
		f.mustReconcile()
	}
	if f.pod("db-0") == nil {
		t.Fatal("db-0 not made again")
	}
	if ev := f.events(); strings.Contains(ev, "ConflictingController") {
		t.Errorf("ConflictingController event again on an unchanged claim:\n%s", ev)
	}

	// Our reference on another controller's claim is removed.
	claim.OwnerReferences = []metav1.OwnerReference{*other, {APIVersion: "petset.dev/v1alpha1", Kind: "PetSet", Name: "db", UID: "uid-db"}}
	f = newFixture(t, ps, pod, claim)
	f.mustReconcile()
	if got := refUIDs(f.claim("data-db-0")); strings.Join(got, ",") != "ConfigMap/uid-x*" {
		t.Errorf("refs %v, want ours removed beside the other controller", got)
	}

	stale := setRef("uid-earlier")
	claim.OwnerReferences = []metav1.OwnerReference{*stale}
	f = newFixture(t, ps, pod, claim)
	f.mustReconcile()
	if got := refUIDs(f.claim("data-db-0")); strings.Join(got, ",") != "PetSet/uid-earlier*" {
		t.Errorf("refs %v, want the stale one left for the garbage collector", got)
	}
}

// A claim being deleted, or about to be (a deleted pod's), is never reused:
// the pet waits, with an event and the reason in the Ready condition, and gets
// a fresh claim once the old one is gone.
func TestClaimBeingDeletedNotReused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		claim func(*corev1.PersistentVolumeClaim)
		why   string
	}{
		{"terminating", func(c *corev1.PersistentVolumeClaim) {
			c.DeletionTimestamp, c.Finalizers = &metav1.Time{Time: time.Now()}, []string{"kubernetes.io/pvc-protection"}
		}, "claim data-db-0 is being deleted"},
		{"stale pod owner", func(c *corev1.PersistentVolumeClaim) {
			c.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "db-0", UID: "uid-old", Controller: ptrTo(true)}}
		}, "claim data-db-0 belongs to a deleted Pod db-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-0", UID: "uid-old-claim"}}
			tc.claim(old)
			f := newFixture(t, testSet(1), old)
			f.mustReconcile()
			if f.pod("db-0") != nil {
				t.Fatal("db-0 made on a claim on its way out")
			}
			if ev := f.events(); !strings.Contains(ev, "Normal WaitForClaim "+tc.why) {
				t.Errorf("no WaitForClaim event %q in:\n%s", tc.why, ev)
			}
			if c := meta.FindStatusCondition(f.set().Status.Conditions, "Ready"); c == nil || !strings.Contains(c.Message, tc.why) {
				t.Errorf("Ready condition %+v, want the wait in its message", c)
			}
			// Once said, not said again on every pass.
			f.mustReconcile()
			if ev := f.events(); strings.Contains(ev, "WaitForClaim") {
				t.Errorf("WaitForClaim event again on an unchanged wait:\n%s", ev)
			}
			// The old claim goes (the finalizer is dropped; the
			// garbage collector deletes it).
			cur := f.claim("data-db-0")
			cur.Finalizers = nil
			if err := f.c.Update(f.ctx, cur); err != nil {
				t.Fatal(err)
			}
			f.c.Delete(f.ctx, cur)
			f.mustReconcile()
			fresh := f.claim("data-db-0")
			if fresh == nil || fresh.UID == "uid-old-claim" || fresh.DeletionTimestamp != nil || len(fresh.OwnerReferences) != 0 {
				t.Fatalf("fresh claim %+v", fresh)
			}
			if f.pod("db-0") == nil {
				t.Fatal("db-0 not made once the old claim was gone")
			}
		})
	}
}

// Claims are read from the cache before they are made, so an existing claim
// costs no create (no 409 per rolling-update step); a Pending pod whose claim
// was deleted gets it back.
func TestClaimsReadBeforeCreate(t *testing.T) {
	creates := 0
	// A claim the set made carries its labels (so the cache holds it).
	existing := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-0",
		Labels: map[string]string{LabelSetName: "db", LabelPodIndex: "0"}}}
	c := fake.NewClientBuilder().WithScheme(testScheme()).WithStatusSubresource(&v1alpha1.PetSet{}).
		WithObjects(testSet(1), existing).
		WithInterceptorFuncs(interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*corev1.PersistentVolumeClaim); ok {
				creates++
			}
			return c.Create(ctx, obj, opts...)
		}}).Build()
	rec := events.NewFakeRecorder(100)
	f := &fixture{t: t, c: c, rec: rec, ctx: context.Background(), r: newLabelCacheReconciler(c, rec)}
	f.mustReconcile()
	if f.pod("db-0") == nil || creates != 0 {
		t.Fatalf("pod made: %v; claim creates %d, want 0", f.pod("db-0") != nil, creates)
	}
	// The claim is deleted under the Pending pod: it comes back.
	if err := c.Delete(f.ctx, existing); err != nil {
		t.Fatal(err)
	}
	p := f.pod("db-0")
	p.Status.Phase = corev1.PodPending
	c.Status().Update(f.ctx, p)
	f.mustReconcile()
	if f.claim("data-db-0") == nil || creates != 1 {
		t.Errorf("claim under a Pending pod not made again (creates %d)", creates)
	}
	var pvcs corev1.PersistentVolumeClaimList
	c.List(f.ctx, &pvcs, client.InNamespace("ns"))
	if len(pvcs.Items) != 1 {
		t.Errorf("%d claims", len(pvcs.Items))
	}
}

// The claims of an adopted pet (a StatefulSet's, say, without petset's
// labels or owners) get the pet labels and the policy's references: they
// are the pet's from then on.
func TestAdoptedPetClaims(t *testing.T) {
	ps := testSet(1)
	ps.Spec.PersistentVolumeClaimRetentionPolicy = &v1alpha1.RetentionPolicy{WhenDeleted: v1alpha1.Delete}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data-db-0", UID: "uid-claim",
		Labels: map[string]string{"app": "db"}}}
	f := newFixture(t, ps, stsPod(), claim)
	f.mustReconcile()
	got := f.claim("data-db-0")
	if got.UID != "uid-claim" || got.Labels[LabelSetName] != "db" || got.Labels[LabelPodIndex] != "0" || got.Labels["app"] != "db" {
		t.Errorf("claim %s labels %v", got.UID, got.Labels)
	}
	if refs := strings.Join(refUIDs(got), ","); refs != "PetSet/uid-db*" {
		t.Errorf("claim refs %v, want the set (whenDeleted: Delete)", refs)
	}
	if p := f.pod("db-0"); controllerUID(p) != "uid-db" {
		t.Errorf("db-0 not adopted")
	}
}

// relatedRecorder records each event's reason and the object it is
// related to.
type relatedRecorder struct{ got []string }

func (r *relatedRecorder) Eventf(_ runtime.Object, related runtime.Object, _, reason, _, _ string, _ ...any) {
	name := "-"
	if o, ok := related.(metav1.Object); ok && related != nil {
		name = related.GetObjectKind().GroupVersionKind().Kind + "/" + o.GetName()
	}
	r.got = append(r.got, reason+" "+name)
}

// Events about pets held by two claims name their claims as related
// objects: the events API merges events of one set, reason and action
// into one series under its first note, and a second claim's wait was
// never seen (TestPetSetScaleDownUpFreshClaims).
func TestHeldEventsNameTheirClaims(t *testing.T) {
	var claims []client.Object
	for _, name := range []string{"data-db-0", "data-db-1"} {
		claims = append(claims, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: name, UID: types.UID("uid-" + name),
			DeletionTimestamp: &metav1.Time{Time: time.Now()}, Finalizers: []string{"kubernetes.io/pvc-protection"}}})
	}
	ps := testSet(2)
	ps.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	f := newFixture(t, append([]client.Object{ps}, claims...)...)
	rec := &relatedRecorder{}
	f.r.Recorder = rec
	f.mustReconcile()
	want := []string{"WaitForClaim PersistentVolumeClaim/data-db-0", "WaitForClaim PersistentVolumeClaim/data-db-1"}
	if !slices.Equal(rec.got, want) {
		t.Errorf("events %v, want %v", rec.got, want)
	}
}
