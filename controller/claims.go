package controller

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// ConditionClaimsResized is False while a claim is smaller than its template:
// reason Resizing while the volume grows, ExpansionNotAllowed when its
// StorageClass forbids it.
const ConditionClaimsResized = "ClaimsResized"

// expandClaims raises the storage request of existing claims of wanted pets
// to their template's, where the claim's StorageClass allows expansion,
// and returns the ClaimsResized condition.
func (r *Reconciler) expandClaims(ctx context.Context, ps *v1alpha1.PetSet, want Want) (*metav1.Condition, error) {
	if len(ps.Spec.VolumeClaimTemplates) == 0 {
		return nil, nil
	}
	var list corev1.PersistentVolumeClaimList
	if err := r.List(ctx, &list, client.InNamespace(ps.Namespace), client.MatchingLabels{LabelSetName: ps.Name}); err != nil {
		return nil, err
	}
	byName := map[string]*corev1.PersistentVolumeClaim{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	var forbidden, resizing []string
	classes := map[string]bool{} // expandable, by class: one read per class per pass
	for o := want.Start; o < want.End; o++ {
		for _, t := range ps.Spec.VolumeClaimTemplates {
			wantSize, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]
			claim := byName[ClaimName(t.Name, ps.Name, o)]
			if !ok || claim == nil || claim.DeletionTimestamp != nil {
				continue
			}
			have := claim.Spec.Resources.Requests[corev1.ResourceStorage]
			if have.Cmp(wantSize) < 0 {
				class := ""
				if claim.Spec.StorageClassName != nil {
					class = *claim.Spec.StorageClassName
				}
				allowed, seen := classes[class]
				if !seen {
					var err error
					if allowed, err = r.expandable(ctx, claim); err != nil {
						return nil, err
					}
					classes[class] = allowed
				}
				if !allowed {
					forbidden = append(forbidden, claim.Name)
					continue
				}
				if err := r.Pets.ExpandClaim(ctx, ps, claim, wantSize); err != nil {
					return nil, err
				}
			}
			// A claim not yet bound has no capacity and is not being
			// resized: counting it would flip the condition, and write
			// status twice, for every new claim.
			if claim.Status.Phase != corev1.ClaimBound {
				continue
			}
			if capacity, ok := claim.Status.Capacity[corev1.ResourceStorage]; !ok || capacity.Cmp(wantSize) < 0 {
				resizing = append(resizing, claim.Name)
			}
		}
	}
	cond := &metav1.Condition{Type: ConditionClaimsResized, Status: metav1.ConditionTrue, Reason: "AllClaimsResized", Message: "every claim has the storage its template asks for", ObservedGeneration: ps.Generation}
	switch {
	case len(forbidden) > 0:
		slices.Sort(forbidden)
		cond.Status, cond.Reason = metav1.ConditionFalse, "ExpansionNotAllowed"
		cond.Message = "the StorageClass of " + strings.Join(forbidden, ", ") + " does not allow volume expansion"
	case len(resizing) > 0:
		slices.Sort(resizing)
		cond.Status, cond.Reason = metav1.ConditionFalse, "Resizing"
		cond.Message = "waiting for the volumes of " + strings.Join(resizing, ", ") + " to grow"
	}
	return cond, nil
}

// expandable reports whether a claim's StorageClass allows expansion. The class
// is read uncached: it is wanted only while a claim is smaller than its
// template, and a cache would watch every StorageClass for good.
func (r *Reconciler) expandable(ctx context.Context, claim *corev1.PersistentVolumeClaim) (bool, error) {
	if claim.Spec.StorageClassName == nil || *claim.Spec.StorageClassName == "" {
		return false, nil
	}
	var sc storagev1.StorageClass
	uncachedReads.WithLabelValues("get", "storageclasses").Inc()
	if err := r.uncached().Get(ctx, client.ObjectKey{Name: *claim.Spec.StorageClassName}, &sc); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion, nil
}
