# petset: one command for the demo, one for every test.
#
#   make demo   serve headless-service DNS from corefile/demo on 127.0.0.1:1053
#   make test   everything CI runs
#   make images OCI images of coredns, ordinal-controller and peer-finder in bin/images
#   make push REGISTRY=registry/path   build the images and push them there

SHELL := /bin/bash
GO    ?= go
FUZZTIME ?= 15s
# New inputs are minimized for at most this long, so a short run fuzzes.
FUZZMIN  ?= 2s

CLUSTER_DIR ?= $(CURDIR)/.cache/cluster

# Images: named $(REGISTRY)/<name>:<version>, the version from
# `git describe --tags --always --dirty` (leading v dropped) unless VERSION
# is set. deploy/ references the released tag (README.md, "Images").
REGISTRY  ?= ghcr.io/petset
PLATFORMS ?= linux/amd64,linux/arm64
VERSION   ?=

.PHONY: all build demo test setup lint generate verify-generated unit fuzz e2e testbed cluster-up cluster-down bench bench-dns bench-realnode dnsperf clean images push

all: build

build:
	$(GO) build -o bin/coredns ./cmd/coredns
	$(GO) build -o bin/peer-finder ./cmd/peer-finder
	$(GO) build -o bin/ordinal-controller ./cmd/ordinal-controller

# The image builder is the module in build/ (go-containerregistry stays out
# of the main module's dependency graph).
images:
	$(GO) -C build run ./cmd/images -root $(CURDIR) -out $(CURDIR)/bin/images -platforms $(PLATFORMS) -registry $(REGISTRY) $(if $(VERSION),-version $(VERSION))

push: images
	$(GO) -C build run ./cmd/images -push -out $(CURDIR)/bin/images -registry $(REGISTRY)

demo:
	$(GO) run ./cmd/coredns -conf corefile/demo.Corefile

# setup installs what the tests need that Go does not bring: dig and
# dnsperf, and the real node's containerd, runc, CNI plugins and iptables.
SETUP_TOOLS = dig dnsperf containerd runc iptables /usr/lib/cni/bridge
setup:
	@missing=0; for t in $(SETUP_TOOLS); do command -v $$t >/dev/null || [ -x $$t ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq bind9-dnsutils dnsperf \
			containerd runc containernetworking-plugins iptables >/dev/null; \
	fi

test: setup lint unit fuzz e2e

lint: verify-generated
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet -tags e2e ./...
	$(GO) -C build vet ./...
	$(STATICCHECK) -tags e2e ./...
	cd build && $(STATICCHECK) ./...

STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

# generate rewrites the deepcopy functions and the PetSet CRD from
# api/v1alpha1 with the controller-gen release named in the CRD.
CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
generate:
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd:generateEmbeddedObjectMeta=true,maxDescLen=0 paths=./api/... output:crd:dir=deploy/crd
	$(GO) run ./hack/crdbounds deploy/crd/petset.dev_petsets.yaml

# verify-generated fails when the generated files differ from what
# `make generate` writes from api/v1alpha1.
verify-generated:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(CONTROLLER_GEN) crd:generateEmbeddedObjectMeta=true,maxDescLen=0 paths=./api/... output:crd:dir=$$tmp && \
	$(GO) run ./hack/crdbounds $$tmp/petset.dev_petsets.yaml && \
	diff -u deploy/crd/petset.dev_petsets.yaml $$tmp/petset.dev_petsets.yaml && \
	cp api/v1alpha1/zz_generated.deepcopy.go $$tmp/deepcopy.go && \
	$(CONTROLLER_GEN) object paths=./api/... && \
	if ! diff -u $$tmp/deepcopy.go api/v1alpha1/zz_generated.deepcopy.go; then \
		cp $$tmp/deepcopy.go api/v1alpha1/zz_generated.deepcopy.go; \
		echo "generated files out of date: run make generate"; exit 1; fi

# build/ (the image builder) runs without the race detector: it builds the
# three binaries with go build and gzips them, and under -race go-containerregistry's
# compression and hashing of the 60 MB CoreDNS layer take minutes instead of
# seconds; its only concurrency is that library's own.
#
# ./test starts whole CoreDNS servers one after another in one process.
# CoreDNS's kubernetes plugin sets klog's logger in every setup while the
# previous server's reflectors may still read it: an upstream race, so that
# package runs without the race detector. It also runs the testbed's etcd,
# built first (cold, in minutes) outside go test's timeout.
unit: testbed
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '^petset.dev/petset/test$$')
	$(GO) test -count=1 ./test/
	$(GO) -C build test -count=1 ./...

# Bounded runs of the fuzz targets; the seed corpora also run in 'unit'.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzServeDNS$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./plugin/headless/
	$(GO) test -run '^$$' -fuzz '^FuzzZoneOf$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./plugin/headless/
	$(GO) test -run '^$$' -fuzz '^FuzzParseReverse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./plugin/headless/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./plugin/headless/manifest/
	$(GO) test -run '^$$' -fuzz '^FuzzParseSRV$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./discovery/
	$(GO) test -run '^$$' -fuzz '^FuzzResolvConf$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./discovery/
	$(GO) test -run '^$$' -fuzz '^FuzzCanonicalJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./controller/
	$(GO) test -run '^$$' -fuzz '^FuzzSplitWords$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./discovery/
	$(GO) test -run '^$$' -fuzz '^FuzzParseDNSPerf$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./test/dnsbench/
	$(GO) test -run '^$$' -fuzz '^FuzzParseGoBench$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./test/dnsbench/
	$(GO) -C build test -run '^$$' -fuzz '^FuzzParsePlatforms$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMIN) ./image/

# The control-plane binaries, built once and cached under .cache/testbed.
testbed:
	test/tools/build.sh

# End-to-end: a real control plane with kwok's node (test/e2e: CoreDNS
# from cmd/coredns, dig, the controller as a process), then with a real
# kubelet node (test/realnode: petset's images in containers; needs root).
# One package at a time: the real node's suite needs the machine's CPU.
e2e: setup testbed
	$(GO) test -tags e2e -count=1 -v -p 1 -timeout 50m ./test/e2e/ ./test/realnode/ 2>&1 | grep -vE '^=== (RUN|PAUSE|CONT)'; exit $${PIPESTATUS[0]}

# A control plane for trying things by hand: KUBECONFIG=$(CLUSTER_DIR)/kubeconfig
cluster-up: testbed
	$(GO) run ./test/cluster/cmd/testbed up $(CLUSTER_DIR)

cluster-down:
	$(GO) run ./test/cluster/cmd/testbed down $(CLUSTER_DIR)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./plugin/headless/ ./discovery/

# The DNS benchmark of issue 9 (test/dnsbench): a testbed with 100 headless
# services of 10 pods, then 100 more of 100 pods (11,000 pods), CoreDNS with
# headless + kubernetes, kubernetes alone and whoami pinned to CPU 0, dnsperf
# on CPU 1, then 60 s of readiness churn. Writes BENCHMARKS.md and
# test/dnsbench/results/ (results.json, qps.svg, rss.svg). About 30 minutes.
# BENCH_DNS_FLAGS passes flags to it (go run ./test/dnsbench/cmd/dnsbench -h).
BENCH_DNS_FLAGS ?=
bench-dns: setup build testbed
	$(GO) run ./test/dnsbench/cmd/dnsbench -coredns bin/coredns $(BENCH_DNS_FLAGS)

# The real node's numbers (test/realnode): from kubectl apply to a healthy
# three-member etcd (deploy/examples/etcd.yaml as a PetSet and as a
# StatefulSet, Parallel and OrderedReady), a pet deleted to its name
# answering again, and headless's DNS programming latency there. Needs root.
bench-realnode: setup testbed
	$(GO) test -tags e2e -run '^$$' -bench . -benchtime 3x -timeout 60m ./test/realnode/

# dnsperf against the demo server: 20 seconds of the queries in
# test/dnsperf/queries.txt on 127.0.0.1.
dnsperf: setup build
	test/dnsperf/run.sh bin/coredns

clean:
	rm -rf bin
