package main

import (
	"math"
	"slices"
	"time"
)

// percentiles returns the q-quantiles (0..1) of samples by the nearest-rank
// method; samples is sorted in place. Empty samples give zeros.
func percentiles(samples []time.Duration, qs ...float64) []time.Duration {
	out := make([]time.Duration, len(qs))
	if len(samples) == 0 {
		return out
	}
	slices.Sort(samples)
	for i, q := range qs {
		rank := int(math.Ceil(q*float64(len(samples)))) - 1
		out[i] = samples[min(max(rank, 0), len(samples)-1)]
	}
	return out
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
