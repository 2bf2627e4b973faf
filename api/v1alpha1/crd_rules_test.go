package v1alpha1

import (
	"context"
	"os"
	"strings"
	"testing"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// The API server's own limits for one CEL rule and for one object.
const (
	perCallLimit = 1000000
	costBudget   = 10000000
)

// crdValidator compiles the CEL rules of the generated CRD with the API
// server's code, so the rules are checked without a control plane (the
// e2e TestPetSetValidation checks them on a real one).
func crdValidator(t *testing.T) (*cel.Validator, *structuralschema.Structural) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/crd/petset.dev_petsets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		t.Fatal(err)
	}
	v := cel.NewValidator(s, true, perCallLimit)
	if v == nil {
		t.Fatal("the CRD has no CEL rules")
	}
	return v, s
}

// maxUnavailable is accepted as a StatefulSet's is
// (ValidateStatefulSetUpdateStrategy): an integer of at least 1, or a
// percentage "N%" (digits only) from 1% to 100%.
func TestMaxUnavailableRule(t *testing.T) {
	v, s := crdValidator(t)
	tests := []struct {
		value any // as decoded from JSON: int64 or string
		ok    bool
	}{
		{int64(1), true},
		{int64(3), true},
		{int64(2147483647), true},
		{int64(0), false},
		{int64(-1), false},
		{int64(2147483648), false},
		{"1%", true},
		{"50%", true},
		{"100%", true},
		{"050%", true},
		{"0100%", true},
		{"0%", false},
		{"00%", false},
		{"101%", false},
		{"1000%", false},
		{"-1%", false},
		{"1.5%", false},
		{"%", false},
		{"50", false},
		{"abc", false},
		{"", false},
		{" 5%", false},
		{"5%\n", false},
	}
	for _, tc := range tests {
		obj := map[string]any{
			"apiVersion": "petset.dev/v1alpha1",
			"kind":       "PetSet",
			"metadata":   map[string]any{"name": "web"},
			"spec": map[string]any{
				"serviceName": "web",
				"selector":    map[string]any{"matchLabels": map[string]any{"app": "web"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				},
				"updateStrategy": map[string]any{
					"type":          "RollingUpdate",
					"rollingUpdate": map[string]any{"maxUnavailable": tc.value},
				},
			},
		}
		errs, _ := v.Validate(context.Background(), field.NewPath("root"), s, obj, nil, costBudget)
		if tc.ok {
			if len(errs) != 0 {
				t.Errorf("maxUnavailable %#v: rejected: %v", tc.value, errs)
			}
			continue
		}
		want := "root.spec.updateStrategy.rollingUpdate.maxUnavailable"
		found := false
		for _, e := range errs {
			if e.Field == want && strings.Contains(e.Detail, "maxUnavailable must be") {
				found = true
			}
		}
		if !found {
			t.Errorf("maxUnavailable %#v: errors %v, want one at %s naming maxUnavailable", tc.value, errs, want)
		}
	}
}
