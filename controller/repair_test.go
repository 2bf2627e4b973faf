package controller

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// A pet whose identity labels were removed or changed gets them back in one
// patch, as StatefulSet's processReplica does, without being replaced; healthy
// pets cost no write.
func TestIdentityRepaired(t *testing.T) {
	ps := testSet(3)
	ps.Spec.VolumeClaimTemplates = nil
	var podWrites []string
	f, w := failingFixture(t, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if _, ok := obj.(*corev1.Pod); ok {
				podWrites = append(podWrites, "patch "+obj.GetName())
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*corev1.Pod); ok {
				podWrites = append(podWrites, "update "+obj.GetName())
			}
			return c.Update(ctx, obj, opts...)
		},
	}, ps)
	for _, name := range []string{"db-0", "db-1", "db-2"} {
		f.mustReconcile()
		f.markReady(name)
	}
	f.mustReconcile()
	if n := w.n["create Pod"]; n != 3 {
		t.Fatalf("%d pods created, want 3", n)
	}

	// Healthy: no pod write.
	podWrites = nil
	f.mustReconcile()
	if len(podWrites) != 0 {
		t.Fatalf("a pass over healthy pets wrote %v", podWrites)
	}

	// db-0 loses pod-name; db-2 gets wrong pod-index and set-name values;
	// db-1 is left alone.
	uids := map[string]string{}
	for name, edit := range map[string]func(l map[string]string){
		"db-0": func(l map[string]string) { delete(l, LabelPodName) },
		"db-2": func(l map[string]string) { l[LabelPodIndex] = "7"; l[LabelSetName] = "other" },
	} {
		p := f.pod(name)
		uids[name] = string(p.UID)
		edit(p.Labels)
		if err := f.c.Update(f.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	f.events()
	podWrites = nil
	f.mustReconcile()
	if want := []string{"patch db-0", "patch db-2"}; !slices.Equal(podWrites, want) {
		t.Errorf("pod writes %v, want %v (one patch per broken pet)", podWrites, want)
	}
	for i, name := range []string{"db-0", "db-1", "db-2"} {
		p := f.pod(name)
		if p == nil {
			t.Fatalf("%s gone", name)
		}
		if id := identityLabels(f.set(), p, i); len(id) != 0 {
			t.Errorf("%s still lacks %v: labels %v", name, id, p.Labels)
		}
		if u, ok := uids[name]; ok && string(p.UID) != u {
			t.Errorf("%s replaced: uid %s, want %s", name, p.UID, u)
		}
		if p.Labels["app"] != "db" || p.Labels[LabelRevision] == "" {
			t.Errorf("%s lost other labels: %v", name, p.Labels)
		}
	}
	if w.n["create Pod"] != 3 || w.n["delete Pod"] != 0 {
		t.Errorf("writes %v, want no pod made or deleted", w.n)
	}
	ev := f.events()
	for _, want := range []string{
		"SuccessfulRelabel pod db-0: restored " + LabelPodName,
		"SuccessfulRelabel pod db-2: restored " + LabelPodIndex + ", " + LabelSetName,
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
	if st := f.set().Status; st.Replicas != 3 || st.ReadyReplicas != 3 {
		t.Errorf("status %+v", st)
	}

	// Repaired: the next pass writes nothing again.
	podWrites = nil
	f.mustReconcile()
	if len(podWrites) != 0 {
		t.Errorf("a pass after the repair wrote %v", podWrites)
	}
}
