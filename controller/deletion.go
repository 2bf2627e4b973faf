package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// LegacyFinalizer is the finalizer earlier versions put on every PetSet to
// scale it to zero in order before it went. PetSets no longer carry one,
// as StatefulSets carry none: the pods and the claims the retention policy
// gives to the set have the set as their controller, so the garbage
// collector deletes them (or orphans them, under orphan propagation) and
// uninstalling the controller never leaves a PetSet stuck terminating.
// For an ordered shutdown, scale to zero before deleting, as with a
// StatefulSet. The controller removes this finalizer where it finds it;
// without the controller, a JSON patch that tests and removes its entry
// in metadata.finalizers does (README.md shows it).
const LegacyFinalizer = "petset.dev/ordered-deletion"

// dropFinalizer removes LegacyFinalizer with a patch that fails if the
// set changed meanwhile, leaving other finalizers (the garbage
// collector's orphan and foregroundDeletion) alone.
//
// A set that was already being deleted when the controller was upgraded
// relied on the earlier version to delete its claims by label. Before the
// finalizer goes, its claims are given the set as their controller when
// whenDeleted is Delete, so the garbage collector deletes them instead of
// leaking them (see giveClaimsToSet).
func (r *Reconciler) dropFinalizer(ctx context.Context, ps *v1alpha1.PetSet) error {
	if !controllerutil.ContainsFinalizer(ps, LegacyFinalizer) {
		return nil
	}
	if err := r.giveClaimsToSet(ctx, ps); err != nil {
		return err
	}
	orig := ps.DeepCopy()
	controllerutil.RemoveFinalizer(ps, LegacyFinalizer)
	if err := r.Patch(ctx, ps, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("remove finalizer %s: %w", LegacyFinalizer, err))
	}
	return nil
}

// releaseOldRevisions helps the garbage collector orphan the revisions of
// a set deleted with orphan propagation. Revisions made by earlier
// versions stored their data with keys in struct order; the garbage
// collector's patch re-encodes the data with sorted keys and is refused
// with "data: field is immutable", so `kubectl delete --cascade=orphan`
// never finished. For those revisions only, the controller removes the
// set's owner reference itself with an update, which sends the data back
// byte for byte; canonical revisions are left to the garbage collector.
func (r *Reconciler) releaseOldRevisions(ctx context.Context, ps *v1alpha1.PetSet) error {
	if ps.DeletionTimestamp == nil || !controllerutil.ContainsFinalizer(ps, metav1.FinalizerOrphanDependents) {
		return nil
	}
	var list appsv1.ControllerRevisionList
	if err := r.List(ctx, &list, client.InNamespace(ps.Namespace), client.MatchingLabels{LabelSetName: ps.Name}); err != nil {
		return fmt.Errorf("list controller revisions: %w", err)
	}
	var errs []error
	for i := range list.Items {
		cr := &list.Items[i]
		var refs []metav1.OwnerReference
		for _, ref := range cr.OwnerReferences {
			if ref.UID != ps.UID {
				refs = append(refs, ref)
			}
		}
		if len(refs) == len(cr.OwnerReferences) {
			continue // not ours
		}
		if c, err := canonicalJSON(cr.Data.Raw); err == nil && bytes.Equal(c, cr.Data.Raw) {
			continue // the garbage collector can patch it
		}
		cr.OwnerReferences = refs
		// The resource version makes this fail on a concurrent change;
		// the next pass retries.
		if err := r.Update(ctx, cr); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("orphan controller revision %s: %w", cr.Name, err))
		}
	}
	return errors.Join(errs...)
}

// giveClaimsToSet gives a set being deleted with background or foreground
// propagation and whenDeleted: Delete the claims earlier versions made for
// it without owner references: claims with the set's pet labels, named
// as one of its claim templates names the claim of that pet, for an
// ordinal the set uses (in [start, start+replicas), or a member in its
// status), with no controller and not being deleted. A claim of another
// ordinal may be kept from an earlier set of the same name, so it is kept,
// never deleted by a label match. Under orphan propagation nothing is
// given: the claims are kept, and a reference added while the garbage
// collector orphans would make it delete them. The patches fail on a
// concurrent change; the next pass retries.
func (r *Reconciler) giveClaimsToSet(ctx context.Context, ps *v1alpha1.PetSet) error {
	if ps.DeletionTimestamp == nil || controllerutil.ContainsFinalizer(ps, metav1.FinalizerOrphanDependents) ||
		policyOf(ps).WhenDeleted != v1alpha1.Delete {
		return nil
	}
	var list corev1.PersistentVolumeClaimList
	if err := r.List(ctx, &list, client.InNamespace(ps.Namespace), client.MatchingLabels{LabelSetName: ps.Name}); err != nil {
		return fmt.Errorf("list claims: %w", err)
	}
	start, end := Range(ps)
	used := func(o int) bool {
		if o >= start && o < end {
			return true
		}
		for _, m := range ps.Status.Members {
			if int(m.Ordinal) == o {
				return true
			}
		}
		return false
	}
	var errs []error
	for i := range list.Items {
		claim := &list.Items[i]
		if claim.DeletionTimestamp != nil || metav1.GetControllerOf(claim) != nil || !isSetClaim(ps, claim, used) {
			continue
		}
		orig := claim.DeepCopy()
		claim.OwnerReferences = append(claim.OwnerReferences, *metav1.NewControllerRef(ps, petSetKind))
		if err := r.Patch(ctx, claim, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("give claim %s to the set: %w", claim.Name, err))
		}
	}
	return errors.Join(errs...)
}

// isSetClaim reports whether claim is named as ps names the claim of the
// pet its pod-index label says, and that pet's ordinal is used.
func isSetClaim(ps *v1alpha1.PetSet, claim *corev1.PersistentVolumeClaim, used func(int) bool) bool {
	o, err := strconv.Atoi(claim.Labels[LabelPodIndex])
	if err != nil || o < 0 || !used(o) {
		return false
	}
	for _, t := range ps.Spec.VolumeClaimTemplates {
		if claim.Name == ClaimName(t.Name, ps.Name, o) {
			return true
		}
	}
	return false
}
