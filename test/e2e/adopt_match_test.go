//go:build e2e

package e2e

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// richTemplate is a pod template with much the API server defaults or
// canonicalizes: env from a field without apiVersion, limits without
// requests, a CPU quantity in millicores, a ConfigMap volume without
// defaultMode, a probe with only its handler, an annotation.
func richTemplate(app, mode string) corev1.PodTemplateSpec {
	t := podTemplate(app, svcPort{"peer", 2380, corev1.ProtocolTCP})
	t.Annotations = map[string]string{"petset.dev/e2e-config": "v1"}
	c := &t.Spec.Containers[0]
	c.Env = []corev1.EnvVar{
		{Name: "MODE", Value: mode},
		{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(2380)}}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/conf"}}
	t.Spec.Volumes = []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}}}
	return t
}

// orphanedStatefulSetPods runs a StatefulSet of two pets from template
// with claims, then deletes it with orphan propagation, and returns its
// pods' UIDs once they have no owner.
func orphanedStatefulSetPods(t *testing.T, ns, name string, template corev1.PodTemplateSpec) map[string]types.UID {
	t.Helper()
	ps := newPetSet(ns, name, name, 2)
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ps.Spec.Replicas, ServiceName: name, Selector: ps.Spec.Selector,
			Template: template, VolumeClaimTemplates: ps.Spec.VolumeClaimTemplates,
		},
	}
	if _, err := tb.Client.AppsV1().StatefulSets(ns).Create(ctx, ss, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, ns, name, 2)
	before := podUIDs(t, ns, name)
	orphan := metav1.DeletePropagationOrphan
	if err := tb.Client.AppsV1().StatefulSets(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "StatefulSet gone and its pods orphaned", func() (bool, string) {
		if _, err := tb.Client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			return false, "StatefulSet still there"
		}
		list, _ := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		for _, p := range list.Items {
			if len(p.OwnerReferences) > 0 {
				return false, p.Name + " still owned"
			}
		}
		return len(list.Items) == 2, "pods"
	})
	return before
}

// Adoption decides a pod's revision on the pod as the API server stored
// it, as StatefulSet decides with its revision label: a StatefulSet's pods
// of a template with much defaulting (env from a field, limits only,
// millicores, a ConfigMap volume, a probe, an annotation) are labelled at
// the PetSet's update revision and none is replaced; the same pods under
// a PetSet whose template differs only in one env value are both
// replaced by the rolling update, and come back with the PetSet's env.
func TestPetSetAdoptionMatchesTemplate(t *testing.T) {
	c, stop := startController(t)
	defer stop()
	for _, tc := range []struct {
		name, mode string
		replaced   bool
	}{
		{"same", "a", false},
		{"other", "b", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := tb.Namespace(t, "adoptmatch-"+tc.name)
			app := "am"
			headlessService(t, ns, app, map[string]string{"app": app}, false, svcPort{"peer", 2380, corev1.ProtocolTCP})
			before := orphanedStatefulSetPods(t, ns, app, richTemplate(app, "a"))
			_, deleted, stopWatch := podEvents(t, ns, app)
			defer stopWatch()

			ps := newPetSet(ns, app, app, 2)
			ps.Spec.Template = richTemplate(app, tc.mode)
			if err := c.Create(ctx, ps); err != nil {
				t.Fatal(err)
			}
			rev := controller.Revision(ps)
			if !tc.replaced {
				waitStatus(t, c, ns, app, func(st v1alpha1.PetSetStatus) bool {
					return st.ObservedGeneration == 1 && st.ReadyReplicas == 2 && st.UpdatedReplicas == 2 && st.CurrentRevision == rev
				})
				pods := waitPods(t, ns, app, 2)
				for name, uid := range before {
					p := pods[name]
					if p == nil || p.UID != uid {
						t.Errorf("%s was replaced: the matcher took a defaulted pod of the same spec for another", name)
						continue
					}
					if p.Labels[controller.LabelRevision] != rev {
						t.Errorf("%s revision label %q, want %s", name, p.Labels[controller.LabelRevision], rev)
					}
				}
				if got := deleted(); len(got) != 0 {
					t.Errorf("pods deleted: %v", got)
				}
				return
			}
			pollUntil(t, 90*time.Second, "both pets replaced at the PetSet's revision", func() (bool, string) {
				list, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
				if err != nil {
					return false, err.Error()
				}
				n := 0
				for _, p := range list.Items {
					if p.UID != before[p.Name] && p.DeletionTimestamp == nil && podReady(&p) && p.Labels[controller.LabelRevision] == rev &&
						len(p.Spec.Containers[0].Env) > 0 && p.Spec.Containers[0].Env[0].Value == "b" {
						n++
					}
				}
				return n == 2, describePods(petPods(t, ns, app))
			})
			if got := deleted(); len(got) != 2 {
				t.Errorf("pods deleted %v, want both, once each", got)
			}
		})
	}
}
