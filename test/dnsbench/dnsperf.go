package dnsbench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// DNSPerf is what one dnsperf run reports (dnsperf 2.x, Debian's
// package): its summary, and the latency percentiles when it ran with
// -v (one "> RCODE NAME TYPE SECONDS" line per answer).
type DNSPerf struct {
	Sent      int64            `json:"sent"`
	Completed int64            `json:"completed"`
	Lost      int64            `json:"lost"`
	RCodes    map[string]int64 `json:"rcodes"`
	RunTime   float64          `json:"run_time_s"`
	QPS       float64          `json:"qps"`
	// Latencies in seconds, as dnsperf prints them.
	AvgLatency float64 `json:"avg_latency_s"`
	MinLatency float64 `json:"min_latency_s"`
	MaxLatency float64 `json:"max_latency_s"`
	StdDev     float64 `json:"latency_stddev_s"`
	// Percentiles of the per-answer latencies of a verbose run (nearest
	// rank), in seconds; zero when the run was not verbose.
	Answers int64   `json:"verbose_answers,omitempty"`
	P50     float64 `json:"p50_s,omitempty"`
	P90     float64 `json:"p90_s,omitempty"`
	P99     float64 `json:"p99_s,omitempty"`
	P999    float64 `json:"p999_s,omitempty"`
}

// ErrNoSummary is returned for output without dnsperf's statistics (a
// run that did not finish).
var ErrNoSummary = errors.New("dnsperf output has no statistics")

// ParseDNSPerf reads dnsperf's output. It needs the statistics block
// (queries sent, completed, lost, queries per second); verbose answer
// lines, when present, give the percentiles. Lines it does not know are
// skipped; a known line with a malformed value is an error naming the
// line.
func ParseDNSPerf(r io.Reader) (*DNSPerf, error) {
	d := &DNSPerf{RCodes: map[string]int64{}}
	var lat []float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	seen := map[string]bool{}
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "> ") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				continue // "> T name type": a timeout, or something else
			}
			lat = append(lat, v)
			continue
		}
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "Queries sent":
			d.Sent, err = firstInt(val)
		case "Queries completed":
			d.Completed, err = firstInt(val)
		case "Queries lost":
			d.Lost, err = firstInt(val)
		case "Run time (s)":
			d.RunTime, err = firstFloat(val)
		case "Queries per second":
			d.QPS, err = firstFloat(val)
		case "Latency StdDev (s)":
			d.StdDev, err = firstFloat(val)
		case "Average Latency (s)":
			// 0.002142 (min 0.000024, max 0.043103)
			d.AvgLatency, err = firstFloat(val)
			if err == nil {
				if _, rest, ok := strings.Cut(val, "min "); ok {
					d.MinLatency, err = firstFloat(strings.TrimRight(rest, ",)"))
				}
			}
			if err == nil {
				if _, rest, ok := strings.Cut(val, "max "); ok {
					d.MaxLatency, err = firstFloat(strings.TrimRight(rest, ")"))
				}
			}
		case "Response codes":
			// NOERROR 72282 (84.62%), NXDOMAIN 13142 (15.38%)
			for part := range strings.SplitSeq(val, ",") {
				f := strings.Fields(part)
				if len(f) < 2 {
					err = fmt.Errorf("response code %q", part)
					break
				}
				var c int64
				if c, err = strconv.ParseInt(f[1], 10, 64); err != nil {
					break
				}
				d.RCodes[f[0]] += c
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dnsperf output line %d %q: %w", n, line, err)
		}
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read dnsperf output: %w", err)
	}
	for _, k := range []string{"Queries sent", "Queries completed", "Queries lost", "Queries per second"} {
		if !seen[k] {
			return nil, fmt.Errorf("%w (no %q)", ErrNoSummary, k)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		d.Answers = int64(len(lat))
		d.P50, d.P90, d.P99, d.P999 = Percentile(lat, 50), Percentile(lat, 90), Percentile(lat, 99), Percentile(lat, 99.9)
	}
	return d, nil
}

// Percentile is the nearest-rank percentile p (0 < p <= 100) of sorted
// values: the smallest value with at least p% of the values at or below
// it. It is 0 for no values.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func firstInt(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("no value")
	}
	return strconv.ParseInt(f[0], 10, 64)
}

func firstFloat(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("no value")
	}
	v, err := strconv.ParseFloat(strings.TrimRight(f[0], ",)"), 64)
	if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		return 0, fmt.Errorf("not a finite number: %q", f[0])
	}
	return v, err
}
