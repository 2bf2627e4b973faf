// Package controller is the PetSet ordinal controller. As the StatefulSet
// controller, it decides apart from doing: Decide is a pure plan over the
// pets that exist, PetControl carries it out, Reconciler is the shell.
package controller
