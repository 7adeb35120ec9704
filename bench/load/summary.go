package load

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Metric is one figure compared across servers.
type Metric struct {
	Name string
	// HigherBetter says which way the ratio goes: the table shows pushwire ÷ peer either way
	// and marks the better side.
	HigherBetter bool
	Value        func(*Report) (float64, bool)
}

// otherCPU is shown for every scenario: CPU that other processes took during the runs.
// It is context, not compared.
var otherCPU = Metric{Name: "other processes' CPU during the run (% of a core; context)",
	Value: func(r *Report) (float64, bool) { return r.OtherCPUPct, true }}

// scenarioMetrics are the figures the comparison table shows, per scenario.
var scenarioMetrics = map[string][]Metric{
	"fanout": {
		{"highest rate held at 100% (events/s)", true, func(r *Report) (float64, bool) { return bestRate(r) }},
		{"deliveries/s at that rate", true, func(r *Report) (float64, bool) {
			if r.Best == nil {
				return 0, true
			}
			return r.Best.DeliveriesPerSec, true
		}},
		{"p99 ms at that rate", false, func(r *Report) (float64, bool) {
			if r.Best == nil {
				return 0, false
			}
			return r.Best.Latency.P99, true
		}},
		{"100/s: events/s accepted", true, phase0(func(p PhaseResult) float64 { return p.PublishRate })},
		{"100/s: deliveries/s", true, phase0(func(p PhaseResult) float64 { return p.DeliveriesPerSec })},
		{"100/s: delivered %", true, phase0(func(p PhaseResult) float64 { return p.DeliveredPct })},
		{"connect 5,000 (s)", false, func(r *Report) (float64, bool) { return r.Connect.Seconds, true }},
	},
	"fanout-latency": {
		{"deliveries/s", true, phase0(func(p PhaseResult) float64 { return p.DeliveriesPerSec })},
		{"delivered %", true, phase0(func(p PhaseResult) float64 { return p.DeliveredPct })},
		{"p50 ms", false, phase0(func(p PhaseResult) float64 { return p.Latency.P50 })},
		{"p90 ms", false, phase0(func(p PhaseResult) float64 { return p.Latency.P90 })},
		{"p99 ms", false, phase0(func(p PhaseResult) float64 { return p.Latency.P99 })},
		{"max ms", false, phase0(func(p PhaseResult) float64 { return p.Latency.Max })},
		{"server CPU % (of one core)", false, phase0(func(p PhaseResult) float64 { return p.ServerCPUPct })},
	},
	"many-channels": {
		{"events/s accepted", true, phase0(func(p PhaseResult) float64 { return p.PublishRate })},
		{"deliveries/s", true, phase0(func(p PhaseResult) float64 { return p.DeliveriesPerSec })},
		{"delivered %", true, phase0(func(p PhaseResult) float64 { return p.DeliveredPct })},
		{"p50 ms", false, phase0(func(p PhaseResult) float64 { return p.Latency.P50 })},
		{"p99 ms", false, phase0(func(p PhaseResult) float64 { return p.Latency.P99 })},
		{"server CPU % (of one core)", false, phase0(func(p PhaseResult) float64 { return p.ServerCPUPct })},
	},
	"idle-memory": {
		{"RSS per idle connection (bytes)", false, func(r *Report) (float64, bool) {
			if r.Memory == nil {
				return 0, false
			}
			return r.Memory.PerConnBytes, true
		}},
		{"RSS with 10,000 connected (MiB)", false, func(r *Report) (float64, bool) {
			if r.Memory == nil {
				return 0, false
			}
			return float64(r.Memory.AfterKB) / 1024, true
		}},
		{"connect 10,000 (s)", false, func(r *Report) (float64, bool) { return r.Connect.Seconds, true }},
		{"connect errors", false, func(r *Report) (float64, bool) {
			return float64(r.Connect.ConnectErrors + r.Connect.SubscribeErrors), true
		}},
	},
	"presence-storm": {
		{"members joined", true, func(r *Report) (float64, bool) { return float64(r.Connect.Connected), true }},
		{"errors (connect + subscribe + server)", false, func(r *Report) (float64, bool) {
			return float64(r.Connect.ConnectErrors + r.Connect.SubscribeErrors + r.ServerErrors + r.Disconnects), true
		}},
		{"member events lost", false, func(r *Report) (float64, bool) {
			if r.Presence == nil {
				return 0, false
			}
			return float64(r.Presence.Lost), true
		}},
		{"member_added p99 ms", false, func(r *Report) (float64, bool) {
			if r.Presence == nil {
				return 0, false
			}
			return r.Presence.Latency.P99, true
		}},
		{"subscribe p99 ms", false, func(r *Report) (float64, bool) { return r.Connect.Subscribe.P99, true }},
	},
	"chat": {
		{"client events/s sent", true, phase0(func(p PhaseResult) float64 { return p.PublishRate })},
		{"delivered %", true, phase0(func(p PhaseResult) float64 { return p.DeliveredPct })},
		{"errors", false, func(r *Report) (float64, bool) {
			return float64(r.Connect.ConnectErrors + r.Connect.SubscribeErrors + r.ServerErrors + r.Disconnects), true
		}},
		{"p50 ms", false, phase0(func(p PhaseResult) float64 { return p.Latency.P50 })},
		{"p99 ms", false, phase0(func(p PhaseResult) float64 { return p.Latency.P99 })},
	},
}

func phase0(f func(PhaseResult) float64) func(*Report) (float64, bool) {
	return func(r *Report) (float64, bool) {
		if len(r.Phases) == 0 {
			return 0, false
		}
		return f(r.Phases[0]), true
	}
}

func bestRate(r *Report) (float64, bool) {
	if r.Best == nil {
		return 0, true
	}
	return r.Best.Rate, true
}

// ReadReports loads every *.json report under dir.
func ReadReports(dir string) ([]*Report, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*Report
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		r := &Report{}
		if err := json.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Median returns the median of xs (the mean of the middle two for an even count).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// WriteComparison writes a markdown table per scenario: each metric's median over the rounds
// (with its range) for the peer and for ours, and ours ÷ peer.
func WriteComparison(w io.Writer, reports []*Report, ours, peer string) {
	byScenario := map[string]map[string][]*Report{}
	for _, r := range reports {
		if byScenario[r.Scenario] == nil {
			byScenario[r.Scenario] = map[string][]*Report{}
		}
		byScenario[r.Scenario][r.Label] = append(byScenario[r.Scenario][r.Label], r)
	}
	order := []string{"fanout", "fanout-latency", "many-channels", "idle-memory", "presence-storm", "chat"}
	for name := range byScenario {
		if !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	for _, name := range order {
		runs, ok := byScenario[name]
		if !ok {
			continue
		}
		metrics := append(slices.Clone(scenarioMetrics[name]), otherCPU)
		fmt.Fprintf(w, "\n#### %s (%d rounds)\n\n", name, max(len(runs[peer]), len(runs[ours])))
		fmt.Fprintf(w, "| metric | %s | %s | %s ÷ %s |\n|---|---:|---:|---:|\n", peer, ours, ours, peer)
		for _, m := range metrics {
			pv, prange := collect(runs[peer], m)
			ov, orange := collect(runs[ours], m)
			ratio := "–"
			if m.Name == otherCPU.Name {
				// no ratio
			} else if !math.IsNaN(pv) && !math.IsNaN(ov) && pv != 0 {
				better := ov >= pv
				if !m.HigherBetter {
					better = ov <= pv
				}
				mark := ""
				if better {
					mark = " ✓"
				}
				ratio = fmt.Sprintf("%.2f×%s", ov/pv, mark)
			} else if !math.IsNaN(pv) && !math.IsNaN(ov) && pv == 0 && ov == 0 {
				ratio = "equal"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", m.Name, fmtFigure(pv, prange), fmtFigure(ov, orange), ratio)
		}
	}
}

func collect(rs []*Report, m Metric) (float64, [2]float64) {
	var xs []float64
	for _, r := range rs {
		if v, ok := m.Value(r); ok {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return math.NaN(), [2]float64{}
	}
	return Median(xs), [2]float64{slices.Min(xs), slices.Max(xs)}
}

func fmtFigure(v float64, r [2]float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := num(v)
	if r[0] != r[1] {
		s += " (" + num(r[0]) + "–" + num(r[1]) + ")"
	}
	return s
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case a == math.Trunc(a) && a < 1e15:
		return commas(int64(v))
	case a >= 100:
		return commas(int64(math.Round(v)))
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
