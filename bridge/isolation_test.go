package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

// fill caches n topics under prefix without publishing them.
func (r *rig) fill(prefix string, n int, payload string) {
	for i := range n {
		topic := fmt.Sprintf("%s%07d", prefix, i)
		r.seq[topic]++
		r.cache.Update(&tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), []byte(payload)},
			Stamp: tick.Stamp{Epoch: epoch, Seq: r.seq[topic], Ingress: time.Now().UnixNano()}})
	}
}

// drainAll reads c until it fails, counting snapshot values.
func drainAll(c *client, snapshots *int) error {
	for {
		m, err := c.read(time.Minute)
		if err != nil {
			return err
		}
		if m["op"] == "snapshot" {
			*snapshots++
		}
	}
}

// TestHugeSubscribeDoesNotStallOthers: two connections keep subscribing to
// "" over a large cache (reading what they get) while a good client with a
// lag limit (2 s: the race detector on a loaded 2-core CI machine stalls a
// client more than 500 ms at times) follows one topic. Before the fix the snapshot
// was built inside the client's lock with its prefix already indexed, so
// every shard worker waited on it: the good client's p99 went 0.7 -> 1,348
// ms and it was cut off. Now: it stays connected and gets every update.
func TestHugeSubscribeDoesNotStallOthers(t *testing.T) {
	topics := 100_000
	if testing.Short() {
		topics = 20_000
	}
	fan := blackbox.DefaultConfig()
	fan.Limits = slowsub.Limits{MaxBytes: 1 << 20, MaxLag: 2 * time.Second}
	r := newRig(t, wsConfig(func(c *Config) { c.SubscribeRate, c.SubscribeBurst = 1000, 1000 }), fan)
	r.fill("big.", topics, `{"px":1}`)

	good := r.dial(t, nil)
	good.send(t, `{"op":"subscribe","topics":["md.good"],"snapshot":false,"max_lag_ms":2000}`)
	good.until(t, "ack")
	// The good client reads all along, as a real one does (its reads
	// answer the gateway's probes).
	type arrival struct {
		seq float64
		at  time.Time
		err error
	}
	arrivals := make(chan arrival, 1024)
	go func() {
		for {
			m, err := good.read(time.Minute)
			seq, _ := m["seq"].(float64)
			arrivals <- arrival{seq: seq, at: time.Now(), err: err}
			if err != nil {
				return
			}
		}
	}()
	measure := func(n int) []time.Duration {
		var lat []time.Duration
		for range n {
			sent := time.Now()
			seq := r.publish("md.good", `{"px":2}`)
			a := <-arrivals
			if a.err != nil {
				t.Fatalf("good client after %d updates: %v", len(lat), a.err)
			}
			if a.seq != float64(seq) {
				t.Fatalf("good client got seq %v, want %d", a.seq, seq)
			}
			lat = append(lat, a.at.Sub(sent))
			time.Sleep(2 * time.Millisecond) // the feed's pace, not synchronisation
		}
		return lat
	}
	quiet := measure(200)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	got := make([]int, 2)
	var attackers []*client
	defer func() {
		for _, a := range attackers {
			a.ws.Close()
		}
		wg.Wait()
	}()
	for i := range 2 {
		a := r.dial(t, nil)
		attackers = append(attackers, a)
		wg.Add(2)
		go func() { defer wg.Done(); drainAll(a, &got[i]) }()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := a.ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","prefixes":[""]}`)); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond) // the attack's pace
			}
		}()
	}
	testpeer.Eventually(t, 3*wait, "snapshot values flowing to the attackers", func() bool {
		return r.metric(t, "mdgate_fanout_snapshot_values_total") > 10_000
	})
	attacked := measure(300)
	close(stop)
	// The good client got every update in order (measure fails otherwise):
	// it was never cut off. An attacker may be (its own lag limit).
	t.Logf("good client delay, %d cached topics: quiet p50 %v p99 %v; two clients subscribing to \"\" nonstop: p50 %v p99 %v (snapshot values sent %v, subscribes refused busy %v)",
		topics, pct(quiet, 50), pct(quiet, 99), pct(attacked, 50), pct(attacked, 99),
		r.metric(t, "mdgate_fanout_snapshot_values_total"), r.metric(t, "mdgate_ws_errors_total", "code", CodeSnapshotBusy.String()))
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

// TestSnapshotLargerThanByteLimitLoads: a snapshot many times the client's
// byte limit is the gateway's own backlog, paced into its writes. Before
// the fix every connect was cut off at once (4008, queue over its bytes).
func TestSnapshotLargerThanByteLimitLoads(t *testing.T) {
	const topics = 20_000
	fan := blackbox.DefaultConfig()
	fan.Limits = slowsub.Limits{MaxBytes: 256 << 10, MaxLag: 2 * time.Second}
	r := newRig(t, DefaultConfig(), fan)
	r.fill("md.", topics, `{"px":1,"pad":"`+strings.Repeat("x", 100)+`"}`) // about 3 MB of snapshot
	c := r.dial(t, nil)
	c.send(t, `{"op":"subscribe","prefixes":["md."]}`)
	if ack := c.until(t, "ack"); ack["snapshot"] != float64(topics) {
		t.Fatalf("ack = %v, want snapshot %d", ack["\x00raw"], topics)
	}
	last := ""
	for i := range topics {
		m, err := c.read(wait)
		if err != nil {
			t.Fatalf("after %d of %d snapshot values: %v", i, topics, err)
		}
		topic, _ := m["topic"].(string)
		if m["op"] != "snapshot" || topic <= last {
			t.Fatalf("value %d is %v, want snapshots in topic order", i, m["\x00raw"])
		}
		last = topic
	}
	seq := r.publish("md.0000007", `{"px":2}`)
	if m := c.next(t); m["op"] != "update" || m["seq"] != float64(seq) {
		t.Fatalf("after the snapshot got %v, want the live update seq %d", m["\x00raw"], seq)
	}
}

// TestSnapshotThenLiveNoHoleNoDuplicate: a client subscribing while every
// topic is updated gets each topic's values in seq order, no older after a
// newer, ending at the last.
func TestSnapshotThenLiveNoHoleNoDuplicate(t *testing.T) {
	const topics = 2000
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	r.fill("md.", topics, `{"px":1}`)
	c := r.dial(t, nil)
	c.send(t, `{"op":"subscribe","prefixes":["md."]}`)
	c.until(t, "ack")
	for round := range 3 {
		for i := range topics {
			r.publish(fmt.Sprintf("md.%07d", i), fmt.Sprintf(`{"round":%d}`, round))
		}
	}
	seen := map[string]float64{}
	for done := 0; done < topics; {
		m := c.next(t)
		topic, _ := m["topic"].(string)
		seq, _ := m["seq"].(float64)
		if seq <= seen[topic] {
			t.Fatalf("%s: got seq %v after %v", topic, seq, seen[topic])
		}
		seen[topic] = seq
		if seq == 4 {
			done++
		}
	}
}

// TestShutdownBoundedWithStalledClient: a client that stopped reading
// while the gateway wrote to it used to hold Close for up to --ws-pong-wait
// (SIGTERM took 57 s); Shutdown now ends at its bound, dropping it.
func TestShutdownBoundedWithStalledClient(t *testing.T) {
	fan := blackbox.DefaultConfig()
	fan.Limits = slowsub.Limits{MaxBytes: 64 << 20, MaxLag: time.Hour} // never cut off: only the shutdown ends it
	r := newRig(t, wsConfig(func(c *Config) { c.SendBuffer = 8 << 10 }), fan)
	stalled := dialSmallBuffer(t, r)
	stalled.send(t, `{"op":"subscribe","prefixes":["md."],"snapshot":false}`)
	stalled.until(t, "ack")
	pad := `{"pad":"` + strings.Repeat("x", 4000) + `"}`
	testpeer.Eventually(t, wait, "the writer blocked on the stalled client", func() bool {
		for range 100 {
			r.publish("md.x", pad)
		}
		return queued(r) > 1<<20
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.b.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want the stalled client dropped at the bound", err)
		}
	case <-time.After(wait):
		t.Fatal("Shutdown did not return within 10s of a 300ms bound")
	}
	if n := r.metric(t, "mdgate_ws_closes_total", "reason", "shutdown_forced"); n != 1 {
		t.Fatalf("closes{shutdown_forced} = %v, want 1", n)
	}
}

// queued is how many bytes the engine's clients hold (the gauge of the
// fan-out's queue bytes is a histogram; read the clients' count instead).
func queued(r *rig) int {
	n := 0
	r.b.mu.Lock()
	for s := range r.b.sessions {
		n += s.c.QueuedBytes()
	}
	r.b.mu.Unlock()
	return n
}

func dialSmallBuffer(t *testing.T, r *rig) *client {
	t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{ws: ws}
}

// TestWriteTimeoutFreesTheSlot: a client cut off by the write deadline
// used to keep its connection (and its --ws-max-conns slot) until
// --ws-pong-wait; the writer now closes on every exit.
func TestWriteTimeoutFreesTheSlot(t *testing.T) {
	fan := blackbox.DefaultConfig()
	fan.WriteTimeout = 200 * time.Millisecond
	fan.Limits = slowsub.Limits{MaxBytes: 64 << 20, MaxLag: time.Hour}
	r := newRig(t, wsConfig(func(c *Config) { c.SendBuffer, c.MaxConns = 8<<10, 1 }), fan)
	stalled := dialSmallBuffer(t, r)
	stalled.send(t, `{"op":"subscribe","prefixes":["md."],"snapshot":false}`)
	stalled.until(t, "ack")
	pad := `{"pad":"` + strings.Repeat("x", 4000) + `"}`
	testpeer.Eventually(t, wait, "the write deadline cutting the stalled client off", func() bool {
		for range 100 {
			r.publish("md.x", pad)
		}
		return r.metric(t, "mdgate_fanout_disconnects_total", "reason", "write_timeout") == 1
	})
	testpeer.Eventually(t, wait, "its slot free for a new client", func() bool {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/ws", nil)
		if err != nil {
			return false
		}
		ws.Close()
		return true
	})
}
