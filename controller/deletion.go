package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
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
func (r *Reconciler) dropFinalizer(ctx context.Context, ps *v1alpha1.PetSet) error {
	if !controllerutil.ContainsFinalizer(ps, LegacyFinalizer) {
		return nil
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
