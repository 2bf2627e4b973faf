//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// A pod deleted on kwok's node is ended by its UID, as the kubelet ends
// it (cluster.Reap): a pod of the same name made as soon as the name is
// free, as a StatefulSet or PetSet replaces a pet, is never deleted with
// it. kwok's own pod-delete stage deletes by name, twice, and took such a
// replacement in about one of ten tries.
func TestTestbedKeepsReplacement(t *testing.T) {
	ns := tb.Namespace(t, "reaper")
	pods := tb.Client.CoreV1().Pods(ns)
	// create makes the pod as soon as the name is free: the replacement
	// must be made within the milliseconds kwok took between its two
	// deletes, so this retries at once rather than polling.
	create := func() types.UID {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			p, err := pods.Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "pod"},
				Spec:       podTemplate("reaper").Spec,
			}, metav1.CreateOptions{})
			if err == nil {
				return p.UID
			}
			if !apierrors.IsAlreadyExists(err) || time.Now().After(deadline) {
				t.Fatalf("create pod: %v", err)
			}
		}
	}
	uid := create()
	for i := range 50 {
		pollUntil(t, 30*time.Second, fmt.Sprintf("replacement %d (uid %s) Running", i, uid), func() (bool, string) {
			p, err := pods.Get(ctx, "pod", metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				t.Fatalf("replacement %d (uid %s) was deleted, though nobody asked", i, uid)
			case err != nil:
				return false, err.Error()
			case p.UID != uid:
				t.Fatalf("replacement %d (uid %s) was deleted, though nobody asked; now uid %s", i, uid, p.UID)
			}
			return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase)
		})
		if err := pods.Delete(ctx, "pod", metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(uid))}); err != nil {
			t.Fatal(err)
		}
		uid = create()
	}
}
