package blackbox

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/internal/clock/clocktest"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/slowsub"
)

func TestP90Of(t *testing.T) {
	buckets := []float64{math.Inf(-1), 0, 0.0001, 0.001, 0.01, math.Inf(1)} // counts[i] is [buckets[i], buckets[i+1])
	for _, tc := range []struct {
		counts, prev []uint64
		want         time.Duration
	}{
		{[]uint64{0, 0, 0, 0, 0}, []uint64{0, 0, 0, 0, 0}, 0},
		{[]uint64{0, 10, 0, 0, 0}, []uint64{0, 0, 0, 0, 0}, 0},                       // all under 100 us: the edge 0
		{[]uint64{0, 90, 10, 0, 0}, []uint64{0, 0, 0, 0, 0}, 0},                      // the 90th of 100 is in the first bucket
		{[]uint64{0, 89, 11, 0, 0}, []uint64{0, 0, 0, 0, 0}, 100 * time.Microsecond}, // ... now in the second
		{[]uint64{0, 100, 5, 20, 0}, []uint64{0, 100, 5, 0, 0}, time.Millisecond},    // only what is new counts
		{[]uint64{0, 0, 0, 0, 7}, []uint64{0, 0, 0, 0, 0}, 10 * time.Millisecond},    // the last finite edge
		{[]uint64{0, 50, 50, 50, 50}, []uint64{0, 50, 50, 50, 50}, 0},                // nothing new
		{[]uint64{3, 0, 0, 0, 0}, []uint64{0, 0, 0, 0, 0}, 0},                        // an edge of -Inf
	} {
		t.Run(fmt.Sprint(tc.counts, tc.prev), func(t *testing.T) {
			if got := p90Of(tc.counts, tc.prev, buckets); got != tc.want {
				t.Errorf("p90Of(%v, %v) = %v, want %v", tc.counts, tc.prev, got, tc.want)
			}
		})
	}
}

func TestBusyStateNext(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		p90s  []time.Duration // one a sweep, from not holding
		holds string          // what each sweep decided
	}{
		{"never busy", []time.Duration{0, ms, 4 * ms, ms}, "...."},
		{"busy from 5ms unheld", []time.Duration{4 * ms, 5 * ms, 3 * ms, 2 * ms, ms, 3 * ms}, ".HHH.."},
		{"held at most 10 in a row, then measured unheld", []time.Duration{9 * ms, 9 * ms, 9 * ms, 9 * ms, 9 * ms, 9 * ms, 9 * ms, 9 * ms, 9 * ms, 9 * ms, 9 * ms, 9 * ms, 4 * ms},
			"HHHHHHHHHH.HH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b busyState
			held, got := false, ""
			for _, p := range tc.p90s {
				held = b.next(held, p)
				if held {
					got += "H"
				} else {
					got += "."
				}
			}
			if got != tc.holds {
				t.Errorf("next over %v = %q, want %q", tc.p90s, got, tc.holds)
			}
		})
	}
}

// The runtime's histogram is there to read (a Go that renamed it would
// leave BusyWriteDelay without its signal).
func TestSchedLatencyReadable(t *testing.T) {
	l := newSchedLatency()
	l.p90()
	if len(l.prev) == 0 {
		t.Fatal("no /sched/latencies:seconds histogram in runtime/metrics")
	}
}

// BusyWriteDelay holds live updates only after a sweep found the
// scheduler behind, and stops holding once a sweep finds it caught up.
func TestBusyWriteDelayHoldsOnlyWhileBusy(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEngine(t, config(func(c *Config) { c.Shards, c.Clock, c.Heartbeat, c.BusyWriteDelay = 1, clk, 0, 50*time.Millisecond }), encodeText)
	var p90 atomic.Int64
	e.schedP90 = func() time.Duration { return time.Duration(p90.Load()) }
	runEngine(t, e)
	conn := &memConn{}
	client(t, e, conn, slowsub.Limits{}, Subscription{Key: "x"})
	sweep := func(lat time.Duration) {
		p90.Store(int64(lat))
		before := counterValue(e.m.sweeps)
		clk.Advance(e.cfg.SweepEvery)
		testpeer.Eventually(t, wait, "a sweep", func() bool { return counterValue(e.m.sweeps) > before })
	}
	clocktest.BlockUntil(t, clk, 1) // the sweeper's ticker

	e.Publish(msg("x", 1))
	testpeer.Eventually(t, wait, "x 1 written at once: not busy", conn.written(1))

	sweep(5 * time.Millisecond)
	if got := counterValue(e.m.busySweeps); got != 1 {
		t.Fatalf("busy sweeps = %v after a sweep that measured 5ms, want 1", got)
	}
	holdsTwo(t, e, clk, conn, 2, 1)

	sweep(3 * time.Millisecond) // between BusyOff and BusyOn: still held
	sweep(time.Millisecond)
	if got := counterValue(e.m.busySweeps); got != 2 {
		t.Fatalf("busy sweeps = %v after sweeps measuring 3ms then 1ms, want 2", got)
	}
	e.Publish(msg("x", 4))
	testpeer.Eventually(t, wait, "x 4 written at once: no longer busy", conn.written(4))
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if want := []string{"x 1", "x 2", "x 3", "x 4"}; !slices.Equal(conn.got, want) || conn.batches != 3 {
		t.Fatalf("wrote %q in %d batches, want %q in 3", conn.got, conn.batches, want)
	}
}
