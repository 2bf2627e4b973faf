// Package discovery finds the peers of a pod in a stateful set through the
// DNS records of its governing headless service, and hands them to a hook,
// a rendered configuration file or standard output. It is the library
// behind cmd/peer-finder, a drop-in replacement for Kubernetes'
// peer-finder: it asks the port-less SRV name <service>.<ns>.svc.<domain>,
// waits until its own name is among the targets, orders peers by ordinal
// (web-2 before web-10), gives up after a timeout with a message that names
// what was missing, and runs hooks with an argument list, never a shell.
// For etcd it also keeps the cluster's members in step with the set's
// ordinals: joining, promoting and leaving (etcd.go).
package discovery

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// Version is peer-finder's version; release builds set it with
// -ldflags "-X petset.dev/petset/discovery.Version=...".
var Version = "0.1.0-dev"

// Peer is one member of the service: a distinct SRV target.
type Peer struct {
	// Name is the fully qualified name without the final dot, such as
	// web-2.web.demo.svc.cluster.local.
	Name string `json:"name"`
	// Host is Name's first label (web-2).
	Host string `json:"host"`
	// Ordinal is the number after Host's last dash (2), or -1.
	Ordinal int `json:"ordinal"`
	// Addresses are the target's A and AAAA glue in the answer, sorted.
	Addresses []string `json:"addresses"`
	// Ports are the SRV ports of the target, ascending.
	Ports []int `json:"ports"`
}

// Data is what templates see, and what -format json prints.
type Data struct {
	Self      string `json:"self"`    // this pod's fully qualified name
	Host      string `json:"host"`    // this pod's hostname
	Ordinal   int    `json:"ordinal"` // this pod's ordinal, or -1
	Service   string `json:"service"`
	Namespace string `json:"namespace"`
	Domain    string `json:"domain"`
	Peers     []Peer `json:"peers"` // in ordinal order, this pod included
	// Etcd is the cluster -etcd-join found, nil without it.
	Etcd *EtcdCluster `json:"etcd,omitempty"`
}

// Names returns the peers' fully qualified names, in order.
func (d Data) Names() []string {
	out := make([]string, len(d.Peers))
	for i, p := range d.Peers {
		out[i] = p.Name
	}
	return out
}

// Sentinel errors that callers test with errors.Is.
var (
	// ErrNoSuchService: the service name does not exist (NXDOMAIN).
	ErrNoSuchService = errors.New("no such service")
	// ErrInterrupted: a signal stopped peer-finder before it finished.
	ErrInterrupted = errors.New("interrupted")
)

// UsageError is bad input: a flag, a file or a value that cannot work.
// peer-finder exits with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// SignalError is the cause a caller cancels Run's context with when a
// signal arrives (context.WithCancelCause): a run-once peer-finder stopped
// by it before its first run exits 128 plus the signal's number.
type SignalError struct{ Signal syscall.Signal }

func (e *SignalError) Error() string { return "got " + e.Signal.String() }

// TimeoutError is the end of -timeout; Missing names what was not there.
type TimeoutError struct {
	After   string
	Missing string
}

func (e *TimeoutError) Error() string {
	return "timed out after " + e.After + ": " + e.Missing
}

// HookError is a hook that ran and failed, or could not start.
type HookError struct {
	Hook string // the flag: on-start or on-change
	Code int    // its exit status; 126 if it could not start
	Err  error
}

func (e *HookError) Error() string { return fmt.Sprintf("-%s hook: %v", e.Hook, e.Err) }
func (e *HookError) Unwrap() error { return e.Err }

// Exit codes of peer-finder.
const (
	ExitOK      = 0
	ExitFailure = 1 // DNS or file errors, a failed hook that could not report a status
	ExitUsage   = 2 // bad flags or input
	ExitTimeout = 3 // -timeout ran out
	// ExitSignal is the status after SIGTERM stopped a run-once
	// peer-finder before it finished (128 + SIGTERM), and after its context
	// ended without a *SignalError; SIGINT gives 130 (128 + SIGINT).
	ExitSignal = 143
)

// ExitCode maps what Run returned to peer-finder's exit status: the hook's
// own status when a run-once hook failed.
func ExitCode(err error) int {
	var (
		u *UsageError
		t *TimeoutError
		h *HookError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &u):
		return ExitUsage
	case errors.As(err, &t):
		return ExitTimeout
	case errors.As(err, &h):
		if h.Code > 0 {
			return h.Code
		}
		return ExitFailure
	case errors.Is(err, ErrInterrupted):
		var s *SignalError
		if errors.As(err, &s) {
			return 128 + int(s.Signal)
		}
		return ExitSignal
	}
	return ExitFailure
}

// ordinalOf returns the number after host's last dash, or -1: web-10 is 10,
// web is -1, web- is -1.
func ordinalOf(host string) int {
	i := strings.LastIndexByte(host, '-')
	if i < 0 || i == len(host)-1 || len(host)-i-1 > 9 {
		return -1
	}
	n, err := strconv.Atoi(host[i+1:])
	if err != nil || n < 0 || host[i+1] == '+' {
		return -1
	}
	return n
}

// prefixOf is host without its ordinal suffix.
func prefixOf(host string, ordinal int) string {
	if ordinal < 0 {
		return host
	}
	return host[:strings.LastIndexByte(host, '-')]
}

// peerLess orders peers as a StatefulSet numbers them: by the name before
// the ordinal, then by ordinal (web-2 before web-10), then by full name.
func peerLess(a, b Peer) bool {
	pa, pb := prefixOf(a.Host, a.Ordinal), prefixOf(b.Host, b.Ordinal)
	if pa != pb {
		return pa < pb
	}
	if a.Ordinal != b.Ordinal {
		return a.Ordinal < b.Ordinal
	}
	return a.Name < b.Name
}
