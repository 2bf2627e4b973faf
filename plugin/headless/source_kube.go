package headless

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeSource watches Services and EndpointSlices through client-go
// informers. Objects are slimmed before they are cached; changes mark their
// service dirty, and one goroutine rebuilds the dirty services and
// publishes. When the API server goes away the informers retry, and the
// last snapshot keeps serving.
type kubeSource struct {
	config     *rest.Config
	client     kubernetes.Interface // made from config at start when nil
	namespaces []string             // empty: all
	podNames   bool                 // keep targetRef names (endpoint_pod_names)

	watch     map[string]*informerPair // by namespace; "" when watching all
	factories []informers.SharedInformerFactory
	mu        sync.Mutex
	dirty     map[svcKey]time.Time // service -> earliest pending trigger time (zero: none)
	wake      chan struct{}
	synced    bool
	cancel    context.CancelFunc
	stopped   sync.WaitGroup
}

type informerPair struct {
	services, slices cache.SharedIndexInformer
}

const byService = "service"

// restConfig builds the client configuration: from a kubeconfig file (and
// context) when path is set, else the in-cluster one.
func restConfig(path, context string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if path == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	}
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "coredns-headless"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	return cfg, nil
}

func (s *kubeSource) start(publish func(lister, []svcKey)) error {
	client := s.client
	if client == nil {
		c, err := kubernetes.NewForConfig(s.config)
		if err != nil {
			return fmt.Errorf("kubernetes client: %w", err)
		}
		client = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.dirty = map[svcKey]time.Time{}
	s.wake = make(chan struct{}, 1)
	s.watch = map[string]*informerPair{}

	namespaces := s.namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var synced []cache.InformerSynced
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(ns), informers.WithTransform(s.slim))
		p := &informerPair{
			services: f.Core().V1().Services().Informer(),
			slices:   f.Discovery().V1().EndpointSlices().Informer(),
		}
		if err := p.slices.AddIndexers(cache.Indexers{byService: sliceService}); err != nil {
			cancel()
			return err
		}
		for _, inf := range []cache.SharedIndexInformer{p.services, p.slices} {
			if err := inf.SetWatchErrorHandlerWithContext(watchError); err != nil {
				cancel()
				return err
			}
		}
		if _, err := p.services.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { s.serviceChanged(o) },
			UpdateFunc: s.serviceUpdated,
			DeleteFunc: func(o any) { s.serviceChanged(o) },
		}); err != nil {
			cancel()
			return err
		}
		if _, err := p.slices.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { s.sliceChanged(nil, o) },
			UpdateFunc: s.sliceUpdated,
			DeleteFunc: func(o any) { s.sliceChanged(nil, o) },
		}); err != nil {
			cancel()
			return err
		}
		s.watch[ns] = p
		s.factories = append(s.factories, f)
		synced = append(synced, p.services.HasSynced, p.slices.HasSynced)
		f.Start(ctx.Done())
	}

	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		if !cache.WaitForCacheSync(ctx.Done(), synced...) {
			return
		}
		s.mu.Lock()
		s.synced = true
		s.dirty = map[svcKey]time.Time{} // the full build below covers them
		s.mu.Unlock()
		publish(s, s.allKeys())
		s.loop(ctx, publish)
	}()
	return nil
}

// loop publishes dirty services until ctx ends. Changes that arrive while a
// build runs are collected and built together next.
func (s *kubeSource) loop(ctx context.Context, publish func(lister, []svcKey)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		dirty := s.dirty
		s.dirty = map[svcKey]time.Time{}
		s.mu.Unlock()
		if len(dirty) == 0 {
			continue
		}
		keys := make([]svcKey, 0, len(dirty))
		for k := range dirty {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareKeys)
		publish(s, keys)
		now := time.Now()
		for _, t := range dirty {
			if !t.IsZero() {
				programming.Observe(now.Sub(t).Seconds())
			}
		}
	}
}

func (s *kubeSource) mark(k svcKey, trigger time.Time) {
	s.mu.Lock()
	if have, ok := s.dirty[k]; !ok || have.IsZero() || (!trigger.IsZero() && trigger.Before(have)) {
		s.dirty[k] = trigger
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *kubeSource) serviceChanged(o any) {
	if svc, ok := unwrap(o).(*corev1.Service); ok {
		s.mark(svcKey{Namespace: svc.Namespace, Name: svc.Name}, time.Time{})
	}
}

func (s *kubeSource) sliceChanged(old, o any) {
	sl, ok := unwrap(o).(*discovery.EndpointSlice)
	if !ok {
		return
	}
	if prev, ok := unwrap(old).(*discovery.EndpointSlice); ok {
		if name := prev.Labels[discovery.LabelServiceName]; name != "" && name != sl.Labels[discovery.LabelServiceName] {
			s.mark(svcKey{Namespace: prev.Namespace, Name: name}, time.Time{})
		}
	}
	name := sl.Labels[discovery.LabelServiceName]
	if name == "" {
		return
	}
	var trigger time.Time
	s.mu.Lock()
	synced := s.synced
	s.mu.Unlock()
	if synced {
		// The initial listing carries old trigger times; only changes seen
		// live measure programming latency.
		trigger, _ = time.Parse(time.RFC3339Nano, sl.Annotations[corev1.EndpointsLastChangeTriggerTime])
	}
	s.mark(svcKey{Namespace: sl.Namespace, Name: name}, trigger)
}

// serviceUpdated and sliceUpdated take informer updates; those that carry
// the object the informer had already are dropped (see sameVersion).
func (s *kubeSource) serviceUpdated(old, o any) {
	if !sameVersion(old, o) {
		s.serviceChanged(o)
	}
}

func (s *kubeSource) sliceUpdated(old, o any) {
	if !sameVersion(old, o) {
		s.sliceChanged(old, o)
	}
}

// sameVersion reports whether an informer update carries the object it
// had already: a relist after a lost watch or an API server restart
// delivers every object again as an update. Such an update changes
// nothing, so it rebuilds nothing, and its trigger time, which may be
// hours old, measures no DNS programming.
func sameVersion(old, o any) bool {
	a, ok1 := old.(metav1.Object)
	b, ok2 := o.(metav1.Object)
	return ok1 && ok2 && a.GetResourceVersion() != "" && a.GetResourceVersion() == b.GetResourceVersion()
}

// watchError counts a failed list or watch, then lets client-go log it and
// back off as it always does.
func watchError(ctx context.Context, r *cache.Reflector, err error) {
	sourceErrors.WithLabelValues("kubernetes").Inc()
	cache.DefaultWatchErrorHandler(ctx, r, err)
}

// unwrap returns the object inside a tombstone.
func unwrap(o any) any {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return o
}

func sliceService(o any) ([]string, error) {
	sl, ok := o.(*discovery.EndpointSlice)
	if !ok || sl.Labels[discovery.LabelServiceName] == "" {
		return nil, nil
	}
	return []string{sl.Namespace + "/" + sl.Labels[discovery.LabelServiceName]}, nil
}

func (s *kubeSource) pair(ns string) *informerPair {
	if p, ok := s.watch[ns]; ok {
		return p
	}
	return s.watch[metav1.NamespaceAll]
}

func (s *kubeSource) service(k svcKey) *corev1.Service {
	p := s.pair(k.Namespace)
	if p == nil {
		return nil
	}
	o, ok, err := p.services.GetIndexer().GetByKey(k.Namespace + "/" + k.Name)
	if err != nil || !ok {
		return nil
	}
	svc, _ := o.(*corev1.Service)
	return svc
}

func (s *kubeSource) slices(k svcKey) []*discovery.EndpointSlice {
	p := s.pair(k.Namespace)
	if p == nil {
		return nil
	}
	objs, err := p.slices.GetIndexer().ByIndex(byService, k.Namespace+"/"+k.Name)
	if err != nil {
		return nil
	}
	out := make([]*discovery.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if sl, ok := o.(*discovery.EndpointSlice); ok {
			out = append(out, sl)
		}
	}
	slices.SortFunc(out, func(a, b *discovery.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// allKeys lists every service in the caches.
func (s *kubeSource) allKeys() []svcKey {
	var keys []svcKey
	for _, p := range s.watch {
		for _, o := range p.services.GetStore().List() {
			if svc, ok := o.(*corev1.Service); ok {
				keys = append(keys, svcKey{Namespace: svc.Namespace, Name: svc.Name})
			}
		}
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// stop ends the watches and waits until every informer goroutine is gone,
// so that a reload never overlaps two generations of watches.
func (s *kubeSource) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	for _, f := range s.factories {
		f.Shutdown()
	}
	s.stopped.Wait()
}

// slim keeps only what the plugin reads, so that the caches stay small.
// It runs before objects enter the informers' stores. Endpoints keep the
// name of their targetRef only with endpoint_pod_names, and only when they
// have no hostname to be named by. BenchmarkCacheMemory measures what the
// slimmed objects hold.
func (s *kubeSource) slim(o any) (any, error) {
	switch v := o.(type) {
	case *corev1.Service:
		return &corev1.Service{
			ObjectMeta: slimMeta(v.ObjectMeta, ""),
			Spec: corev1.ServiceSpec{
				ClusterIP:                v.Spec.ClusterIP,
				Type:                     v.Spec.Type,
				PublishNotReadyAddresses: v.Spec.PublishNotReadyAddresses,
			},
		}, nil
	case *discovery.EndpointSlice:
		eps := make([]discovery.Endpoint, len(v.Endpoints))
		for i, ep := range v.Endpoints {
			eps[i] = discovery.Endpoint{
				Addresses:  ep.Addresses,
				Hostname:   ep.Hostname,
				Conditions: discovery.EndpointConditions{Ready: sharedBool(ep.Conditions.Ready)},
			}
			// The pod's name only names an endpoint without a hostname
			// (see endpointLabel).
			named := ep.Hostname != nil && validLabel(*ep.Hostname)
			if s.podNames && ep.TargetRef != nil && !named {
				eps[i].TargetRef = &corev1.ObjectReference{Name: ep.TargetRef.Name}
			}
		}
		return &discovery.EndpointSlice{
			ObjectMeta:  slimMeta(v.ObjectMeta, corev1.EndpointsLastChangeTriggerTime),
			AddressType: v.AddressType,
			Endpoints:   eps,
			Ports:       v.Ports,
		}, nil
	}
	return o, nil
}

// sharedBool returns a pointer to a shared true or false, so that the
// cache does not keep one small allocation of the decoder per endpoint
// alive. Cached objects are never written to.
func sharedBool(p *bool) *bool {
	switch {
	case p == nil:
		return nil
	case *p:
		return &sharedTrue
	}
	return &sharedFalse
}

var sharedTrue, sharedFalse = true, false

func slimMeta(m metav1.ObjectMeta, annotation string) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion, UID: m.UID}
	if name, ok := m.Labels[discovery.LabelServiceName]; ok {
		out.Labels = map[string]string{discovery.LabelServiceName: name}
	}
	if v, ok := m.Annotations[annotation]; ok && annotation != "" {
		out.Annotations = map[string]string{annotation: v}
	}
	return out
}
