// Command ordinal-controller runs the PetSet controller: stable ordinal pod
// names, membership and per-ordinal claims.
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "petset.dev/petset/api/v1alpha1"
	"petset.dev/petset/controller"
)

func main() {
	var (
		metricsAddr    = flag.String("metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 turns it off")
		probeAddr      = flag.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 turns them off")
		leaderElect    = flag.Bool("leader-elect", true, "elect a leader, so that only one replica acts at a time")
		leaderElectNS  = flag.String("leader-election-namespace", "", "namespace of the leader-election lease (default: the pod's own in a cluster, else the kubeconfig context's, else default)")
		maxConcurrency = flag.Int("concurrent-syncs", 5, "PetSets reconciled at once")
		version        = flag.Bool("version", false, "print the version and exit")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if *version {
		fmt.Println("ordinal-controller", controller.Version)
		return
	}
	ctrl.SetLogger(klog.NewKlogr())

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fail(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		fail(err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fail(err)
	}
	if *leaderElect {
		kubeconfig := ""
		if f := flag.Lookup("kubeconfig"); f != nil {
			kubeconfig = f.Value.String()
		}
		ns, from, err := controller.LeaseNamespace(*leaderElectNS, kubeconfig, os.Getenv("KUBECONFIG"), controller.InClusterNamespaceFile)
		if err != nil {
			fail(err)
		}
		klog.InfoS("Leader election", "lease", ns+"/ordinal-controller.petset.dev", "namespaceFrom", from)
		*leaderElectNS = ns
	}
	cacheOpts, err := controller.CacheOptions()
	if err != nil {
		fail(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:  *probeAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        "ordinal-controller.petset.dev",
		LeaderElectionNamespace: *leaderElectNS,
		// On SIGTERM the manager stops every controller and then gives
		// the lease up, so a rollout's new pod leads at once instead of
		// after the lease expires; nothing acts after the release.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		fail(err)
	}
	r := &controller.Reconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("ordinal-controller"),
		Pets:      controller.NewPetControl(mgr.GetClient(), mgr.GetEventRecorder("ordinal-controller")),
		// A set's status changes gathered into one write a second, so
		// the writes follow what changed, not how the passes fell.
		StatusInterval: controller.DefaultStatusInterval,
	}
	if err := r.SetupWithManager(mgr, *maxConcurrency); err != nil {
		fail(err)
	}
	if err := controller.RegisterStatusMetrics(mgr.GetClient()); err != nil {
		fail(err)
	}
	if err := controller.RegisterCacheMetrics(mgr.GetClient()); err != nil {
		fail(err)
	}
	mgr.AddHealthzCheck("ping", healthz.Ping)
	mgr.AddReadyzCheck("ping", healthz.Ping)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ordinal-controller:", err)
	os.Exit(1)
}
