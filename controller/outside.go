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

// DefaultRecheckAfter is how often a set looks again at pods outside the
// cache that hold its pets' names (another controller's pod, an orphan
// being deleted): no watch tells it when they go.
const DefaultRecheckAfter = 5 * time.Second

// outsideCache is what one set must read from the API server rather than
// from the cache, which holds only pods labelled with LabelSetName (see
// CacheOptions). A pod without that label is one the set has not made or
// adopted yet: an orphan of a deleted StatefulSet, a pod of another
// controller with a pet's name, a pet whose label someone removed. The
// set finds them by
//   - a list of the pods matching its selector, uncached, the first time
//     this process sees each generation of the set (a new set created
//     over leftover pods, a changed selector or scale);
//   - a read of each name in names on every pass: pods found outside the
//     cache that hold a pet's name, names whose creation failed with
//     AlreadyExists, and pets the cache reported deleted while they were
//     not being deleted (someone removed their LabelSetName label; see
//     podHandler). A name leaves the list once the cache holds its pod
//     (it was adopted, or made by the set) or the pod is gone.
//
// Adoption labels the pod, so it enters the cache and its changes are
// watched from then on.
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

// podsOf returns the pods claimPods looks at: every pod in the cache of
// ps's namespace, and those outside it that the set must see (see
// outsideCache), the latter named in fresh. A pod the cache holds is
// taken from the cache.
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

// keepOutside records which of the pods read outside the cache are read
// again on the next passes: those the set took (until the cache holds
// them; they are labelled now), those that hold back a wanted pet, until
// they go, and those that hold the name of an ordinal the set does not
// want, match its selector and are not being deleted (another
// controller's, say a StatefulSet's whose deletion orphans them: once the
// garbage collector has, the set adopts the pod and deletes it as
// condemned, as StatefulSet would). The others (a pod with the name of an
// ordinal the set does not want that does not match the selector, or is
// going) are not; a change of the set's generation lists them again.
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

// podHandler maps pod events to sets (podSets) and, on a delete event of
// a pod that was not being deleted, marks its name to be read from the API
// server on the next pass of each set it maps to: the cache's informer,
// which holds only labelled pods, reports a pet whose LabelSetName label
// someone removed as deleted. The pass then finds the pet outside the
// cache and labels it back (and deletes it if it is condemned). A pet
// really deleted was being deleted first (a graceful deletion), so it
// costs no read; one deleted at once costs one read of its name.
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

// recheckAfter is when the set must look again at pods outside the cache,
// or at the claims a pet waits for (claimHeld), zero when there are none:
// nothing else would bring it back when they change or go. A claim the
// cache does not hold (a StatefulSet's, held by a finalizer or by an owner
// reference to a pod that is gone) sends no event when it goes.
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

// getClaim reads a claim from the cache and, when the cache does not hold
// it, from the API server: a claim made by a StatefulSet is not in the
// cache until syncClaimRefs labels it. A claim that does not exist costs
// one uncached read.
func (r *Reconciler) getClaim(ctx context.Context, key types.NamespacedName, claim *corev1.PersistentVolumeClaim) error {
	err := r.Get(ctx, key, claim)
	if !apierrors.IsNotFound(err) || r.APIReader == nil {
		return err
	}
	uncachedReads.WithLabelValues("get", "persistentvolumeclaims").Inc()
	return r.APIReader.Get(ctx, key, claim)
}

// petClaim is getClaim for syncClaimRefs, which reads the claims of every
// pet with a pod on every pass: a claim the API server says does not
// exist (a claim template added to a set whose pets were made before it)
// is read from the cache only, not from the API server again, until the
// set's generation changes or this process restarts. A claim the
// controller makes is labelled, so the cache holds it; only a claim made
// by someone else, unlabelled, for a pet that already has a pod, waits
// until then to get the retention policy's owner references.
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
