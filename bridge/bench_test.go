package bridge

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/slowsub"
)

// BenchmarkUnrelatedDelayDuringHugeSubscribe: the delay a client following
// one topic sees while another client subscribes to "" over 100k cached
// topics and reads the whole snapshot, next to the same client's delay with
// nobody subscribing. One op is one such subscribe, read to its end. The
// issue's target: the extra delay under 1 ms.
func BenchmarkUnrelatedDelayDuringHugeSubscribe(b *testing.B) {
	const topics = 100_000
	t := &testing.T{}
	fan := blackbox.DefaultConfig()
	fan.Limits = slowsub.Limits{MaxBytes: 1 << 20, MaxLag: 2 * time.Second}
	r := newRig(t, DefaultConfig(), fan)
	b.Cleanup(func() { r.b.Close(); r.srv.Close() })
	r.fill("big.", topics, `{"px":1}`)
	good := r.dial(t, nil)
	good.send(t, `{"op":"subscribe","topics":["md.good"],"snapshot":false}`)
	good.until(t, "ack")
	arrivals := make(chan time.Time, 1<<16)
	go func() {
		for {
			if _, err := good.read(time.Minute); err != nil {
				return
			}
			arrivals <- time.Now()
		}
	}()
	// sample publishes md.good every 500 µs until stop closes and returns
	// the delays.
	sample := func(stop <-chan struct{}) []time.Duration {
		var d []time.Duration
		for {
			select {
			case <-stop:
				return d
			default:
			}
			sent := time.Now()
			r.publish("md.good", `{"px":2}`)
			d = append(d, (<-arrivals).Sub(sent))
			time.Sleep(500 * time.Microsecond) // the feed's pace
		}
	}
	stop := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(stop) })
	quiet := sample(stop)

	var during []time.Duration
	b.ResetTimer()
	url := "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/ws"
	for range b.N {
		stop := make(chan struct{})
		res := make(chan []time.Duration)
		go func() { res <- sample(stop) }()
		// The subscriber is another process, as it would be: its reading
		// does not compete with the gateway for this process's cores.
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHugeSubscriber$")
		cmd.Env = append(os.Environ(), "MDGATE_HELPER_WS="+url)
		out, err := cmd.CombinedOutput()
		close(stop)
		during = append(during, <-res...)
		if err != nil || !strings.Contains(string(out), "snapshot read") {
			b.Fatalf("subscriber process: %v\n%s", err, out)
		}
	}
	b.StopTimer()
	if t.Failed() {
		b.Fatal("setup failed")
	}
	q := func(d []time.Duration, p int) float64 {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return float64(s[min(len(s)-1, len(s)*p/100)].Microseconds())
	}
	b.ReportMetric(q(quiet, 50), "quiet-p50-µs")
	b.ReportMetric(q(quiet, 99), "quiet-p99-µs")
	b.ReportMetric(q(during, 50), "during-p50-µs")
	b.ReportMetric(q(during, 99), "during-p99-µs")
	b.ReportMetric(q(during, 100), "during-max-µs")
	b.Log(fmt.Sprintf("%d samples quiet, %d during %d subscribes to \"\" over %d topics", len(quiet), len(during), b.N, topics))
}

// TestHelperHugeSubscriber is the benchmark's subscriber process: it
// subscribes to "" and reads the whole snapshot, counting without parsing.
// It does nothing in a normal test run.
func TestHelperHugeSubscriber(t *testing.T) {
	url := os.Getenv("MDGATE_HELPER_WS")
	if url == "" {
		t.Skip("the benchmark's subscriber process")
	}
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	a := &client{ws: ws}
	a.send(t, `{"op":"subscribe","prefixes":[""]}`)
	ack := a.until(t, "ack")
	want := int(ack["snapshot"].(float64))
	for n := len(a.pending); n < want; {
		ws.SetReadDeadline(time.Now().Add(wait))
		_, frame, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		n += bytes.Count(frame, []byte(`{"op":"snapshot"`))
	}
	fmt.Printf("snapshot read: %d values\n", want)
}
