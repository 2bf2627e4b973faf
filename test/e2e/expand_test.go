//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// Growing a claim template's storage request grows the existing claims
// whose StorageClass allows it, and says which ones it could not grow.
func TestPetSetClaimExpansion(t *testing.T) {
	c, _ := startController(t)
	ns := tb.Namespace(t, "grow")
	class := ns + "-expandable"
	if _, err := tb.Client.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: class},
		Provisioner:          "kubernetes.io/no-provisioner",
		AllowVolumeExpansion: ptr(true),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Client.StorageV1().StorageClasses().Delete(ctx, class, metav1.DeleteOptions{}) })
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-pv"},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:              class,
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("4Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/" + ns}},
		},
	}
	if _, err := tb.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}) })

	headlessService(t, ns, "st", map[string]string{"app": "st"}, false, svcPort{"peer", 7000, corev1.ProtocolTCP})
	ps := newPetSet(ns, "st", "st", 1)
	logs := ps.Spec.VolumeClaimTemplates[0] // no class: cannot grow
	logs.Name = "logs"
	ps.Spec.VolumeClaimTemplates[0].Spec.StorageClassName = &class
	ps.Spec.VolumeClaimTemplates = append(ps.Spec.VolumeClaimTemplates, logs)
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, "st", 1)
	boundVolume(t, ns, "data-st-0")
	boundVolume(t, ns, "logs-st-0")

	updatePetSet(t, c, client.ObjectKeyFromObject(ps), func(p *v1alpha1.PetSet) {
		for i := range p.Spec.VolumeClaimTemplates {
			p.Spec.VolumeClaimTemplates[i].Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		}
	})
	pollUntil(t, 60*time.Second, "data-st-0 request grown to 2Gi", func() (bool, string) {
		claim, err := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-st-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return claim.Spec.Resources.Requests.Storage().String() == "2Gi", fmt.Sprint(claim.Spec.Resources.Requests)
	})
	logsClaim, _ := tb.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "logs-st-0", metav1.GetOptions{})
	if got := logsClaim.Spec.Resources.Requests.Storage().String(); got != "1Gi" {
		t.Errorf("logs-st-0 request %s, want it left at 1Gi", got)
	}
	waitStatus(t, c, ns, "st", func(st v1alpha1.PetSetStatus) bool {
		cond := meta.FindStatusCondition(st.Conditions, controller.ConditionClaimsResized)
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == "ExpansionNotAllowed" &&
			strings.Contains(cond.Message, "logs-st-0") && !strings.Contains(cond.Message, "data-st-0")
	})
}
