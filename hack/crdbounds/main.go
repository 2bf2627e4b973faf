// Command crdbounds adds size bounds to the PetSet CRD that controller-gen
// writes, where the schema comes from types of k8s.io/api that markers
// cannot reach: label values at most 63 characters (as Kubernetes requires
// of every label), and at most 64 selector terms and values. Without them
// the API server estimates the cost of the CEL rule "selector matches the
// template's labels" as unbounded and refuses the CRD.
//
//	go run ./hack/crdbounds deploy/crd/petset.dev_petsets.yaml
//
// It rewrites the file in place; `make generate` runs it after
// controller-gen.
package main

import (
	"errors"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// Limits of the selector; label values are bounded by Kubernetes itself.
const (
	maxSelectorTerms = 64
	maxLabelValue    = 63
	maxLabelKey      = 317 // a 253-character prefix, '/', a 63-character name
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: crdbounds <crd.yaml>")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "crdbounds:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(b, &crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	versions, _ := get(crd, "spec", "versions").([]any)
	if len(versions) == 0 {
		return errors.New("no spec.versions")
	}
	for _, v := range versions {
		spec, ok := get(v, "schema", "openAPIV3Schema", "properties", "spec", "properties").(map[string]any)
		if !ok {
			return errors.New("no spec schema")
		}
		sel, ok := get(spec, "selector", "properties").(map[string]any)
		if !ok {
			return errors.New("no spec.selector schema")
		}
		if err := set(sel, map[string]any{"maxProperties": maxSelectorTerms}, "matchLabels"); err != nil {
			return err
		}
		if err := set(sel, map[string]any{"maxLength": maxLabelValue}, "matchLabels", "additionalProperties"); err != nil {
			return err
		}
		if err := set(sel, map[string]any{"maxItems": maxSelectorTerms}, "matchExpressions"); err != nil {
			return err
		}
		expr := []string{"matchExpressions", "items", "properties"}
		if err := set(sel, map[string]any{"maxLength": maxLabelKey}, append(expr, "key")...); err != nil {
			return err
		}
		if err := set(sel, map[string]any{"maxItems": maxSelectorTerms}, append(expr, "values")...); err != nil {
			return err
		}
		if err := set(sel, map[string]any{"maxLength": maxLabelValue}, append(expr, "values", "items")...); err != nil {
			return err
		}
		if err := set(spec, map[string]any{"maxLength": maxLabelValue}, "template", "properties", "metadata", "properties", "labels", "additionalProperties"); err != nil {
			return err
		}
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte("---\n"), out...), 0o644)
}

// get walks maps by key.
func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// set merges fields into the schema at path under m.
func set(m map[string]any, fields map[string]any, path ...string) error {
	s, ok := get(m, path...).(map[string]any)
	if !ok {
		return fmt.Errorf("no schema at %v", path)
	}
	for k, v := range fields {
		s[k] = v
	}
	return nil
}
