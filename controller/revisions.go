package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// RevisionHashLen is how many hex digits end a revision name, <set>-<hash>,
// the petset.dev/revision label's value: a set name is at most
// 63 - 1 - RevisionHashLen = 54 characters (the CRD enforces it).
const RevisionHashLen = 8

// maxCollisions bounds the names tried for one template before giving up
// with an error: each name taken by a revision with other data costs one.
const maxCollisions = 100

// revisionData is what a ControllerRevision of a PetSet records: the pod
// template, the only part of the spec that makes pets different, as
// {"spec":{"template":...}} in canonical JSON.
func revisionData(t *corev1.PodTemplateSpec) ([]byte, error) {
	b, err := json.Marshal(map[string]any{"spec": map[string]any{"template": t}})
	if err != nil {
		return nil, fmt.Errorf("revision data: %w", err)
	}
	return canonicalJSON(b)
}

// canonicalJSON re-encodes JSON as the API server does on a patch (keys
// sorted, numbers kept): revision data is immutable, so in any other form every
// patch of the revision fails, the garbage collector's too.
func canonicalJSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("canonical json: data after the document")
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return out, nil
}

// revisionName is <set>-<hash of data and collision count>, as StatefulSet
// names revisions (history.HashControllerRevision); a name taken by other data
// is a collision, and the next count gives the next name.
func revisionName(set string, data []byte, collisionCount int32) string {
	h := fnv.New32a()
	h.Write(data)
	h.Write([]byte(strconv.FormatInt(int64(collisionCount), 10)))
	return fmt.Sprintf("%s-%0*x", set, RevisionHashLen, h.Sum32())
}

// namedAt is the collision count, from count up, that gives the revision
// of data its name: a pass that reads the set before the status with that
// count was written finds it again, rather than lowering the count.
func namedAt(set string, data []byte, name string, count int32) int32 {
	for c := count; c < count+maxCollisions; c++ {
		if revisionName(set, data, c) == name {
			return c
		}
	}
	return count // a name not made from data: adopted, or renamed
}

// Revision is the name the revision of ps's template gets at its
// status.collisionCount when no revision with the same data exists yet.
// The controller reports the name it used in status.updateRevision.
func Revision(ps *v1alpha1.PetSet) string {
	data, err := revisionData(&ps.Spec.Template)
	if err != nil {
		return ""
	}
	return revisionName(ps.Name, data, collisionCount(ps))
}

func collisionCount(ps *v1alpha1.PetSet) int32 {
	if ps.Status.CollisionCount == nil {
		return 0
	}
	return *ps.Status.CollisionCount
}

// templateOf decodes the pod template a revision recorded.
func templateOf(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var d struct {
		Spec struct {
			Template *corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &d); err != nil {
		return nil, fmt.Errorf("controller revision %s: %w", cr.Name, err)
	}
	if d.Spec.Template == nil {
		return nil, fmt.Errorf("controller revision %s: no spec.template in its data", cr.Name)
	}
	return d.Spec.Template, nil
}

// revisions is what syncRevisions found and made: the update revision
// (the template in the spec), the current one (the pets' before the
// update in progress) and the collision count for status.
type revisions struct {
	update, current string
	collisionCount  int32
	byName          map[string]*appsv1.ControllerRevision
}

// setAt is ps with the pod template revision name stored (ps itself for the
// update revision): only the template is a revision's.
func (rs *revisions) setAt(ps *v1alpha1.PetSet, name string) (*v1alpha1.PetSet, error) {
	if name == rs.update {
		return ps, nil
	}
	cr := rs.byName[name]
	if cr == nil {
		return nil, fmt.Errorf("controller revision %s not found", name)
	}
	t, err := templateOf(cr)
	if err != nil {
		return nil, err
	}
	set := ps.DeepCopy()
	set.Spec.Template = *t
	return set, nil
}

// syncRevisions finds or makes the current template's revision, as
// StatefulSet's getStatefulSetRevisions: matched by data (renumbered on a
// rollback), orphans adopted, unused ones pruned past revisionHistoryLimit.
func (r *Reconciler) syncRevisions(ctx context.Context, ps *v1alpha1.PetSet, inUse map[string]bool) (*revisions, error) {
	data, err := revisionData(&ps.Spec.Template)
	if err != nil {
		return nil, err
	}
	selector, err := metav1.LabelSelectorAsSelector(ps.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	var list appsv1.ControllerRevisionList
	if err := r.List(ctx, &list, client.InNamespace(ps.Namespace), client.MatchingLabels{LabelSetName: ps.Name}); err != nil {
		return nil, err
	}
	rs := &revisions{collisionCount: collisionCount(ps), byName: map[string]*appsv1.ControllerRevision{}}
	var owned []*appsv1.ControllerRevision
	checked := false
	for i := range list.Items {
		cr := &list.Items[i]
		ref := metav1.GetControllerOf(cr)
		if ref == nil && cr.DeletionTimestamp == nil && selector.Matches(labels.Set(cr.Labels)) {
			// A fresh read of the set first, once a pass, as for pods: a set
			// the cache holds after it was deleted or replaced adopts nothing.
			if !checked {
				if err := r.canAdopt(ctx, ps); err != nil {
					return nil, fmt.Errorf("adopt controller revisions: %w", err)
				}
				checked = true
			}
			if err := r.adoptRevision(ctx, ps, cr); err != nil {
				return nil, err
			}
			ref = metav1.GetControllerOf(cr)
		}
		if ref == nil || ref.UID != ps.UID {
			continue
		}
		owned = append(owned, cr)
		rs.byName[cr.Name] = cr
	}
	slices.SortStableFunc(owned, func(a, b *appsv1.ControllerRevision) int {
		switch {
		case a.Revision != b.Revision:
			return int(a.Revision - b.Revision)
		case !a.CreationTimestamp.Equal(&b.CreationTimestamp):
			return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
		}
		return 0
	})
	var newest int64
	if n := len(owned); n > 0 {
		newest = owned[n-1].Revision
	}

	var update *appsv1.ControllerRevision
	for _, cr := range owned {
		if bytes.Equal(cr.Data.Raw, data) {
			update = cr // the last one: the highest revision
		}
	}
	switch {
	case update != nil && update.Revision < newest:
		// Back to an older template: it is the newest again.
		update.Revision = newest + 1
		if err := r.Update(ctx, update); err != nil {
			return nil, fmt.Errorf("controller revision %s: %w", update.Name, err)
		}
	case update == nil:
		if update, err = r.createRevision(ctx, ps, data, newest+1, &rs.collisionCount); err != nil {
			return nil, err
		}
		owned = append(owned, update)
		rs.byName[update.Name] = update
	}
	rs.collisionCount = namedAt(ps.Name, data, update.Name, rs.collisionCount)
	rs.update = update.Name
	rs.current = rs.update
	if rs.byName[ps.Status.CurrentRevision] != nil {
		rs.current = ps.Status.CurrentRevision
	}

	limit := 10
	if ps.Spec.RevisionHistoryLimit != nil {
		limit = int(*ps.Spec.RevisionHistoryLimit)
	}
	var old []*appsv1.ControllerRevision
	for _, cr := range owned {
		if cr.Name != rs.update && cr.Name != rs.current && !inUse[cr.Name] {
			old = append(old, cr)
		}
	}
	for len(old) > limit {
		if err := r.Delete(ctx, old[0], client.Preconditions{UID: &old[0].UID}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("prune controller revision %s: %w", old[0].Name, err)
		}
		delete(rs.byName, old[0].Name)
		old = old[1:]
	}
	return rs, nil
}

// createRevision creates the revision of data, trying names until one is
// free or already holds the same data for this set (a cache that has not
// seen it yet). Each name held by other data bumps *collisions.
func (r *Reconciler) createRevision(ctx context.Context, ps *v1alpha1.PetSet, data []byte, number int64, collisions *int32) (*appsv1.ControllerRevision, error) {
	for range maxCollisions {
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ps.Namespace,
				Name:      revisionName(ps.Name, data, *collisions),
				Labels:    map[string]string{LabelSetName: ps.Name},
			},
			Data:     runtime.RawExtension{Raw: data},
			Revision: number,
		}
		// The template's labels, as StatefulSet labels its revisions: the
		// selector matches them, so an orphaned revision can be adopted.
		for k, v := range ps.Spec.Template.Labels {
			cr.Labels[k] = v
		}
		cr.Labels[LabelSetName] = ps.Name
		if err := controllerutil.SetControllerReference(ps, cr, r.Scheme()); err != nil {
			return nil, err
		}
		err := r.Create(ctx, cr)
		if err == nil {
			return cr, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("controller revision %s: %w", cr.Name, err)
		}
		// Read from the API server: the revision holding the name may
		// be one the cache does not hold (not labelled as a set's).
		var have appsv1.ControllerRevision
		uncachedReads.WithLabelValues("get", "controllerrevisions").Inc()
		if err := r.uncached().Get(ctx, client.ObjectKeyFromObject(cr), &have); err != nil {
			return nil, fmt.Errorf("controller revision %s exists: %w", cr.Name, err)
		}
		if ref := metav1.GetControllerOf(&have); ref != nil && ref.UID == ps.UID && bytes.Equal(have.Data.Raw, data) {
			return &have, nil
		}
		*collisions++
	}
	return nil, fmt.Errorf("controller revision for %s: %d names taken by other revisions", ps.Name, maxCollisions)
}

// adoptRevision makes ps the controller of an orphaned revision of its
// name, with an update that fails if the revision changed meanwhile.
func (r *Reconciler) adoptRevision(ctx context.Context, ps *v1alpha1.PetSet, cr *appsv1.ControllerRevision) error {
	if err := controllerutil.SetControllerReference(ps, cr, r.Scheme()); err != nil {
		return err
	}
	if err := r.Update(ctx, cr); err != nil {
		return fmt.Errorf("adopt controller revision %s: %w", cr.Name, err)
	}
	return nil
}
