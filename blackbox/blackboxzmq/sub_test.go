package blackboxzmq

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpeer"
)

// wait bounds every wait for the subscriber.
const wait = 10 * time.Second

// egress is an XPUB on loopback tcp standing in for the gateway's egress.
func egress(tb testing.TB) (*zmq.Socket, string) {
	s, err := zmq.NewSocket(zmq.XPUB)
	if err != nil {
		tb.Fatal(err)
	}
	s.SetLinger(0)
	s.SetSndhwm(0)
	if err := s.Bind("tcp://127.0.0.1:*"); err != nil {
		tb.Fatal(err)
	}
	ep, _ := s.GetLastEndpoint()
	tb.Cleanup(func() { s.Close() })
	return s, ep
}

func startSub(tb testing.TB, cfg SubConfig, h Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunSub(ctx, cfg, h) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("RunSub: %v", err)
		}
	})
}

func TestRunSubKeepsPerTopicOrder(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, ep := egress(t)
	var mu sync.Mutex
	last := map[string]int{}
	var total atomic.Int64
	var bad atomic.Value
	startSub(t, SubConfig{Endpoint: ep, Workers: 3, RcvHWM: 1 << 20}, func(frames [][]byte) {
		var n int
		fmt.Sscan(string(frames[1]), &n)
		mu.Lock()
		if n != last[string(frames[0])]+1 {
			bad.Store(fmt.Sprintf("%s: %d after %d", frames[0], n, last[string(frames[0])]))
		}
		last[string(frames[0])] = n
		mu.Unlock()
		total.Add(1)
	})
	pub.SetRcvtimeo(wait)
	if _, err := pub.RecvBytes(0); err != nil {
		t.Fatalf("no subscription: %v", err)
	}
	const n = 2000
	for i := 1; i <= n; i++ {
		for _, topic := range []string{"a", "b", "c", "d"} {
			pub.SendMessage(topic, fmt.Sprint(i))
		}
	}
	testpeer.Eventually(t, wait, "every message handled", func() bool { return total.Load() == 4*n })
	if b := bad.Load(); b != nil {
		t.Fatalf("per-topic order lost: %v", b)
	}
}

// spin is per-message work: a few microseconds of CPU.
func spin(frames [][]byte) {
	h := uint32(0)
	for i := 0; i < 2000; i++ {
		h = h*31 + uint32(frames[0][i%len(frames[0])])
	}
	if h == 42 {
		runtime.Gosched()
	}
}

// BenchmarkRunSub: the same per-message work on one worker and on one per
// core, fed by a libzmq publisher as fast as it can send; msgs/s for each
// and their ratio.
func BenchmarkRunSub(b *testing.B) {
	const n = 200_000
	rate := func(workers int) float64 {
		pub, ep := egress(b)
		var got atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- RunSub(ctx, SubConfig{Endpoint: ep, Workers: workers, RcvHWM: n + 1}, func(f [][]byte) { spin(f); got.Add(1) })
		}()
		defer func() { cancel(); <-done }()
		pub.SetRcvtimeo(wait)
		pub.RecvBytes(0)
		topics := make([][]byte, 64)
		for i := range topics {
			topics[i] = fmt.Appendf(nil, "md.eq.T%02d", i)
		}
		payload := make([]byte, 64)
		start := time.Now()
		for i := range n {
			pub.SendBytes(topics[i%len(topics)], zmq.SNDMORE)
			pub.SendBytes(payload, 0)
		}
		for got.Load() < n {
			time.Sleep(100 * time.Microsecond)
		}
		return n / time.Since(start).Seconds()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var one, many float64
	for range b.N {
		one += rate(1)
		many += rate(runtime.GOMAXPROCS(0))
	}
	b.ReportMetric(one/float64(b.N), "1worker_msgs/s")
	b.ReportMetric(many/float64(b.N), "Nworkers_msgs/s")
	b.ReportMetric(many/one, "N/1")
	b.ReportMetric(0, "ns/op")
}

// Only the subscribed prefixes reach the handler.
func TestRunSubPrefixes(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, ep := egress(t)
	var mu sync.Mutex
	var got []string
	var last atomic.Bool
	startSub(t, SubConfig{Endpoint: ep, Prefixes: []string{"md.eq.", "md.end"}, Workers: 1}, func(frames [][]byte) {
		if string(frames[0]) == "md.end" {
			last.Store(true)
			return
		}
		mu.Lock()
		got = append(got, string(frames[0]))
		mu.Unlock()
	})
	pub.SetRcvtimeo(wait)
	for range 2 {
		if _, err := pub.RecvBytes(0); err != nil {
			t.Fatalf("no subscription: %v", err)
		}
	}
	for _, topic := range []string{"md.eq.A", "md.fx.B", "md.eq.C", "md.end"} {
		pub.SendMessage(topic, "1")
	}
	testpeer.Eventually(t, wait, "the last message handled", last.Load)
	mu.Lock()
	defer mu.Unlock()
	if s := fmt.Sprint(got); s != "[md.eq.A md.eq.C]" {
		t.Errorf("handled %s, want [md.eq.A md.eq.C]", s)
	}
}

func TestRunSubBadEndpoint(t *testing.T) {
	err := RunSub(context.Background(), SubConfig{Endpoint: "nosuch://x"}, func([][]byte) {})
	if want := "blackbox sub: connect nosuch://x: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf(`RunSub(Endpoint: "nosuch://x") = %v, want an error starting %q`, err, want)
	}
}
