package lvc_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/tick"
)

func fill(n int) (*lvc.Cache, []*tick.Message) {
	c := lvc.New(lvc.DefaultConfig(), nil)
	ms := make([]*tick.Message, n)
	for i := range ms {
		ms[i] = msg(fmt.Sprintf("md.eq.T%05d", i), 1, 0, `{"px":100.25,"sym":"T","size":100,"ts":1764000000000000000}`)
		c.Update(ms[i])
	}
	return c, ms
}

// BenchmarkUpdate: the writer's cost per update of a known topic, 10k topics.
func BenchmarkUpdate(b *testing.B) {
	c, ms := fill(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c.Update(ms[i%len(ms)])
	}
}

// BenchmarkSnapshot: a consistent sorted snapshot of 10k topics.
func BenchmarkSnapshot(b *testing.B) {
	c, _ := fill(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if got := c.Snapshot(""); len(got) != 10_000 {
			b.Fatal(len(got))
		}
	}
}

func historyFill(b *testing.B, topics, count int) (*lvc.Cache, []*tick.Message) {
	b.Helper()
	cfg := lvc.DefaultConfig()
	cfg.History = []lvc.HistoryRule{{Prefix: "md.", MaxCount: count, MaxBytes: 1 << 30}}
	cfg.HistoryMaxBytes = 1 << 40
	c := lvc.New(cfg, nil)
	ms := make([]*tick.Message, topics)
	for i := range ms {
		ms[i] = msg(fmt.Sprintf("md.eq.T%05d", i), 1, 0, `{"px":100.25,"sym":"T","size":100,"ts":1764000000000000000}`)
	}
	return c, ms
}

// BenchmarkHistoryUpdate: the writer's cost per update with history on (10k
// topics, 64 kept each, rings full: every update lets one go). Compare with
// BenchmarkUpdate for the recording cost; 0 allocs/op is the target.
func BenchmarkHistoryUpdate(b *testing.B) {
	c, ms := historyFill(b, 10_000, 64)
	for range 64 {
		for _, m := range ms {
			c.Update(m)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c.Update(ms[i%len(ms)])
	}
}

// BenchmarkHistoryMemory reports the heap per retained update: 100 topics x
// 1,000 updates of a 71-byte message (12-byte topic, 59-byte payload), each message its own allocation as
// from the proxy (the figure includes the message the history keeps alive).
func BenchmarkHistoryMemory(b *testing.B) {
	for range b.N {
		c, ms := historyFill(b, 100, 1000)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for s := range 1000 {
			for _, m := range ms {
				n := *m
				n.Stamp.Seq = uint64(s + 1)
				n.Frames = [][]byte{m.Frames[0], append([]byte(nil), m.Frames[1]...)}
				c.Update(&n)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		n, _ := c.HistoryLen()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/retained")
		runtime.KeepAlive(c)
	}
}

// BenchmarkHistoryRecovery: reading a 10k-update recovery in 256-update
// steps, as a client's writer takes it; reports updates/s.
func BenchmarkHistoryRecovery(b *testing.B) {
	c, ms := historyFill(b, 1, 10_000)
	for s := range 10_000 {
		n := *ms[0]
		n.Stamp.Seq = uint64(s + 1)
		c.Update(&n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	got := 0
	for range b.N {
		var last uint64
		for more := true; more; {
			res := c.HistoryAfter(ms[0].Topic, 1, last, 0, 256, func(m *tick.Message) { last = m.Stamp.Seq; got++ })
			more = res.More
		}
	}
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "updates/s")
}
