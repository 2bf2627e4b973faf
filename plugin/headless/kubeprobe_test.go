package headless

import (
	"context"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/etcd/msg"
	"github.com/coredns/coredns/request"
)

// The kubernetes plugin's endpoint_pod_names and multicluster zones are
// learnt from what the plugin answers, and learning them never reaches its
// connection to the cluster.
func TestKubeProbe(t *testing.T) {
	tests := []struct {
		stanza   string
		podNames bool
		multi    []string // its multicluster zones among the zones asked
	}{
		{stanza: "kubernetes cluster.local {\nendpoint_pod_names\n}", podNames: true},
		{stanza: "kubernetes cluster.local"},
		{stanza: "kubernetes cluster.local {\npods insecure\n}"},
		{stanza: "kubernetes cluster.local {\nnamespaces b a\nendpoint_pod_names\n}", podNames: true},
		{stanza: "kubernetes cluster.local {\nnamespaces b a\n}"},
		{stanza: "kubernetes cluster.local {\nignore empty_service\nendpoint_pod_names\n}", podNames: true},
		{stanza: "kubernetes cluster.local clusterset.local {\nmulticluster clusterset.local\nendpoint_pod_names\n}",
			podNames: true, multi: []string{"clusterset.local.", "sub.clusterset.local."}},
		{stanza: "kubernetes cluster.local local {\nmulticluster local\n}",
			multi: []string{"cluster.local.", "clusterset.local.", "local.", "sub.clusterset.local."}},
		// Every zone is a multicluster one: no endpoint of a Service has
		// a name in it to follow.
		{stanza: "kubernetes . {\nmulticluster .\nendpoint_pod_names\n}",
			multi: []string{"cluster.local.", "clusterset.local.", "local.", "sub.clusterset.local.", "example.org."}},
	}
	for _, tc := range tests {
		conn := defaultConn()
		k := newKube(t, tc.stanza, conn)
		p := newKubeProbe(k)
		got, err := p.podNames()
		if err != nil || got != tc.podNames {
			t.Errorf("%q: endpoint_pod_names %v, %v; want %v", tc.stanza, got, err, tc.podNames)
		}
		for _, z := range []string{"cluster.local.", "clusterset.local.", "local.", "sub.clusterset.local.", "example.org."} {
			want := false
			for _, m := range tc.multi {
				want = want || m == z
			}
			if got, err := p.multicluster(z); err != nil || got != want {
				t.Errorf("%q: %s multicluster %v, %v; want %v", tc.stanza, z, got, err, want)
			}
		}
		if len(conn.calls) > 0 {
			t.Errorf("%q: the probe used the plugin's connection: %v", tc.stanza, conn.calls)
		}
		if k.APIConn != conn {
			t.Errorf("%q: the probe changed the plugin's connection", tc.stanza)
		}
	}
}

// A kubernetes plugin whose answers do not say what it does makes the
// probe fail, rather than guess.
func TestKubeProbeCannotTell(t *testing.T) {
	tests := []struct {
		name    string
		asker   fakeAsker
		podErr  bool
		multErr bool
	}{
		{name: "as CoreDNS v1.15", asker: fakeAsker{serial: uint32(probeModified(0)), found: []string{probePod}}},
		{name: "answers both names", asker: fakeAsker{serial: uint32(probeModified(0)), found: []string{probePod, probeAddrLabel}}, podErr: true},
		{name: "answers neither name", asker: fakeAsker{serial: uint32(probeModified(0))}, podErr: true},
		{name: "another serial", asker: fakeAsker{serial: 7, found: []string{probePod}}, podErr: true, multErr: true},
	}
	for _, tc := range tests {
		p := kubeProbe{k: tc.asker, ns: "ns"}
		if _, err := p.podNames(); (err != nil) != tc.podErr {
			t.Errorf("%s: endpoint_pod_names error %v, want one: %v", tc.name, err, tc.podErr)
		} else if err != nil && !strings.Contains(err.Error(), "cannot tell") {
			t.Errorf("%s: error %q does not say what headless cannot tell", tc.name, err)
		}
		if _, err := p.multicluster("cluster.local."); (err != nil) != tc.multErr {
			t.Errorf("%s: multicluster error %v, want one: %v", tc.name, err, tc.multErr)
		}
	}
}

// fakeAsker is a kubernetes plugin that gives every zone one serial and
// answers the names whose first labels are in found.
type fakeAsker struct {
	serial uint32
	found  []string
}

func (f fakeAsker) Serial(request.Request) uint32 { return f.serial }

func (f fakeAsker) Records(_ context.Context, state request.Request, _ bool) ([]msg.Service, error) {
	for _, l := range f.found {
		if strings.HasPrefix(state.Name(), l+".") {
			return []msg.Service{{Host: probeAddr}}, nil
		}
	}
	return nil, nil
}
