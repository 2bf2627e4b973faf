package dnsbench

import (
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden file (run with -update if the change is right):\n%s", name, got)
	}
}

// The samples are real dnsperf 2.10.0 output (Debian's package) against
// the demo server: a summary-only run and a verbose run.
func TestParseDNSPerfSamples(t *testing.T) {
	for _, name := range []string{"dnsperf-summary.txt", "dnsperf-verbose.txt"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d, err := ParseDNSPerf(f)
			if err != nil {
				t.Fatal(err)
			}
			// What the sample's own summary says, checked by hand.
			var rc int64
			for _, v := range d.RCodes {
				rc += v
			}
			if d.Completed+d.Lost != d.Sent || rc != d.Completed {
				t.Errorf("sent %d, completed %d, lost %d, rcodes %d", d.Sent, d.Completed, d.Lost, rc)
			}
			if strings.Contains(name, "verbose") {
				// One "> RCODE NAME TYPE SECONDS" line per completed query.
				if d.Answers != d.Completed {
					t.Errorf("%d verbose answers, %d completed", d.Answers, d.Completed)
				}
				if !(d.MinLatency <= d.P50 && d.P50 <= d.P90 && d.P90 <= d.P99 && d.P99 <= d.P999 && d.P999 <= d.MaxLatency) {
					t.Errorf("percentiles out of order or outside min/max: %+v", d)
				}
			} else if d.Answers != 0 || d.P99 != 0 {
				t.Errorf("percentiles from a run without -v: %+v", d)
			}
			b, _ := json.MarshalIndent(d, "", "  ")
			golden(t, strings.TrimSuffix(name, ".txt")+".golden", append(b, '\n'))
		})
	}
}

func TestParseDNSPerfErrors(t *testing.T) {
	summary, err := os.ReadFile(filepath.Join("testdata", "dnsperf-summary.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in  string
		noSummary bool
	}{
		{"empty", "", true},
		{"cut before the statistics", strings.Split(string(summary), "Statistics:")[0], true},
		{"no queries per second", strings.Replace(string(summary), "Queries per second", "Queries per fortnight", 1), true},
		{"bad count", strings.Replace(string(summary), "Queries sent:         85424", "Queries sent:         many", 1), false},
		{"bad rcode", strings.Replace(string(summary), "NOERROR 72282", "NOERROR", 1), false},
		{"NaN", strings.Replace(string(summary), "42522.540819", "NaN", 1), false},
	}
	for _, tc := range tests {
		_, err := ParseDNSPerf(strings.NewReader(tc.in))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if errors.Is(err, ErrNoSummary) != tc.noSummary {
			t.Errorf("%s: %v, want ErrNoSummary: %v", tc.name, err, tc.noSummary)
		}
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ p, want float64 }{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {10, 1}, {0.1, 1}} {
		if got := Percentile(v, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("no values: not 0")
	}
}

func FuzzParseDNSPerf(f *testing.F) {
	for _, name := range []string{"dnsperf-summary.txt", "dnsperf-verbose.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b[:min(len(b), 4000)]))
	}
	f.Add("Queries sent: 1\nQueries completed: 1\nQueries lost: 0\nQueries per second: 1\n> NOERROR a A 0.1\n")
	f.Add("Average Latency (s):  0.1 (min , max\nResponse codes: ,,\n")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseDNSPerf(strings.NewReader(in))
		if err != nil {
			return
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("parsed result does not encode: %v", err)
		}
		if !(d.P50 <= d.P90 && d.P90 <= d.P99 && d.P99 <= d.P999) {
			t.Fatalf("percentiles out of order: %+v", d)
		}
		if d.Answers < 0 {
			t.Fatalf("negative answers: %+v", d)
		}
	})
}

func TestParseGoBench(t *testing.T) {
	in := `goos: linux
goarch: amd64
pkg: petset.dev/petset/plugin/headless
BenchmarkPodAVsWhoami/headless/pods=10-2         	  971979	      1234 ns/op	      1468 cpu-ns/op	     248 B/op	       3 allocs/op
BenchmarkPodAVsWhoami/headless/pods=10-2         	  963868	      1109 ns/op	      1333 cpu-ns/op	     248 B/op	       3 allocs/op
BenchmarkPodAVsWhoami/headless/pods=10-2         	 1000000	      1195 ns/op	      1431 cpu-ns/op	     248 B/op	       3 allocs/op
BenchmarkPodAVsWhoami/whoami-2                   	  273231	      4460 ns/op	      5229 cpu-ns/op	     712 B/op	      21 allocs/op
BenchmarkPodAVsWhoami/whoami-2                   	  351213	      3995 ns/op	      4761 cpu-ns/op	     712 B/op	      21 allocs/op
BenchmarkBroken-2 	 x	      1 ns/op
BenchmarkOdd-2 	 10	      1 ns/op	2
PASS
ok  	petset.dev/petset/plugin/headless	11.296s
`
	got, err := ParseGoBench(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%+v", got)
	}
	h, w := got[0], got[1]
	if h.Name != "PodAVsWhoami/headless/pods=10" || h.Runs != 3 || h.Units["ns/op"] != 1195 || h.Units["cpu-ns/op"] != 1431 || h.Units["allocs/op"] != 3 ||
		!slices.Equal(h.Values["ns/op"], []float64{1234, 1109, 1195}) {
		t.Errorf("headless: %+v", h)
	}
	// Two runs: the mean of the middle two.
	if w.Name != "PodAVsWhoami/whoami" || w.Runs != 2 || w.Units["ns/op"] != 4227.5 || w.Units["B/op"] != 712 {
		t.Errorf("whoami: %+v", w)
	}
	if us := goBenchUnits(got); strings.Join(us, " ") != "ns/op cpu-ns/op B/op allocs/op" {
		t.Errorf("units %v", us)
	}
}

func FuzzParseGoBench(f *testing.F) {
	f.Add("BenchmarkX/a-2 \t 10\t 5 ns/op\t 1 B/op\n")
	f.Add("BenchmarkX-2 10 NaN ns/op\nBenchmarkX-2 10 -1 ns/op\nBenchmark- 1 1 x\n")
	f.Fuzz(func(t *testing.T, in string) {
		bs, err := ParseGoBench(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, b := range bs {
			if b.Runs <= 0 || b.Name == "" {
				t.Fatalf("empty result: %+v", b)
			}
			for u, v := range b.Units {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("%s %s = %v", b.Name, u, v)
				}
			}
		}
		if _, err := json.Marshal(bs); err != nil {
			t.Fatal(err)
		}
	})
}
