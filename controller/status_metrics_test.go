package controller

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// The status metrics follow each PetSet's spec, status and conditions:
// Ready True or not, ClaimsResized False for each of its reasons.
func TestStatusCollector(t *testing.T) {
	cond := func(typ string, st metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: st, Reason: reason}
	}
	ready := testSet(3)
	ready.Name = "ready"
	ready.Status = v1alpha1.PetSetStatus{ReadyReplicas: 3, Conditions: []metav1.Condition{cond("Ready", metav1.ConditionTrue, "AllReady"), cond(ConditionClaimsResized, metav1.ConditionTrue, "AllClaimsResized")}}
	blocked := testSet(2)
	blocked.Name = "blocked"
	blocked.Status = v1alpha1.PetSetStatus{ReadyReplicas: 1, Conditions: []metav1.Condition{cond("Ready", metav1.ConditionFalse, "Progressing"), cond(ConditionClaimsResized, metav1.ConditionFalse, "ExpansionNotAllowed")}}
	resizing := testSet(1)
	resizing.Name = "resizing"
	resizing.Namespace = "other"
	resizing.Status = v1alpha1.PetSetStatus{Conditions: []metav1.Condition{cond(ConditionClaimsResized, metav1.ConditionFalse, "Resizing")}}

	scheme := runtime.NewScheme()
	v1alpha1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ready, blocked, resizing).Build()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(StatusCollector{Reader: c})
	want := `
# HELP petset_claims_resize_blocked 1 when a PetSet's claims cannot grow (ClaimsResized False, reason ExpansionNotAllowed), else 0.
# TYPE petset_claims_resize_blocked gauge
petset_claims_resize_blocked{namespace="ns",petset="blocked"} 1
petset_claims_resize_blocked{namespace="ns",petset="ready"} 0
petset_claims_resize_blocked{namespace="other",petset="resizing"} 0
# HELP petset_claims_resizing 1 while a PetSet waits for claims to grow (ClaimsResized False, reason Resizing), else 0.
# TYPE petset_claims_resizing gauge
petset_claims_resizing{namespace="ns",petset="blocked"} 0
petset_claims_resizing{namespace="ns",petset="ready"} 0
petset_claims_resizing{namespace="other",petset="resizing"} 1
# HELP petset_spec_replicas Pets a PetSet asks for (spec.replicas).
# TYPE petset_spec_replicas gauge
petset_spec_replicas{namespace="ns",petset="blocked"} 2
petset_spec_replicas{namespace="ns",petset="ready"} 3
petset_spec_replicas{namespace="other",petset="resizing"} 1
# HELP petset_status_ready 1 when a PetSet's Ready condition is True, else 0.
# TYPE petset_status_ready gauge
petset_status_ready{namespace="ns",petset="blocked"} 0
petset_status_ready{namespace="ns",petset="ready"} 1
petset_status_ready{namespace="other",petset="resizing"} 0
# HELP petset_status_ready_replicas Ready pets of a PetSet (status.readyReplicas).
# TYPE petset_status_ready_replicas gauge
petset_status_ready_replicas{namespace="ns",petset="blocked"} 1
petset_status_ready_replicas{namespace="ns",petset="ready"} 3
petset_status_ready_replicas{namespace="other",petset="resizing"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// A reader that cannot list makes the scrape fail, not go stale.
	broken := fake.NewClientBuilder().WithScheme(runtime.NewScheme()).Build()
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(StatusCollector{Reader: broken})
	if _, err := reg2.Gather(); err == nil {
		t.Error("a failed list gathered without error")
	}
}
