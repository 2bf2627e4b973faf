package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// The retention policy is carried out by the garbage collector, as for a
// StatefulSet, through controller references on claims: to the set for
// whenDeleted Delete, to a condemned pet's pod for whenScaled Delete.

// policyOf is the set's retention policy, Retain where unset.
func policyOf(ps *v1alpha1.PetSet) v1alpha1.RetentionPolicy {
	p := v1alpha1.RetentionPolicy{WhenDeleted: v1alpha1.Retain, WhenScaled: v1alpha1.Retain}
	if rp := ps.Spec.PersistentVolumeClaimRetentionPolicy; rp != nil {
		if rp.WhenDeleted == v1alpha1.Delete {
			p.WhenDeleted = v1alpha1.Delete
		}
		if rp.WhenScaled == v1alpha1.Delete {
			p.WhenScaled = v1alpha1.Delete
		}
	}
	return p
}

// claimOwners says which owners a pet's claims should have: the set, the
// pod, or neither.
func claimOwners(ps *v1alpha1.PetSet, condemned bool) (bySet, byPod bool) {
	p := policyOf(ps)
	bySet = p.WhenDeleted == v1alpha1.Delete && (!condemned || p.WhenScaled == v1alpha1.Retain)
	byPod = p.WhenScaled == v1alpha1.Delete && condemned
	return bySet, byPod
}

// isRef reports whether ref names an object of kind called name.
func isRef(ref metav1.OwnerReference, kind, name string) bool {
	return ref.Kind == kind && ref.Name == name
}

// staleRef is claim's first owner reference to an earlier set or pod in the
// place of ps or of pet ordinal's pod (nil if none): the garbage collector is
// about to delete or free the claim, so it is not the pet's.
func staleRef(claim *corev1.PersistentVolumeClaim, ps *v1alpha1.PetSet, ordinal int, pod *corev1.Pod) *metav1.OwnerReference {
	podName := PodName(ps.Name, ordinal)
	for i, ref := range claim.OwnerReferences {
		if isRef(ref, petSetKind.Kind, ps.Name) && ref.APIVersion == petSetKind.GroupVersion().String() && ref.UID != ps.UID {
			return &claim.OwnerReferences[i]
		}
		if isRef(ref, "Pod", podName) && ref.APIVersion == "v1" && (pod == nil || ref.UID != pod.UID) {
			return &claim.OwnerReferences[i]
		}
	}
	return nil
}

// wantRefs returns the owner references claim should have for pet pod,
// and false when the claim is not to be touched: it has a stale
// reference, or another controller.
func wantRefs(claim *corev1.PersistentVolumeClaim, ps *v1alpha1.PetSet, ordinal int, pod *corev1.Pod, condemned bool) ([]metav1.OwnerReference, bool, bool) {
	if staleRef(claim, ps, ordinal, pod) != nil {
		return nil, false, false
	}
	var refs []metav1.OwnerReference
	foreign := false
	for _, ref := range claim.OwnerReferences {
		if ref.UID == ps.UID || ref.UID == pod.UID {
			continue
		}
		if ref.Controller != nil && *ref.Controller {
			foreign = true
		}
		refs = append(refs, ref)
	}
	if foreign {
		// Another controller manages the claim: the retention policy
		// does not apply to it, and our references go.
		return refs, true, true
	}
	bySet, byPod := claimOwners(ps, condemned)
	if bySet {
		refs = append(refs, *metav1.NewControllerRef(ps, petSetKind))
	}
	if byPod {
		refs = append(refs, *metav1.NewControllerRef(pod, corev1.SchemeGroupVersion.WithKind("Pod")))
	}
	return refs, true, false
}

// sameRefs compares owner references as sets by UID and controller flag.
func sameRefs(a, b []metav1.OwnerReference) bool {
	key := func(refs []metav1.OwnerReference) []string {
		var out []string
		for _, r := range refs {
			out = append(out, string(r.UID)+"/"+strconv.FormatBool(r.Controller != nil && *r.Controller))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// ConditionRetentionApplied says whether the retention policy is carried
// by every pet's claims. False with reason ConflictingController names the
// claims that have another controller, which the policy leaves alone.
const ConditionRetentionApplied = "RetentionApplied"

// retentionCondition is the RetentionApplied condition for the claims
// with another controller that syncClaimRefs found.
func retentionCondition(ps *v1alpha1.PetSet, foreign []string) *metav1.Condition {
	c := &metav1.Condition{Type: ConditionRetentionApplied, Status: metav1.ConditionTrue, Reason: "NoConflict",
		Message: "every claim carries the retention policy", ObservedGeneration: ps.Generation}
	if len(foreign) > 0 {
		slices.Sort(foreign)
		c.Status, c.Reason = metav1.ConditionFalse, "ConflictingController"
		c.Message = "the retention policy is not applied to claims with another controller: " + strings.Join(foreign, ", ")
	}
	return c
}

// announced is what this process last told of a set: the held pets its
// Ready condition named and the claims with another controller it warned
// of, so that each is an event once, not one on every pass.
type announced struct {
	uid     types.UID
	held    map[heldKey]bool
	foreign map[string]bool
}

// announcedOf returns the record of ps, a fresh one for a set not seen
// before or replaced by another of the same name.
func (r *Reconciler) announcedOf(ps *v1alpha1.PetSet) *announced {
	key := client.ObjectKeyFromObject(ps)
	if v, ok := r.announced.Load(key); ok {
		if a := v.(*announced); a.uid == ps.UID {
			return a
		}
	}
	a := &announced{uid: ps.UID}
	r.announced.Store(key, a)
	return a
}

// syncClaimRefs gives the claims of pets with pods the policy's owner
// references and pet labels, before any pet is deleted. It returns the claims
// another controller keeps from the policy, with a Warning for each new one.
func (r *Reconciler) syncClaimRefs(ctx context.Context, ps *v1alpha1.PetSet, owned map[int]*corev1.Pod, start, end int) ([]string, error) {
	var errs []error
	var conflicting []string
	said := r.announcedOf(ps)
	// A wanted pet without a pod now (being made again) keeps the
	// claims the last pass returned: they are looked at again once it
	// has one, and a replaced pod is no news.
	for o := start; o < end; o++ {
		if owned[o] != nil {
			continue
		}
		for _, t := range ps.Spec.VolumeClaimTemplates {
			if name := ClaimName(t.Name, ps.Name, o); said.foreign[name] {
				conflicting = append(conflicting, name)
			}
		}
	}
	for o, pod := range owned {
		condemned := o < start || o >= end
		for _, t := range ps.Spec.VolumeClaimTemplates {
			claim := &corev1.PersistentVolumeClaim{}
			err := r.petClaim(ctx, ps, types.NamespacedName{Namespace: ps.Namespace, Name: ClaimName(t.Name, ps.Name, o)}, claim)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if claim.DeletionTimestamp != nil {
				continue
			}
			refs, touch, foreign := wantRefs(claim, ps, o, pod, condemned)
			if !touch {
				continue
			}
			if foreign && policyOf(ps) != (v1alpha1.RetentionPolicy{WhenDeleted: v1alpha1.Retain, WhenScaled: v1alpha1.Retain}) {
				conflicting = append(conflicting, claim.Name)
				if !said.foreign[claim.Name] {
					r.event(ps, corev1.EventTypeWarning, "ConflictingController", "RetainClaim",
						"claim %s has another controller: the retention policy is not applied to it", claim.Name)
				}
			}
			// Another controller's claim only loses our references; it
			// is not labelled as ours.
			labelled := foreign || claim.Labels[LabelSetName] == ps.Name && claim.Labels[LabelPodIndex] == strconv.Itoa(o)
			if sameRefs(refs, claim.OwnerReferences) && labelled {
				continue
			}
			orig := claim.DeepCopy()
			claim.OwnerReferences = refs
			if !foreign {
				if claim.Labels == nil {
					claim.Labels = map[string]string{}
				}
				claim.Labels[LabelSetName] = ps.Name
				claim.Labels[LabelPodIndex] = strconv.Itoa(o)
			}
			if err := r.Patch(ctx, claim, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
				if !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("owner references of claim %s: %w", claim.Name, err))
				}
				continue
			}
			operations.WithLabelValues("update_claim_owners").Inc()
		}
	}
	if len(errs) > 0 {
		return conflicting, errors.Join(errs...)
	}
	said.foreign = map[string]bool{}
	for _, name := range conflicting {
		said.foreign[name] = true
	}
	return conflicting, nil
}

// claimHold says why pet ordinal may not be made now: a claim of it is being
// deleted, or about to be (a stale owner). Such a claim is never reused: the
// pet gets a fresh one once it is gone.
func (r *Reconciler) claimHold(ctx context.Context, ps *v1alpha1.PetSet, ordinal int) (Wait, error) {
	for _, t := range ps.Spec.VolumeClaimTemplates {
		name := ClaimName(t.Name, ps.Name, ordinal)
		claim := &corev1.PersistentVolumeClaim{}
		err := r.getClaim(ctx, types.NamespacedName{Namespace: ps.Namespace, Name: name}, claim)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return Wait{}, err
		}
		if claim.DeletionTimestamp != nil {
			return heldBy(HeldClaimGoing, ordinal, name, ""), nil
		}
		if ref := staleRef(claim, ps, ordinal, nil); ref != nil {
			return heldBy(HeldClaimStale, ordinal, name, ref.Kind+" "+ref.Name), nil
		}
	}
	return Wait{}, nil
}

// holdBack moves the creates a pod or claim holds back into plan.Held, with an
// event for each the Ready condition names anew. claimHeld: a pet waits for a
// claim, maybe outside the cache, so the set must look again on a timer.
func (r *Reconciler) holdBack(ctx context.Context, ps *v1alpha1.PetSet, plan Plan, own ownership) (_ Plan, claimHeld bool, _ error) {
	var create []int
	for _, o := range plan.Create {
		h, blocked := own.blocked[o]
		if !blocked {
			var err error
			if h, err = r.claimHold(ctx, ps, o); err != nil {
				return plan, false, err
			}
			claimHeld = claimHeld || h.Kind != WaitNone
		}
		if h.Kind != WaitNone {
			plan.Held = append(plan.Held, h)
			continue
		}
		create = append(create, o)
	}
	plan.Create = create
	// Pets past the bound are only counted in the message, so a
	// thousand held pets are not a thousand events a pass.
	said := r.announcedOf(ps)
	named := map[heldKey]bool{}
	for _, h := range plan.Held[:min(len(plan.Held), maxReasons)] {
		named[h.key()] = true
		if !said.held[h.key()] {
			kind, reason := h.event()
			if r.Recorder != nil {
				r.Recorder.Eventf(ps, h.related(ps.Namespace), kind, reason, "CreatePod", "%s", h.String())
			}
		}
	}
	said.held = named
	return plan, claimHeld, nil
}

// createMissingClaims makes the missing claims of wanted pets still Pending, as
// StatefulSet does: a claim deleted after its pod was made would otherwise
// leave the pod Pending for ever.
func (r *Reconciler) createMissingClaims(ctx context.Context, ps *v1alpha1.PetSet, owned map[int]*corev1.Pod, want Want) error {
	if len(ps.Spec.VolumeClaimTemplates) == 0 {
		return nil
	}
	var errs []error
	for o, pod := range owned {
		if o < want.Start || o >= want.End || pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodPending || pod.Spec.NodeName != "" {
			continue
		}
		if err := r.Pets.CreateClaims(ctx, ps, o); err != nil && !errors.Is(err, ErrClaimTerminating) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
