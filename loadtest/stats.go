package main

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// newHist records latencies in microseconds from 1 us to 1 min with 3
// significant digits: fixed memory however many samples.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	h.RecordValue(min(max(d.Microseconds(), 1), 60_000_000))
}

// samples is one reader's latencies, in microseconds, in arrival order:
// the fan-out clients append in their read loop and the step puts them in
// one histogram after the window. A histogram a client was 220 KB of
// counts (3 significant digits up to a minute), 220 MB for 1,000 clients,
// and a cache miss a sample: RecordValues was 6.4 % of the harness's
// samples at 100k deliveries/s (session 9, perf on the harness's CPU).
// Harness cores at 100k pinned went from 0.87-0.93 to 0.86-0.90 (3 runs
// each, within this machine's noise). Owned by the reader until it has
// stopped.
type samples struct{ us []int32 }

func (s *samples) record(d time.Duration) {
	s.us = append(s.us, int32(min(max(d.Microseconds(), 1), 60_000_000)))
}

// into records every sample in h.
func (s *samples) into(h *hdrhistogram.Histogram) {
	for _, v := range s.us {
		h.RecordValue(int64(v))
	}
}

// latency is the summary a result reports, in milliseconds.
type latency struct {
	P50, P90, P99, P999, Max float64
	Count                    int64
}

func summarize(h *hdrhistogram.Histogram) latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return latency{P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Count: h.TotalCount()}
}

// assign gives each of k clients s distinct topics of t, seeded: the same
// seed gives the same plan.
func assign(k, s, t int, seed uint64) [][]int {
	rng := newRand(seed)
	plan := make([][]int, k)
	for c := range plan {
		perm := rng.Perm(t)
		plan[c] = perm[:min(s, t)]
	}
	return plan
}

// timeline turns cumulative counts sampled every step into rates a second.
func timeline(cum []int64, step time.Duration) []float64 {
	out := make([]float64, 0, len(cum))
	for i := 1; i < len(cum); i++ {
		out = append(out, float64(cum[i]-cum[i-1])/step.Seconds())
	}
	return out
}
