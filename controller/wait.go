package controller

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// WaitKind is what a Wait is about: what the plan waits for, what keeps
// the set from Ready, or what holds a pet back from being made.
type WaitKind int

const (
	WaitNone        WaitKind = iota
	WaitFinished             // finished pets are deleted, to be made again
	WaitCreating             // OrderedReady makes one pet a pass: Ordinals[0]
	WaitAvailable            // Ordinals are not yet available
	WaitTerminating          // Ordinals are terminating
	WaitCondemned            // Ordinals are to be deleted
	WaitBudget               // a rolling update holds Ordinals back: Unavailable of MaxUnavailable are down
	WaitPartition            // Ordinals, below the partition, keep their revision
	WaitOnDelete             // Ordinals are at an old revision until deleted (OnDelete)
	WaitNotUpdated           // Ordinals are not yet updated

	// Pet Ordinals[0] is not made while Object, a pod or claim, holds its
	// place.
	HeldByController // pod Object has another controller, Owner
	HeldByMismatch   // pod Object does not match the selector
	HeldReleased     // pod Object was released
	HeldOrphanGoing  // pod Object, an orphan, is being deleted
	HeldNotAdoptable // pod Object cannot be adopted
	HeldClaimGoing   // claim Object is being deleted
	HeldClaimStale   // claim Object belongs to Owner, deleted
)

// Wait is one reason a set waits, with the ordinals it names. Its String
// is what the Ready condition says; nothing decides on that text.
type Wait struct {
	Kind     WaitKind
	Ordinals []int

	Unavailable, MaxUnavailable int // WaitBudget

	// Object holds a pet back; Owner is its controller, "<kind> <name>".
	Object, Owner string
}

// heldBy is the Wait of pet ordinal held back by object.
func heldBy(kind WaitKind, ordinal int, object, owner string) Wait {
	return Wait{Kind: kind, Ordinals: []int{ordinal}, Object: object, Owner: owner}
}

// String renders the wait for the Ready condition and events.
func (w Wait) String() string {
	os := listOrdinals(w.Ordinals)
	switch w.Kind {
	case WaitFinished:
		return "replacing finished pets"
	case WaitCreating:
		return "creating one pet at a time"
	case WaitAvailable:
		return "waiting for " + os + " to be available"
	case WaitTerminating:
		return "waiting for " + os + " to terminate"
	case WaitCondemned:
		return os + " to be deleted"
	case WaitBudget:
		return "waiting for " + strconv.Itoa(w.Unavailable) + " unavailable pets (maxUnavailable " +
			strconv.Itoa(w.MaxUnavailable) + ") before updating " + os
	case WaitPartition:
		return os + " below the partition keep their revision"
	case WaitOnDelete:
		return os + " at an old revision are updated when deleted (OnDelete)"
	case WaitNotUpdated:
		return os + " not yet updated"
	case HeldByController:
		return "pod " + w.Object + " is controlled by " + w.Owner + ", not by this PetSet"
	case HeldByMismatch:
		return "pod " + w.Object + " exists and does not match the selector"
	case HeldReleased:
		return "pod " + w.Object + " was released: it no longer matches the selector"
	case HeldOrphanGoing:
		return "orphan pod " + w.Object + " is being deleted"
	case HeldNotAdoptable:
		return "cannot adopt pod " + w.Object
	case HeldClaimGoing:
		return "claim " + w.Object + " is being deleted; pet " + os + " waits for a fresh one"
	case HeldClaimStale:
		return "claim " + w.Object + " belongs to a deleted " + w.Owner + "; pet " + os + " waits for the garbage collector"
	}
	return ""
}

// conflict reports whether a held pet waits for a pod that will not go by
// itself: PetsOwned names these, with Warning events.
func (w Wait) conflict() bool { return w.Kind == HeldByController || w.Kind == HeldByMismatch }

// event is the type and reason of the event for a held pet.
func (w Wait) event() (kind, reason string) {
	switch {
	case w.conflict():
		return corev1.EventTypeWarning, "PodConflict"
	case w.Kind == HeldClaimGoing || w.Kind == HeldClaimStale:
		return corev1.EventTypeNormal, "WaitForClaim"
	}
	return corev1.EventTypeNormal, "WaitForPod"
}

// related is the pod or claim holding a pet back, for its event: the
// events API merges repeated events of one set, reason and action into one
// series under the first note, so events about two claims must name their
// claims to be seen apart.
func (w Wait) related(ns string) runtime.Object {
	meta := metav1.ObjectMeta{Namespace: ns, Name: w.Object}
	switch w.Kind {
	case HeldClaimGoing, HeldClaimStale:
		return &corev1.PersistentVolumeClaim{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"}, ObjectMeta: meta}
	case HeldByController, HeldByMismatch, HeldReleased, HeldOrphanGoing, HeldNotAdoptable:
		return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: meta}
	}
	return nil
}

// heldKey identifies a held pet's wait, to tell a new one from one
// already announced.
type heldKey struct {
	kind          WaitKind
	ordinal       int
	object, owner string
}

func (w Wait) key() heldKey {
	k := heldKey{kind: w.Kind, object: w.Object, owner: w.Owner}
	if len(w.Ordinals) > 0 {
		k.ordinal = w.Ordinals[0]
	}
	return k
}

// maxReasons bounds the reasons (and ordinals) a message names: the rest
// are counted, so a thousand held pets do not make a thousand-line
// condition.
const maxReasons = 5

// message joins waits in the order given with "; ", naming at most
// maxReasons of them and counting the others.
func message(waits []Wait) string {
	s := make([]string, 0, min(len(waits), maxReasons))
	for _, w := range waits[:min(len(waits), maxReasons)] {
		s = append(s, w.String())
	}
	out := strings.Join(s, "; ")
	if len(waits) > maxReasons {
		out += "; and " + strconv.Itoa(len(waits)-maxReasons) + " more"
	}
	return out
}

// listOrdinals names ordinals in the order given, at most maxReasons of
// them.
func listOrdinals(os []int) string {
	s := make([]string, 0, min(len(os), maxReasons))
	for _, o := range os[:min(len(os), maxReasons)] {
		s = append(s, strconv.Itoa(o))
	}
	out := strings.Join(s, ", ")
	if len(os) > maxReasons {
		out += " and " + strconv.Itoa(len(os)-maxReasons) + " more"
	}
	return out
}
