package blackbox

import (
	"math"
	rtmetrics "runtime/metrics"
	"time"
)

// Holding writes while the process is short of CPU.
//
// At tens of messages a second per client every delivery is its own
// write(2), and the write is most of what a delivery costs (59 % of the
// gateway's CPU at 40k deliveries/s, docs/benchmarks.md, session 7); only
// fewer writes cut it, by holding updates so that a client's writer takes
// several at once (Config.WriteDelay). Held always, every update pays the
// hold. Config.BusyWriteDelay holds only while the Go scheduler is behind:
// while goroutines ready to run wait BusyOn or more for a CPU (the p90 of
// runtime/metrics' /sched/latencies:seconds over a sweep interval), every
// update already waits about that long; a window then adds little to it
// and gives CPU back. The hold ends once that p90 is below BusyOff, or
// after busyRecheck sweeps, when an interval unheld measures the load
// again (busyState).
//
// The thresholds are measured (session 7, 1,000 WebSocket clients on one
// pinned core, mdgate_fanout_sched_latency_p90_seconds sampled every
// 250 ms): at 10k and 40k deliveries/s the p90 was 0.5-4.2 ms, median
// 1.0 ms, the writers a batch wakes queueing behind each other; at 100k,
// the core full, 5.2-21 ms, median 12.6 ms.
const (
	BusyOn  = 5 * time.Millisecond
	BusyOff = 2 * time.Millisecond
)

// schedLatency reads the p90 of the scheduler's latency histogram over the
// time since its last call. Owned by the sweeper.
type schedLatency struct {
	s    []rtmetrics.Sample
	prev []uint64
}

func newSchedLatency() *schedLatency {
	return &schedLatency{s: []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}}
}

// p90 is the p90 of the latencies recorded since the last call (p90Of; 0
// when none were, or the runtime does not export them).
func (l *schedLatency) p90() time.Duration {
	rtmetrics.Read(l.s)
	if l.s[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		return 0
	}
	h := l.s[0].Value.Float64Histogram()
	if len(l.prev) != len(h.Counts) {
		l.prev = make([]uint64, len(h.Counts))
	}
	at := p90Of(h.Counts, l.prev, h.Buckets)
	copy(l.prev, h.Counts)
	return at
}

// p90Of is the lower edge (in seconds, buckets[i] for counts[i]) of the
// bucket holding the 90th percentile of counts-prev: 0 when that is
// empty, or the edge is not above 0.
func p90Of(counts, prev []uint64, buckets []float64) time.Duration {
	var total uint64
	for i, c := range counts {
		total += c - prev[i]
	}
	if total == 0 {
		return 0
	}
	want, cum := (total*9+9)/10, uint64(0)
	for i, c := range counts {
		if cum += c - prev[i]; cum >= want {
			if lo := buckets[i]; lo > 0 && !math.IsInf(lo, 0) {
				return time.Duration(lo * float64(time.Second))
			}
			return 0
		}
	}
	return 0
}

// busyRecheck is how many sweeps in a row writes are held at most: the
// hold's own bursts (every client woken at a window's end) keep the
// scheduler's latency high, so the next interval is left unheld and
// measured afresh.
const busyRecheck = 10

// busyState decides, each sweep, whether the shards hold writes until the
// next. Owned by the sweeper.
type busyState struct {
	held int // sweeps in a row that decided to hold
}

// next takes the p90 measured over the interval that just ended and
// whether writes were held in it, and says whether to hold in the next.
// Measured unheld, the p90 is the load's own: hold from BusyOn. Measured
// held, the hold's bursts are in it: hold on while at BusyOff or more,
// for busyRecheck sweeps at most, then measure unheld again.
func (b *busyState) next(heldLast bool, p90 time.Duration) bool {
	hold := p90 >= BusyOn
	if heldLast {
		hold = p90 >= BusyOff && b.held < busyRecheck
	}
	if hold {
		b.held++
	} else {
		b.held = 0
	}
	return hold
}
