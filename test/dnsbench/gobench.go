package dnsbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// GoBench is one Go sub-benchmark over several runs: the median of each
// unit it reports (ns/op, cpu-ns/op, B/op, allocs/op, ...), and each run's
// value in the order they ran.
type GoBench struct {
	Name   string               `json:"name"` // without the Benchmark prefix and the -GOMAXPROCS suffix
	Runs   int                  `json:"runs"`
	Units  map[string]float64   `json:"units"`
	Values map[string][]float64 `json:"values,omitempty"`
}

// PodABench is the Go benchmark that sets headless's per-pod A answer
// beside whoami's, in process: the part of a query's cost that differs
// between the two servers, without the socket and the machine's noise.
const PodABench = "BenchmarkPodAVsWhoami"

// GoBenches is every Go benchmark of plugin/headless the report uses: the
// pod-A answer, the update goals (one endpoint in a 1,000-endpoint
// service; one service in a cluster of 1,000 and of 100,000 endpoints)
// and the memory per endpoint of the snapshot and of the informers'
// cache at 100,000 endpoints.
var GoBenches = []string{PodABench, "BenchmarkRebuildOneEndpoint1000", "BenchmarkRebuildOneService", "BenchmarkSnapshotMemory", "BenchmarkCacheMemory"}

// RunGoBench runs go test -bench for the named benchmarks in pkg (a
// package path relative to dir, the module's root) in rounds times, each
// run once in every round, and returns the median results with each
// round's values. The rounds are what the goals compare in: two sizes of
// one benchmark run seconds apart in a round, while with -count the runs
// of one size would all come before the other's, minutes apart on a
// machine whose speed drifts.
func RunGoBench(ctx context.Context, dir, pkg string, names []string, rounds int) ([]GoBench, string, error) {
	args := []string{"test", "-run", "^$", "-bench", "^(" + strings.Join(names, "|") + ")$", "-count", "1", pkg}
	line := "go " + strings.Join(args, " ")
	var all bytes.Buffer
	for range rounds {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return nil, line, fmt.Errorf("%s: %w\n%s", line, err, out.String())
		}
		all.Write(out.Bytes())
	}
	line = fmt.Sprintf("%s, %d times", line, rounds)
	bs, err := ParseGoBench(&all)
	if err == nil && len(bs) == 0 {
		err = fmt.Errorf("%s: no benchmark results:\n%s", line, all.String())
	}
	return bs, line, err
}

// ParseGoBench reads go test -bench output and returns, per
// sub-benchmark in order of first appearance, the median of each unit
// over its runs. Lines that are not results are skipped.
func ParseGoBench(r io.Reader) ([]GoBench, error) {
	var order []string
	vals := map[string]map[string][]float64{}
	runs := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Name, iterations, then value-unit pairs.
		if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if n, err := strconv.ParseInt(f[1], 10, 64); err != nil || n <= 0 {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		parsed := map[string]float64{}
		ok := true
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				ok = false
				break
			}
			parsed[f[i+1]] = v
		}
		if !ok || name == "" {
			continue
		}
		if _, seen := vals[name]; !seen {
			order = append(order, name)
			vals[name] = map[string][]float64{}
		}
		runs[name]++
		for u, v := range parsed {
			vals[name][u] = append(vals[name][u], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]GoBench, 0, len(order))
	for _, name := range order {
		b := GoBench{Name: name, Runs: runs[name], Units: map[string]float64{}, Values: vals[name]}
		for u, vs := range vals[name] {
			b.Units[u] = median(vs)
		}
		out = append(out, b)
	}
	return out, nil
}

// goBenchUnits is the order the report shows units in.
func goBenchUnits(bs []GoBench) []string {
	seen := map[string]bool{}
	var us []string
	for _, b := range bs {
		for u := range b.Units {
			if !seen[u] {
				seen[u] = true
				us = append(us, u)
			}
		}
	}
	rank := map[string]int{"ns/op": 0, "cpu-ns/op": 1, "B/op": 2, "allocs/op": 3}
	slices.SortFunc(us, func(a, b string) int {
		ra, oka := rank[a]
		rb, okb := rank[b]
		switch {
		case oka && okb:
			return ra - rb
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return us
}
