package v1alpha1

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PetSet keeps a set of pets: pods with stable ordinal names
// (<name>-<ordinal>), stable network identities through a headless service,
// and stable storage through one PersistentVolumeClaim per claim template
// and ordinal.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=pets,categories=all
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.updatedReplicas`
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.spec.serviceName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 54",message="metadata.name must be no more than 54 characters: <name>-<8 hex digits> names the set's revisions and is the value of the petset.dev/revision label, at most 63 characters"
type PetSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PetSetSpec   `json:"spec"`
	Status PetSetStatus `json:"status,omitempty"`
}

// PetSetSpec is the desired set.
//
// +kubebuilder:validation:XValidation:rule="(has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)",message="empty selector is invalid for a PetSet",fieldPath=".selector"
// +kubebuilder:validation:XValidation:rule="!has(self.selector.matchLabels) || self.selector.matchLabels.all(k, has(self.template.metadata) && has(self.template.metadata.labels) && k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k])",message="selector does not match template labels",fieldPath=".template.metadata.labels"
// +kubebuilder:validation:XValidation:rule="!has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, (e.operator == 'In' && has(self.template.metadata) && has(self.template.metadata.labels) && e.key in self.template.metadata.labels && has(e.values) && self.template.metadata.labels[e.key] in e.values) || (e.operator == 'NotIn' && (!has(self.template.metadata) || !has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels) || !has(e.values) || !(self.template.metadata.labels[e.key] in e.values))) || (e.operator == 'Exists' && has(self.template.metadata) && has(self.template.metadata.labels) && e.key in self.template.metadata.labels) || (e.operator == 'DoesNotExist' && (!has(self.template.metadata) || !has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels))))",message="selector does not match template labels",fieldPath=".template.metadata.labels"
type PetSetSpec struct {
	// Replicas is the number of pets. Default 1.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// ServiceName is the headless service that gives the pets their
	// names: each pod's subdomain, so <pod>.<serviceName>.<ns>.svc.<zone>
	// resolves.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="serviceName is immutable"
	ServiceName string `json:"serviceName"`

	// Selector selects the set's pods and claims. It must not be empty,
	// must match the template's labels, and cannot change. At most 64
	// matchLabels, 64 matchExpressions and 64 values each (bounds that let
	// the API server check the match).
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="selector is immutable"
	Selector *metav1.LabelSelector `json:"selector"`

	// Template is the pod every pet is made from. Each distinct template
	// is a revision: a ControllerRevision named <set>-<hash of the
	// template and status.collisionCount> records it, and a pet is made
	// from the template of the revision its ordinal is due (see
	// UpdateStrategy), not always from this one.
	Template corev1.PodTemplateSpec `json:"template"`

	// VolumeClaimTemplates are the claims each pet gets, named
	// <claim>-<set>-<ordinal> and mounted by the container volumes of the
	// same name. They are made before the pod and never renamed.
	//
	// Claim templates are not part of a revision: changing them starts no
	// rolling update. A new claim template gives claims only to pets made
	// after the change; a larger storage request grows the existing
	// claims where their StorageClass allows expansion (condition
	// ClaimsResized); other changes apply only to claims made later.
	// +optional
	// +listType=atomic
	VolumeClaimTemplates []corev1.PersistentVolumeClaim `json:"volumeClaimTemplates,omitempty"`

	// PodManagementPolicy is OrderedReady (one pet at a time, each after
	// the one before is Ready) or Parallel. Default OrderedReady.
	// +kubebuilder:default=OrderedReady
	// +kubebuilder:validation:Enum=OrderedReady;Parallel
	// +optional
	PodManagementPolicy appsv1.PodManagementPolicyType `json:"podManagementPolicy,omitempty"`

	// UpdateStrategy says how a template change reaches the pets.
	// +optional
	UpdateStrategy UpdateStrategy `json:"updateStrategy,omitempty"`

	// PersistentVolumeClaimRetentionPolicy says what happens to the
	// claims when the set is deleted or scaled down. Default: Retain both.
	// +optional
	PersistentVolumeClaimRetentionPolicy *RetentionPolicy `json:"persistentVolumeClaimRetentionPolicy,omitempty"`

	// Ordinals sets the first ordinal. Default 0.
	// +optional
	Ordinals *Ordinals `json:"ordinals,omitempty"`

	// MinReadySeconds is how long a pet must be Ready before it counts
	// as available.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`

	// RevisionHistoryLimit is how many old ControllerRevisions to keep.
	// Default 10.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +optional
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
}

// UpdateStrategyType names an update strategy.
// +kubebuilder:validation:Enum=RollingUpdate;OnDelete
type UpdateStrategyType string

const (
	// RollingUpdateStrategy replaces pets from the highest ordinal down.
	RollingUpdateStrategy UpdateStrategyType = "RollingUpdate"
	// OnDeleteStrategy replaces a pet only when someone deletes it.
	OnDeleteStrategy UpdateStrategyType = "OnDelete"
)

// UpdateStrategy says how a template change reaches the pets.
//
// A pet that is made again (deleted, evicted, or finished) is made at the
// revision its ordinal is due. Under RollingUpdate, an ordinal below the
// partition, or one the rollout (from the highest ordinal down) has not
// reached yet, is due the current revision and is made from that
// revision's stored template; the others are due the update revision.
// Under OnDelete every pet made again is made at the update revision:
// deleting a pet is how it is updated.
type UpdateStrategy struct {
	// Type is RollingUpdate or OnDelete. Default RollingUpdate.
	// +kubebuilder:default=RollingUpdate
	// +optional
	Type UpdateStrategyType `json:"type,omitempty"`
	// RollingUpdate tunes the RollingUpdate strategy.
	// +optional
	RollingUpdate *RollingUpdate `json:"rollingUpdate,omitempty"`
}

// RollingUpdate tunes a rolling update.
type RollingUpdate struct {
	// Partition: the first Partition pets, counted from the start
	// ordinal (ordinals below ordinals.start+partition, as in a
	// StatefulSet), keep their revision, and are made again from the
	// current revision's template if they go.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Partition *int32 `json:"partition,omitempty"`
	// MaxUnavailable is how many pets may be down for the update at
	// once, a number or a percentage of replicas. Default 1. As for a
	// StatefulSet, a number is at least 1 and a percentage ("N%") is
	// from 1% to 100%; a percentage is rounded down, and at least 1.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 2147483647) : self.matches('^0*([1-9][0-9]?|100)%$')",message="maxUnavailable must be an integer of at least 1 or a percentage from 1% to 100%"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// RetentionPolicyType is Retain or Delete.
// +kubebuilder:validation:Enum=Retain;Delete
type RetentionPolicyType string

const (
	// Retain keeps the claims.
	Retain RetentionPolicyType = "Retain"
	// Delete removes the claims.
	Delete RetentionPolicyType = "Delete"
)

// RetentionPolicy says what happens to claims.
type RetentionPolicy struct {
	// WhenDeleted applies when the PetSet is deleted. Default Retain.
	// +kubebuilder:default=Retain
	// +optional
	WhenDeleted RetentionPolicyType `json:"whenDeleted,omitempty"`
	// WhenScaled applies to the ordinals a scale-down removes. Default
	// Retain: a later scale-up gets the same claims back.
	// +kubebuilder:default=Retain
	// +optional
	WhenScaled RetentionPolicyType `json:"whenScaled,omitempty"`
}

// Ordinals sets where numbering starts.
type Ordinals struct {
	// Start is the first ordinal. Default 0.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Start int32 `json:"start,omitempty"`
}

// PetSetStatus is what the controller last saw and did.
type PetSetStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas counts the pets that exist.
	Replicas int32 `json:"replicas"`
	// ReadyReplicas counts Ready pets.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// AvailableReplicas counts pets Ready for MinReadySeconds.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas,omitempty"`
	// CurrentReplicas counts pets at CurrentRevision that are not
	// Terminating.
	// +optional
	CurrentReplicas int32 `json:"currentReplicas,omitempty"`
	// UpdatedReplicas counts pets at UpdateRevision that are not
	// Terminating.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`
	// CurrentRevision is the revision the pets had before the update in
	// progress; pets below the partition are made again at it. Under
	// RollingUpdate it becomes UpdateRevision once every pet is at
	// UpdateRevision and Ready, as for a StatefulSet. Under OnDelete it
	// does not move (again as for a StatefulSet, whose
	// completeRollingUpdate acts only under RollingUpdate): it stays the
	// revision in force when the set was made or switched to OnDelete,
	// and CurrentReplicas counts the pets still at it.
	// +optional
	CurrentRevision string `json:"currentRevision,omitempty"`
	// UpdateRevision is the revision of the current template: the
	// ControllerRevision whose data equals spec.template, whatever its
	// name.
	// +optional
	UpdateRevision string `json:"updateRevision,omitempty"`
	// CollisionCount counts the hash collisions met while naming this
	// set's ControllerRevisions. It is hashed into the next revision's
	// name, so a name held by a revision with other data is not tried
	// again.
	// +optional
	CollisionCount *int32 `json:"collisionCount,omitempty"`
	// Selector is spec.selector as a string, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`
	// Conditions: Ready (False with reason Progressing while pets are
	// made, replaced, Terminating, waited for, or left at an old
	// revision by OnDelete or the partition; its message names them, at
	// most five reasons and five pets a reason, the rest counted),
	// ClaimsResized,
	// PetsOwned and RetentionApplied. Events for pets held back and
	// claims with another controller are recorded when a condition's
	// message changes, not on every pass.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Members is the membership: one entry per pet, by ordinal.
	// +optional
	// +listType=atomic
	Members []Member `json:"members,omitempty"`
}

// Member is one pet as the rest of petset sees it.
type Member struct {
	// Ordinal is the pet's number.
	Ordinal int32 `json:"ordinal"`
	// Pod is the pod's name, <set>-<ordinal>.
	Pod string `json:"pod"`
	// Ready says whether the pod is Ready.
	Ready bool `json:"ready"`
	// Revision is the pod's revision.
	// +optional
	Revision string `json:"revision,omitempty"`
	// Claims are the pet's PersistentVolumeClaims.
	// +optional
	// +listType=atomic
	Claims []string `json:"claims,omitempty"`
}

// PetSetList is a list of PetSets.
//
// +kubebuilder:object:root=true
type PetSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PetSet `json:"items"`
}
