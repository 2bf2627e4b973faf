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
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// repairIdentity gives pets whose identity labels were removed or changed them
// back, as StatefulSet's processReplica does: a per-pet Service selecting
// pod-name would lose its endpoint. The patched pods replace those in owned.
func (r *Reconciler) repairIdentity(ctx context.Context, ps *v1alpha1.PetSet, owned map[int]*corev1.Pod) error {
	var errs []error
	for _, o := range slices.Sorted(maps.Keys(owned)) {
		pod := owned[o]
		if pod.DeletionTimestamp != nil {
			continue
		}
		fix := identityLabels(ps, pod, o)
		if len(fix) == 0 {
			continue
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID, "labels": fix}})
		if err != nil {
			return err
		}
		out := pod.DeepCopy()
		if err := r.Patch(ctx, out, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("restore the labels of pod %s: %w", pod.Name, err))
			}
			continue
		}
		operations.WithLabelValues("label_pod").Inc()
		keys := slices.Sorted(maps.Keys(fix))
		r.event(ps, corev1.EventTypeNormal, "SuccessfulRelabel", "LabelPod", "pod %s: restored %s", pod.Name, strings.Join(keys, ", "))
		owned[o] = out
	}
	return errors.Join(errs...)
}

// identityLabels is the identity labels pet ordinal's pod lacks or has
// wrong, with the values it should have; empty when it has them all.
func identityLabels(ps *v1alpha1.PetSet, pod *corev1.Pod, ordinal int) map[string]string {
	fix := map[string]string{}
	for k, v := range map[string]string{
		LabelPodName:  pod.Name,
		LabelPodIndex: strconv.Itoa(ordinal),
		LabelSetName:  ps.Name,
	} {
		if got, ok := pod.Labels[k]; !ok || got != v {
			fix[k] = v
		}
	}
	return fix
}
