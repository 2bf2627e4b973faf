// Command resolver is the testbed's client pod: it resolves names through
// the pod's own /etc/resolv.conf (search path, ndots, servers) with Go's
// resolver, and answers over HTTP on -addr:
//
//	/resolve?type=A|AAAA|SRV|PTR&name=NAME   one lookup, as JSON (Result)
//	/loop                                    the -loop names' lookups so far (Loop)
//
// With -loop, it resolves each of those names (A) every -every, counting
// successes and keeping every failure, so a test can tell whether any
// lookup failed while it changed the cluster's DNS.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Result is one lookup: the records found, or the error and whether it
// was a NXDOMAIN or NODATA (not found).
type Result struct {
	Records  []string `json:"records,omitempty"`
	Error    string   `json:"error,omitempty"`
	NotFound bool     `json:"notFound,omitempty"`
}

// Loop is what the lookups of the -loop names gave since the start.
type Loop struct {
	OK       map[string]int `json:"ok"`
	Failures []Failure      `json:"failures"`
}

// Failure is one failed lookup of a -loop name.
type Failure struct {
	Name  string    `json:"name"`
	At    time.Time `json:"at"`
	Error string    `json:"error"`
}

func main() {
	addr := flag.String("addr", ":8080", "address to serve on")
	names := flag.String("loop", "", "comma-separated names to resolve (A) over and over")
	every := flag.Duration("every", 100*time.Millisecond, "pause between two lookups of the -loop names")
	flag.Parse()
	s := &server{loop: Loop{OK: map[string]int{}}}
	if *names != "" {
		for _, n := range strings.Split(*names, ",") {
			go s.resolveEvery(n, *every)
		}
	}
	http.HandleFunc("/resolve", s.resolve)
	http.HandleFunc("/loop", s.report)
	srv := &http.Server{Addr: *addr, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "resolver:", err)
		os.Exit(1)
	}
}

type server struct {
	mu   sync.Mutex
	loop Loop
}

func (s *server) resolveEvery(name string, every time.Duration) {
	for {
		r := lookup(context.Background(), "A", name)
		s.mu.Lock()
		if r.Error == "" {
			s.loop.OK[name]++
		} else {
			s.loop.Failures = append(s.loop.Failures, Failure{Name: name, At: time.Now().UTC(), Error: r.Error})
		}
		s.mu.Unlock()
		time.Sleep(every)
	}
}

func (s *server) report(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, s.loop)
}

func (s *server) resolve(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	writeJSON(w, lookup(ctx, r.URL.Query().Get("type"), r.URL.Query().Get("name")))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// lookup asks Go's resolver, which reads /etc/resolv.conf, for name.
func lookup(ctx context.Context, typ, name string) Result {
	var (
		out []string
		err error
	)
	r := net.DefaultResolver
	switch typ {
	case "A", "AAAA":
		network := map[string]string{"A": "ip4", "AAAA": "ip6"}[typ]
		var ips []net.IP
		ips, err = r.LookupIP(ctx, network, name)
		for _, ip := range ips {
			out = append(out, ip.String())
		}
	case "SRV":
		var srvs []*net.SRV
		_, srvs, err = r.LookupSRV(ctx, "", "", name)
		for _, s := range srvs {
			out = append(out, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
		}
	case "PTR":
		out, err = r.LookupAddr(ctx, name)
	default:
		return Result{Error: fmt.Sprintf("type %q: want A, AAAA, SRV or PTR", typ)}
	}
	if err != nil {
		var de *net.DNSError
		return Result{Error: err.Error(), NotFound: errors.As(err, &de) && de.IsNotFound}
	}
	return Result{Records: out}
}
