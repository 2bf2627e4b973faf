package discovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

// Builtins are the templates named builtin:<name>.
var Builtins = map[string]string{
	// etcd's configuration file (etcd --config-file, which makes etcd ignore
	// its other flags): this member's name and URLs, the initial cluster
	// and the data directory. Without -etcd-join the initial cluster is a
	// new one of every peer on etcd's default ports; with it, what
	// -etcd-join found.
	"etcd": `# etcd configuration rendered by peer-finder from {{.Service}}.{{.Namespace}}.svc.{{.Domain}}
name: {{.Host}}
{{- with .Etcd}}
initial-cluster: {{.InitialCluster}}
{{- else}}
initial-cluster: {{range $i, $p := .Peers}}{{if $i}},{{end}}{{$p.Host}}=http://{{$p.Name}}:2380{{end}}
{{- end}}
initial-cluster-token: {{.Service}}.{{.Namespace}}
initial-cluster-state: {{with .Etcd}}{{.State}}{{else}}new{{end}}
initial-advertise-peer-urls: http://{{.Self}}:2380
advertise-client-urls: http://{{.Self}}:2379
listen-peer-urls: http://0.0.0.0:2380
listen-client-urls: http://0.0.0.0:2379
data-dir: {{with .Etcd}}{{.DataDir}}{{else}}/var/lib/etcd{{end}}
`,
	// ZooKeeper's server list: server.<ordinal+1>=<name>:2888:3888 (ids
	// start at 1; a peer without an ordinal takes its position; two peers
	// with one id fail the rendering).
	"zookeeper": `# ZooKeeper ensemble rendered by peer-finder from {{.Service}}.{{.Namespace}}.svc.{{.Domain}}
{{range zookeeperServers .Peers}}server.{{.ID}}={{.Name}}:2888:3888
{{end}}`,
	// Everything templates see, as JSON.
	"json": "{{json .}}\n",
}

// BuiltinNames lists the builtin templates, sorted.
func BuiltinNames() []string {
	var out []string
	for k := range Builtins {
		out = append(out, "builtin:"+k)
	}
	sort.Strings(out)
	return out
}

var funcs = template.FuncMap{
	"add":              func(a, b int) int { return a + b },
	"zookeeperServers": zookeeperServers,
	"join":             strings.Join,
	"json": func(v any) (string, error) {
		b, err := json.MarshalIndent(v, "", "  ")
		return string(b), err
	},
}

// ZookeeperServer is one server.<ID>=<Name> line of a ZooKeeper ensemble.
type ZookeeperServer struct {
	ID   int
	Name string
}

// zookeeperServers numbers the peers for ZooKeeper: ordinal+1, or
// position+1 for a peer without an ordinal. Two peers with one id are an
// error that names both: ZooKeeper needs distinct ids.
func zookeeperServers(peers []Peer) ([]ZookeeperServer, error) {
	out := make([]ZookeeperServer, len(peers))
	why := func(i int) string {
		if peers[i].Ordinal >= 0 {
			return fmt.Sprintf("ordinal %d", peers[i].Ordinal)
		}
		return fmt.Sprintf("no ordinal, position %d", i)
	}
	byID := map[int]int{} // id -> index in peers
	for i, p := range peers {
		id := i + 1
		if p.Ordinal >= 0 {
			id = p.Ordinal + 1
		}
		if j, ok := byID[id]; ok {
			return nil, fmt.Errorf("zookeeper: server.%d is both %s (%s) and %s (%s)", id, peers[j].Name, why(j), p.Name, why(i))
		}
		byID[id] = i
		out[i] = ZookeeperServer{ID: id, Name: p.Name}
	}
	return out, nil
}

// loadTemplate parses a template file, or a builtin for builtin:<name>.
func loadTemplate(name string) (*template.Template, error) {
	var text string
	if b, ok := strings.CutPrefix(name, "builtin:"); ok {
		t, ok := Builtins[b]
		if !ok {
			return nil, fmt.Errorf("no builtin template %q; there are %s", name, strings.Join(BuiltinNames(), ", "))
		}
		text = t
	} else {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		text = string(b)
	}
	t, err := template.New(filepath.Base(name)).Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return t, nil
}

// render executes t on d.
func render(t *template.Template, d Data) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("render template: %w", err)
	}
	return b.Bytes(), nil
}

// writeAtomic replaces path with data: a temporary file in the same
// directory is written, synced and renamed over path, so readers see the
// old contents or the new, never a part.
func writeAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
