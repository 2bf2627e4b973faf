package discovery

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

// goldenData is twelve peers given in reverse, web-3 dual-stack, as this
// pod web-2 sees them.
func goldenData(t *testing.T) Data {
	t.Helper()
	hosts := webs(12)
	for i, j := 0, len(hosts)-1; i < j; i, j = i+1, j-1 {
		hosts[i], hosts[j] = hosts[j], hosts[i]
	}
	r := srvReply(5, hosts...)
	r.msg.Extra = append(r.msg.Extra, &dns.AAAA{Hdr: dns.RR_Header{Name: "web-3.web.demo.svc.cluster.local.", Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 5}, AAAA: []byte{0xfd, 0, 0x10, 0, 0x2, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}})
	a, err := parseSRV(r.msg, svcName)
	if err != nil {
		t.Fatal(err)
	}
	return Data{Self: "web-2.web.demo.svc.cluster.local", Host: "web-2", Ordinal: 2, Service: "web", Namespace: "demo", Domain: "cluster.local", Peers: a.peers}
}

func TestGoldenBuiltins(t *testing.T) {
	d := goldenData(t)
	for _, name := range BuiltinNames() {
		tmpl, err := loadTemplate(name)
		if err != nil {
			t.Fatal(err)
		}
		out, err := render(tmpl, d)
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, strings.TrimPrefix(name, "builtin:")+".golden", out)
	}
}

func TestGoldenPeerLists(t *testing.T) {
	d := goldenData(t)
	for _, format := range []string{"lines", "json"} {
		var out syncBuffer
		f := &finder{cfg: &Config{Format: format}, o: Options{Stdout: &out}}
		if err := f.print(d); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "peers-"+format+".golden", []byte(out.String()))
	}
}

// The golden etcd file says what etcd's documentation asks of a static
// bootstrap: initial-cluster lists every member as name=peer-URL, in
// ordinal order, and this member's name and advertised peer URL are in it.
func TestBuiltinEtcdInitialCluster(t *testing.T) {
	d := goldenData(t)
	tmpl, _ := loadTemplate("builtin:etcd")
	out, err := render(tmpl, d)
	if err != nil {
		t.Fatal(err)
	}
	conf := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(k, "#") {
			conf[k] = v
		}
	}
	var want []string
	for i := range 12 {
		h := fmt.Sprintf("web-%d", i)
		want = append(want, h+"=http://"+h+".web.demo.svc.cluster.local:2380")
	}
	if conf["initial-cluster"] != strings.Join(want, ",") {
		t.Fatalf("initial-cluster %s\nwant %s", conf["initial-cluster"], strings.Join(want, ","))
	}
	if conf["name"] != "web-2" || !strings.Contains(conf["initial-cluster"], conf["name"]+"="+conf["initial-advertise-peer-urls"]) {
		t.Fatalf("name %q and peer URL %q not a member of the initial cluster", conf["name"], conf["initial-advertise-peer-urls"])
	}
}

// builtin:zookeeper gives each peer the id ordinal+1, or its position+1
// without an ordinal; two peers with one id fail the rendering, naming
// both, instead of writing an ensemble ZooKeeper would reject or misjoin.
func TestBuiltinZookeeperIDs(t *testing.T) {
	tmpl, err := loadTemplate("builtin:zookeeper")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		hosts []string
		want  []string // server lines
		err   string
	}{
		{hosts: []string{"web-1", "web-0"}, want: []string{"server.1=web-0.web.demo.svc.cluster.local:2888:3888", "server.2=web-1.web.demo.svc.cluster.local:2888:3888"}},
		{hosts: []string{"web-5", "web-0"}, want: []string{"server.1=web-0.web.demo.svc.cluster.local:2888:3888", "server.6=web-5.web.demo.svc.cluster.local:2888:3888"}},
		{hosts: []string{"beta", "alpha"}, want: []string{"server.1=alpha.web.demo.svc.cluster.local:2888:3888", "server.2=beta.web.demo.svc.cluster.local:2888:3888"}},
		// alpha sorts first and takes position 0, id 1: web-0's id.
		{hosts: []string{"web-0", "alpha"}, err: "zookeeper: server.1 is both alpha.web.demo.svc.cluster.local (no ordinal, position 0) and web-0.web.demo.svc.cluster.local (ordinal 0)"},
		{hosts: []string{"web-1", "web-3", "a-x", "b"}, err: "server.2 is both b.web.demo.svc.cluster.local (no ordinal, position 1) and web-1.web.demo.svc.cluster.local (ordinal 1)"},
	} {
		a, err := parseSRV(srvReply(5, tc.hosts...).msg, svcName)
		if err != nil {
			t.Fatal(err)
		}
		out, err := render(tmpl, Data{Service: "web", Namespace: "demo", Domain: "cluster.local", Peers: a.peers})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err = %v, output %q; want an error containing %q", tc.hosts, err, out, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.hosts, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")[1:]
		if !reflect.DeepEqual(lines, tc.want) {
			t.Errorf("%v: lines %q, want %q", tc.hosts, lines, tc.want)
		}
	}
}
