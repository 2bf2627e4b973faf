package controller

import (
	"encoding/json"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// adoptedRevision is the update revision if the pod is what the set would make
// for its ordinal (templateMatches), else "": migrating a StatefulSet of the
// same spec replaces nothing, and a rolling update replaces any other pod.
func adoptedRevision(ps *v1alpha1.PetSet, pod *corev1.Pod, ordinal int) string {
	rev := Revision(ps)
	if ps.Status.ObservedGeneration == ps.Generation && ps.Status.UpdateRevision != "" {
		rev = ps.Status.UpdateRevision
	}
	if !templateMatches(NewPod(ps, ordinal, rev), pod) {
		return ""
	}
	return rev
}

// templateMatches reports whether pod, as defaulted and admitted, is want:
// identity, storage and every field the template sets (strictKeys, keyedLists).
// It errs towards no: a restart costs less than a pod left unlike its template.
func templateMatches(want, pod *corev1.Pod) bool {
	if pod.Spec.Hostname != want.Spec.Hostname || pod.Spec.Subdomain != want.Spec.Subdomain {
		return false
	}
	for k, v := range want.Annotations {
		if pod.Annotations[k] != v {
			return false
		}
	}
	for k, v := range want.Labels {
		switch k {
		case LabelPodName, LabelPodIndex, LabelSetName, LabelRevision:
			// The pet labels: the adoption adds them.
		default:
			if pod.Labels[k] != v {
				return false
			}
		}
	}
	w, err1 := toGeneric(want.Spec)
	p, err2 := toGeneric(pod.Spec)
	return err1 == nil && err2 == nil && subset(w, p, "")
}

func toGeneric(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

// strictKeys are the fields that, left out of the template, must be
// absent from the pod too: the API server defaults none of them.
var strictKeys = map[string]bool{
	"command": true, "args": true, "env": true, "envFrom": true, "workingDir": true, "ports": true,
	"livenessProbe": true, "readinessProbe": true, "startupProbe": true, "lifecycle": true,
	"initContainers": true, "nodeSelector": true, "affinity": true,
}

// keyedLists are lists whose items are matched by a key, the pod allowed
// more of them; "" matches each wanted item against any pod item.
var keyedLists = map[string]string{"volumes": "name", "volumeMounts": "mountPath", "tolerations": ""}

// subset reports whether every field of want (generic JSON) is in have.
// field is the name want was found under.
func subset(want, have any, field string) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if !subset(wv, h[k], k) {
				return false
			}
		}
		for k, hv := range h {
			if _, ok := w[k]; !ok && strictKeys[k] && !empty(hv) {
				return false
			}
		}
		return true
	case []any:
		h, _ := have.([]any)
		key, keyed := keyedLists[field]
		if !keyed {
			if len(w) != len(h) {
				return false
			}
			for i := range w {
				if !subset(w[i], h[i], field) {
					return false
				}
			}
			return true
		}
		for _, wi := range w {
			found := false
			for _, hi := range h {
				if key != "" {
					wm, _ := wi.(map[string]any)
					hm, _ := hi.(map[string]any)
					if wm == nil || hm == nil || wm[key] != hm[key] {
						continue
					}
				}
				if subset(wi, hi, field) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	case nil:
		return true
	case string:
		// Quantities the API server wrote in canonical form ("1000m"
		// becomes "1").
		if h, ok := have.(string); ok && h != w {
			a, err1 := resource.ParseQuantity(w)
			b, err2 := resource.ParseQuantity(h)
			return err1 == nil && err2 == nil && a.Cmp(b) == 0
		}
		return have == want
	default:
		return reflect.DeepEqual(want, have)
	}
}

// empty reports whether a generic JSON value says nothing.
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case string:
		return x == ""
	}
	return false
}
