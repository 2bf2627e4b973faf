package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// serverRoundTrip re-encodes JSON the way the API server does when it
// applies a patch: decoded into generic maps (numbers as float64 or
// int64, as apimachinery's json does) and marshalled again.
func serverRoundTrip(t *testing.T, b []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Revision data survives the API server's patch round trip byte for
// byte, so that patching a revision's metadata (the garbage collector
// removing an owner reference) does not touch the immutable data.
func TestRevisionDataCanonical(t *testing.T) {
	ps := testSet(1)
	tpl := &ps.Spec.Template
	tpl.Annotations = map[string]string{"z": "1", "a": "<b&c>"}
	tpl.Spec.Containers[0].Command = []string{"sh", "-c", "test 1 -lt 2 && echo '<ok>'"}
	tpl.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "peer", ContainerPort: 2380}}
	tpl.Spec.TerminationGracePeriodSeconds = ptrTo(int64(1) << 40)
	data, err := revisionData(tpl)
	if err != nil {
		t.Fatal(err)
	}
	if got := serverRoundTrip(t, data); !bytes.Equal(got, data) {
		t.Errorf("data changes on the server's round trip:\n%s\n%s", data, got)
	}
	// Struct order (the template marshalled as is) is not canonical: the
	// round trip above tells them apart.
	structOrder, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": tpl}})
	if !bytes.Equal(serverRoundTrip(t, structOrder), data) {
		t.Error("canonical data is not the server's encoding of the same template")
	}
	if bytes.Equal(structOrder, data) {
		t.Error("struct-ordered data is canonical too: the test proves nothing")
	}
	back, err := templateOf(&appsv1.ControllerRevision{Data: runtime.RawExtension{Raw: data}})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := revisionData(back); !bytes.Equal(again, data) {
		t.Errorf("the stored template does not decode to the same template:\n%s\n%s", data, again)
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[{"d":"<x>","c":null}]}`, `1e400`, `"\u2028"`, `{"a":1}{"b":2}`, `[1.50, -0, 123456789012345678901234567890]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := canonicalJSON(b)
		if err != nil {
			return
		}
		again, err := canonicalJSON(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", b, c, again, err)
		}
		if !json.Valid(c) {
			t.Fatalf("invalid output %q", c)
		}
	})
}

func TestRevisionName(t *testing.T) {
	data := []byte(`{"spec":{}}`)
	a, b := revisionName("web", data, 0), revisionName("web", data, 1)
	if a == b {
		t.Errorf("collision count does not change the name: %s", a)
	}
	long := strings.Repeat("x", 63-1-RevisionHashLen)
	if n := revisionName(long, data, 7); len(n) != 63 {
		t.Errorf("revision name of a %d-character set is %d long, want 63", len(long), len(n))
	}
}

type revFixture struct {
	t   *testing.T
	c   client.Client
	r   *Reconciler
	ctx context.Context
	key types.NamespacedName
}

func newRevFixture(t *testing.T, ps *v1alpha1.PetSet, objs ...client.Object) *revFixture {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).
		WithObjects(append([]client.Object{ps}, objs...)...).Build()
	return &revFixture{t: t, c: c, r: newLabelCacheReconciler(c, events.NewFakeRecorder(1000)),
		ctx: context.Background(), key: client.ObjectKeyFromObject(ps)}
}

func (f *revFixture) reconcile() error {
	_, err := f.r.Reconcile(f.ctx, ctrl.Request{NamespacedName: f.key})
	return err
}

func (f *revFixture) set() *v1alpha1.PetSet {
	f.t.Helper()
	var ps v1alpha1.PetSet
	if err := f.c.Get(f.ctx, f.key, &ps); err != nil {
		f.t.Fatal(err)
	}
	return &ps
}

func (f *revFixture) revisions() map[string]*appsv1.ControllerRevision {
	var list appsv1.ControllerRevisionList
	f.c.List(f.ctx, &list)
	out := map[string]*appsv1.ControllerRevision{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

func (f *revFixture) pod(name string) *corev1.Pod {
	var p corev1.Pod
	if err := f.c.Get(f.ctx, types.NamespacedName{Namespace: f.key.Namespace, Name: name}, &p); err != nil {
		return nil
	}
	return &p
}

func (f *revFixture) markReady(name string) {
	f.t.Helper()
	p := f.pod(name)
	if p == nil {
		f.t.Fatalf("no pod %s", name)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := f.c.Status().Update(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
}

// converge reconciles, marking every pod Ready, until nothing changes.
func (f *revFixture) converge() {
	f.t.Helper()
	for range 30 {
		if err := f.reconcile(); err != nil {
			f.t.Fatal(err)
		}
		var list corev1.PodList
		f.c.List(f.ctx, &list)
		changed := false
		for _, p := range list.Items {
			if !PodReady(&p) {
				f.markReady(p.Name)
				changed = true
			}
		}
		if !changed {
			if err := f.reconcile(); err != nil {
				f.t.Fatal(err)
			}
			f.c.List(f.ctx, &list)
			ready := 0
			for _, p := range list.Items {
				if PodReady(&p) {
					ready++
				}
			}
			if ready == len(list.Items) {
				return
			}
		}
	}
	f.t.Fatal("no convergence")
}

func (f *revFixture) setImage(image string) {
	f.t.Helper()
	ps := f.set()
	ps.Spec.Template.Spec.Containers[0].Image = image
	if err := f.c.Update(f.ctx, ps); err != nil {
		f.t.Fatal(err)
	}
}

func (f *revFixture) deletePod(name string) {
	f.t.Helper()
	if err := f.c.Delete(f.ctx, f.pod(name)); err != nil {
		f.t.Fatal(err)
	}
}

// A pet below the partition that is deleted comes back from the current
// revision's stored template, not the canary's; one at or above the
// partition comes back at the update revision.
func TestPetComesBackAtItsRevision(t *testing.T) {
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.RollingUpdate = &v1alpha1.RollingUpdate{Partition: ptrTo(int32(2))}
	f := newRevFixture(t, ps)
	f.converge()
	r1 := f.set().Status.CurrentRevision
	f.setImage("db:canary")
	f.converge()
	st := f.set().Status
	if st.CurrentRevision != r1 || st.UpdateRevision == r1 {
		t.Fatalf("revisions current %q update %q, want current %q and a new update", st.CurrentRevision, st.UpdateRevision, r1)
	}
	r2 := st.UpdateRevision
	if p := f.pod("db-2"); p.Spec.Containers[0].Image != "db:canary" || p.Labels[LabelRevision] != r2 {
		t.Fatalf("db-2 at %s %s, want the canary", p.Labels[LabelRevision], p.Spec.Containers[0].Image)
	}

	f.deletePod("db-0")
	if err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	p := f.pod("db-0")
	if p == nil {
		t.Fatal("db-0 was not made again")
	}
	if p.Spec.Containers[0].Image != "db:1" || p.Labels[LabelRevision] != r1 {
		t.Errorf("db-0 below the partition came back at %s with %s, want %s with db:1", p.Labels[LabelRevision], p.Spec.Containers[0].Image, r1)
	}
	if p.Spec.Hostname != "db-0" || p.Labels[LabelPodIndex] != "0" {
		t.Errorf("db-0 lost its identity: hostname %q labels %v", p.Spec.Hostname, p.Labels)
	}

	// A finished pet below the partition: the same.
	f.markReady("db-0")
	p = f.pod("db-1")
	p.Status.Phase = corev1.PodFailed
	if err := f.c.Status().Update(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	f.reconcile() // deletes the failed pod
	f.reconcile() // makes it again
	if p := f.pod("db-1"); p == nil || p.Spec.Containers[0].Image != "db:1" || p.Labels[LabelRevision] != r1 {
		t.Errorf("finished db-1 came back as %s, want %s with db:1", describe(p), r1)
	}
	f.markReady("db-1")

	f.deletePod("db-2")
	f.reconcile()
	if p := f.pod("db-2"); p == nil || p.Spec.Containers[0].Image != "db:canary" || p.Labels[LabelRevision] != r2 {
		t.Errorf("db-2 at the partition came back as %s, want the canary %s", describe(p), r2)
	}
}

// A pet the rollout has not reached comes back at the current revision: with
// db-2 still old (its replacement not Ready), a deleted db-0 is made from the
// old template, and waited for, not replaced, until it is Ready.
func TestPetNotYetUpdatedComesBackAtCurrent(t *testing.T) {
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	f := newRevFixture(t, ps)
	f.converge()
	r1 := f.set().Status.CurrentRevision
	f.setImage("db:2")
	if err := f.reconcile(); err != nil { // deletes db-2 for the update
		t.Fatal(err)
	}
	if f.pod("db-2") != nil {
		t.Fatal("db-2 not deleted for the update")
	}
	// db-1 stays at r1, so db-0 is below the rollout's front.
	f.deletePod("db-0")
	if err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	p := f.pod("db-0")
	if p == nil || p.Labels[LabelRevision] != r1 || p.Spec.Containers[0].Image != "db:1" {
		t.Fatalf("db-0 came back as %s, want %s with db:1", describe(p), r1)
	}
	uid := p.UID
	if err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if p := f.pod("db-0"); p == nil || p.UID != uid {
		t.Fatal("db-0 at the current revision, not Ready yet, was replaced")
	}
	f.converge()
	for _, name := range []string{"db-0", "db-1", "db-2"} {
		if p := f.pod(name); p.Spec.Containers[0].Image != "db:2" {
			t.Errorf("%s ends with %s, want db:2", name, p.Spec.Containers[0].Image)
		}
	}
	if st := f.set().Status; st.CurrentRevision != st.UpdateRevision || st.CurrentRevision == r1 {
		t.Errorf("status revisions %q %q after the rollout", st.CurrentRevision, st.UpdateRevision)
	}
}

// A current revision whose data cannot be read is an error; no pet is
// made from another template instead.
func TestBrokenCurrentRevisionData(t *testing.T) {
	ps := testSet(2)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.RollingUpdate = &v1alpha1.RollingUpdate{Partition: ptrTo(int32(2))}
	f := newRevFixture(t, ps)
	f.converge()
	r1 := f.set().Status.CurrentRevision
	f.setImage("db:canary")
	f.converge()
	// Replace r1 with one whose data is not a template.
	cr := f.revisions()[r1]
	f.c.Delete(f.ctx, cr)
	cr.ResourceVersion = ""
	cr.Data.Raw = []byte(`{"spec":{"template":"nope"}}`)
	if err := f.c.Create(f.ctx, cr); err != nil {
		t.Fatal(err)
	}
	f.deletePod("db-0")
	err := f.reconcile()
	if err == nil || !strings.Contains(err.Error(), r1) {
		t.Fatalf("reconcile: %v, want an error naming %s", err, r1)
	}
	if f.pod("db-0") != nil {
		t.Error("db-0 was made though its revision cannot be read")
	}
}

// A revision is matched by its data: an owned revision with the same
// template under another name is reused, and no pet is replaced.
func TestRevisionMatchedByData(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	data, err := revisionData(&ps.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	old := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-oldname", Labels: map[string]string{LabelSetName: "db", "app": "db"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ps, v1alpha1.GroupVersion.WithKind("PetSet"))}},
		Data:     runtime.RawExtension{Raw: data},
		Revision: 1,
	}
	f := newRevFixture(t, ps, old)
	f.converge()
	if got := f.revisions(); len(got) != 1 || got["db-oldname"] == nil {
		t.Fatalf("revisions %v, want only db-oldname", keys(got))
	}
	if st := f.set().Status; st.UpdateRevision != "db-oldname" || st.CurrentRevision != "db-oldname" {
		t.Errorf("status revisions %q %q, want db-oldname", st.CurrentRevision, st.UpdateRevision)
	}
	if p := f.pod("db-0"); p.Labels[LabelRevision] != "db-oldname" {
		t.Errorf("db-0 at %q", p.Labels[LabelRevision])
	}
}

// A name taken by a revision with other data is a hash collision: the
// collision count goes up, is recorded in status, and the revision gets
// the next name. Revisions some other object controls are never adopted.
func TestRevisionCollision(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	name := Revision(ps)
	other := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{LabelSetName: "db", "app": "db"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(&v1alpha1.PetSet{ObjectMeta: metav1.ObjectMeta{Name: "db", UID: "someone-else"}}, v1alpha1.GroupVersion.WithKind("PetSet"))}},
		Data:     runtime.RawExtension{Raw: []byte(`{"spec":{"template":{}}}`)},
		Revision: 1,
	}
	f := newRevFixture(t, ps, other)
	f.converge()
	st := f.set().Status
	if st.CollisionCount == nil || *st.CollisionCount != 1 {
		t.Fatalf("collisionCount %v, want 1", st.CollisionCount)
	}
	if st.UpdateRevision == name || st.UpdateRevision != Revision(f.set()) {
		t.Errorf("update revision %q; the taken name is %q, Revision at count 1 is %q", st.UpdateRevision, name, Revision(f.set()))
	}
	if ref := metav1.GetControllerOf(f.revisions()[name]); ref.UID != "someone-else" {
		t.Errorf("the other set's revision changed owner to %v", ref)
	}
	// Reconciling again keeps the name and the count.
	f.converge()
	if st2 := f.set().Status; st2.UpdateRevision != st.UpdateRevision || *st2.CollisionCount != 1 {
		t.Errorf("second pass: %q count %v", st2.UpdateRevision, *st2.CollisionCount)
	}
	// A pass over a set whose status lacks the count (its write held back
	// by StatusInterval, or refused) finds it again in the revision's name.
	cur := f.set()
	cur.Status.CollisionCount = nil
	if err := f.c.Status().Update(f.ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.converge()
	if st3 := f.set().Status; st3.UpdateRevision != st.UpdateRevision || st3.CollisionCount == nil || *st3.CollisionCount != 1 {
		t.Errorf("over a status without the count: %q count %v, want %q and 1", st3.UpdateRevision, st3.CollisionCount, st.UpdateRevision)
	}
}

// Revisions left without a controller by an orphaning deletion of an
// earlier set of the same name are adopted and reused: the pods of the
// old set keep their revision.
func TestOrphanedRevisionAdopted(t *testing.T) {
	ps := testSet(1)
	ps.Spec.VolumeClaimTemplates = nil
	data, _ := revisionData(&ps.Spec.Template)
	orphan := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-left", Labels: map[string]string{LabelSetName: "db", "app": "db"}},
		Data:       runtime.RawExtension{Raw: data},
		Revision:   3,
	}
	f := newRevFixture(t, ps, orphan)
	f.converge()
	cr := f.revisions()["db-left"]
	if ref := metav1.GetControllerOf(cr); ref == nil || ref.UID != ps.UID {
		t.Fatalf("orphaned revision not adopted: controller %v", ref)
	}
	if st := f.set().Status; st.UpdateRevision != "db-left" || len(f.revisions()) != 1 {
		t.Errorf("update revision %q, revisions %v; want db-left reused", st.UpdateRevision, keys(f.revisions()))
	}
}

// describe is a pod's revision and image, or "nothing".
func describe(p *corev1.Pod) string {
	if p == nil {
		return "nothing"
	}
	return p.Labels[LabelRevision] + " with " + p.Spec.Containers[0].Image
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Under OnDelete a pet that is deleted comes back at the update revision,
// as in StatefulSet: deleting a pet is how it is updated. Pets nobody
// deletes keep their revision.
func TestOnDeletePetComesBackUpdated(t *testing.T) {
	ps := testSet(2)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.Type = v1alpha1.OnDeleteStrategy
	f := newRevFixture(t, ps)
	f.converge()
	r1 := f.set().Status.CurrentRevision
	f.setImage("db:2")
	f.converge()
	if p := f.pod("db-1"); p.Labels[LabelRevision] != r1 {
		t.Fatalf("OnDelete replaced db-1: %s", describe(p))
	}
	r2 := f.set().Status.UpdateRevision
	f.deletePod("db-0")
	if err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if p := f.pod("db-0"); p == nil || p.Labels[LabelRevision] != r2 || p.Spec.Containers[0].Image != "db:2" {
		t.Errorf("db-0 came back as %s, want %s with db:2", describe(p), r2)
	}
}

// A revision carries the template's labels, so the set's selector, even
// one of matchExpressions only, matches it (and can adopt it once
// orphaned).
func TestRevisionLabels(t *testing.T) {
	ps := testSet(0)
	ps.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"db"}}}}
	f := newRevFixture(t, ps)
	if err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	sel, _ := metav1.LabelSelectorAsSelector(ps.Spec.Selector)
	revs := f.revisions()
	if len(revs) != 1 {
		t.Fatalf("revisions %v", keys(revs))
	}
	for _, cr := range revs {
		if !sel.Matches(labels.Set(cr.Labels)) || cr.Labels[LabelSetName] != "db" {
			t.Errorf("revision labels %v not matched by %s", cr.Labels, sel)
		}
	}
}

// StatefulSet's TestStatefulSetHonorRevisionHistoryLimit with revisions in
// use: old revisions past the limit go, oldest first, but never the current or
// update revision or one a pet is at.
func TestRevisionHistoryLimitKeepsRevisionsInUse(t *testing.T) {
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.Type = v1alpha1.OnDeleteStrategy
	ps.Spec.RevisionHistoryLimit = ptrTo(int32(1))
	f := newRevFixture(t, ps)
	f.converge()
	r1 := f.set().Status.UpdateRevision
	// Under OnDelete each deleted pet comes back at the newest template:
	// db-2 at image 2, db-1 at image 3; db-0 stays at image 1 (current).
	f.setImage("db:2")
	f.converge()
	r2 := f.set().Status.UpdateRevision
	f.deletePod("db-2")
	f.converge()
	f.setImage("db:3")
	f.converge()
	r3 := f.set().Status.UpdateRevision
	f.deletePod("db-1")
	f.converge()
	// Two unused revisions in a row: image 4 and image 5 (update).
	f.setImage("db:4")
	f.converge()
	r4 := f.set().Status.UpdateRevision
	f.setImage("db:5")
	f.converge()
	r5 := f.set().Status.UpdateRevision
	f.setImage("db:6")
	f.converge()
	r6 := f.set().Status.UpdateRevision

	got := keys(f.revisions())
	slices.Sort(got)
	// r1 current (db-0), r2 (db-2) and r3 (db-1) in use, r6 the update
	// revision; of the unused r4 and r5 the limit keeps one, the newer.
	want := []string{r1, r2, r3, r5, r6}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("revisions %v, want %v (r4 %s pruned)", got, want, r4)
	}
	for name, rev := range map[string]string{"db-0": r1, "db-1": r3, "db-2": r2} {
		if p := f.pod(name); p == nil || p.Labels[LabelRevision] != rev {
			t.Errorf("%s at %v, want %s", name, p, rev)
		}
	}
	// Limit 0: every unused old revision goes, the ones in use stay.
	cur := f.set()
	cur.Spec.RevisionHistoryLimit = ptrTo(int32(0))
	if err := f.c.Update(f.ctx, cur); err != nil {
		t.Fatal(err)
	}
	f.converge()
	got = keys(f.revisions())
	slices.Sort(got)
	want = []string{r1, r2, r3, r6}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("limit 0: revisions %v, want %v", got, want)
	}
}

// An orphaned revision is adopted only after a fresh read of the set agrees,
// as StatefulSet's adoptOrphanRevisions checks: a cached set since deleted or
// recreated (another UID) fails the pass and adopts nothing.
func TestRevisionAdoptionRechecks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fresh func(*v1alpha1.PetSet)
		want  string // error; "" for adopted
	}{
		{"recreated with a new uid", func(ps *v1alpha1.PetSet) { ps.UID = "uid-recreated" }, "is gone"},
		{"being deleted", func(ps *v1alpha1.PetSet) {
			ps.DeletionTimestamp, ps.Finalizers = &metav1.Time{Time: time.Now()}, []string{"test/hold"}
		}, "being deleted"},
		{"same set", func(*v1alpha1.PetSet) {}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := testSet(0)
			data, _ := revisionData(&ps.Spec.Template)
			orphan := &appsv1.ControllerRevision{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-left", Labels: map[string]string{LabelSetName: "db", "app": "db"}},
				Data:       runtime.RawExtension{Raw: data},
				Revision:   1,
			}
			f := newFixture(t, ps, orphan)
			fresh := testSet(0)
			tc.fresh(fresh)
			f.r.APIReader = fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(fresh).Build()
			err := f.reconcile()
			var cr appsv1.ControllerRevision
			if gerr := f.c.Get(f.ctx, client.ObjectKeyFromObject(orphan), &cr); gerr != nil {
				t.Fatal(gerr)
			}
			if tc.want == "" {
				if err != nil || controllerUID(&cr) != ps.UID {
					t.Fatalf("reconcile %v, revision controller %q; want adopted by %s", err, controllerUID(&cr), ps.UID)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("reconcile error %v, want one saying %q", err, tc.want)
			}
			if len(cr.OwnerReferences) != 0 {
				t.Errorf("revision adopted: %v", cr.OwnerReferences)
			}
			var list appsv1.ControllerRevisionList
			f.c.List(f.ctx, &list)
			if len(list.Items) != 1 {
				t.Errorf("%d revisions, want only the orphan (no new one made by a set that may be gone)", len(list.Items))
			}
		})
	}
}

// Every template gets a ControllerRevision; a rollback renumbers the old
// one; revisions no pet uses are pruned past revisionHistoryLimit.
func TestControllerRevisions(t *testing.T) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	v1alpha1.AddToScheme(scheme)
	ps := testSet(0)
	ps.Spec.RevisionHistoryLimit = ptrTo(int32(0))
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(ps).Build()
	r := &Reconciler{Client: c, Pets: NewPetControl(c, events.NewFakeRecorder(100))}
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "ns", Name: "db"}
	revisions := func() map[string]int64 {
		var list appsv1.ControllerRevisionList
		c.List(ctx, &list)
		out := map[string]int64{}
		for _, cr := range list.Items {
			out[cr.Name] = cr.Revision
		}
		return out
	}
	setImage := func(image string) string {
		t.Helper()
		var cur v1alpha1.PetSet
		c.Get(ctx, key, &cur)
		cur.Spec.Template.Spec.Containers[0].Image = image
		if err := c.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
		return Revision(&cur)
	}
	r1 := setImage("db:1")
	r2 := setImage("db:2")
	if got := revisions(); len(got) != 2 || got[r1] != 1 || got[r2] != 2 {
		t.Fatalf("revisions %v, want %s=1 and %s=2", got, r1, r2)
	}
	r3 := setImage("db:3")
	if got := revisions(); len(got) != 2 || got[r3] != 3 {
		t.Fatalf("revisions %v, want the one neither current nor updated pruned (limit 0)", got)
	}
	if back := setImage("db:2"); back != r2 || revisions()[r2] != 4 {
		t.Fatalf("rollback: revisions %v, want %s renumbered 4", revisions(), r2)
	}
}
