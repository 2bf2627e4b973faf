package controller

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
)

// InClusterNamespaceFile holds the namespace of a pod's service account.
const InClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// LeaseNamespace picks the lease's namespace as GetConfig picks the cluster:
// flagNS, else kubeconfig's context, else the pod's own (inClusterFile) unless
// kubeconfigEnv is set, else its or ~/.kube/config's context; from says which.
func LeaseNamespace(flagNS, kubeconfig, kubeconfigEnv, inClusterFile string) (ns, from string, err error) {
	if flagNS != "" {
		return flagNS, "--leader-election-namespace", nil
	}
	if kubeconfig != "" {
		return contextNamespace(&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, "--kubeconfig "+kubeconfig)
	}
	if kubeconfigEnv == "" && inClusterFile != "" {
		b, err := os.ReadFile(inClusterFile)
		switch {
		case err == nil && strings.TrimSpace(string(b)) != "":
			return strings.TrimSpace(string(b)), "the service account's namespace", nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return "", "", fmt.Errorf("leader election namespace: %w", err)
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	where := "~/.kube/config"
	if kubeconfigEnv != "" {
		rules = &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(kubeconfigEnv)}
		where = "$KUBECONFIG"
	}
	return contextNamespace(rules, where)
}

func contextNamespace(rules clientcmd.ClientConfigLoader, where string) (string, string, error) {
	cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	raw, err := cfg.RawConfig()
	if err != nil {
		return "", "", fmt.Errorf("leader election namespace from %s: %w", where, err)
	}
	ns, _, err := cfg.Namespace()
	if err != nil {
		return "", "", fmt.Errorf("leader election namespace from %s: %w", where, err)
	}
	if c := raw.Contexts[raw.CurrentContext]; c == nil || c.Namespace == "" {
		return ns, fmt.Sprintf("%s: context %q sets no namespace", where, raw.CurrentContext), nil
	}
	return ns, fmt.Sprintf("%s: context %q", where, raw.CurrentContext), nil
}
