// Package controller is the PetSet ordinal controller. It follows the
// StatefulSet controller's split between deciding and doing:
//
//   - identity.go: pure helpers for names, ordinals and labels;
//   - plan.go: the pure ordinal plan, what to create, delete or replace
//     next for a spec and the pets that exist, and the revision each new
//     pet is due;
//   - revisions.go: ControllerRevisions: canonical data, names with a
//     collision count, matching by data, and the stored template a pet
//     is made from;
//   - lease.go: the namespace of the leader-election lease;
//   - pets.go: the side effects (claims before pods, one event per verb);
//   - reconciler.go: the controller-runtime shell that reads state, runs
//     the plan, does it and writes status;
//   - adopt.go: which pods are the set's (adoption and release, as
//     ControllerRefManager does it) and which pets a foreign pod holds back;
//   - retention.go: the retention policy as owner references on claims,
//     and pets held back by claims on their way out;
//   - deletion.go: no finalizer; deletion is the garbage collector's;
//   - cache.go: what the manager's cache holds (only labelled pods,
//     claims and revisions, without managed fields);
//   - outside.go: the pods and claims the set must see that the cache
//     does not hold, read from the API server.
package controller
