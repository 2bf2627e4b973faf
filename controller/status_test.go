package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// statusPet describes one pod for TestWriteStatus.
type statusPet struct {
	rev         string
	ready       bool
	terminating bool
}

func statusPod(o int, p statusPet) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: PodName("db", o), Labels: map[string]string{LabelRevision: p.rev}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if p.ready {
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	if p.terminating {
		pod.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		pod.Finalizers = []string{"test/hold"}
	}
	return pod
}

// The status a pass writes, as the StatefulSet controller computes it
// (computeReplicaStatus, completeRollingUpdate): the current revision
// moves to the update revision only when every pet is updated and
// Ready; Terminating pets count as neither current nor updated; the set
// is not Ready while a pet is Terminating.
func TestWriteStatus(t *testing.T) {
	tests := []struct {
		name     string
		parallel bool
		pets     []statusPet
		current  string // status.currentRevision after the pass
		updated  int32
		cur      int32
		ready    metav1.ConditionStatus
	}{
		{name: "parallel, updated but not ready: current stays", parallel: true,
			pets:    []statusPet{{"new", false, false}, {"new", false, false}, {"new", true, false}},
			current: "old", updated: 3, cur: 0, ready: metav1.ConditionFalse},
		{name: "parallel, updated and ready: current moves", parallel: true,
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, false}},
			current: "new", updated: 3, cur: 3, ready: metav1.ConditionTrue},
		{name: "ordered, updated and ready: current moves",
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, false}},
			current: "new", updated: 3, cur: 3, ready: metav1.ConditionTrue},
		{name: "terminating pet at the update revision: not updated, set not ready", parallel: true,
			pets:    []statusPet{{"new", true, false}, {"new", true, false}, {"new", true, true}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse},
		{name: "terminating pet at the current revision: not current", parallel: true,
			pets:    []statusPet{{"old", true, true}, {"new", true, false}, {"new", true, false}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse},
		{name: "ordered, terminating pet: set not ready",
			pets:    []statusPet{{"new", true, false}, {"new", true, true}, {"new", true, false}},
			current: "old", updated: 2, cur: 0, ready: metav1.ConditionFalse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			clientgoscheme.AddToScheme(scheme)
			v1alpha1.AddToScheme(scheme)
			ps := testSet(int32(len(tc.pets)))
			ps.Status.CurrentRevision = "old"
			c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.PetSet{}).WithObjects(ps).Build()
			r := &Reconciler{Client: c}
			owned := map[int]*corev1.Pod{}
			var state []Pet
			for o, p := range tc.pets {
				owned[o] = statusPod(o, p)
				state = append(state, petOf(o, owned[o]))
			}
			w := Want{Start: 0, End: len(tc.pets), Parallel: tc.parallel, Revision: "new", Current: "old", RollingUpdate: true, MaxUnavailable: 1, Now: time.Now()}
			if err := r.writeStatus(context.Background(), ps, owned, w, Decide(w, state)); err != nil {
				t.Fatal(err)
			}
			st := ps.Status
			if st.CurrentRevision != tc.current || st.UpdatedReplicas != tc.updated || st.CurrentReplicas != tc.cur {
				t.Errorf("currentRevision %q updated %d current %d; want %q %d %d", st.CurrentRevision, st.UpdatedReplicas, st.CurrentReplicas, tc.current, tc.updated, tc.cur)
			}
			if c := meta.FindStatusCondition(st.Conditions, "Ready"); c == nil || c.Status != tc.ready {
				t.Errorf("Ready condition %+v, want %s", c, tc.ready)
			}
		})
	}
}
