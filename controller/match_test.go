package controller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// stsPod is pet 0 of testSet as the StatefulSet controller made it and the API
// server stored it: defaulted, with claim volumes first, the service account's
// volume and mount, default tolerations and the StatefulSet's labels.
func stsPod() *corev1.Pod {
	grace := int64(30)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-0", UID: "uid-db-0", Labels: map[string]string{
			"app": "db", "controller-revision-hash": "db-5d8f7c9b4", "statefulset.kubernetes.io/pod-name": "db-0", "apps.kubernetes.io/pod-index": "0",
		}},
		Spec: corev1.PodSpec{
			Hostname: "db-0", Subdomain: "db",
			Volumes: []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-db-0"}}},
				{Name: "kube-api-access-x1", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}},
			},
			Containers: []corev1.Container{{
				Name: "db", Image: "db:1", ImagePullPolicy: corev1.PullIfNotPresent,
				TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access-x1", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
			}},
			RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst, SchedulerName: "default-scheduler",
			ServiceAccountName: "default", TerminationGracePeriodSeconds: &grace, SecurityContext: &corev1.PodSecurityContext{},
			EnableServiceLinks: ptrTo(true), NodeName: "node-0",
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrTo(int64(300))}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}}},
	}
}

// Which adopted pods count as at the update revision: StatefulSet's
// identityMatches and storageMatches, and the template, through what the API
// server and admission add.
func TestTemplateMatches(t *testing.T) {
	tests := []struct {
		name     string
		template func(*corev1.PodTemplateSpec)
		pod      func(*corev1.Pod)
		want     bool
	}{
		{name: "a StatefulSet's pod of the same spec, defaulted", want: true},
		{name: "template sets what the server defaults, the same", want: true,
			template: func(t *corev1.PodTemplateSpec) {
				t.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
				t.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000m")}
			},
			pod: func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
				p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
			}},
		{name: "other image", pod: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "db:0" }},
		{name: "same image, other env", pod: func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MODE", Value: "old"}}
		}},
		{name: "env the template has and the pod lacks", template: func(t *corev1.PodTemplateSpec) {
			t.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MODE", Value: "new"}}
		}},
		{name: "same image, a command the template dropped", pod: func(p *corev1.Pod) {
			p.Spec.Containers[0].Command = []string{"db", "--old"}
		}},
		{name: "other resources", template: func(t *corev1.PodTemplateSpec) {
			t.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}
		}, pod: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}
		}},
		{name: "a sidecar more", pod: func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "proxy", Image: "proxy:1"})
		}},
		{name: "an annotation of the template missing", template: func(t *corev1.PodTemplateSpec) {
			t.Annotations = map[string]string{"config-hash": "abc"}
		}},
		{name: "a label of the template missing", template: func(t *corev1.PodTemplateSpec) { t.Labels["tier"] = "data" }},
		{name: "identity: another subdomain (another serviceName)", pod: func(p *corev1.Pod) { p.Spec.Subdomain = "other" }},
		{name: "identity: no hostname", pod: func(p *corev1.Pod) { p.Spec.Hostname = "" }},
		{name: "storage: the claim volume on another claim", pod: func(p *corev1.Pod) {
			p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName = "data-other-0"
		}},
		{name: "storage: no claim volume", pod: func(p *corev1.Pod) { p.Spec.Volumes = p.Spec.Volumes[1:] }},
		{name: "a node selector the template does not have", pod: func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := testSet(1)
			if tc.template != nil {
				tc.template(&ps.Spec.Template)
			}
			pod := stsPod()
			if tc.pod != nil {
				tc.pod(pod)
			}
			rev := adoptedRevision(ps, pod, 0)
			if got := rev != ""; got != tc.want {
				t.Errorf("adopted at revision %q; want matched %v", rev, tc.want)
			}
			if tc.want && rev != Revision(ps) {
				t.Errorf("revision %q, want the update revision %q", rev, Revision(ps))
			}
		})
	}
}

// An adopted pod gets the update revision the status reports for this
// generation (matched by data, it may not be Revision's name), never the
// current revision of a rollout: the pod was compared with spec.template.
func TestAdoptedRevisionName(t *testing.T) {
	ps := testSet(1)
	ps.Status = v1alpha1Status(ps.Generation, "db-current", "db-update")
	if rev := adoptedRevision(ps, stsPod(), 0); rev != "db-update" {
		t.Errorf("revision %q, want db-update", rev)
	}
	ps.Generation++ // the template may have changed since that status
	if rev := adoptedRevision(ps, stsPod(), 0); rev != Revision(ps) {
		t.Errorf("revision %q for a newer generation, want %q", rev, Revision(ps))
	}
}

func v1alpha1Status(gen int64, current, update string) v1alpha1.PetSetStatus {
	return v1alpha1.PetSetStatus{ObservedGeneration: gen, CurrentRevision: current, UpdateRevision: update}
}

// Adopted under RollingUpdate, the pet that is the template's stays, and the
// one running other env is replaced from the template, as StatefulSet replaces
// a pod not at its update revision.
func TestAdoptedPodReplacedUnlessItMatches(t *testing.T) {
	old := stsPod()
	old.Name, old.UID, old.Spec.Hostname = "db-1", "uid-db-1", "db-1"
	old.Labels["statefulset.kubernetes.io/pod-name"] = "db-1"
	old.Spec.Volumes[0].PersistentVolumeClaim.ClaimName = "data-db-1"
	old.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MODE", Value: "old"}}
	f := newFixture(t, testSet(2), stsPod(), old)
	for range 3 {
		f.mustReconcile()
	}
	if p := f.pod("db-0"); p == nil || p.UID != "uid-db-0" || p.Labels[LabelRevision] != Revision(testSet(2)) {
		t.Errorf("db-0, the template's, was replaced or not labelled: %v", p)
	}
	p := f.pod("db-1")
	if p != nil && p.UID == "uid-db-1" {
		t.Fatalf("db-1, running other env, was kept: labels %v", p.Labels)
	}
	if p == nil || len(p.Spec.Containers[0].Env) != 0 || p.Labels[LabelRevision] != Revision(testSet(2)) {
		t.Errorf("db-1 did not come back from the template: %v", p)
	}
}
