package headless

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"petset.dev/petset/plugin/headless/manifest"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// manifestSource serves Services, EndpointSlices and Pods read from files.
// It polls the files and reloads them when they change; a file that fails to
// load is logged and the data loaded before it keeps serving.
type manifestSource struct {
	paths      []string
	reload     time.Duration
	namespaces map[string]bool // empty: all

	set  *manifest.Set
	sig  string
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// setLister reads one loaded manifest set.
type setLister struct {
	set *manifest.Set
	ns  map[string]bool
}

func (l setLister) service(k svcKey) *corev1.Service {
	if len(l.ns) > 0 && !l.ns[k.Namespace] {
		return nil
	}
	return l.set.Services[k]
}

func (l setLister) slices(k svcKey) []*discovery.EndpointSlice { return l.set.Slices[k] }

// load reads the files; setup calls it so that a broken file stops CoreDNS
// from starting with an error that names the file and line.
func (s *manifestSource) load() error {
	sig, err := s.signature()
	if err != nil {
		return err
	}
	objs, err := manifest.Load(s.paths...)
	if err != nil {
		return err
	}
	s.set, s.sig = objs.Index(), sig
	return nil
}

// signature identifies the files' current state by name, the file a link
// leads to, size and modification time. A ConfigMap update swaps the
// "..data" link to a new directory: the files users see keep their names,
// the files behind them change.
func (s *manifestSource) signature() (string, error) {
	files, err := manifest.Files(s.paths...)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		b.WriteString(f)
		b.WriteByte(' ')
		if real, err := filepath.EvalSymlinks(f); err == nil && real != f {
			b.WriteString(real)
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatInt(fi.Size(), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(fi.ModTime().UnixNano(), 10))
		b.WriteByte('\n')
	}
	return b.String(), nil
}

func (s *manifestSource) start(publish func(lister, []svcKey)) error {
	if s.set == nil {
		if err := s.load(); err != nil {
			return err
		}
	}
	publish(setLister{s.set, s.namespaces}, keysOf(s.set, nil))
	s.done = make(chan struct{})
	if s.reload <= 0 {
		return nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.reload)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.poll(publish)
			}
		}
	}()
	return nil
}

// poll reloads the files when they changed since the last look.
func (s *manifestSource) poll(publish func(lister, []svcKey)) {
	sig, err := s.signature()
	if err == nil && sig == s.sig {
		return
	}
	old := s.set
	if err == nil {
		s.sig = sig // a broken state is reported once, not at every poll
		err = s.load()
	}
	if err != nil {
		sourceErrors.WithLabelValues("manifests").Inc()
		log.Errorf("Manifests not reloaded, still serving the last good ones: %v", err)
		return
	}
	log.Infof("Reloaded manifests from %s", strings.Join(s.paths, ", "))
	publish(setLister{s.set, s.namespaces}, keysOf(s.set, old))
}

// keysOf returns the service keys of set and of old, so that services that
// went away are removed too.
func keysOf(set, old *manifest.Set) []svcKey {
	seen := map[svcKey]bool{}
	for _, s := range []*manifest.Set{set, old} {
		if s == nil {
			continue
		}
		for k := range s.Services {
			seen[k] = true
		}
	}
	keys := make([]svcKey, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

func compareKeys(a, b svcKey) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

func (s *manifestSource) stop() {
	s.once.Do(func() {
		if s.done != nil {
			close(s.done)
		}
	})
	s.wg.Wait()
}
