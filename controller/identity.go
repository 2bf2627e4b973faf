package controller

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// Labels the controller puts on every pet, beside the template's own.
const (
	// LabelPodName is the pet's pod name, for a Service selecting one pet.
	LabelPodName = "petset.dev/pod-name"
	// LabelPodIndex is the pet's ordinal.
	LabelPodIndex = "petset.dev/pod-index"
	// LabelSetName is the PetSet the pet or claim belongs to.
	LabelSetName = "petset.dev/set-name"
	// LabelRevision is the revision of the template the pod was made from.
	LabelRevision = "petset.dev/revision"
)

// PodName is the name of pet ordinal: <set>-<ordinal>.
func PodName(set string, ordinal int) string { return set + "-" + strconv.Itoa(ordinal) }

// ClaimName is the claim of template claim for pet ordinal:
// <claim>-<set>-<ordinal>, as a StatefulSet names it.
func ClaimName(claim, set string, ordinal int) string {
	return claim + "-" + PodName(set, ordinal)
}

// Ordinal parses the ordinal out of a pod name of set, or returns -1.
//
//	Ordinal("web", "web-12") == 12; Ordinal("web", "web-x") == -1
func Ordinal(set, pod string) int {
	rest, ok := strings.CutPrefix(pod, set+"-")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// Range is the ordinals a set wants: [start, start+replicas).
func Range(ps *v1alpha1.PetSet) (start, end int) {
	start = 0
	if ps.Spec.Ordinals != nil {
		start = int(ps.Spec.Ordinals.Start)
	}
	replicas := 1
	if ps.Spec.Replicas != nil {
		replicas = int(*ps.Spec.Replicas)
	}
	return start, start + replicas
}

// NewPod builds pet ordinal of ps at revision rev: the template's pod with
// the pet's name, hostname and subdomain (so the headless service names
// it), its labels, and volumes for its claims.
func NewPod(ps *v1alpha1.PetSet, ordinal int, rev string) *corev1.Pod {
	name := PodName(ps.Name, ordinal)
	pod := &corev1.Pod{}
	pod.ObjectMeta = *ps.Spec.Template.ObjectMeta.DeepCopy()
	pod.Spec = *ps.Spec.Template.Spec.DeepCopy()
	pod.Name, pod.Namespace, pod.GenerateName = name, ps.Namespace, ""
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[LabelPodName] = name
	pod.Labels[LabelPodIndex] = strconv.Itoa(ordinal)
	pod.Labels[LabelSetName] = ps.Name
	pod.Labels[LabelRevision] = rev
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = ps.Spec.ServiceName
	for _, t := range ps.Spec.VolumeClaimTemplates {
		vol := corev1.Volume{Name: t.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ClaimName(t.Name, ps.Name, ordinal)},
		}}
		replaced := false
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == t.Name {
				pod.Spec.Volumes[i] = vol
				replaced = true
			}
		}
		if !replaced {
			pod.Spec.Volumes = append(pod.Spec.Volumes, vol)
		}
	}
	return pod
}

// NewClaims builds the claims of pet ordinal.
func NewClaims(ps *v1alpha1.PetSet, ordinal int) []*corev1.PersistentVolumeClaim {
	var out []*corev1.PersistentVolumeClaim
	for _, t := range ps.Spec.VolumeClaimTemplates {
		c := t.DeepCopy()
		c.Name = ClaimName(t.Name, ps.Name, ordinal)
		c.Namespace = ps.Namespace
		c.ResourceVersion, c.UID = "", ""
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for k, v := range ps.Spec.Selector.MatchLabels {
			c.Labels[k] = v
		}
		c.Labels[LabelSetName] = ps.Name
		c.Labels[LabelPodIndex] = strconv.Itoa(ordinal)
		c.Status = corev1.PersistentVolumeClaimStatus{}
		out = append(out, c)
	}
	return out
}

// PodReady reports whether the pod is Running with its Ready condition
// true.
func PodReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
