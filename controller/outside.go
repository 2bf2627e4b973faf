package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// DefaultRecheckAfter is how often a set looks again at what holds it back
// outside the cache (pods with its pets' names, claims on their way out):
// no watch tells it when they go.
const DefaultRecheckAfter = 5 * time.Second

// outsideCache is what a set reads from the API server, as the cache holds only
// labelled pods: pods matching its selector once per generation, and on every
// pass each name in names (pods holding a pet's name, pets whose label went).
type outsideCache struct {
	uid        types.UID
	generation int64 // the last generation listed uncached; 0 for none
	names      map[string]bool
	// absent are the claims of pets with pods that the API server said
	// do not exist, at generation absentGen (see petClaim).
	absent    map[string]bool
	absentGen int64
}

// outsideOf returns the record of ps, a fresh one for a set not seen
// before or replaced by another of the same name.
func (r *Reconciler) outsideOf(ps *v1alpha1.PetSet) *outsideCache {
	key := client.ObjectKeyFromObject(ps)
	if v, ok := r.outside.Load(key); ok {
		if o := v.(*outsideCache); o.uid == ps.UID {
			return o
		}
	}
	o := &outsideCache{uid: ps.UID, names: map[string]bool{}}
	r.outside.Store(key, o)
	return o
}

// uncached is the reader that bypasses the cache: APIReader, or Client
// when there is none.
func (r *Reconciler) uncached() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// podsOf returns the pods claimPods looks at: the cache's, and those outside it
// that the set must see (outsideCache), which are also in fresh.
func (r *Reconciler) podsOf(ctx context.Context, ps *v1alpha1.PetSet, selector labels.Selector) (pods []*corev1.Pod, fresh map[string]*corev1.Pod, err error) {
	var cached corev1.PodList
	if err := r.List(ctx, &cached, client.InNamespace(ps.Namespace)); err != nil {
		return nil, nil, err
	}
	have := map[string]bool{}
	for i := range cached.Items {
		pods = append(pods, &cached.Items[i])
		have[cached.Items[i].Name] = true
	}
	out := r.outsideOf(ps)
	fresh = map[string]*corev1.Pod{}
	add := func(p *corev1.Pod) {
		if !have[p.Name] && fresh[p.Name] == nil {
			pods = append(pods, p)
			fresh[p.Name] = p
		}
	}
	if out.generation != ps.Generation || ps.Generation == 0 {
		var list corev1.PodList
		if err := r.uncached().List(ctx, &list, client.InNamespace(ps.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return nil, nil, fmt.Errorf("list pods outside the cache: %w", err)
		}
		for i := range list.Items {
			add(&list.Items[i])
		}
		uncachedReads.WithLabelValues("list", "pods").Inc()
		out.generation = ps.Generation
	}
	for _, name := range r.takeLeft(client.ObjectKeyFromObject(ps)) {
		out.names[name] = true
	}
	for name := range out.names {
		if have[name] {
			delete(out.names, name) // the cache has it now
			continue
		}
		if fresh[name] != nil {
			continue
		}
		p := &corev1.Pod{}
		uncachedReads.WithLabelValues("get", "pods").Inc()
		err := r.uncached().Get(ctx, types.NamespacedName{Namespace: ps.Namespace, Name: name}, p)
		switch {
		case apierrors.IsNotFound(err):
			delete(out.names, name)
		case err != nil:
			return nil, nil, fmt.Errorf("read pod %s outside the cache: %w", name, err)
		default:
			add(p)
		}
	}
	return pods, fresh, nil
}

// keepOutside keeps reading the outside pods the set took (until the cache has
// them), those holding a wanted pet back, and matching ones at an unwanted
// ordinal (a StatefulSet's, orphaned later, then adopted and condemned).
func (r *Reconciler) keepOutside(ps *v1alpha1.PetSet, selector labels.Selector, fresh map[string]*corev1.Pod, own ownership) {
	out := r.outsideOf(ps)
	start, end := Range(ps)
	for name, pod := range fresh {
		o := Ordinal(ps.Name, name)
		switch {
		case o < 0:
		case own.owned[o] != nil && own.owned[o].Name == name:
			out.names[name] = true
		case own.blocked[o].Kind == WaitNone:
			delete(out.names, name)
		case o >= start && o < end:
			out.names[name] = true
		case selector.Matches(labels.Set(pod.Labels)) && pod.DeletionTimestamp == nil:
			out.names[name] = true
		default:
			delete(out.names, name)
		}
	}
}

// podHandler is podSets' handler; on the delete event of a pod that was not
// being deleted it marks the name to be read uncached: the cache reports a pet
// whose LabelSetName label was removed as deleted, and the pass labels it back.
type podHandler struct {
	handler.EventHandler
	r *Reconciler
}

// podEvents is the handler of pod events.
func (r *Reconciler) podEvents() handler.EventHandler {
	return podHandler{EventHandler: handler.EnqueueRequestsFromMapFunc(r.podSets), r: r}
}

// Delete implements handler.EventHandler.
func (h podHandler) Delete(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if o := e.Object; o != nil && (o.GetDeletionTimestamp() == nil || e.DeleteStateUnknown) {
		for _, req := range h.r.podSets(ctx, o) {
			if Ordinal(req.Name, o.GetName()) >= 0 {
				h.r.leftCache(req.NamespacedName, o.GetName())
			}
		}
	}
	h.EventHandler.Delete(ctx, e, q)
}

// leftCache records that pod name of set key left the cache without
// being deleted first.
func (r *Reconciler) leftCache(key types.NamespacedName, name string) {
	r.leftMu.Lock()
	defer r.leftMu.Unlock()
	if r.left == nil {
		r.left = map[types.NamespacedName]map[string]bool{}
	}
	if r.left[key] == nil {
		r.left[key] = map[string]bool{}
	}
	r.left[key][name] = true
}

// takeLeft returns and forgets the names leftCache recorded for set key.
func (r *Reconciler) takeLeft(key types.NamespacedName) []string {
	r.leftMu.Lock()
	defer r.leftMu.Unlock()
	names := slices.Collect(maps.Keys(r.left[key]))
	delete(r.left, key)
	return names
}

// recheck marks a pet's pod name to be read from the API server on the
// next passes: its creation failed with AlreadyExists, so a pod the cache
// does not hold has that name.
func (r *Reconciler) recheck(ps *v1alpha1.PetSet, name string) {
	r.outsideOf(ps).names[name] = true
}

// recheckAfter is when the set must look again at pods outside the cache or
// at claims a pet waits for (claimHeld), zero when none: no watch event would
// bring it back when they change or go.
func (r *Reconciler) recheckAfter(ps *v1alpha1.PetSet, claimHeld bool) time.Duration {
	if len(r.outsideOf(ps).names) == 0 && !claimHeld {
		return 0
	}
	if r.RecheckAfter > 0 {
		return r.RecheckAfter
	}
	return DefaultRecheckAfter
}

// relabel puts the set's label on a pet of the set that lacks it (someone
// removed it), so the cache holds the pet again, with a patch that
// carries the pod's UID.
func (r *Reconciler) relabel(ctx context.Context, ps *v1alpha1.PetSet, pod *corev1.Pod) (*corev1.Pod, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":    pod.UID,
		"labels": map[string]string{LabelSetName: ps.Name},
	}})
	if err != nil {
		return nil, err
	}
	out := pod.DeepCopy()
	if err := r.Patch(ctx, out, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		return nil, fmt.Errorf("label pod %s: %w", pod.Name, err)
	}
	operations.WithLabelValues("label_pod").Inc()
	return out, nil
}

// getClaim reads a claim from the cache, else from the API server: a
// StatefulSet's claim is not in the cache until syncClaimRefs labels it.
func (r *Reconciler) getClaim(ctx context.Context, key types.NamespacedName, claim *corev1.PersistentVolumeClaim) error {
	err := r.Get(ctx, key, claim)
	if !apierrors.IsNotFound(err) || r.APIReader == nil {
		return err
	}
	uncachedReads.WithLabelValues("get", "persistentvolumeclaims").Inc()
	return r.APIReader.Get(ctx, key, claim)
}

// petClaim is getClaim for syncClaimRefs, which reads every pet's claims each
// pass: a claim the API server says does not exist is not asked for again
// until the set's next generation.
func (r *Reconciler) petClaim(ctx context.Context, ps *v1alpha1.PetSet, key types.NamespacedName, claim *corev1.PersistentVolumeClaim) error {
	out := r.outsideOf(ps)
	if out.absent == nil || out.absentGen != ps.Generation {
		out.absent, out.absentGen = map[string]bool{}, ps.Generation
	}
	if out.absent[key.Name] {
		return r.Get(ctx, key, claim)
	}
	err := r.getClaim(ctx, key, claim)
	if apierrors.IsNotFound(err) && ps.Generation != 0 {
		out.absent[key.Name] = true
	}
	return err
}
