package blackbox

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

// countConn counts what it is given and writes nothing; it answers every
// probe at once.
type countConn struct {
	n      *atomic.Int64
	answer func(uint64)
}

func (c *countConn) WriteBatch(_ time.Time, b *Batch) error {
	c.n.Add(int64(len(b.Items)))
	if b.Probe != 0 {
		c.answer(b.Probe)
	}
	return nil
}
func (*countConn) WriteClose(time.Time, Close) error { return nil }
func (*countConn) Abort()                            {}

// countingEngine runs an engine and n clients on countConns, each subscribed
// to sub, until b's run ends; got counts the items their writers are
// handed. A shard queue holds every message (b.N+1000): Publish outruns the
// worker, and a dropped message would leave a wait for got waiting.
func countingEngine(b *testing.B, n int, sub Subscription) (e *Engine, got *atomic.Int64) {
	b.Helper()
	e = newEngine(b, config(func(c *Config) {
		c.Limits, c.ShardQueue = slowsub.Limits{MaxBytes: 1 << 30, MaxLag: time.Hour}, b.N+1000
	}), encodeText)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go e.Run(ctx)
	got = new(atomic.Int64)
	for range n {
		conn := &countConn{n: got}
		c := e.NewClient(conn, 0, slowsub.Limits{})
		conn.answer = c.Answered
		c.Subscribe([]Subscription{sub}, nil, nil)
		go c.Run(ctx)
	}
	return e, got
}

// BenchmarkFanOut publishes one topic to n subscribers and waits until every
// writer has taken every message: ns/op is per message, so per delivery it is
// ns/op / n (reported as ns/delivery).
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			e, got := countingEngine(b, n, Subscription{Key: "md.eq.AAPL"})
			m := &tick.Message{Topic: "md.eq.AAPL", Frames: [][]byte{[]byte("md.eq.AAPL"), make([]byte, 100)}}
			seq := uint64(0)
			publish := func(count int) {
				for range count {
					seq++
					m := *m
					m.Stamp = tick.Stamp{Epoch: 1, Seq: seq, Ingress: time.Now().UnixNano()}
					e.Publish(&m)
				}
			}
			// Warm up: every client's writer running, queues and probe
			// lists grown to their working size. What is measured then is
			// the steady state, whose allocations must not grow with n.
			publish(1000)
			for got.Load() < 1000*int64(n) {
				time.Sleep(50 * time.Microsecond)
			}
			got.Store(0)
			b.ResetTimer()
			publish(b.N)
			want := int64(b.N) * int64(n)
			if d := counterValue(e.m.dropShardFull); d > 0 { // Publish drops as it goes: all are counted now
				b.Fatalf("%v messages dropped at a full shard queue: the deliveries waited for will not come", d)
			}
			for got.Load() < want {
				time.Sleep(50 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(want), "ns/delivery")
			b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkMatch matches topics against 100k subscriptions: 90k exact topics
// and 10k prefixes of several lengths.
func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	x := newIndex()
	c := &Client{}
	for i := range 90_000 {
		x.add(fmt.Sprintf("md.eq.S%05d", i), false, entry{c: c})
	}
	for i := range 10_000 {
		x.add(fmt.Sprintf("md.fx.%d", i), true, entry{c: c})
	}
	topics := []string{"md.eq.S01234", "md.fx.123456", "md.fut.ESZ6", "nothing"}
	var dst []entry
	b.ResetTimer()
	for i := range b.N {
		dst = x.match(topics[i%len(topics)], dst[:0])
	}
}

// BenchmarkThrottle: the gateway's cost per client of a dashboard-like
// subscription (every topic of 1,000, updated round-robin) with and
// without throttle_ms 250, and what each client's writer is handed. One op
// is one message published; the run lasts about b.N / 20,000 s at least, so
// the throttle's interval edges come round.
func BenchmarkThrottle(b *testing.B) {
	for _, every := range []time.Duration{0, 250 * time.Millisecond} {
		b.Run(fmt.Sprintf("throttle=%v", every), func(b *testing.B) {
			const clients, topics = 100, 1000
			e, got := countingEngine(b, clients, Subscription{Key: "md.", Prefix: true, Throttle: every})
			names := make([]string, topics)
			for i := range names {
				names[i] = fmt.Sprintf("md.%04d", i)
			}
			pace := time.NewTicker(time.Millisecond)
			defer pace.Stop()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				if i%20 == 0 {
					<-pace.C // 20,000 messages a second
				}
				t := names[i%topics]
				e.Publish(&tick.Message{Topic: t, Frames: [][]byte{[]byte(t), make([]byte, 100)},
					Stamp: tick.Stamp{Epoch: 1, Seq: uint64(i/topics + 1), Ingress: time.Now().UnixNano()}})
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(b.N)/clients, "cpu-µs/msg/client")
			b.ReportMetric(float64(got.Load())/float64(clients)/b.Elapsed().Seconds(), "items/client/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// cpuTime is the process's user and system CPU time, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
