package lvc_test

import (
	"fmt"
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
