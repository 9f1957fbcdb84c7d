package bridge

import (
	"io"
	"testing"
	"time"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

// BenchmarkWriteBatch: the socket writer's cost for one batch of 64
// encoded updates to a real gorilla client over loopback TCP (the client
// reads and discards). allocs/op is per batch: the target is none per item.
func BenchmarkWriteBatch(b *testing.B) {
	ws, client := wsPair(b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, r, err := client.NextReader()
			if err != nil {
				return
			}
			io.Copy(io.Discard, r)
		}
	}()
	c := &wsConn{ws: ws, clk: clock.Real{}}
	m := &tick.Message{Topic: "md.eq.AAPL", Frames: [][]byte{[]byte("md.eq.AAPL"), []byte(`{"px":187.25,"sz":100,"venue":"XNAS","side":"B"}`)},
		Stamp: tick.Stamp{Epoch: 1, Seq: 1, Ingress: time.Now().UnixNano()}}
	data := EncodeUpdate(m)
	items := make([]slowsub.Item, 64)
	for i := range items {
		items[i] = slowsub.Item{Data: data}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(items) * (len(data) + 1)))
	b.ResetTimer()
	for range b.N {
		if err := c.WriteBatch(time.Now().Add(10*time.Second), &blackbox.Batch{Items: items}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ws.Close()
	client.Close()
	<-done
}
