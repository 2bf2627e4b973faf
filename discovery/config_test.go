package discovery

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("search demo.svc.corp.example svc.corp.example corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"), 0o644)
	bare := filepath.Join(dir, "bare.conf")
	os.WriteFile(bare, []byte("nameserver 127.0.0.53\nsearch lan\n"), 0o644)
	tmpl := filepath.Join(dir, "peers.tmpl")
	os.WriteFile(tmpl, []byte("{{range .Peers}}{{.Name}} {{end}}\n"), 0o644)
	broken := filepath.Join(dir, "broken.tmpl")
	os.WriteFile(broken, []byte("{{range .Peers}"), 0o644)
	unreadable := filepath.Join(dir, "secret.tmpl")
	os.WriteFile(unreadable, []byte("x"), 0o000)
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o644)
	hook := filepath.Join(dir, "on-start.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\n"), 0o755)
	os.Mkdir(filepath.Join(dir, "my hooks"), 0o755)
	spaced := filepath.Join(dir, "my hooks", "on start.sh")
	os.WriteFile(spaced, []byte("#!/bin/sh\n"), 0o755)
	emptyDir := filepath.Join(dir, "empty")
	os.Mkdir(emptyDir, 0o755)
	hookIs := func(want ...string) func(*Config) string {
		return func(c *Config) string {
			if !reflect.DeepEqual(c.OnStart, want) {
				return "hook " + strings.Join(c.OnStart, "|")
			}
			return ""
		}
	}

	env := map[string]string{"POD_NAMESPACE": "demo"}
	base := []string{"-service", "web", "-resolv-conf", resolv}
	tests := []struct {
		name  string
		args  []string
		check func(*Config) string // "" when fine
		err   string               // a usage error containing this
	}{
		{name: "defaults from the environment and resolv.conf", args: base, check: func(c *Config) string {
			switch {
			case c.Namespace != "demo", c.Domain != "corp.example", c.Hostname != "web-3":
				return "ns, domain or hostname"
			case !reflect.DeepEqual(c.Servers, []string{"10.96.0.10:53"}):
				return "servers"
			case c.SelfName() != "web-3.web.demo.svc.corp.example", c.ServiceName() != "web.demo.svc.corp.example":
				return "names"
			case c.Watching(), c.MinPeers != 1, c.Timeout != 0, c.Format != "lines":
				return "mode"
			}
			return ""
		}},
		{name: "flags win", args: append(base, "-ns", "other", "-domain", "cluster.local.", "-hostname", "db-1", "-dns-server", "127.0.0.1:1053"), check: func(c *Config) string {
			if c.SelfName() != "db-1.web.other.svc.cluster.local" || c.Servers[0] != "127.0.0.1:1053" {
				return c.SelfName() + " " + c.Servers[0]
			}
			return ""
		}},
		{name: "no svc search entry: cluster.local; port 53 added", args: []string{"-service", "web", "-resolv-conf", bare, "-dns-server", "::1"}, check: func(c *Config) string {
			if c.Domain != "cluster.local" || c.Servers[0] != "[::1]:53" {
				return c.Domain + " " + c.Servers[0]
			}
			return ""
		}},
		{name: "on-change watches; hooks split into arguments, no shell", args: append(base, "-on-change", "/bin/echo a;b $(c)", "-on-start", "/bin/true"), check: func(c *Config) string {
			if !c.Watching() || !reflect.DeepEqual(c.OnChange, []string{"/bin/echo", "a;b", "$(c)"}) || c.OnStart[0] != "/bin/true" {
				return "hooks"
			}
			return ""
		}},
		// Kubernetes' own galera and redis examples pass -on-start="/work-dir/on-start.sh"
		// in a YAML args list: the quotes reach peer-finder and are removed like a shell would.
		{name: "hook without quotes", args: append(base, "-on-start="+hook), check: hookIs(hook)},
		{name: "hook in double quotes", args: append(base, `-on-start="`+hook+`"`), check: hookIs(hook)},
		{name: "hook in single quotes with an argument", args: append(base, "-on-start='"+hook+"' arg"), check: hookIs(hook, "arg")},
		{name: "quoted path with spaces, escapes, no expansion", args: append(base, "-on-start", `"`+spaced+`" 'a b' c\ d "e\"f\$g" '' $HOME *`), check: hookIs(spaced, "a b", "c d", `e"f$g`, "", "$HOME", "*")},
		{name: "unterminated double quote", args: append(base, `-on-start="`+hook), err: "-on-start: unterminated double quote"},
		{name: "unterminated single quote", args: append(base, "-on-change", hook+" 'x"), err: "-on-change: unterminated single quote"},
		{name: "trailing backslash", args: append(base, "-on-change", hook+` x\`), err: "-on-change: backslash at the end"},
		{name: "empty program", args: append(base, "-on-start", `"" x`), err: "-on-start: empty program name"},
		{name: "repeatable waits", args: append(base, "-wait-dns", "a.example", "-wait-dns", "b.example.", "-wait-tcp", "127.0.0.1:1", "-timeout", "1m", "-min-peers", "3"), check: func(c *Config) string {
			if len(c.WaitDNS) != 2 || len(c.WaitTCP) != 1 || c.Timeout != time.Minute || c.MinPeers != 3 {
				return "waits"
			}
			return ""
		}},
		{name: "builtin template, -out in an existing directory", args: append(base, "-template", "builtin:etcd", "-out", filepath.Join(dir, "etcd.yaml")), check: func(c *Config) string {
			if c.tmpl == nil {
				return "template"
			}
			return ""
		}},
		{name: "template file", args: append(base, "-template", tmpl)},
		{name: "unknown flag", args: append(base, "-bogus"), err: "not defined: -bogus"},
		{name: "stray argument", args: append(base, "extra"), err: `unexpected argument "extra"`},
		{name: "no service", args: []string{"-resolv-conf", resolv}, err: "-service is required"},
		{name: "service not a label", args: []string{"-service", "web.demo", "-resolv-conf", resolv}, err: `-service "web.demo" is not a DNS label`},
		{name: "service upper case", args: []string{"-service", "Web", "-resolv-conf", resolv}, err: "not a DNS label"},
		{name: "bad namespace", args: append(base, "-ns", "a_b"), err: "-ns"},
		{name: "bad hostname", args: append(base, "-hostname", "web_0"), err: "-hostname"},
		{name: "bad domain", args: append(base, "-domain", "bad_domain"), err: "-domain"},
		{name: "missing template", args: append(base, "-template", filepath.Join(dir, "none.tmpl")), err: "-template: read"},
		{name: "unknown builtin", args: append(base, "-template", "builtin:redis"), err: "builtin:etcd, builtin:json, builtin:zookeeper"},
		{name: "template that does not parse", args: append(base, "-template", broken), err: "-template: parse"},
		{name: "out directory missing", args: append(base, "-template", tmpl, "-out", filepath.Join(dir, "nope", "x")), err: "-out"},
		{name: "out directory a file", args: append(base, "-template", tmpl, "-out", filepath.Join(notDir, "x")), err: "-out"},
		{name: "out without template", args: append(base, "-out", filepath.Join(dir, "x")), err: "needs -template"},
		{name: "hook not found", args: append(base, "-on-start", "/no/such/hook"), err: "-on-start"},
		{name: "blank hook", args: append(base, "-on-change", "  "), err: "blank"},
		{name: "negative timeout", args: append(base, "-timeout", "-1s"), err: "-timeout"},
		{name: "min-peers 0", args: append(base, "-min-peers", "0"), err: "-min-peers"},
		{name: "bad format", args: append(base, "-format", "yaml"), err: "-format"},
		{name: "bad wait-tcp", args: append(base, "-wait-tcp", "localhost"), err: "-wait-tcp"},
		{name: "bad wait-dns", args: append(base, "-wait-dns", "a..b"), err: "-wait-dns"},
		{name: "wait-dns not fully qualified", args: append(base, "-wait-dns", "zk"), err: "give a fully qualified name, such as zk.demo.svc.corp.example"},
		{name: "bad dns-server", args: append(base, "-dns-server", "[::1"), err: "-dns-server"},
		{name: "interval above max", args: append(base, "-interval", "1m"), err: "-interval"},
		{name: "ready-file directory missing", args: append(base, "-ready-file", filepath.Join(dir, "nope", "ready")), err: "-ready-file"},
		{name: "bad health address", args: append(base, "-health-addr", "8080"), err: "-health-addr"},
		{name: "health port too large", args: append(base, "-health-addr", ":99999"), err: `-health-addr ":99999": port 99999 is not a number from 0 to 65535`},
		{name: "health port negative", args: append(base, "-health-addr", "127.0.0.1:-1"), err: "-health-addr"},
		{name: "health port named", args: append(base, "-health-addr", ":http"), err: "-health-addr"},
		{name: "health port 65535", args: append(base, "-health-addr", "127.0.0.1:65535")},
		{name: "ready-file an empty directory", args: append(base, "-ready-file", emptyDir), err: "-ready-file " + emptyDir + " is a directory"},
		{name: "ready-file a directory with files", args: append(base, "-ready-file", dir), err: "is a directory"},
		{name: "out an empty directory", args: append(base, "-template", tmpl, "-out", emptyDir), err: "-out " + emptyDir + " is a directory"},
		{name: "no resolv.conf and no server", args: []string{"-service", "web", "-resolv-conf", filepath.Join(dir, "none")}, err: "give -dns-server"},
		{name: "etcd init container", args: append(base, "-etcd-join", "-etcd-data-dir", emptyDir, "-template", "builtin:etcd"), check: func(c *Config) string {
			if !c.EtcdJoin || c.EtcdDataDir != emptyDir {
				return "etcd"
			}
			return ""
		}},
		{name: "etcd sidecar", args: append(base, "-watch", "-etcd-promote", "-etcd-leave", "petset/web", "-health-addr", ":8081"), check: func(c *Config) string {
			if !c.EtcdPromote || c.EtcdLeave != "petset/web" || c.ServiceAccountDir != DefaultServiceAccountDir {
				return "etcd"
			}
			return ""
		}},
		{name: "etcd leave once", args: append(base, "-etcd-leave", "statefulset/web")},
		{name: "etcd-join without its data", args: append(base, "-etcd-join", "-etcd-data-dir", filepath.Join(dir, "none")), err: "mount etcd's data volume there"},
		{name: "etcd-join watching", args: append(base, "-etcd-join", "-etcd-data-dir", emptyDir, "-watch"), err: "-etcd-join is for the init container"},
		{name: "etcd-promote once", args: append(base, "-etcd-promote"), err: "-etcd-promote is for the sidecar"},
		{name: "etcd-leave of a deployment", args: append(base, "-etcd-leave", "deployment/web"), err: "want petset/NAME or statefulset/NAME"},
		{name: "etcd-leave without an ordinal", args: append(base, "-etcd-leave", "petset/web", "-hostname", "web"), err: "has no ordinal"},
		{name: "etcd-leave watching without health", args: append(base, "-etcd-leave", "petset/web", "-watch"), err: "give one"},
		{name: "etcd-leave once with a template", args: append(base, "-etcd-leave", "petset/web", "-template", tmpl), err: "leaves and exits"},
	}
	if os.Geteuid() != 0 { // root reads any file
		tests = append(tests, struct {
			name  string
			args  []string
			check func(*Config) string
			err   string
		}{name: "unreadable template", args: append(base, "-template", unreadable), err: "permission denied"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if _, err := os.Stat(emptyDir); err != nil {
					t.Fatalf("a directory given as a file is gone: %v", err)
				}
			}()
			var stderr bytes.Buffer
			c, err := ParseFlags(tc.args, Environment{
				Getenv:   func(k string) string { return env[k] },
				Hostname: func() (string, error) { return "web-3.web.demo.svc.corp.example", nil },
				Stderr:   &stderr,
			})
			if tc.err != "" {
				var u *UsageError
				if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.err)
				}
				if ExitCode(err) != ExitUsage {
					t.Fatalf("exit code %d, want %d", ExitCode(err), ExitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				if what := tc.check(c); what != "" {
					t.Fatalf("wrong %s: %+v", what, c)
				}
			}
		})
	}
}

func TestParseFlagsHelpAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	_, err := ParseFlags([]string{"-version"}, Environment{Stdout: &out, Stderr: &errOut})
	if !errors.Is(err, ErrVersion) || !strings.HasPrefix(out.String(), "peer-finder "+Version) {
		t.Fatalf("-version: %v, %q", err, out.String())
	}
	_, err = ParseFlags([]string{"-help"}, Environment{Stdout: &out, Stderr: &errOut})
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "-on-start") {
		t.Fatalf("-help: %v, %q", err, errOut.String())
	}
}

func TestResolvConfDomain(t *testing.T) {
	for _, tc := range []struct{ file, domain string }{
		{"search demo.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\n", "cluster.local"},
		{"search svc.my.zone.\n", "my.zone"},
		{"search ns1.svc.k8s.internal example.com\n", "k8s.internal"},
		{"search example.com\nnameserver 1.1.1.1\n", ""},
		{"nameserver 1.1.1.1\n", ""},
		{"search Demo.SVC.Cluster.Local\n", "cluster.local"},
	} {
		rc, err := ParseResolvConf(strings.NewReader(tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if got := rc.Domain(); got != tc.domain {
			t.Errorf("Domain(%q) = %q, want %q", tc.file, got, tc.domain)
		}
	}
	rc, _ := ParseResolvConf(strings.NewReader("nameserver 10.0.0.1\nnameserver fd00::53\n"))
	if !reflect.DeepEqual(rc.Servers, []string{"10.0.0.1:53", "[fd00::53]:53"}) {
		t.Errorf("servers %v", rc.Servers)
	}
}

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: " \t\n ", want: nil},
		{in: "/bin/hook a  b", want: []string{"/bin/hook", "a", "b"}},
		{in: `"/bin/hook"`, want: []string{"/bin/hook"}},
		{in: `'/bin/hook' arg`, want: []string{"/bin/hook", "arg"}},
		{in: `"/my dir/hook" x`, want: []string{"/my dir/hook", "x"}},
		{in: `a"b c"'d e'f`, want: []string{"ab cd ef"}},
		{in: `'' ""`, want: []string{"", ""}},
		{in: `a\ b \'c \"d \\e`, want: []string{"a b", "'c", `"d`, `\e`}},
		{in: `'a\b"c'`, want: []string{`a\b"c`}},
		{in: `"a\b \" \\ \$ \` + "`" + `"`, want: []string{`a\b " \ $ ` + "`"}},
		{in: "a\\\nb \"c\\\nd\"", want: []string{"ab", "cd"}},
		{in: `$HOME ~ * $(x) ; | &`, want: []string{"$HOME", "~", "*", "$(x)", ";", "|", "&"}},
		{in: `"abc`, err: "unterminated double quote"},
		{in: `x 'abc`, err: "unterminated single quote"},
		{in: `"a\"`, err: "unterminated double quote"},
		{in: `abc\`, err: "backslash at the end"},
	} {
		got, err := splitWords(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("splitWords(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
