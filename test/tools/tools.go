//go:build tools

// Package tools pins the control-plane binaries built for the testbed,
// and the kubectl of their version. build.sh builds kubectl from a scratch
// copy of this module, so go.sum (which keys the cache) does not list its
// extra packages; `go mod tidy` here would add them and rebuild the cache.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
