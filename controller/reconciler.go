package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
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
	// Recorder records the reconciler's own events on the set (Pets
	// records those of its writes); nil records none.
	Recorder events.EventRecorder
	Pets     PetControl
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// StatusInterval is the least time between two status writes of a
	// set; zero writes every change at once.
	StatusInterval time.Duration

	// RecheckAfter is how often a set waiting on pods or claims outside
	// the cache reads them again; DefaultRecheckAfter when zero.
	RecheckAfter time.Duration

	// outside is, for each set, what it must read from the API server
	// rather than the cache (outsideCache).
	outside sync.Map // types.NamespacedName -> *outsideCache
	// left is, for each set, the pets the cache reported deleted while
	// they were not being deleted (podHandler), for its next pass to read.
	leftMu sync.Mutex
	left   map[types.NamespacedName]map[string]bool

	// written is when this process last wrote each set's status.
	written sync.Map // types.NamespacedName -> statusWrite
	// announced is what each set's last pass told in events.
	announced sync.Map // types.NamespacedName -> *announced
}

// SetupWithManager registers the controller: PetSets, and their pods,
// revisions and claims, with up to concurrency sets reconciled at once.
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
			r.announced.Delete(req.NamespacedName)
			r.takeLeft(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ps.DeletionTimestamp != nil {
		// No finalizer, as for a StatefulSet: the garbage collector
		// deletes or orphans pods, claims and revisions.
		return ctrl.Result{}, nil
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

	want := wantOf(ps, r.now())
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
	if waits := plan.waits(); len(plan.Create)+len(plan.Delete)+len(waits) > 0 {
		log.V(2).Info("Plan", "petset", klog.KObj(ps), "create", plan.Create, "delete", plan.Delete, "wait", message(waits))
	}
	var errs []error
	// Pets created in this pass count in its status, as in StatefulSet's
	// sync: the new pod's watch event then finds nothing to write.
	counted := owned
	var made *corev1.Pod // the last pet made
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
		if made == nil {
			counted = maps.Clone(owned)
		}
		made = NewPod(set, o, rev)
		counted[o] = made
	}
	var deleted *corev1.Pod
	for _, o := range plan.Delete {
		if err := r.Pets.DeletePet(ctx, ps, owned[o]); err != nil {
			errs = append(errs, err)
			break
		}
		deleted = owned[o]
	}
	// The pass after this one must see these writes, or it makes the
	// same pet again (answered 409) or deletes it again: pods come in
	// one watch, in order, so the cache is waited for on the last.
	switch {
	case deleted != nil:
		r.awaitPod(ctx, client.ObjectKeyFromObject(deleted), true)
	case made != nil:
		r.awaitPod(ctx, client.ObjectKeyFromObject(made), false)
	}
	if made != nil && len(errs) == 0 && !want.Parallel && plan.Wait.Kind == WaitCreating {
		// What the next pass will say: the condition's message does not
		// change, so the new pet's watch event costs no status write.
		plan.Wait = Wait{Kind: WaitAvailable, Ordinals: plan.Create[len(plan.Create)-1:]}
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
	st := computeStatus(ps, counted, want, plan, resized, ownedCondition(ps, own), retentionCondition(ps, foreignClaims))
	statusAfter, err := r.writeStatus(ctx, ps, st)
	if err != nil {
		errs = append(errs, fmt.Errorf("status: %w", err))
	}
	if len(errs) > 0 {
		return ctrl.Result{}, errors.Join(errs...)
	}
	// Look again when a pet becomes available, when pods or claims outside
	// the cache may have changed (no watch says), and when a held-back
	// status may be written.
	after := want.nextAvailable(state)
	for _, d := range []time.Duration{r.recheckAfter(ps, claimHeld), statusAfter} {
		if d > 0 && (after == 0 || d < after) {
			after = d
		}
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// awaitPod waits, for a second at most, until the cache holds pod key, or
// when deleted, holds it Terminating or no more.
func (r *Reconciler) awaitPod(ctx context.Context, key types.NamespacedName, deleted bool) {
	_ = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, time.Second, true, func(ctx context.Context) (bool, error) {
		var pod corev1.Pod
		err := r.Get(ctx, key, &pod)
		if deleted {
			return apierrors.IsNotFound(err) || err == nil && pod.DeletionTimestamp != nil, nil
		}
		return err == nil, nil
	})
}

// now is the reconciler's clock.
func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// nextAvailable is how long until the first Ready pet becomes available, plus
// a little, or zero when none waits for MinReady.
func (w Want) nextAvailable(pets []Pet) time.Duration {
	if w.MinReady <= 0 {
		return 0
	}
	var next time.Duration
	for _, p := range pets {
		if !p.Ready || p.Terminating || p.ReadySince.IsZero() || w.available(p) {
			continue
		}
		if d := w.MinReady - w.Now.Sub(p.ReadySince); d > 0 && (next == 0 || d < next) {
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
		Parallel:       ps.Spec.PodManagementPolicy == appsv1.ParallelPodManagement,
		Revision:       Revision(ps),
		RollingUpdate:  ps.Spec.UpdateStrategy.Type != v1alpha1.OnDeleteStrategy,
		MaxUnavailable: 1,
		MinReady:       time.Duration(ps.Spec.MinReadySeconds) * time.Second,
		Now:            now,
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
