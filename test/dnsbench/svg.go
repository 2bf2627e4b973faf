package dnsbench

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Series is one line of a plot: a value per x position (NaN: none).
type Series struct {
	Name   string
	Color  string
	Dashed bool
	Values []float64
}

// Plot is a line chart with categorical x positions.
type Plot struct {
	Title  string
	XLabel string
	YLabel string
	X      []string // tick labels, one per position
	Series []Series
	// Format renders a y value for ticks and point labels.
	Format func(float64) string
}

var colors = map[string]string{
	HeadlessKubernetes: "#1b6ec2",
	Kubernetes:         "#d1495b",
	Whoami:             "#3a9d5d",
}

// QPSPlot draws queries/s against pods per service: the mixed file as
// solid lines and the per-pod-A file as dashed lines, per contender.
func QPSPlot(r *Results) Plot {
	return throughputPlot(r, false)
}

// CPUPlot is QPSPlot in queries answered per CPU-second of CoreDNS.
func CPUPlot(r *Results) Plot {
	return throughputPlot(r, true)
}

func throughputPlot(r *Results, perCPU bool) Plot {
	p := Plot{Title: "Queries/s against pods per service (CoreDNS on one core)", XLabel: "pods per service", YLabel: "queries/s", Format: siFormat}
	if perCPU {
		p.Title, p.YLabel = "Queries per CPU-second of CoreDNS against pods per service", "queries per CPU-second"
	}
	value := func(d *DNSPerf, cpu float64) float64 {
		switch {
		case d == nil:
			return math.NaN()
		case !perCPU:
			return d.QPS
		case cpu > 0:
			return float64(d.Completed) / cpu
		}
		return math.NaN()
	}
	for _, ph := range r.Phases {
		p.X = append(p.X, fmt.Sprintf("%d (%d pods)", ph.PodsPerService, ph.TotalPods))
	}
	for _, c := range Contenders {
		mixed := Series{Name: c + ", mixed", Color: colors[c]}
		podA := Series{Name: c + ", pod A", Color: colors[c], Dashed: true}
		for _, ph := range r.Phases {
			m, a := math.NaN(), math.NaN()
			if run := r.run(ph.PodsPerService, c); run != nil {
				m, a = value(run.Mixed, run.MixedCPU), value(run.PodA, run.PodACPU)
			}
			mixed.Values = append(mixed.Values, m)
			podA.Values = append(podA.Values, a)
		}
		p.Series = append(p.Series, mixed, podA)
	}
	return p
}

// RSSPlot draws each contender's RSS after its runs against pods per
// service.
func RSSPlot(r *Results) Plot {
	p := Plot{Title: "CoreDNS RSS against pods per service", XLabel: "pods per service", YLabel: "RSS (MB)", Format: func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }}
	for _, ph := range r.Phases {
		p.X = append(p.X, fmt.Sprintf("%d (%d pods)", ph.PodsPerService, ph.TotalPods))
	}
	for _, c := range Contenders {
		s := Series{Name: c, Color: colors[c]}
		for _, ph := range r.Phases {
			v := math.NaN()
			if run := r.run(ph.PodsPerService, c); run != nil && run.RSSAfter > 0 {
				v = float64(run.RSSAfter) / 1e6
			}
			s.Values = append(s.Values, v)
		}
		p.Series = append(p.Series, s)
	}
	return p
}

func siFormat(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// SVG renders the plot as a standalone SVG document. The output depends
// only on the plot, so it can be compared with a golden file.
func (p Plot) SVG() string {
	const (
		w, h                   = 780, 440
		left, right, top, bott = 80, 260, 40, 60
	)
	pw, ph := float64(w-left-right), float64(h-top-bott)
	maxY := 0.0
	for _, s := range p.Series {
		for _, v := range s.Values {
			if !math.IsNaN(v) && v > maxY {
				maxY = v
			}
		}
	}
	step := niceStep(maxY / 5)
	top5 := step * math.Ceil(maxY/step)
	if top5 <= 0 {
		top5, step = 1, 0.2
	}
	xAt := func(i int) float64 {
		if len(p.X) <= 1 {
			return float64(left) + pw/2
		}
		return float64(left) + pw*(0.1+0.8*float64(i)/float64(len(p.X)-1))
	}
	yAt := func(v float64) float64 { return float64(top) + ph*(1-v/top5) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(p.Title))
	for v := 0.0; v <= top5+step/2; v += step {
		y := yAt(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, w-right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, html.EscapeString(p.Format(v)))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, h-bott, w-right, h-bott)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, h-bott)
	for i, x := range p.X {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", xAt(i), h-bott+18, html.EscapeString(x))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(left)+pw/2, h-14, html.EscapeString(p.XLabel))
	fmt.Fprintf(&b, `<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">%s</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2, html.EscapeString(p.YLabel))
	for si, s := range p.Series {
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for i, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xAt(i), yAt(v)))
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.Color, dash)
		}
		for i, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", xAt(i), yAt(v), s.Color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s">%s</text>`+"\n", xAt(i)+6, yAt(v)-5, s.Color, html.EscapeString(p.Format(v)))
		}
		ly := float64(top) + 10 + 20*float64(si)
		lx := float64(w - right + 16)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly, lx+24, ly, s.Color, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+30, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}
