package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultServiceAccountDir is where Kubernetes mounts a pod's service
// account token and the API server's CA.
const DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// setKinds maps the kinds -etcd-leave accepts to their API paths.
var setKinds = map[string]string{
	"petset":      "/apis/petset.dev/v1alpha1/namespaces/%s/petsets/%s",
	"statefulset": "/apis/apps/v1/namespaces/%s/statefulsets/%s",
}

// parseSetRef checks a KIND/NAME reference to a set: KIND is petset or
// statefulset (case-insensitive), NAME a DNS label.
func parseSetRef(ref string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(ref, "/")
	kind = strings.ToLower(kind)
	if _, known := setKinds[kind]; !ok || !known || name == "" {
		return "", "", fmt.Errorf("want petset/NAME or statefulset/NAME, not %q", ref)
	}
	return kind, name, nil
}

// setReader reads a set's scale; kubeSet is the real one.
type setReader interface {
	Scale(ctx context.Context) (setScale, error)
}

// kubeSet reads a set from the Kubernetes API with the pod's service
// account: a plain GET of the object, which holds both spec.replicas and
// spec.ordinals.start.
type kubeSet struct {
	url       string
	tokenFile string
	client    *http.Client
}

// newKubeSet reads the API server's address from KUBERNETES_SERVICE_HOST
// and KUBERNETES_SERVICE_PORT, as client-go's in-cluster configuration
// does, and its CA from dir.
func newKubeSet(kind, name, ns, dir string, getenv func(string) string) (*kubeSet, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, fmt.Errorf("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not in a pod?")
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("the service account's CA: %w (is automountServiceAccountToken off?)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no PEM certificate", filepath.Join(dir, "ca.crt"))
	}
	token := filepath.Join(dir, "token")
	if _, err := os.Stat(token); err != nil {
		return nil, fmt.Errorf("the service account's token: %w", err)
	}
	return &kubeSet{
		url:       "https://" + net.JoinHostPort(host, port) + fmt.Sprintf(setKinds[kind], ns, name),
		tokenFile: token,
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		},
	}, nil
}

// Scale implements setReader. The token is read on every call: kubelet
// rotates it.
func (k *kubeSet) Scale(ctx context.Context) (setScale, error) {
	token, err := os.ReadFile(k.tokenFile)
	if err != nil {
		return setScale{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return setScale{}, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return setScale{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return setScale{}, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return setScale{}, nil
	case resp.StatusCode != http.StatusOK:
		return setScale{}, fmt.Errorf("GET %s: %s: %s", k.url, resp.Status, strings.TrimSpace(string(body)))
	}
	return parseSet(body)
}

// parseSet reads what decideLeave needs from a PetSet or StatefulSet.
func parseSet(body []byte) (setScale, error) {
	var obj struct {
		Metadata struct {
			DeletionTimestamp *string `json:"deletionTimestamp"`
		} `json:"metadata"`
		Spec struct {
			Replicas *int `json:"replicas"`
			Ordinals *struct {
				Start int `json:"start"`
			} `json:"ordinals"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &obj); err != nil {
		return setScale{}, fmt.Errorf("decode the set: %w", err)
	}
	s := setScale{Found: true, Deleting: obj.Metadata.DeletionTimestamp != nil, Replicas: 1}
	if obj.Spec.Replicas != nil {
		s.Replicas = *obj.Spec.Replicas
	}
	if obj.Spec.Ordinals != nil {
		s.Start = obj.Spec.Ordinals.Start
	}
	return s, nil
}
