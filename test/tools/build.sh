#!/usr/bin/env bash
# Builds the control-plane and node binaries for the end-to-end tests into a cache
# directory keyed by the tools module's go.sum, so a second run is a no-op.
# Usage: test/tools/build.sh [CACHE_DIR]
# CACHE_DIR defaults to $PETSET_TESTBED_CACHE, else .cache/testbed in the
# repository (git ignores it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${1:-${PETSET_TESTBED_CACHE:-$root/.cache/testbed}}
kwok_version=v0.8.0
key=$( (cat "$here/go.mod" "$here/go.sum"; echo "kwok $kwok_version") | sha256sum | cut -c1-16)
out=$cache/$key
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl kubelet kube-proxy)
files=(kwok-stages-without-delete.yaml)
missing=0
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
for f in "${files[@]}"; do [ -s "$out/$f" ] || missing=1; done
if [ $missing = 0 ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
cd "$here"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v1.34.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
build() { # name package
	[ -x "$out/$1" ] && return 0
	echo "building $1" >&2
	GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$1.tmp" "$2" >&2
	mv "$out/$1.tmp" "$out/$1"
}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
# kubectl (for applying deploy/ with -k), and the kubelet and kube-proxy of
# the real node, at the control plane's version. They come from the same
# k8s.io/kubernetes module and versions (go.mod), but their packages need
# go.sum lines the others do not; adding them to go.sum would change the
# cache key and rebuild everything above. So they are built from a scratch
# copy of the module, whose go.sum may grow, and a cache built before them
# gains only these.
scratchbuild() { # name package
	[ -x "$out/$1" ] && return 0
	echo "building $1" >&2
	scratch=$(mktemp -d)
	cp "$here/go.mod" "$here/go.sum" "$here/tools.go" "$scratch/"
	(cd "$scratch" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$1.tmp" "$2") >&2
	rm -rf "$scratch"
	mv "$out/$1.tmp" "$out/$1"
}
scratchbuild kubectl k8s.io/kubernetes/cmd/kubectl
scratchbuild kubelet k8s.io/kubernetes/cmd/kubelet
scratchbuild kube-proxy k8s.io/kubernetes/cmd/kube-proxy
# kwok pins its own Kubernetes libraries, which clash with the v0.34 ones
# above: install it from its own module.
if [ ! -x "$out/kwok" ]; then
	echo "building kwok" >&2
	GOBIN="$out" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$kwok_version" >&2
fi
# kwok's stages: nodes become Ready and keep a heartbeat, pods become Ready
# and finish. Joined into one file for --config. Not pod-delete: it
# deletes by name, so a replacement of the same name made meanwhile went
# too; the testbed's reaper ends pods being deleted instead.
if [ ! -s "$out/kwok-stages-without-delete.yaml" ]; then
	stages=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$kwok_version/kustomize/stage
	[ -d "$stages" ] || (cd "$(mktemp -d)" && go mod init x >/dev/null 2>&1 && go mod download -x "sigs.k8s.io/kwok@$kwok_version" >/dev/null 2>&1)
	for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml; do
		cat "$stages/$f"; echo "---"
	done > "$out/kwok-stages-without-delete.yaml.tmp"
	mv "$out/kwok-stages-without-delete.yaml.tmp" "$out/kwok-stages-without-delete.yaml"
fi
echo "$out"
