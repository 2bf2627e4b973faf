package dnsbench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Metrics is a scrape of Prometheus' text format: value by series, the
// series written as the server writes it (name{labels}).
type Metrics map[string]float64

// ParseMetrics reads Prometheus' text exposition format, keeping each
// sample line's series and value; comments and malformed lines are
// skipped.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	return m, sc.Err()
}

// Scrape fetches and parses a metrics endpoint on this machine.
func Scrape(url string) (Metrics, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	LE    float64
	Count float64
}

// Histogram returns the cumulative buckets of histogram name whose
// series carry every label in match (`key="value"` strings), summed over
// the series that do, sorted by upper bound.
func (m Metrics) Histogram(name string, match ...string) []Bucket {
	sum := map[float64]float64{}
	prefix := name + "_bucket{"
	for series, v := range m {
		if !strings.HasPrefix(series, prefix) {
			continue
		}
		ok := true
		for _, l := range match {
			if !strings.Contains(series, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		_, rest, found := strings.Cut(series, `le="`)
		if !found {
			continue
		}
		le, _, _ := strings.Cut(rest, `"`)
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		sum[bound] += v
	}
	out := make([]Bucket, 0, len(sum))
	for le, c := range sum {
		out = append(out, Bucket{le, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LE < out[j].LE })
	return out
}

// DiffBuckets is after minus before, bucket by bucket (the observations
// between two scrapes).
func DiffBuckets(before, after []Bucket) []Bucket {
	prev := map[float64]float64{}
	for _, b := range before {
		prev[b.LE] = b.Count
	}
	out := make([]Bucket, len(after))
	for i, b := range after {
		out[i] = Bucket{b.LE, b.Count - prev[b.LE]}
	}
	return out
}

// BucketQuantile is the upper bound of the bucket that holds quantile q
// (0..1) of a cumulative histogram, and the number of observations. An
// answer in the +Inf bucket is +Inf; no observations give 0.
func BucketQuantile(buckets []Bucket, q float64) (float64, int64) {
	if len(buckets) == 0 {
		return 0, 0
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return 0, 0
	}
	rank := math.Ceil(q * total)
	for _, b := range buckets {
		if b.Count >= rank {
			return b.LE, int64(total)
		}
	}
	return math.Inf(1), int64(total)
}

// VmRSS reads a process's resident set size from /proc, in bytes.
func VmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// LoadAvg is /proc/loadavg's three averages.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// CPUSeconds is the user plus system CPU time of a process, all its
// threads, from /proc/PID/stat (in clock ticks of 1/100 s, Linux's
// USER_HZ).
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

func parseStatCPU(stat string) (float64, error) {
	// pid (comm) state ppid ...: comm may hold spaces and parentheses,
	// so the fields are counted from the last ')'. utime and stime are
	// fields 14 and 15, the 12th and 13th after it.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q, stime %q", f[11], f[12])
	}
	return float64(u+s) / 100, nil
}
