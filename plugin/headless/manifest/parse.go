package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
)

// Objects are the objects read from manifest files, in file order.
type Objects struct {
	Services []*corev1.Service
	Slices   []*discovery.EndpointSlice
	Pods     []*corev1.Pod
	// Skipped counts objects of other kinds, which are ignored.
	Skipped int
}

// Error is a problem in one manifest file. Line is 1-based; 0 when the
// problem is not at a line (the file cannot be read).
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNoFiles is returned by Load when the paths hold no manifest file.
var ErrNoFiles = errors.New("no manifest files (*.yaml, *.yml, *.json)")

// Files expands paths into the manifest files they name: a file stands for
// itself, a directory for the *.yaml, *.yml and *.json files below it, in
// lexical order. Below a directory, entries whose names begin with ".."
// are left out: a ConfigMap mounted as a volume holds its files in a
// "..<timestamp>" directory, reached through a "..data" link, and shows
// each file through a link of its own name; reading both would read every
// file twice.
func Files(paths ...string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		root := p
		if li, err := os.Lstat(p); err == nil && li.Mode()&os.ModeSymlink != 0 {
			// A link to a directory (such as a ConfigMap's ..data) is
			// walked through: with a trailing separator, the walk starts
			// at its target.
			root = p + string(filepath.Separator)
		}
		err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != root && strings.HasPrefix(d.Name(), "..") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && isManifest(path) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(paths, ", "), ErrNoFiles)
	}
	return out, nil
}

func isManifest(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Load reads every manifest file that paths name (see Files) and returns
// their objects together. The first broken file stops it.
func Load(paths ...string) (*Objects, error) {
	files, err := Files(paths...)
	if err != nil {
		return nil, err
	}
	all := &Objects{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, &Error{File: f, Err: err}
		}
		o, err := Parse(f, data)
		if err != nil {
			return nil, err
		}
		all.Services = append(all.Services, o.Services...)
		all.Slices = append(all.Slices, o.Slices...)
		all.Pods = append(all.Pods, o.Pods...)
		all.Skipped += o.Skipped
	}
	return all, nil
}

// maxObjects bounds what one file may hold, so that a hostile or runaway
// file cannot take all memory.
const maxObjects = 1 << 20

// Parse reads the documents of one file; name is used in errors. Lists
// (kind List, ServiceList, ...) are opened up. Objects of other kinds are
// counted in Skipped.
func Parse(name string, data []byte) (*Objects, error) {
	o := &Objects{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return o, nil
		}
		if err != nil {
			return nil, yamlError(name, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue // an empty document, or only comments
		}
		if err := o.add(name, doc.Content[0], ""); err != nil {
			return nil, err
		}
		if len(o.Services)+len(o.Slices)+len(o.Pods)+o.Skipped > maxObjects {
			return nil, &Error{File: name, Line: doc.Line, Err: fmt.Errorf("more than %d objects", maxObjects)}
		}
	}
}

// yamlError turns a YAML syntax error ("yaml: line 3: did not find ...")
// into an Error at that line.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if _, e := fmt.Sscanf(n, "%d", &line); e == nil {
				msg = after
			}
		}
	}
	return &Error{File: file, Line: line, Err: errors.New(msg)}
}

type header struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// add decodes the object (or list) at n. kind is the kind its list implies
// for items that do not name one.
func (o *Objects) add(file string, n *yaml.Node, kind string) error {
	if n.Kind != yaml.MappingNode {
		return &Error{File: file, Line: n.Line, Err: errors.New("not an object: want a mapping with apiVersion and kind")}
	}
	fail := func(err error) error { return &Error{File: file, Line: n.Line, Err: err} }
	var v any
	if err := n.Decode(&v); err != nil {
		return fail(err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fail(fmt.Errorf("cannot convert to JSON: %w", err))
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return fail(err)
	}
	if h.Kind == "" {
		h.Kind = kind
	}
	if h.Kind == "" {
		return fail(errors.New("no kind"))
	}
	if strings.HasSuffix(h.Kind, "List") {
		items := listItems(n)
		for _, it := range items {
			if err := o.add(file, it, strings.TrimSuffix(h.Kind, "List")); err != nil {
				return err
			}
		}
		return nil
	}

	switch h.Kind {
	case "Service":
		s := &corev1.Service{}
		if err := decode(file, n, raw, h, "v1", s); err != nil {
			return err
		}
		defaultNamespace(&s.Namespace)
		if err := names(s.Namespace, s.Name); err != nil {
			return fail(err)
		}
		if errs := validation.IsDNS1035Label(s.Name); len(errs) > 0 {
			return fail(fmt.Errorf("metadata.name %q of a Service: %s", s.Name, strings.Join(errs, "; ")))
		}
		o.Services = append(o.Services, s)
	case "EndpointSlice":
		s := &discovery.EndpointSlice{}
		if err := decode(file, n, raw, h, "discovery.k8s.io/v1", s); err != nil {
			return err
		}
		defaultNamespace(&s.Namespace)
		if err := names(s.Namespace, s.Name); err != nil {
			return fail(err)
		}
		if err := checkSlice(s); err != nil {
			return fail(err)
		}
		o.Slices = append(o.Slices, s)
	case "Pod":
		p := &corev1.Pod{}
		if err := decode(file, n, raw, h, "v1", p); err != nil {
			return err
		}
		defaultNamespace(&p.Namespace)
		if err := names(p.Namespace, p.Name); err != nil {
			return fail(err)
		}
		o.Pods = append(o.Pods, p)
	default:
		o.Skipped++
	}
	return nil
}

// listItems returns the item nodes of a list object.
func listItems(n *yaml.Node) []*yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "items" && n.Content[i+1].Kind == yaml.SequenceNode {
			return n.Content[i+1].Content
		}
	}
	return nil
}

// decode reads raw, the JSON form of the object at n, into the typed
// object into. Decoding is strict, as the API server's is: field names
// match in case, and a field the type does not have is an error at the
// line of that field (a misspelled `spce:` is not silently dropped).
func decode(file string, n *yaml.Node, raw []byte, h header, want string, into any) error {
	if h.APIVersion != "" && h.APIVersion != want {
		return &Error{File: file, Line: n.Line, Err: fmt.Errorf("%s: apiVersion %q is not supported, want %q", h.Kind, h.APIVersion, want)}
	}
	strict, err := kjson.UnmarshalStrict(raw, into, kjson.DisallowUnknownFields)
	if err != nil {
		return &Error{File: file, Line: n.Line, Err: fmt.Errorf("%s: %w", h.Kind, err)}
	}
	if len(strict) == 0 {
		return nil
	}
	line, msg := n.Line, strict[0].Error()
	for _, e := range strict {
		path, ok := strings.CutPrefix(e.Error(), `unknown field "`)
		if !ok {
			continue
		}
		if at := fieldLine(n, strings.TrimSuffix(path, `"`)); at > 0 {
			line, msg = at, e.Error()
			break
		}
	}
	if len(strict) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(strict)-1)
	}
	return &Error{File: file, Line: line, Err: fmt.Errorf("%s: %s", h.Kind, msg)}
}

// fieldLine finds the line of the field at path ("spec.ports[0].nme")
// below the mapping n, or 0.
func fieldLine(n *yaml.Node, path string) int {
	line := 0
	for path != "" {
		var seg string
		if i := strings.IndexAny(path, ".["); i < 0 {
			seg, path = path, ""
		} else if path[i] == '.' {
			seg, path = path[:i], path[i+1:]
		} else {
			seg, path = path[:i], path[i:]
		}
		if seg != "" {
			n = deref(n)
			if n == nil || n.Kind != yaml.MappingNode {
				return 0
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg {
					line, next = n.Content[i].Line, n.Content[i+1]
				}
			}
			if next == nil {
				return 0
			}
			n = next
		}
		for strings.HasPrefix(path, "[") {
			end := strings.IndexByte(path, ']')
			idx, err := strconv.Atoi(path[1:max(end, 1)])
			n = deref(n)
			if end < 0 || err != nil || n == nil || n.Kind != yaml.SequenceNode || idx < 0 || idx >= len(n.Content) {
				return 0
			}
			n, line, path = n.Content[idx], n.Content[idx].Line, strings.TrimPrefix(path[end+1:], ".")
		}
	}
	return line
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func defaultNamespace(ns *string) {
	if *ns == "" {
		*ns = "default"
	}
}

// names checks that an object has a name and that its namespace can
// stand in DNS names.
func names(ns, name string) error {
	if name == "" {
		return errors.New("metadata.name is missing")
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("metadata.namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	return nil
}

func checkSlice(s *discovery.EndpointSlice) error {
	switch s.AddressType {
	case discovery.AddressTypeIPv4, discovery.AddressTypeIPv6, discovery.AddressTypeFQDN:
	default:
		return fmt.Errorf("EndpointSlice addressType %q: want IPv4, IPv6 or FQDN", s.AddressType)
	}
	for i, ep := range s.Endpoints {
		if len(ep.Addresses) == 0 {
			return fmt.Errorf("EndpointSlice endpoints[%d]: no addresses", i)
		}
		if ep.Hostname != nil {
			if errs := validation.IsDNS1123Label(*ep.Hostname); len(errs) > 0 {
				return fmt.Errorf("EndpointSlice endpoints[%d].hostname %q: %s", i, *ep.Hostname, strings.Join(errs, "; "))
			}
		}
	}
	if slices.ContainsFunc(s.Ports, func(p discovery.EndpointPort) bool { return p.Port != nil && (*p.Port < 0 || *p.Port > 65535) }) {
		return errors.New("EndpointSlice ports: port out of range 0-65535")
	}
	return nil
}
