package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// Reconciler is the controller-runtime shell around Decide: it reads a
// PetSet and its pods, runs the plan, does it through Pets, and writes
// status.
type Reconciler struct {
	client.Client
	// APIReader reads from the API server, not the cache: adoption
	// rechecks the set through it. Nil uses Client.
	APIReader client.Reader
	// Recorder records events on the set for adoption, release and
	// pets held back; nil records none.
	Recorder events.EventRecorder
	Pets     PetControl
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// RecheckAfter is how often a set held back by pods outside the
	// cache reads them again; DefaultRecheckAfter when zero.
	RecheckAfter time.Duration

	// outside is, for each set, what it must read from the API server
	// rather than the cache (outsideCache).
	outside sync.Map // types.NamespacedName -> *outsideCache
	// left is, for each set, the pets the cache reported deleted while
	// they were not being deleted (podHandler), for its next pass to read.
	leftMu sync.Mutex
	left   map[types.NamespacedName]map[string]bool

	// written is the last status this process wrote for each set: a
	// pass that reads the set from a cache that has not yet seen that
	// write skips writing the same status again (which would only be
	// answered 409).
	written sync.Map // types.NamespacedName -> statusWrite
}

// statusWrite is the last status written for the set with uid: it made
// resourceVersion to; before are the set's resourceVersions this process
// saw (or wrote over) until then, which a lagging cache may still hold.
type statusWrite struct {
	uid    types.UID
	before []string
	to     string
	status v1alpha1.PetSetStatus
}

// SetupWithManager registers the controller: PetSets, and the pods they
// own, with up to concurrency sets reconciled at once.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.PetSet{}).
		Watches(&corev1.Pod{}, r.podEvents()).
		Owns(&appsv1.ControllerRevision{}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(claimOwner)).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(r)
}

// claimOwner maps a claim to its PetSet, so that a claim's resize or
// deletion brings the set back for a look.
func claimOwner(_ context.Context, o client.Object) []reconcile.Request {
	set := o.GetLabels()[LabelSetName]
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == petSetKind.Kind {
		set = ref.Name
	}
	if set == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: set}}}
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := klog.FromContext(ctx)
	ps := &v1alpha1.PetSet{}
	if err := r.Get(ctx, req.NamespacedName, ps); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.NamespacedName)
			r.outside.Delete(req.NamespacedName)
			r.takeLeft(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ps.DeletionTimestamp != nil {
		// No finalizer, as for a StatefulSet: the garbage collector
		// deletes or orphans pods, claims and revisions.
		return ctrl.Result{}, nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}

	selector, err := metav1.LabelSelectorAsSelector(ps.Spec.Selector)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("selector: %w", err)
	}
	own, err := r.claimPods(ctx, ps, selector)
	if err != nil {
		return ctrl.Result{}, err
	}
	owned := own.owned
	// Pets whose identity labels someone changed get them back.
	if err := r.repairIdentity(ctx, ps, owned); err != nil {
		return ctrl.Result{}, err
	}

	want := wantOf(ps, now())
	inUse := map[string]bool{}
	for _, pod := range owned {
		inUse[pod.Labels[LabelRevision]] = true
	}
	revs, err := r.syncRevisions(ctx, ps, inUse)
	if err != nil {
		return ctrl.Result{}, err
	}
	want.Revision, want.Current, want.collisionCount = revs.update, revs.current, &revs.collisionCount
	// Claims name their owners before any pet is deleted.
	foreignClaims, err := r.syncClaimRefs(ctx, ps, owned, want.Start, want.End)
	if err != nil {
		return ctrl.Result{}, err
	}
	var state []Pet
	for o, pod := range owned {
		state = append(state, petOf(o, pod))
	}
	plan, claimHeld, err := r.holdBack(ctx, ps, Decide(want, state), own)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(plan.Create)+len(plan.Delete) > 0 || plan.Wait != "" {
		log.V(2).Info("Plan", "petset", klog.KObj(ps), "create", plan.Create, "delete", plan.Delete, "wait", plan.Wait)
	}
	var errs []error
	// Pets created in this pass count in the status it writes, as
	// StatefulSet's sync counts the pods it creates: the watch event of
	// each new pod then finds the status already saying so, and one
	// status write covers both a pet becoming Ready and the next one
	// being created.
	counted, cloned := owned, false
	for _, o := range plan.Create {
		// Each pet from the template of the revision it is due.
		rev, set := want.Due(o, state), ps
		if revs != nil {
			if set, err = revs.setAt(ps, rev); err != nil {
				errs = append(errs, err)
				break
			}
		}
		if err := r.Pets.CreatePet(ctx, set, o, rev); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// A pod the cache does not hold has the name: the
				// next pass reads it (outsideCache).
				r.recheck(ps, PodName(ps.Name, o))
			}
			errs = append(errs, err)
			break // ordered: nothing after a failure
		}
		if !cloned {
			counted, cloned = maps.Clone(owned), true
		}
		counted[o] = NewPod(set, o, rev)
	}
	for _, o := range plan.Delete {
		if err := r.Pets.DeletePet(ctx, ps, owned[o]); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if cloned && len(errs) == 0 && !want.Parallel && plan.Wait == "creating one pet at a time" {
		// What the next pass will say: the condition's message does not
		// change, so the new pet's watch event costs no status write.
		plan.Wait = "waiting for " + strconv.Itoa(plan.Create[len(plan.Create)-1]) + " to be available"
	}
	if err := r.createMissingClaims(ctx, ps, owned, want); err != nil {
		errs = append(errs, err)
	}
	resized, err := r.expandClaims(ctx, ps, want)
	if err != nil {
		errs = append(errs, err)
	}
	// A conflict too is returned: the status this pass computed is not
	// written, so the set must be looked at again.
	if err := r.writeStatus(ctx, ps, counted, want, plan, resized, ownedCondition(ps, own), retentionCondition(ps, foreignClaims)); err != nil {
		errs = append(errs, fmt.Errorf("status: %w", err))
	}
	if len(errs) > 0 {
		return ctrl.Result{}, errors.Join(errs...)
	}
	// Pets that are Ready but not yet available for MinReadySeconds: look
	// again when the first of them will be; pods outside the cache that
	// hold pets' names, or pets waiting for a claim to go (which may be
	// outside the cache too): look again soon, as no watch event may say
	// when they change.
	after := want.nextAvailable(state)
	if d := r.recheckAfter(ps, claimHeld); d > 0 && (after == 0 || d < after) {
		after = d
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// nextAvailable is how long until the first pet that is Ready, but not
// yet for MinReadySeconds, becomes available (plus a little, so it is
// by then), or zero when no pet is waiting for that. Terminating pets
// never become available and are skipped.
func (w Want) nextAvailable(pets []Pet) time.Duration {
	if w.MinReadySeconds <= 0 {
		return 0
	}
	var next time.Duration
	for _, p := range pets {
		if !p.Ready || p.Terminating || p.ReadySince.IsZero() || w.available(p) {
			continue
		}
		if d := w.MinReadySeconds - w.Now.Sub(p.ReadySince); d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	if next == 0 {
		return 0
	}
	return next + 100*time.Millisecond
}

// wantOf turns a spec into the plan's input.
func wantOf(ps *v1alpha1.PetSet, now time.Time) Want {
	start, end := Range(ps)
	w := Want{
		Start: start, End: end,
		Parallel:        ps.Spec.PodManagementPolicy == appsv1.ParallelPodManagement,
		Revision:        Revision(ps),
		RollingUpdate:   ps.Spec.UpdateStrategy.Type != v1alpha1.OnDeleteStrategy,
		MaxUnavailable:  1,
		MinReadySeconds: time.Duration(ps.Spec.MinReadySeconds) * time.Second,
		Now:             now,
	}
	if ru := ps.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		if ru.Partition != nil {
			w.Partition = int(*ru.Partition)
		}
		if ru.MaxUnavailable != nil {
			if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, end-start, false); err == nil && n > 0 {
				w.MaxUnavailable = n
			}
		}
	}
	return w
}

func petOf(o int, pod *corev1.Pod) Pet {
	p := Pet{
		Ordinal:     o,
		Revision:    pod.Labels[LabelRevision],
		Ready:       PodReady(pod),
		Terminating: pod.DeletionTimestamp != nil,
		Finished:    pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed,
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			p.ReadySince = c.LastTransitionTime.Time
		}
	}
	return p
}

// writeStatus records counts, revisions, membership and conditions.
func (r *Reconciler) writeStatus(ctx context.Context, ps *v1alpha1.PetSet, owned map[int]*corev1.Pod, want Want, plan Plan, conds ...*metav1.Condition) error {
	// The status to compare with and build on is the set's, or, when the
	// cache has not yet seen this process's last write over it, that
	// write: its conditions keep their transition times, and the same
	// status is not written twice.
	key := client.ObjectKeyFromObject(ps)
	base, rv := ps.Status, ps.ResourceVersion
	var before []string
	if v, ok := r.written.Load(key); ok {
		if w := v.(statusWrite); w.uid == ps.UID && slices.Contains(w.before, ps.ResourceVersion) {
			base, rv, before = w.status, w.to, slices.Clone(w.before)
		}
	}
	st := v1alpha1.PetSetStatus{
		ObservedGeneration: ps.Generation,
		UpdateRevision:     want.Revision,
		CurrentRevision:    cmp.Or(want.Current, base.CurrentRevision),
		CollisionCount:     want.collisionCount,
		Conditions:         slices.Clone(base.Conditions),
	}
	// The count never goes down: a pass over a cache that has not seen
	// the write that raised it read the older count from the set.
	if b := base.CollisionCount; b != nil && (st.CollisionCount == nil || *st.CollisionCount < *b) {
		st.CollisionCount = b
	}
	if sel, err := metav1.LabelSelectorAsSelector(ps.Spec.Selector); err == nil {
		st.Selector = sel.String()
	}
	ordinals := make([]int, 0, len(owned))
	for o := range owned {
		ordinals = append(ordinals, o)
	}
	slices.Sort(ordinals)
	// Current and updated count only pets that are not Terminating, as
	// StatefulSet's computeReplicaStatus does.
	revisions := map[string]int32{}
	terminating := 0
	for _, o := range ordinals {
		pod := owned[o]
		pet := petOf(o, pod)
		st.Replicas++
		if pet.Terminating {
			terminating++
		} else {
			revisions[pet.Revision]++
		}
		if pet.Ready {
			st.ReadyReplicas++
		}
		if want.available(pet) {
			st.AvailableReplicas++
		}
		m := v1alpha1.Member{Ordinal: int32(o), Pod: pod.Name, Ready: pet.Ready, Revision: pet.Revision}
		for _, t := range ps.Spec.VolumeClaimTemplates {
			m.Claims = append(m.Claims, ClaimName(t.Name, ps.Name, o))
		}
		st.Members = append(st.Members, m)
	}
	st.UpdatedReplicas = revisions[want.Revision]
	// The update is complete, as StatefulSet's completeRollingUpdate
	// says, when every pet is at the update revision and Ready: under
	// Parallel the plan does not wait for readiness, so it is checked
	// here too.
	n := want.End - want.Start
	// No pet may be Terminating either: the set is not Ready while one
	// is going.
	done := len(plan.Create) == 0 && len(plan.Delete) == 0 && plan.Wait == "" && terminating == 0 &&
		int(st.UpdatedReplicas) == n && int(st.Replicas) == n && int(st.ReadyReplicas) == n
	// Only under RollingUpdate, as StatefulSet's completeRollingUpdate:
	// under OnDelete the current revision stays where it was (the first
	// template, or the one in force before a switch to OnDelete) until
	// its revision is gone, however many pets were deleted and made
	// again at the update revision.
	if st.CurrentRevision == "" || done && want.RollingUpdate {
		st.CurrentRevision = want.Revision
	}
	st.CurrentReplicas = revisions[st.CurrentRevision]

	msg := plan.Wait
	if msg == "" && !done {
		// The plan waits for nothing, yet the set is not Ready: say
		// what keeps it so, from the pets as counted.
		pets := make([]Pet, 0, len(ordinals))
		for _, o := range ordinals {
			pets = append(pets, petOf(o, owned[o]))
		}
		msg = joinReasons(want.notDone(pets))
	}
	readyCond := metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Progressing", Message: msg, ObservedGeneration: ps.Generation}
	if done {
		readyCond.Status, readyCond.Reason, readyCond.Message = metav1.ConditionTrue, "AllPetsReady", strconv.Itoa(int(st.ReadyReplicas))+" pets ready"
	}
	meta.SetStatusCondition(&st.Conditions, readyCond)
	for _, c := range conds {
		if c != nil {
			meta.SetStatusCondition(&st.Conditions, *c)
		}
	}

	if equality.Semantic.DeepEqual(base, st) {
		return nil
	}
	// Over the resourceVersion of the last write when the cache lags
	// behind it: if nothing else has written since, no 409.
	before = append(before, ps.ResourceVersion)
	if rv != ps.ResourceVersion {
		before = append(before, rv)
	}
	if len(before) > 8 {
		before = before[len(before)-8:]
	}
	ps.Status, ps.ResourceVersion = st, rv
	if err := r.Status().Update(ctx, ps); err != nil {
		return err
	}
	r.written.Store(key, statusWrite{uid: ps.UID, before: slices.Clone(before), to: ps.ResourceVersion, status: *st.DeepCopy()})
	return nil
}
