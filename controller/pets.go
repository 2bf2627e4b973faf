package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
)

// PetControl does what the plan decides. It is an interface so the
// reconciler can be tested without an API server.
type PetControl interface {
	// CreatePet makes pet ordinal at revision rev: its claims first
	// (existing ones are reused, never renamed), then its pod. A pod
	// that already exists is an error.
	CreatePet(ctx context.Context, ps *v1alpha1.PetSet, ordinal int, rev string) error
	// DeletePet deletes a pet's pod; its claims stay.
	DeletePet(ctx context.Context, ps *v1alpha1.PetSet, pod *corev1.Pod) error
	// CreateClaims makes pet ordinal's missing claims, reading the cache first;
	// a claim being deleted is not reused (ErrClaimTerminating). Only the
	// garbage collector deletes claims (retention.go).
	CreateClaims(ctx context.Context, ps *v1alpha1.PetSet, ordinal int) error
	// ExpandClaim raises a claim's storage request to size.
	ExpandClaim(ctx context.Context, ps *v1alpha1.PetSet, claim *corev1.PersistentVolumeClaim, size resource.Quantity) error
}

// apiPets is PetControl on the API server, with one event per verb.
type apiPets struct {
	c        client.Client
	recorder events.EventRecorder
}

// NewPetControl returns the PetControl the controller uses.
func NewPetControl(c client.Client, r events.EventRecorder) PetControl {
	return &apiPets{c: c, recorder: r}
}

func (p *apiPets) CreatePet(ctx context.Context, ps *v1alpha1.PetSet, ordinal int, rev string) error {
	// One event tells of the pod and the claims made for it: an event
	// per claim would double the writes of scaling up.
	made, err := p.createClaims(ctx, ps, ordinal, false)
	if err != nil {
		return err
	}
	pod := NewPod(ps, ordinal, rev)
	if err := controllerutil.SetControllerReference(ps, pod, p.c.Scheme()); err != nil {
		return err
	}
	if err := p.c.Create(ctx, pod); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			p.recorder.Eventf(ps, nil, corev1.EventTypeWarning, "FailedCreate", "CreatePod", "pod %s: %v", pod.Name, err)
		}
		// AlreadyExists too is an error, as for the StatefulSet
		// controller: the cache is stale or the name is taken, and the
		// retry sees which.
		return fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	operations.WithLabelValues("create_pod").Inc()
	if len(made) > 0 {
		p.recorder.Eventf(ps, nil, corev1.EventTypeNormal, "SuccessfulCreate", "CreatePod", "pod %s with claim %s", pod.Name, strings.Join(made, ", "))
	} else {
		p.recorder.Eventf(ps, nil, corev1.EventTypeNormal, "SuccessfulCreate", "CreatePod", "pod %s", pod.Name)
	}
	return nil
}

// ErrClaimTerminating is returned for a pet whose claim is being deleted:
// it is never reused, and the pet waits for a fresh one.
var ErrClaimTerminating = errors.New("claim is being deleted")

func (p *apiPets) CreateClaims(ctx context.Context, ps *v1alpha1.PetSet, ordinal int) error {
	_, err := p.createClaims(ctx, ps, ordinal, true)
	return err
}

// createClaims makes the missing claims of pet ordinal and returns the
// names of those it made; record says whether each gets its own event.
func (p *apiPets) createClaims(ctx context.Context, ps *v1alpha1.PetSet, ordinal int, record bool) ([]string, error) {
	var made []string
	bySet, _ := claimOwners(ps, false)
	for _, claim := range NewClaims(ps, ordinal) {
		// The cache first: an existing claim costs no write.
		have := &corev1.PersistentVolumeClaim{}
		err := p.c.Get(ctx, client.ObjectKeyFromObject(claim), have)
		switch {
		case err == nil && have.DeletionTimestamp != nil:
			return made, fmt.Errorf("claim %s: %w", claim.Name, ErrClaimTerminating)
		case err == nil:
			continue // the pet's storage from before: reuse it
		case !apierrors.IsNotFound(err):
			return made, fmt.Errorf("claim %s: %w", claim.Name, err)
		}
		if bySet {
			claim.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(ps, petSetKind)}
		}
		err = p.c.Create(ctx, claim)
		switch {
		case apierrors.IsAlreadyExists(err):
			// Made since the cache last saw it: reuse it.
		case err != nil:
			p.recorder.Eventf(ps, nil, corev1.EventTypeWarning, "FailedCreate", "CreateClaim", "claim %s for pod %s: %v", claim.Name, PodName(ps.Name, ordinal), err)
			return made, fmt.Errorf("claim %s: %w", claim.Name, err)
		default:
			operations.WithLabelValues("create_claim").Inc()
			made = append(made, claim.Name)
			if record {
				p.recorder.Eventf(ps, nil, corev1.EventTypeNormal, "SuccessfulCreate", "CreateClaim", "claim %s for pod %s", claim.Name, PodName(ps.Name, ordinal))
			}
		}
	}
	return made, nil
}

func (p *apiPets) DeletePet(ctx context.Context, ps *v1alpha1.PetSet, pod *corev1.Pod) error {
	err := p.c.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		p.recorder.Eventf(ps, nil, corev1.EventTypeWarning, "FailedDelete", "DeletePod", "pod %s: %v", pod.Name, err)
		return fmt.Errorf("delete pod %s: %w", pod.Name, err)
	}
	operations.WithLabelValues("delete_pod").Inc()
	p.recorder.Eventf(ps, nil, corev1.EventTypeNormal, "SuccessfulDelete", "DeletePod", "pod %s", pod.Name)
	return nil
}

func (p *apiPets) ExpandClaim(ctx context.Context, ps *v1alpha1.PetSet, claim *corev1.PersistentVolumeClaim, size resource.Quantity) error {
	from := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	claim.Spec.Resources.Requests[corev1.ResourceStorage] = size
	if err := p.c.Update(ctx, claim); err != nil {
		p.recorder.Eventf(ps, nil, corev1.EventTypeWarning, "FailedUpdate", "ExpandClaim", "claim %s to %s: %v", claim.Name, size.String(), err)
		return fmt.Errorf("expand claim %s: %w", claim.Name, err)
	}
	operations.WithLabelValues("expand_claim").Inc()
	p.recorder.Eventf(ps, nil, corev1.EventTypeNormal, "SuccessfulUpdate", "ExpandClaim", "claim %s from %s to %s", claim.Name, from.String(), size.String())
	return nil
}
