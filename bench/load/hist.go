package load

import (
	"math/bits"
	"sort"
	"sync/atomic"
	"time"
)

// Histogram records durations in microseconds in log-linear buckets (64 per power of two,
// so a percentile is exact below 64 µs and within 1.6% above). Record is lock-free and safe
// from many goroutines; histograms merge by adding buckets, which is how shards in other
// processes are combined.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // µs
	max    atomic.Uint64 // µs
}

const (
	histSub     = 64
	histShift   = 6 // log2(histSub)
	histBuckets = histSub + histSub*(64-histShift)
)

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - histShift - 1 // us>>e is in [64,128)
	return histSub + e*histSub + int(us>>e) - histSub
}

// histLow is the smallest value that falls in bucket i; histHigh the largest.
func histLow(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := (i - histSub) / histSub
	m := uint64((i-histSub)%histSub + histSub)
	return m << e
}

func histHigh(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := (i - histSub) / histSub
	return histLow(i) + (uint64(1) << e) - 1
}

// Record adds one duration (negative ones count as zero: clocks are shared on one machine,
// but a payload timestamp can still be a few µs after the receive on another core).
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[histIndex(us)].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Snapshot copies the histogram into its serialisable form.
func (h *Histogram) Snapshot() HistSnapshot {
	s := HistSnapshot{N: h.n.Load(), SumUS: h.sum.Load(), MaxUS: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return s
}

// HistSnapshot is a histogram as sparse (bucket, count) pairs, mergeable across shards.
type HistSnapshot struct {
	N       uint64      `json:"n"`
	SumUS   uint64      `json:"sum_us"`
	MaxUS   uint64      `json:"max_us"`
	Buckets [][2]uint64 `json:"buckets,omitempty"`
}

// Merge adds o into s.
func (s *HistSnapshot) Merge(o HistSnapshot) {
	s.N += o.N
	s.SumUS += o.SumUS
	s.MaxUS = max(s.MaxUS, o.MaxUS)
	m := map[uint64]uint64{}
	for _, b := range s.Buckets {
		m[b[0]] += b[1]
	}
	for _, b := range o.Buckets {
		m[b[0]] += b[1]
	}
	s.Buckets = s.Buckets[:0]
	for i, c := range m {
		s.Buckets = append(s.Buckets, [2]uint64{i, c})
	}
	sort.Slice(s.Buckets, func(a, b int) bool { return s.Buckets[a][0] < s.Buckets[b][0] })
}

// Percentile returns the q-th percentile (0 < q ≤ 100) in microseconds: the midpoint of the
// bucket holding the value of rank ceil(q/100·N), never above the recorded maximum.
func (s HistSnapshot) Percentile(q float64) float64 {
	if s.N == 0 {
		return 0
	}
	rank := uint64(q / 100 * float64(s.N))
	if float64(rank) < q/100*float64(s.N) {
		rank++
	}
	rank = max(rank, 1)
	var seen uint64
	for _, b := range s.Buckets {
		seen += b[1]
		if seen >= rank {
			i := int(b[0])
			lo, hi := histLow(i), histHigh(i)
			v := float64(lo+hi) / 2
			return min(v, float64(s.MaxUS))
		}
	}
	return float64(s.MaxUS)
}

// Mean returns the mean in microseconds.
func (s HistSnapshot) Mean() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.SumUS) / float64(s.N)
}

// Summary is the usual set of latency figures, in milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize reduces a snapshot to its percentiles in milliseconds.
func (s HistSnapshot) Summarize() Summary {
	return Summary{
		Count: s.N,
		Mean:  s.Mean() / 1000,
		P50:   s.Percentile(50) / 1000,
		P90:   s.Percentile(90) / 1000,
		P99:   s.Percentile(99) / 1000,
		Max:   float64(s.MaxUS) / 1000,
	}
}
