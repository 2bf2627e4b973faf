//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// Under OnDelete, side by side with the real StatefulSet controller: the
// template changes, every pod is deleted by hand and comes back at the
// update revision and Ready, and neither set moves its currentRevision
// (StatefulSet's completeRollingUpdate acts only under RollingUpdate):
// both report currentReplicas 0, updatedReplicas 2, and a currentRevision
// that is still the first one.
func TestPetSetOnDeleteCurrentRevisionLikeStatefulSet(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	ns := tb.Namespace(t, "ondelete")
	for _, app := range []string{"sts", "pet"} {
		headlessService(t, ns, app, map[string]string{"app": app}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
	}
	ps := newPetSet(ns, "pet", "pet", 2)
	ps.Spec.VolumeClaimTemplates = nil
	ps.Spec.UpdateStrategy.Type = v1alpha1.OnDeleteStrategy
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sts"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr(int32(2)), ServiceName: "sts",
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sts"}},
			Template:       podTemplate("sts", svcPort{"peer", 2380, corev1.ProtocolTCP}),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
		},
	}
	if _, err := tb.Client.AppsV1().StatefulSets(ns).Create(ctx, ss, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "pet", 2)
	waitPods(t, ns, "sts", 2)
	var psFirst, ssFirst string
	waitStatus(t, c, ns, "pet", func(st v1alpha1.PetSetStatus) bool {
		psFirst = st.CurrentRevision
		return st.ReadyReplicas == 2 && st.CurrentReplicas == 2 && st.CurrentRevision != ""
	})
	pollUntil(t, 60*time.Second, "StatefulSet status", func() (bool, string) {
		s, err := tb.Client.AppsV1().StatefulSets(ns).Get(ctx, "sts", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ssFirst = s.Status.CurrentRevision
		return s.Status.ReadyReplicas == 2 && s.Status.CurrentReplicas == 2 && ssFirst != "", fmt.Sprintf("%+v", s.Status)
	})

	const image = "registry.invalid/petset/fake:2"
	updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) { p.Spec.Template.Spec.Containers[0].Image = image })
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := tb.Client.AppsV1().StatefulSets(ns).Get(ctx, "sts", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Template.Spec.Containers[0].Image = image
		_, err = tb.Client.AppsV1().StatefulSets(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each pod deleted by hand, one at a time, and waited for at the new
	// image.
	for _, app := range []string{"sts", "pet"} {
		for o := range 2 {
			name := fmt.Sprintf("%s-%d", app, o)
			old := petPods(t, ns, app)[name]
			if err := tb.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			pollUntil(t, 60*time.Second, name+" back at the new image", func() (bool, string) {
				pods := petPods(t, ns, app)
				p := pods[name]
				return p != nil && p.UID != old.UID && podReady(p) && p.DeletionTimestamp == nil && p.Spec.Containers[0].Image == image, describePods(pods)
			})
		}
	}

	var sst appsv1.StatefulSetStatus
	pollUntil(t, 60*time.Second, "StatefulSet status after the update", func() (bool, string) {
		s, err := tb.Client.AppsV1().StatefulSets(ns).Get(ctx, "sts", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		sst = s.Status
		return s.Status.ObservedGeneration == s.Generation && sst.UpdatedReplicas == 2 && sst.ReadyReplicas == 2, fmt.Sprintf("%+v", sst)
	})
	var pst v1alpha1.PetSetStatus
	waitStatus(t, c, ns, "pet", func(st v1alpha1.PetSetStatus) bool {
		pst = st
		return st.ObservedGeneration == 2 && st.UpdatedReplicas == 2 && st.ReadyReplicas == 2
	})
	// The anchor first: if StatefulSet moved its current revision, this
	// test's premise is wrong.
	if sst.CurrentRevision != ssFirst || sst.CurrentRevision == sst.UpdateRevision || sst.CurrentReplicas != 0 {
		t.Fatalf("StatefulSet under OnDelete: currentRevision %q (first %q) updateRevision %q currentReplicas %d",
			sst.CurrentRevision, ssFirst, sst.UpdateRevision, sst.CurrentReplicas)
	}
	if pst.CurrentRevision != psFirst || pst.CurrentRevision == pst.UpdateRevision || pst.CurrentReplicas != 0 {
		t.Errorf("PetSet under OnDelete: currentRevision %q (first %q) updateRevision %q currentReplicas %d; StatefulSet keeps its first with 0",
			pst.CurrentRevision, psFirst, pst.UpdateRevision, pst.CurrentReplicas)
	}
}
