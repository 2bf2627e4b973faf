//go:build e2e

package e2e

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

// The CRD's CEL rules, on the real API server: each rejects a bad PetSet
// with an Invalid error naming the field at fault, and lets the good
// neighbour of each bad case through (so a rule cannot pass by rejecting
// everything).
func TestPetSetValidation(t *testing.T) {
	c := installCRD(t)
	ns := tb.Namespace(t, "valid")
	dryRun := client.DryRunAll
	longest := strings.Repeat("a", 63-1-controller.RevisionHashLen)

	creates := []struct {
		name   string
		change func(*v1alpha1.PetSet)
		field  string // "" when the object is valid
	}{
		{"name at the limit", func(p *v1alpha1.PetSet) { p.Name = longest }, ""},
		{"name one too long", func(p *v1alpha1.PetSet) { p.Name = longest + "a" }, "metadata.name"},
		{"empty selector", func(p *v1alpha1.PetSet) { p.Spec.Selector = &metav1.LabelSelector{} }, "spec.selector"},
		{"matchLabels not in the template", func(p *v1alpha1.PetSet) { p.Spec.Selector.MatchLabels = map[string]string{"app": "other"} }, "spec.template.metadata.labels"},
		{"template without labels", func(p *v1alpha1.PetSet) { p.Spec.Template.Labels = nil }, "spec.template.metadata.labels"},
		{"matchExpressions In, matching", func(p *v1alpha1.PetSet) {
			p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "v"}}}
		}, ""},
		{"matchExpressions In, not matching", func(p *v1alpha1.PetSet) {
			p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"x"}}}
		}, "spec.template.metadata.labels"},
		{"matchExpressions NotIn, matching", func(p *v1alpha1.PetSet) {
			p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"x"}}}
		}, ""},
		{"matchExpressions NotIn, not matching", func(p *v1alpha1.PetSet) {
			p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"v"}}}
		}, "spec.template.metadata.labels"},
		{"matchExpressions Exists and DoesNotExist, matching", func(p *v1alpha1.PetSet) {
			p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}, {Key: "tier", Operator: metav1.LabelSelectorOpDoesNotExist}}
		}, ""},
		{"matchExpressions Exists, not matching", func(p *v1alpha1.PetSet) {
			p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}
		}, "spec.template.metadata.labels"},
		{"matchExpressions DoesNotExist, not matching", func(p *v1alpha1.PetSet) {
			p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpDoesNotExist}}
		}, "spec.template.metadata.labels"},
	}
	// maxUnavailable as a StatefulSet's: an integer of at least 1 or a
	// percentage from 1% to 100%.
	mu := "spec.updateStrategy.rollingUpdate.maxUnavailable"
	for _, v := range []struct {
		value intstr.IntOrString
		field string
	}{
		{intstr.FromInt32(1), ""},
		{intstr.FromInt32(5), ""},
		{intstr.FromString("1%"), ""},
		{intstr.FromString("100%"), ""},
		{intstr.FromInt32(0), mu},
		{intstr.FromInt32(-1), mu},
		{intstr.FromString("0%"), mu},
		{intstr.FromString("101%"), mu},
		{intstr.FromString("50"), mu},
		{intstr.FromString("abc"), mu},
	} {
		creates = append(creates, struct {
			name   string
			change func(*v1alpha1.PetSet)
			field  string
		}{"maxUnavailable " + v.value.String(), func(p *v1alpha1.PetSet) {
			p.Spec.UpdateStrategy.Type = v1alpha1.RollingUpdateStrategy
			p.Spec.UpdateStrategy.RollingUpdate = &v1alpha1.RollingUpdate{MaxUnavailable: &v.value}
		}, v.field})
	}
	for _, tc := range creates {
		ps := newPetSet(ns, "v", "v", 1)
		tc.change(ps)
		err := c.Create(ctx, ps, dryRun)
		checkInvalid(t, tc.name, err, tc.field)
	}

	// Immutable fields: a real object, then updates.
	ps := newPetSet(ns, "v", "v", 1)
	if err := c.Create(ctx, ps); err != nil {
		t.Fatal(err)
	}
	updates := []struct {
		name   string
		change func(*v1alpha1.PetSet)
		field  string
	}{
		{"replicas and template change", func(p *v1alpha1.PetSet) {
			p.Spec.Replicas = ptr(int32(3))
			p.Spec.Template.Spec.Containers[0].Image = "registry.invalid/petset/fake:2"
		}, ""},
		{"selector change, still matching", func(p *v1alpha1.PetSet) {
			p.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}
		}, "spec.selector"},
		{"serviceName change", func(p *v1alpha1.PetSet) { p.Spec.ServiceName = "other" }, "spec.serviceName"},
	}
	for _, tc := range updates {
		var cur v1alpha1.PetSet
		if err := c.Get(ctx, client.ObjectKeyFromObject(ps), &cur); err != nil {
			t.Fatal(err)
		}
		tc.change(&cur)
		err := c.Update(ctx, &cur, client.DryRunAll)
		checkInvalid(t, tc.name, err, tc.field)
	}
}

// checkInvalid wants err nil for a valid object, and otherwise an Invalid error
// whose causes name field.
func checkInvalid(t *testing.T, name string, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Errorf("%s: rejected: %v", name, err)
		}
		return
	}
	if !apierrors.IsInvalid(err) {
		t.Errorf("%s: error %v, want Invalid", name, err)
		return
	}
	// The field is the cause's field, or (for a rule on the whole object,
	// where CEL can give no field path) named at the start of its message.
	var fields []string
	if st, ok := err.(apierrors.APIStatus); ok && st.Status().Details != nil {
		for _, cause := range st.Status().Details.Causes {
			fields = append(fields, cause.Field)
			if cause.Field == field || strings.Contains(cause.Message, ": "+field+" must ") {
				return
			}
		}
	}
	t.Errorf("%s: causes name %q, want %q (%v)", name, fields, field, err)
}
