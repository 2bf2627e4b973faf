package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// revisionData is what a ControllerRevision of a PetSet records: the pod
// template, the part of the spec whose change is a new revision.
func revisionData(ps *v1alpha1.PetSet) ([]byte, error) {
	return json.Marshal(map[string]any{"spec": map[string]any{"template": ps.Spec.Template}})
}

// syncRevisions makes sure the ControllerRevision of the current template
// exists and is the newest (a rollback to an old template renumbers it),
// and prunes revisions beyond revisionHistoryLimit that no pet uses. It
// returns the update revision's name.
func (r *Reconciler) syncRevisions(ctx context.Context, ps *v1alpha1.PetSet, inUse map[string]bool) (string, error) {
	name := Revision(ps)
	data, err := revisionData(ps)
	if err != nil {
		return "", err
	}
	var list appsv1.ControllerRevisionList
	if err := r.List(ctx, &list, client.InNamespace(ps.Namespace), client.MatchingLabels{LabelSetName: ps.Name}); err != nil {
		return "", err
	}
	var owned []*appsv1.ControllerRevision
	var newest int64
	var current *appsv1.ControllerRevision
	for i := range list.Items {
		cr := &list.Items[i]
		if ref := metav1.GetControllerOf(cr); ref == nil || ref.UID != ps.UID {
			continue
		}
		owned = append(owned, cr)
		newest = max(newest, cr.Revision)
		if cr.Name == name {
			current = cr
		}
	}
	switch {
	case current == nil:
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Namespace: ps.Namespace, Name: name, Labels: map[string]string{LabelSetName: ps.Name}},
			Data:       runtime.RawExtension{Raw: data},
			Revision:   newest + 1,
		}
		for k, v := range ps.Spec.Selector.MatchLabels {
			cr.Labels[k] = v
		}
		if err := controllerutil.SetControllerReference(ps, cr, r.Scheme()); err != nil {
			return "", err
		}
		if err := r.Create(ctx, cr); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("controller revision %s: %w", name, err)
		}
		owned = append(owned, cr)
	case current.Revision < newest:
		current.Revision = newest + 1 // back to an older template: it is the newest again
		if err := r.Update(ctx, current); err != nil {
			return "", err
		}
	}

	limit := 10
	if ps.Spec.RevisionHistoryLimit != nil {
		limit = int(*ps.Spec.RevisionHistoryLimit)
	}
	var old []*appsv1.ControllerRevision
	for _, cr := range owned {
		if cr.Name != name && cr.Name != ps.Status.CurrentRevision && !inUse[cr.Name] {
			old = append(old, cr)
		}
	}
	slices.SortFunc(old, func(a, b *appsv1.ControllerRevision) int { return int(a.Revision - b.Revision) })
	for len(old) > limit {
		if err := r.Delete(ctx, old[0]); err != nil && !apierrors.IsNotFound(err) {
			return "", err
		}
		old = old[1:]
	}
	return name, nil
}
