// Package v1alpha1 is the petset.dev/v1alpha1 API: the PetSet resource.
//
// +kubebuilder:object:generate=true
// +groupName=petset.dev
package v1alpha1
