package discovery

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are peer-finder's Prometheus metrics, served on -health-addr's
// /metrics. Each Run has its own registry.
type metrics struct {
	reg        *prometheus.Registry
	lookups    *prometheus.CounterVec
	tcpRetries prometheus.Counter
	peers      prometheus.Gauge
	hookRuns   *prometheus.CounterVec
	ready      prometheus.Gauge
	// etcdChanges counts etcd membership changes: add, remove, promote.
	etcdChanges *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petset_peer_finder_lookups_total",
			Help: "SRV lookups of the service, by result: ok, nxdomain or error.",
		}, []string{"result"}),
		tcpRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "petset_peer_finder_tcp_retries_total",
			Help: "UDP replies that came back truncated and were asked again over TCP.",
		}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "petset_peer_finder_peers",
			Help: "Peers in the last successful lookup, this pod included.",
		}),
		hookRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petset_peer_finder_hook_runs_total",
			Help: "Hook runs, by hook (on-start, on-change) and result (ok, error).",
		}, []string{"hook", "result"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "petset_peer_finder_ready",
			Help: "1 once the first run succeeded.",
		}),
		etcdChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petset_peer_finder_etcd_changes_total",
			Help: "etcd membership changes asked for, by change (add, remove, promote) and result (ok, error).",
		}, []string{"change", "result"}),
	}
	m.reg.MustRegister(m.lookups, m.tcpRetries, m.peers, m.hookRuns, m.ready, m.etcdChanges)
	return m
}
