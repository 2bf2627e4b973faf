package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// Reconciler is the controller-runtime shell around Decide: it reads a
// PetSet and its pods, runs the plan, does it through Pets, and writes
// status.
type Reconciler struct {
	client.Client
	Pets PetControl
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// SetupWithManager registers the controller: PetSets, and the pods they
// own, with up to concurrency sets reconciled at once.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, concurrency int) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.PetSet{}).
		Owns(&corev1.Pod{}).
		Owns(&appsv1.ControllerRevision{}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(claimOwner)).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(r)
}

// claimOwner maps a claim to its PetSet, so that a claim's resize or
// deletion brings the set back for a look.
func claimOwner(_ context.Context, o client.Object) []reconcile.Request {
	set := o.GetLabels()[LabelSetName]
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
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	deleting := ps.DeletionTimestamp != nil
	if deleting && !controllerutil.ContainsFinalizer(ps, Finalizer) {
		return ctrl.Result{}, nil
	}
	if !deleting && !controllerutil.ContainsFinalizer(ps, Finalizer) {
		// The finalizer lets a deleted set scale to zero in order first.
		controllerutil.AddFinalizer(ps, Finalizer)
		if err := r.Update(ctx, ps); err != nil {
			return ctrl.Result{}, err
		}
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}

	selector, err := metav1.LabelSelectorAsSelector(ps.Spec.Selector)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("selector: %w", err)
	}
	var list corev1.PodList
	if err := r.List(ctx, &list, client.InNamespace(ps.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return ctrl.Result{}, err
	}
	owned := map[int]*corev1.Pod{}
	for i := range list.Items {
		pod := &list.Items[i]
		if ref := metav1.GetControllerOf(pod); ref == nil || ref.UID != ps.UID {
			continue
		}
		if o := Ordinal(ps.Name, pod.Name); o >= 0 {
			owned[o] = pod
		}
	}

	want := wantOf(ps, now())
	var revs *revisions
	if !deleting {
		inUse := map[string]bool{}
		for _, pod := range owned {
			inUse[pod.Labels[LabelRevision]] = true
		}
		if revs, err = r.syncRevisions(ctx, ps, inUse); err != nil {
			return ctrl.Result{}, err
		}
		want.Revision, want.Current, want.collisionCount = revs.update, revs.current, &revs.collisionCount
	}
	if deleting {
		want.End = want.Start // scale to zero, highest ordinal first
	}
	var state []Pet
	for o, pod := range owned {
		state = append(state, petOf(o, pod))
	}
	plan := Decide(want, state)
	if len(plan.Create)+len(plan.Delete) > 0 || plan.Wait != "" {
		log.V(2).Info("Plan", "petset", klog.KObj(ps), "create", plan.Create, "delete", plan.Delete, "wait", plan.Wait)
	}
	var errs []error
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
			errs = append(errs, err)
			break // ordered: nothing after a failure
		}
	}
	for _, o := range plan.Delete {
		if err := r.Pets.DeletePet(ctx, ps, owned[o]); err != nil {
			errs = append(errs, err)
			break
		}
	}

	if err := r.retire(ctx, ps, owned, want, deleting); err != nil {
		errs = append(errs, err)
	}
	if deleting {
		if len(errs) > 0 {
			return ctrl.Result{}, errors.Join(errs...)
		}
		if len(owned) > 0 {
			return ctrl.Result{}, nil // the pods' deletions bring us back
		}
		controllerutil.RemoveFinalizer(ps, Finalizer)
		return ctrl.Result{}, client.IgnoreNotFound(r.Update(ctx, ps))
	}
	resized, err := r.expandClaims(ctx, ps, want)
	if err != nil {
		errs = append(errs, err)
	}
	// A conflict too is returned: the status this pass computed is not
	// written, so the set must be looked at again.
	if err := r.writeStatus(ctx, ps, owned, want, plan, resized); err != nil {
		errs = append(errs, fmt.Errorf("status: %w", err))
	}
	if len(errs) > 0 {
		return ctrl.Result{}, errors.Join(errs...)
	}
	// Pets that are Ready but not yet available for MinReadySeconds: look
	// again when they will be.
	if want.MinReadySeconds > 0 {
		for _, p := range state {
			if p.Ready && !want.available(p) {
				return ctrl.Result{RequeueAfter: want.MinReadySeconds - want.Now.Sub(p.ReadySince) + 100*time.Millisecond}, nil
			}
		}
	}
	return ctrl.Result{}, nil
}

// Finalizer holds a deleted PetSet until its pets are gone, in order.
const Finalizer = "petset.dev/ordered-deletion"

// retire deletes claims the retention policy gives up: with whenScaled
// Delete, those of ordinals outside the wanted range whose pod is gone;
// with whenDeleted Delete, all of them once the set is deleted and its
// pods are gone. Claims are never deleted while their pod exists.
func (r *Reconciler) retire(ctx context.Context, ps *v1alpha1.PetSet, owned map[int]*corev1.Pod, want Want, deleting bool) error {
	policy := ps.Spec.PersistentVolumeClaimRetentionPolicy
	if policy == nil || len(ps.Spec.VolumeClaimTemplates) == 0 {
		return nil
	}
	whenScaled := policy.WhenScaled == v1alpha1.Delete
	whenDeleted := deleting && policy.WhenDeleted == v1alpha1.Delete && len(owned) == 0
	if !whenScaled && !whenDeleted {
		return nil
	}
	var claims corev1.PersistentVolumeClaimList
	if err := r.List(ctx, &claims, client.InNamespace(ps.Namespace), client.MatchingLabels{LabelSetName: ps.Name}); err != nil {
		return err
	}
	for i := range claims.Items {
		claim := &claims.Items[i]
		o, err := strconv.Atoi(claim.Labels[LabelPodIndex])
		if err != nil || claim.DeletionTimestamp != nil || owned[o] != nil {
			continue
		}
		if whenDeleted || (whenScaled && !deleting && (o < want.Start || o >= want.End)) {
			if err := r.Pets.DeleteClaim(ctx, ps, claim); err != nil {
				return err
			}
		}
	}
	return nil
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
func (r *Reconciler) writeStatus(ctx context.Context, ps *v1alpha1.PetSet, owned map[int]*corev1.Pod, want Want, plan Plan, resized *metav1.Condition) error {
	st := v1alpha1.PetSetStatus{
		ObservedGeneration: ps.Generation,
		UpdateRevision:     want.Revision,
		CurrentRevision:    cmp.Or(want.Current, ps.Status.CurrentRevision),
		CollisionCount:     want.collisionCount,
		Conditions:         slices.Clone(ps.Status.Conditions),
	}
	if sel, err := metav1.LabelSelectorAsSelector(ps.Spec.Selector); err == nil {
		st.Selector = sel.String()
	}
	ordinals := make([]int, 0, len(owned))
	for o := range owned {
		ordinals = append(ordinals, o)
	}
	slices.Sort(ordinals)
	revisions := map[string]int32{}
	for _, o := range ordinals {
		pod := owned[o]
		pet := petOf(o, pod)
		st.Replicas++
		revisions[pet.Revision]++
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
	done := len(plan.Create) == 0 && len(plan.Delete) == 0 && plan.Wait == "" &&
		int(st.UpdatedReplicas) == want.End-want.Start && int(st.Replicas) == want.End-want.Start
	if st.CurrentRevision == "" || done {
		st.CurrentRevision = want.Revision
	}
	st.CurrentReplicas = revisions[st.CurrentRevision]

	readyCond := metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Progressing", Message: plan.Wait, ObservedGeneration: ps.Generation}
	if done && int(st.ReadyReplicas) == want.End-want.Start {
		readyCond.Status, readyCond.Reason, readyCond.Message = metav1.ConditionTrue, "AllPetsReady", strconv.Itoa(int(st.ReadyReplicas))+" pets ready"
	}
	meta.SetStatusCondition(&st.Conditions, readyCond)
	if resized != nil {
		meta.SetStatusCondition(&st.Conditions, *resized)
	}

	if equality.Semantic.DeepEqual(ps.Status, st) {
		return nil
	}
	ps.Status = st
	return r.Status().Update(ctx, ps)
}
