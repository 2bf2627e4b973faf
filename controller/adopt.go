package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// ConditionPetsOwned is False, reason PodConflict, while a pod of someone
// else holds a wanted pet's name: the pet is not made until the pod goes.
const ConditionPetsOwned = "PetsOwned"

// petSetKind is the kind owner references to a PetSet carry.
var petSetKind = v1alpha1.GroupVersion.WithKind("PetSet")

// ownership is what claimPods found: the set's pets by ordinal, and the
// ordinals whose pod name is held by a pod the set may not take, with why.
type ownership struct {
	owned   map[int]*corev1.Pod
	blocked map[int]Wait
}

// claimPods is ControllerRefManager.ClaimPods for pets, over the cache and the
// pods outside it: matching orphans named like pets are adopted, pets that stop
// matching released, and any other pod with a pet's name holds that pet back.
func (r *Reconciler) claimPods(ctx context.Context, ps *v1alpha1.PetSet, selector labels.Selector) (ownership, error) {
	own := ownership{owned: map[int]*corev1.Pod{}, blocked: map[int]Wait{}}
	pods, fresh, err := r.podsOf(ctx, ps, selector)
	if err != nil {
		return own, err
	}
	deleting := ps.DeletionTimestamp != nil
	var errs []error
	var adoptable error // canAdopt's answer, once checked
	checked := false
	for _, pod := range pods {
		o := Ordinal(ps.Name, pod.Name)
		match := o >= 0 && selector.Matches(labels.Set(pod.Labels))
		ref := metav1.GetControllerOf(pod)
		switch {
		case ref != nil && ref.UID == ps.UID:
			if match && fresh[pod.Name] != nil && pod.Labels[LabelSetName] != ps.Name && !deleting {
				// Ours, but outside the cache: label it back in.
				labelled, err := r.relabel(ctx, ps, pod)
				if err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, err)
				}
				if err == nil {
					pod = labelled
				}
			}
			if match {
				own.owned[o] = pod
				continue
			}
			if deleting {
				continue
			}
			if err := r.release(ctx, ps, pod); err != nil {
				errs = append(errs, err)
			}
			if o >= 0 {
				own.blocked[o] = heldBy(HeldReleased, o, pod.Name, "")
			}
		case ref != nil:
			if o >= 0 {
				own.blocked[o] = heldBy(HeldByController, o, pod.Name, ref.Kind+" "+ref.Name)
			}
		case !match:
			if o >= 0 {
				own.blocked[o] = heldBy(HeldByMismatch, o, pod.Name, "")
			}
		case pod.DeletionTimestamp != nil:
			own.blocked[o] = heldBy(HeldOrphanGoing, o, pod.Name, "")
		case deleting:
		default:
			if !checked {
				adoptable, checked = r.canAdopt(ctx, ps), true
			}
			if adoptable != nil {
				errs = append(errs, fmt.Errorf("adopt pod %s: %w", pod.Name, adoptable))
				own.blocked[o] = heldBy(HeldNotAdoptable, o, pod.Name, "")
				continue
			}
			adopted, err := r.adopt(ctx, ps, pod, o)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				errs = append(errs, err)
				own.blocked[o] = heldBy(HeldNotAdoptable, o, pod.Name, "")
			default:
				own.owned[o] = adopted
			}
		}
	}
	r.keepOutside(ps, selector, fresh, own)
	return own, errors.Join(errs...)
}

// canAdopt reads the set from the API server, not the cache, and refuses
// if it is gone, replaced by another of the same name, or being deleted:
// a stale cache must not make a deleted set take pods.
func (r *Reconciler) canAdopt(ctx context.Context, ps *v1alpha1.PetSet) error {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	fresh := &v1alpha1.PetSet{}
	if err := reader.Get(ctx, client.ObjectKeyFromObject(ps), fresh); err != nil {
		return fmt.Errorf("read PetSet %s/%s: %w", ps.Namespace, ps.Name, err)
	}
	if fresh.UID != ps.UID {
		return fmt.Errorf("PetSet %s/%s is gone: uid %s, want %s", ps.Namespace, ps.Name, fresh.UID, ps.UID)
	}
	if fresh.DeletionTimestamp != nil {
		return fmt.Errorf("PetSet %s/%s is being deleted", ps.Namespace, ps.Name)
	}
	return nil
}

// adopt makes the set the controller of an orphan pod and labels it a pet, in
// one patch carrying the pod's UID so a replacement is not touched; the
// revision label only if the pod is what the set would make (adoptedRevision).
func (r *Reconciler) adopt(ctx context.Context, ps *v1alpha1.PetSet, pod *corev1.Pod, ordinal int) (*corev1.Pod, error) {
	want := map[string]string{
		LabelPodName:  pod.Name,
		LabelPodIndex: strconv.Itoa(ordinal),
		LabelSetName:  ps.Name,
	}
	if _, ok := pod.Labels[LabelRevision]; !ok {
		if rev := adoptedRevision(ps, pod, ordinal); rev != "" {
			want[LabelRevision] = rev
		}
	}
	add := map[string]string{}
	for k, v := range want {
		if pod.Labels[k] != v {
			add[k] = v
		}
	}
	ref := metav1.NewControllerRef(ps, petSetKind)
	meta := map[string]any{"uid": pod.UID, "ownerReferences": []metav1.OwnerReference{*ref}}
	if len(add) > 0 {
		meta["labels"] = add
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return nil, err
	}
	out := pod.DeepCopy()
	if err := r.Patch(ctx, out, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return nil, fmt.Errorf("adopt pod %s: %w", pod.Name, err)
	}
	operations.WithLabelValues("adopt_pod").Inc()
	r.event(ps, corev1.EventTypeNormal, "SuccessfulAdopt", "AdoptPod", "pod %s", pod.Name)
	return out, nil
}

// release removes the set's controller reference from a pod that no
// longer matches, by UID, in a patch that carries the pod's UID.
func (r *Reconciler) release(ctx context.Context, ps *v1alpha1.PetSet, pod *corev1.Pod) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":             pod.UID,
		"ownerReferences": []map[string]any{{"$patch": "delete", "uid": ps.UID}},
	}})
	if err != nil {
		return err
	}
	err = r.Patch(ctx, pod.DeepCopy(), client.RawPatch(types.StrategicMergePatchType, patch))
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		return nil // gone, or already not ours
	}
	if err != nil {
		return fmt.Errorf("release pod %s: %w", pod.Name, err)
	}
	operations.WithLabelValues("release_pod").Inc()
	r.event(ps, corev1.EventTypeNormal, "SuccessfulRelease", "ReleasePod", "pod %s no longer matches the selector", pod.Name)
	return nil
}

// ownedCondition is the PetsOwned condition for what claimPods found.
func ownedCondition(ps *v1alpha1.PetSet, own ownership) *metav1.Condition {
	c := &metav1.Condition{Type: ConditionPetsOwned, Status: metav1.ConditionTrue, Reason: "NoConflict",
		Message: "no pod holds a pet's name for someone else", ObservedGeneration: ps.Generation}
	var msgs []string
	for _, o := range slices.Sorted(maps.Keys(own.blocked)) {
		if w := own.blocked[o]; w.conflict() {
			msgs = append(msgs, w.String())
		}
	}
	if len(msgs) > 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "PodConflict", strings.Join(msgs, "; ")
	}
	return c
}

// podSets maps a pod to the sets that may care: its PetSet controller, else
// every set whose selector matches it or whose pet's name it has, so orphans
// are adopted and a held pet is looked at again when the pod changes.
func (r *Reconciler) podSets(ctx context.Context, o client.Object) []reconcile.Request {
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == petSetKind.Kind && ref.APIVersion == petSetKind.GroupVersion().String() {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}}}
	}
	var sets v1alpha1.PetSetList
	if err := r.List(ctx, &sets, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range sets.Items {
		ps := &sets.Items[i]
		member := Ordinal(ps.Name, o.GetName()) >= 0
		sel, err := metav1.LabelSelectorAsSelector(ps.Spec.Selector)
		if member || (err == nil && !sel.Empty() && sel.Matches(labels.Set(o.GetLabels()))) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ps)})
		}
	}
	return out
}

// event records an event on the set when the reconciler has a recorder.
func (r *Reconciler) event(ps *v1alpha1.PetSet, kind, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(ps, nil, kind, reason, action, note, args...)
	}
}
