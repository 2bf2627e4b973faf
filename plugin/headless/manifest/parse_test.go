package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name                            string
		in                              string
		services, slices, pods, skipped int
		err                             string // "file:line: text" substring
	}{
		{name: "empty", in: ""},
		{name: "comments only", in: "# nothing\n---\n# still nothing\n"},
		{name: "service", in: "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: None}\n", services: 1},
		{name: "two documents", in: "kind: Service\napiVersion: v1\nmetadata: {name: a}\n---\nkind: Pod\napiVersion: v1\nmetadata: {name: a-0}\n", services: 1, pods: 1},
		{name: "list with other kinds", in: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}}\n- {apiVersion: apps/v1, kind: StatefulSet, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n", services: 1, skipped: 2},
		{name: "typed list without item kinds", in: "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n", services: 2},
		{name: "json", in: `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"s","labels":{"kubernetes.io/service-name":"a"}},"addressType":"IPv4","endpoints":[{"addresses":["10.244.0.1"]}]}`, slices: 1},

		{name: "kubectl output with managed fields and status", in: kubectlFull, services: 1, slices: 1, pods: 1},
		{name: "syntax error", in: "kind: Service\nmetadata:\n  name: [\n", err: "f.yaml:3: "},
		{name: "wrong type", in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - port: http\n", err: "f.yaml:1: Service: json: cannot unmarshal string"},
		{name: "second document wrong", in: "kind: Pod\napiVersion: v1\nmetadata: {name: p}\n---\n\nkind: Service\napiVersion: v1\nmetadata: {name: 5x}\n", err: "f.yaml:6: metadata.name \"5x\" of a Service"},
		{name: "list item wrong", in: "kind: List\nitems:\n- {kind: Pod, apiVersion: v1, metadata: {name: p}}\n- kind: Service\n  apiVersion: v1\n  metadata: {namespace: Bad_NS, name: a}\n", err: "f.yaml:4: metadata.namespace \"Bad_NS\""},
		{name: "no kind", in: "apiVersion: v1\nmetadata: {name: a}\n", err: "f.yaml:1: no kind"},
		{name: "scalar document", in: "just a string\n", err: "f.yaml:1: not an object"},
		{name: "no name", in: "apiVersion: v1\nkind: Service\nspec: {}\n", err: "metadata.name is missing"},
		{name: "old slice version", in: "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\n", err: `apiVersion "discovery.k8s.io/v1beta1" is not supported`},
		{name: "bad address type", in: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv5\n", err: `addressType "IPv5"`},
		{name: "endpoint without address", in: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints:\n- hostname: a\n", err: "endpoints[0]: no addresses"},
		{name: "bad hostname", in: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints:\n- {addresses: [10.244.0.1], hostname: a.b}\n", err: `endpoints[0].hostname "a.b"`},
		// Strict decoding: a field the type does not have is an error at
		// its own line, as the API server would refuse it.
		{name: "misspelled spec", in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspce:\n  clusterIP: None\n", err: `f.yaml:4: Service: unknown field "spce"`},
		{name: "misspelled hostname", in: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints:\n- addresses: [10.244.0.1]\n  hostname: a\n- addresses: [10.244.0.2]\n  hostnme: b\n", err: `f.yaml:9: EndpointSlice: unknown field "endpoints[1].hostnme"`},
		{name: "misspelled in list item", in: "kind: List\nitems:\n- kind: Pod\n  apiVersion: v1\n  metadata: {name: p}\n  spec:\n    subdomian: web\n", err: `f.yaml:7: Pod: unknown field "spec.subdomian"`},
		{name: "wrong case", in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nSpec: {clusterIP: None}\n", err: `f.yaml:4: Service: unknown field "Spec"`},
		{name: "misspelled in json", in: "{\"apiVersion\": \"v1\", \"kind\": \"Service\",\n \"metadata\": {\"name\": \"a\"},\n \"spec\": {\"clusterIp\": \"None\"}}\n", err: `f.yaml:3: Service: unknown field "spec.clusterIp"`},
		{name: "two misspellings", in: "apiVersion: v1\nkind: Service\nmetadata: {name: a, lables: {}}\nspce: {}\n", err: `(and 1 more)`},
		{name: "misspelled through an alias", in: "kind: List\nitems:\n- &a {kind: Service, apiVersion: v1, metadata: {name: a}, spce: {}}\n- *a\n", err: `f.yaml:3: Service: unknown field "spce"`},
		{name: "non-string keys", in: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {1: 2}\n", err: "f.yaml:1: "},
	}
	for _, tc := range tests {
		o, err := Parse("f.yaml", []byte(tc.in))
		if tc.err != "" {
			var merr *Error
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &merr) || merr.File != "f.yaml" {
				t.Errorf("%s: error %v, want an *Error containing %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: unexpected error %v", tc.name, err)
			continue
		}
		if len(o.Services) != tc.services || len(o.Slices) != tc.slices || len(o.Pods) != tc.pods || o.Skipped != tc.skipped {
			t.Errorf("%s: got %d services, %d slices, %d pods, %d skipped; want %d, %d, %d, %d", tc.name,
				len(o.Services), len(o.Slices), len(o.Pods), o.Skipped, tc.services, tc.slices, tc.pods, tc.skipped)
		}
		for _, s := range o.Services {
			if s.Namespace != "default" {
				t.Errorf("%s: service %s in namespace %q, want default", tc.name, s.Name, s.Namespace)
			}
		}
	}
}

// kubectlFull is what kubectl get -o yaml --show-managed-fields prints:
// managedFields, status and the server-set fields must all decode.
const kubectlFull = `apiVersion: v1
items:
- apiVersion: v1
  kind: Service
  metadata:
    creationTimestamp: "2026-11-28T10:00:00Z"
    labels: {app: web}
    managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:spec:
          f:clusterIP: {}
          f:ports:
            k:{"port":80,"protocol":"TCP"}:
              .: {}
              f:name: {}
      manager: kubectl-create
      operation: Update
      time: "2026-11-28T10:00:00Z"
    name: web
    namespace: default
    resourceVersion: "512"
    uid: 4b0f2a4e-1c1e-4d55-9d0e-2f3c4d5e6f70
  spec:
    clusterIP: None
    clusterIPs: [None]
    internalTrafficPolicy: Cluster
    ipFamilies: [IPv4]
    ipFamilyPolicy: SingleStack
    ports:
    - {name: http, port: 80, protocol: TCP, targetPort: 80}
    publishNotReadyAddresses: false
    selector: {app: web}
    sessionAffinity: None
    type: ClusterIP
  status:
    loadBalancer: {}
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses: [10.244.0.5]
    conditions: {ready: true, serving: true, terminating: false}
    hostname: web-0
    nodeName: kwok-node
    targetRef: {kind: Pod, name: web-0, namespace: default, uid: 0c1d2e3f-aaaa-bbbb-cccc-ddddeeeeffff}
  kind: EndpointSlice
  metadata:
    annotations: {endpoints.kubernetes.io/last-change-trigger-time: "2026-11-28T10:00:01Z"}
    generateName: web-
    generation: 2
    labels: {endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io, kubernetes.io/service-name: web}
    name: web-abcde
    namespace: default
    ownerReferences:
    - {apiVersion: v1, blockOwnerDeletion: true, controller: true, kind: Service, name: web, uid: 4b0f2a4e-1c1e-4d55-9d0e-2f3c4d5e6f70}
  ports:
  - {name: http, port: 80, protocol: TCP}
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-0
    namespace: default
    labels: {app: web}
  spec:
    containers:
    - image: nginx
      imagePullPolicy: Always
      name: web
      ports: [{containerPort: 80, name: http, protocol: TCP}]
      resources: {}
      terminationMessagePath: /dev/termination-log
      terminationMessagePolicy: File
    initContainers:
    - name: proxy
      image: envoy
      restartPolicy: Always
    dnsPolicy: ClusterFirst
    enableServiceLinks: true
    hostname: web-0
    subdomain: web
    nodeName: kwok-node
    preemptionPolicy: PreemptLowerPriority
    priority: 0
    restartPolicy: Always
    schedulerName: default-scheduler
    securityContext: {}
    serviceAccountName: default
    terminationGracePeriodSeconds: 30
    tolerations:
    - {effect: NoExecute, key: node.kubernetes.io/not-ready, operator: Exists, tolerationSeconds: 300}
  status:
    conditions:
    - {lastProbeTime: null, lastTransitionTime: "2026-11-28T10:00:01Z", status: "True", type: Ready}
    containerStatuses:
    - containerID: containerd://abc
      image: nginx
      imageID: docker.io/library/nginx@sha256:0
      lastState: {}
      name: web
      ready: true
      restartCount: 0
      started: true
      state:
        running: {startedAt: "2026-11-28T10:00:01Z"}
    hostIP: 10.0.0.1
    hostIPs: [{ip: 10.0.0.1}]
    phase: Running
    podIP: 10.244.0.5
    podIPs: [{ip: 10.244.0.5}]
    qosClass: BestEffort
    startTime: "2026-11-28T10:00:00Z"
kind: List
metadata:
  resourceVersion: ""
`

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "b.yml"), []byte("apiVersion: v1\nkind: Service\nmetadata: {name: b}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("not yaml: ["), 0o644)
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Services) != 2 || o.Services[0].Name != "a" || o.Services[1].Name != "b" {
		t.Fatalf("services %v, want a and b in order", o.Services)
	}
	if _, err := Load(filepath.Join(dir, "sub", "..", "none")); err == nil {
		t.Fatal("no error for a missing path")
	}
	empty := t.TempDir()
	if _, err := Load(empty); !errors.Is(err, ErrNoFiles) {
		t.Fatalf("error %v, want ErrNoFiles", err)
	}
}

// kubectl's own output for a real cluster is servable as is.
func TestParseKubectlOutput(t *testing.T) {
	o, err := Load(filepath.Join("testdata", "kubectl-get.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Services) != 2 || len(o.Slices) != 2 || len(o.Pods) != 2 {
		t.Fatalf("got %d services, %d slices, %d pods; want 2, 2, 2", len(o.Services), len(o.Slices), len(o.Pods))
	}
	set := o.Index()
	k := key("default", "nginx")
	if len(set.Slices[k]) != 1 || len(set.Slices[k][0].Endpoints) != 2 {
		t.Fatalf("nginx slices %v, want the one from the file with 2 endpoints", set.Slices[k])
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../../corefile/demo/web.yaml", "../../../corefile/demo/db.yaml", "testdata/kubectl-get.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("kind: List\nitems:\n- &a {kind: Service, metadata: {name: a}}\n- *a\n"))
	f.Add([]byte(kubectlFull))
	f.Add([]byte("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints:\n- addresses: [10.244.0.2]\n  hostnme: b\n"))
	f.Add([]byte("kind: List\nitems:\n- kind: Pod\n  apiVersion: v1\n  metadata: {name: p}\n  spec:\n    containers: [{name: c, ports: [{nme: x}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Parse("fuzz.yaml", data)
		if err != nil {
			var merr *Error
			if !errors.As(err, &merr) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		set := o.Index()
		for _, s := range set.Services {
			SlicesFor(s, o.Pods)
		}
	})
}

// configMapDir lays out dir as the kubelet mounts a ConfigMap: the files in
// a "..<timestamp>" directory, a "..data" link to it, and one link per file
// through "..data".
func configMapDir(t *testing.T, dir, stamp string, files map[string]string) {
	t.Helper()
	real := filepath.Join(dir, stamp)
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(real, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Swap ..data atomically, as the kubelet does.
	tmp := filepath.Join(dir, "..data_tmp")
	os.Remove(tmp)
	if err := os.Symlink(stamp, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// A mounted ConfigMap is read once, through the names users see.
func TestLoadConfigMapDirectory(t *testing.T) {
	dir := t.TempDir()
	configMapDir(t, dir, "..2026_11_28_10_00_00.000000001", map[string]string{
		"web.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\nspec: {clusterIP: None, selector: {app: web}}\n",
		"pods.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: ns, labels: {app: web}}\n" +
			"status: {phase: Running, podIP: 10.244.0.1, conditions: [{type: Ready, status: \"True\"}]}\n",
	})
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "pods.yaml"), filepath.Join(dir, "web.yaml")}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v", files, want)
	}
	o, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Services) != 1 || len(o.Pods) != 1 {
		t.Fatalf("%d services and %d pods, want each once", len(o.Services), len(o.Pods))
	}
	sl := o.Index().Slices[key("ns", "web")]
	if len(sl) != 1 || len(sl[0].Endpoints) != 1 {
		t.Fatalf("derived slices %v, want one endpoint", sl)
	}
	// A path that names the ..data directory itself is read.
	if files, err := Files(filepath.Join(dir, "..data")); err != nil || len(files) != 2 {
		t.Fatalf("..data as the path: %v %v, want its two files", files, err)
	}
}
