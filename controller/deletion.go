package controller

import (
	"context"
	"fmt"

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
