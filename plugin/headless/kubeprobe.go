package headless

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/coredns/coredns/plugin/etcd/msg"
	"github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/plugin/kubernetes/object"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	api "k8s.io/api/core/v1"
)

// kubeAsker is the part of the kubernetes plugin's exported API that tells
// headless the options it keeps unexported (endpoint_pod_names,
// multicluster): asked about made-up objects, its answers show them.
type kubeAsker interface {
	Records(ctx context.Context, state request.Request, exact bool) ([]msg.Service, error)
	Serial(state request.Request) uint32
}

// kubeProbe asks the kubernetes plugin about made-up objects, through a
// copy of it whose connection to the cluster is probeConn.
type kubeProbe struct {
	k  kubeAsker
	ns string // the namespace of the made-up service
}

// newKubeProbe returns the probe of k; it never reaches k's connection.
func newKubeProbe(k *kubernetes.Kubernetes) kubeProbe {
	ns := "headless-probe"
	if len(k.Namespaces) > 0 {
		ns = slices.Sorted(maps.Keys(k.Namespaces))[0] // one the plugin serves
	}
	c := *k
	c.APIConn = probeConn{namespace: ns}
	return kubeProbe{k: &c, ns: ns}
}

// The made-up objects: a headless service in probeZone whose one endpoint,
// a pod without a hostname, has probeAddr.
const (
	probeZone      = "probe.headless.invalid."
	probeService   = "probe"
	probePod       = "probe-pod"
	probeAddr      = "192.0.2.1"
	probeAddrLabel = "192-0-2-1"
)

// podNames reports whether the kubernetes plugin names an endpoint without
// a hostname after its pod (endpoint_pod_names): whether it answers for
// the pod's name or for the address's. Answering both or neither is an
// error: that plugin names endpoints in a way headless does not know.
func (p kubeProbe) podNames() (bool, error) {
	multi, err := p.multicluster(probeZone)
	if err != nil {
		return false, err
	}
	if multi {
		// All its zones are multicluster ones: it names no endpoint of a
		// Service, so there is nothing to follow.
		return false, nil
	}
	byPod, byAddr := p.finds(probePod), p.finds(probeAddrLabel)
	if byPod == byAddr {
		return false, fmt.Errorf("cannot tell whether the kubernetes plugin has endpoint_pod_names "+
			"(it answers %v for an endpoint's pod name, %v for its address): this CoreDNS names endpoints in a way headless does not know", byPod, byAddr)
	}
	return byPod, nil
}

// finds reports whether the kubernetes plugin answers the made-up
// endpoint's address for <label>.<service>.
func (p kubeProbe) finds(label string) bool {
	r := new(dns.Msg)
	r.SetQuestion(label+"."+probeService+"."+p.ns+".svc."+probeZone, dns.TypeA)
	recs, err := p.k.Records(context.Background(), request.Request{Req: r, Zone: probeZone}, false)
	return err == nil && slices.ContainsFunc(recs, func(s msg.Service) bool { return s.Host == probeAddr })
}

// multicluster reports whether zone is one of the kubernetes plugin's
// multicluster zones or below one: the plugin gives such a zone the SOA
// serial of its multicluster services, and any other that of its services.
func (p kubeProbe) multicluster(zone string) (bool, error) {
	switch int64(p.k.Serial(request.Request{Zone: zone})) {
	case probeModified(kubernetes.ModifiedInternal):
		return false, nil
	case probeModified(kubernetes.ModifiedMultiCluster):
		return true, nil
	}
	return false, fmt.Errorf("cannot tell whether %s is a multicluster zone of the kubernetes plugin from its SOA serial: "+
		"this CoreDNS keeps them in a way headless does not know", zone)
}

// probeModified is what probeConn reports as the last change in mode: a
// different time for each mode.
func probeModified(mode kubernetes.ModifiedMode) int64 { return 1_000_000 + int64(mode) }

// probeConn is the kubernetes plugin's connection to a made-up cluster of
// one headless service, probeService in namespace, with one ready endpoint
// of one port whose pod, probePod, has no hostname.
type probeConn struct{ namespace string }

func (c probeConn) SvcIndex(key string) []*object.Service {
	if key != object.ServiceKey(probeService, c.namespace) {
		return nil
	}
	return []*object.Service{{Name: probeService, Namespace: c.namespace, ClusterIPs: []string{api.ClusterIPNone}, Type: api.ServiceTypeClusterIP}}
}

func (c probeConn) EpIndex(key string) []*object.Endpoints {
	if key != object.EndpointsKey(probeService, c.namespace) {
		return nil
	}
	return []*object.Endpoints{{
		Name: probeService, Namespace: c.namespace, Index: key,
		Subsets: []object.EndpointSubset{{
			Addresses: []object.EndpointAddress{{IP: probeAddr, TargetRefName: probePod}},
			Ports:     []object.EndpointPort{{Port: 80, Protocol: "TCP"}},
		}},
	}}
}

func (c probeConn) GetNamespaceByName(name string) (*object.Namespace, error) {
	if name != c.namespace {
		return nil, errors.New("no such namespace")
	}
	return &object.Namespace{Name: name}, nil
}

func (probeConn) Modified(mode kubernetes.ModifiedMode) int64 { return probeModified(mode) }

func (probeConn) ServiceList() []*object.Service                   { return nil }
func (probeConn) EndpointsList() []*object.Endpoints               { return nil }
func (probeConn) ServiceImportList() []*object.ServiceImport       { return nil }
func (probeConn) SvcIndexReverse(string) []*object.Service         { return nil }
func (probeConn) SvcExtIndexReverse(string) []*object.Service      { return nil }
func (probeConn) SvcImportIndex(string) []*object.ServiceImport    { return nil }
func (probeConn) PodIndex(string) []*object.Pod                    { return nil }
func (probeConn) EpIndexReverse(string) []*object.Endpoints        { return nil }
func (probeConn) McEpIndex(string) []*object.MultiClusterEndpoints { return nil }
func (probeConn) GetNodeByName(context.Context, string) (*api.Node, error) {
	return nil, errors.New("no nodes")
}
func (probeConn) Run()            {}
func (probeConn) HasSynced() bool { return true }
func (probeConn) Stop() error     { return nil }
