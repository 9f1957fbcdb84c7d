package slowsub

import (
	"fmt"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	l := Limits{MaxBytes: 100, MaxLag: time.Second}
	for _, tc := range []struct {
		queued int
		lag    time.Duration
		want   Reason
	}{
		{0, 0, None},
		{100, time.Second, None},
		{101, 0, QueueBytes},
		{0, time.Second + 1, Lag},
		{101, 2 * time.Second, QueueBytes},
	} {
		t.Run(fmt.Sprintf("%d,%v", tc.queued, tc.lag), func(t *testing.T) {
			if got := Decide(l, tc.queued, tc.lag); got != tc.want {
				t.Errorf("Decide(%v, %d, %v) = %v, want %v", l, tc.queued, tc.lag, got, tc.want)
			}
		})
	}
	if got := Decide(Limits{}, 1<<40, time.Hour); got != None {
		t.Errorf("Decide(no limits) = %v, want none", got)
	}
}

func TestWithin(t *testing.T) {
	max := Limits{MaxBytes: 1000, MaxLag: time.Second}
	for _, tc := range []struct{ in, want Limits }{
		{Limits{}, max},
		{Limits{MaxBytes: 10, MaxLag: time.Millisecond}, Limits{MaxBytes: 10, MaxLag: time.Millisecond}},
		{Limits{MaxBytes: 5000, MaxLag: time.Hour}, max},
	} {
		t.Run(fmt.Sprintf("%+v", tc.in), func(t *testing.T) {
			if got := tc.in.Within(max); got != tc.want {
				t.Errorf("%+v.Within(%+v) = %+v, want %+v", tc.in, max, got, tc.want)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Policy
		ok   bool
	}{{"", Disconnect, true}, {"disconnect", Disconnect, true}, {"conflate", Conflate, true}, {"drop", Disconnect, false}} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePolicy(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Errorf("ParsePolicy(%q) = %v, %v, want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestQueueCutsOffPastBytes(t *testing.T) {
	q := NewQueue(Limits{MaxBytes: 10})
	if v := q.Push(Item{Topic: "a", Data: make([]byte, 6)}, 0); v != Queued {
		t.Fatalf("first push = %v, want Queued", v)
	}
	if v := q.Push(Item{Topic: "b", Data: make([]byte, 6)}, 0); v != CutOff {
		t.Fatalf("push past 10 bytes = %v, want CutOff", v)
	}
	if closed, r := q.Closed(); !closed || r != QueueBytes {
		t.Fatalf("Closed() = %v, %v, want true, queue_bytes", closed, r)
	}
	if v := q.Push(Item{Topic: "c"}, 0); v != Closed {
		t.Fatalf("push after cut-off = %v, want Closed", v)
	}
	if n, b := q.Len(); n != 0 || b != 0 {
		t.Fatalf("a closed queue holds %d items, %d bytes, want none", n, b)
	}
}

func TestQueueLagFromOldestItem(t *testing.T) {
	q := NewQueue(Limits{MaxLag: time.Second})
	q.Push(Item{Topic: "a", At: 0}, 0)
	if r := q.Check(int64(time.Second)); r != None {
		t.Fatalf("Check at exactly the limit = %v, want none", r)
	}
	if r := q.Check(int64(time.Second) + 1); r != Lag {
		t.Fatalf("Check past the limit = %v, want lag", r)
	}
}

func TestQueueConflatesPerTopic(t *testing.T) {
	q := NewQueue(Limits{MaxBytes: 100})
	for i := range 10 {
		for _, topic := range []string{"x", "y"} {
			q.Push(Item{Topic: topic, Data: []byte(fmt.Sprint(i)), Conflate: true}, 0)
		}
	}
	q.Push(Item{Topic: "ack", Data: []byte("A")}, 0) // not conflatable
	got := q.Drain(nil)
	want := []string{"x=9 skipped 9", "y=9 skipped 9", "ack=A skipped 0"}
	if len(got) != len(want) {
		t.Fatalf("drained %d items, want %d", len(got), len(want))
	}
	for i, it := range got {
		if s := fmt.Sprintf("%s=%s skipped %d", it.Topic, it.Data, it.Skipped); s != want[i] {
			t.Errorf("item %d = %q, want %q", i, s, want[i])
		}
	}
	// After a drain a topic starts over: nothing left to conflate into.
	if v := q.Push(Item{Topic: "x", Data: []byte("10"), Conflate: true}, 0); v != Queued {
		t.Fatalf("push after drain = %v, want Queued", v)
	}
}

func TestDrainSwapsBuffers(t *testing.T) {
	q := NewQueue(Limits{})
	var buf []Item
	for round := range 3 {
		q.Push(Item{Topic: "a", Data: []byte{byte(round)}}, 0)
		buf = q.Drain(buf)
		if len(buf) != 1 || buf[0].Data[0] != byte(round) {
			t.Fatalf("round %d drained %+v", round, buf)
		}
	}
}

func BenchmarkQueuePushDrain(b *testing.B) {
	b.ReportAllocs()
	q := NewQueue(DefaultLimits())
	data := make([]byte, 100)
	var buf []Item
	for i := range b.N {
		q.Push(Item{Topic: "md.eq.AAPL", Data: data, At: int64(i)}, int64(i))
		if i%64 == 63 {
			buf = q.Drain(buf)
		}
	}
}

func TestDrainUpTo(t *testing.T) {
	q := NewQueue(Limits{})
	for i, topic := range []string{"a", "b", "c", "a"} {
		q.Push(Item{Topic: topic, Data: []byte("1234567890"), At: int64(i + 1), Conflate: topic != "b"}, 0)
	}
	// a was conflated: a(At 4), b, c
	got := q.DrainUpTo(nil, 15)
	if len(got) != 1 || got[0].Topic != "a" {
		t.Fatalf("DrainUpTo(15) = %v, want [a]", got)
	}
	if items, bytes := q.Len(); items != 2 || bytes != 20 {
		t.Fatalf("left %d items, %d bytes, want 2, 20", items, bytes)
	}
	if lag := q.Lag(10); lag != 8 {
		t.Fatalf("Lag = %v, want 8 (b, At 2, cannot be conflated)", lag)
	}
	q.Push(Item{Topic: "c", Data: []byte("x"), At: 9, Conflate: true}, 0)
	got = q.DrainUpTo(nil, 100)
	if len(got) != 2 || got[1].Topic != "c" || string(got[1].Data) != "x" || got[1].Skipped != 1 {
		t.Fatalf("after conflating c: %+v, want b then c conflated into x", got)
	}
}
