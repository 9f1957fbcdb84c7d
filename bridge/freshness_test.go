package bridge

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/slowsub"
)

// feed publishes round-robin over topics at rate msgs/s until stop closes.
func (r *rig) feed(stop <-chan struct{}, topics []string, rate int, payload string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		perTick := max(rate/1000, 1)
		i := 0
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for range perTick {
				r.publish(topics[i%len(topics)], payload)
				i++
			}
		}
	}()
	return done
}

// slowRead reads one message every gap until the connection ends or until
// `until`, and returns the oldest age (now - ts) it saw and how it ended.
func slowRead(c *client, gap time.Duration, until time.Time) (oldest time.Duration, n int, err error) {
	for time.Now().Before(until) {
		m, err := c.read(wait)
		if err != nil {
			return oldest, n, err
		}
		if ts, ok := m["ts"].(float64); ok && (m["op"] == "update" || m["op"] == "snapshot") {
			oldest = max(oldest, time.Since(time.UnixMicro(int64(ts))))
			n++
		}
		time.Sleep(gap) // the reader's pace
	}
	return oldest, n, nil
}

// freshnessSlack is X in "a connected client never sees a value older than
// max_lag_ms + X" (docs/protocol.md): the probe interval and the sweeper's
// period, with room for a loaded machine running -race.
const freshnessSlack = 1250 * time.Millisecond

// freshnessRig is a rig whose fan-out has limits and a client that has sent
// the subscribe message sub and read its ack.
func freshnessRig(t *testing.T, limits slowsub.Limits, sub string) (*rig, *client) {
	t.Helper()
	fan := blackbox.DefaultConfig()
	fan.Limits = limits
	r := newRig(t, wsConfig(nil), fan)
	c := r.dial(t, nil)
	c.send(t, sub)
	c.until(t, "ack")
	return r, c
}

// TestSlowReaderSeesBoundedAge: a client reading at about a tenth of the
// feed, with the default 512 KiB send buffer. Before the fix the kernel's
// buffers hid its backlog from the lag rule and it saw prices 5.5 s old
// under a 2 s limit while connected; now what it has not read counts, and it
// is cut off (4008) before it can see a value older than its limit + X.
func TestSlowReaderSeesBoundedAge(t *testing.T) {
	const maxLag = time.Second
	r, c := freshnessRig(t, slowsub.Limits{MaxBytes: 256 << 20, MaxLag: maxLag},
		`{"op":"subscribe","prefixes":["md."],"snapshot":false}`)
	stop := make(chan struct{})
	done := r.feed(stop, []string{"md.a", "md.b", "md.c"}, 2000, `{"px":1,"pad":"`+strings.Repeat("x", 300)+`"}`)
	defer func() { close(stop); <-done }()
	oldest, n, err := slowRead(c, 5*time.Millisecond, time.Now().Add(15*time.Second))
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != CloseSlowConsumer {
		t.Fatalf("slow reader ended with %v after %d values, want close %d", err, n, CloseSlowConsumer)
	}
	t.Logf("slow reader (about 200 of 2,000 msgs/s): %d values, oldest seen %v under max_lag %v, then %v", n, oldest.Round(time.Millisecond), maxLag, ce)
	if oldest > maxLag+freshnessSlack {
		t.Fatalf("a connected client saw a value %v old, want at most %v + %v", oldest, maxLag, freshnessSlack)
	}
}

// TestConflatingSlowReaderSeesCurrentValues: the same slow reader asking to
// conflate stays connected and sees each topic's value within its lag limit
// of the newest: conflation happens before bytes reach the kernel. Before
// the fix it saw values 5.5 s old.
func TestConflatingSlowReaderSeesCurrentValues(t *testing.T) {
	const maxLag = time.Second
	r, c := freshnessRig(t, slowsub.Limits{MaxBytes: 1 << 20, MaxLag: maxLag},
		`{"op":"subscribe","prefixes":["md."],"snapshot":false,"slow":"conflate"}`)
	topics := make([]string, 50)
	for i := range topics {
		topics[i] = fmt.Sprintf("md.%02d", i)
	}
	stop := make(chan struct{})
	done := r.feed(stop, topics, 2000, `{"px":1,"pad":"`+strings.Repeat("x", 300)+`"}`)
	defer func() { close(stop); <-done }()
	oldest, n, err := slowRead(c, 5*time.Millisecond, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("conflating slow reader ended with %v after %d values, want it connected", err, n)
	}
	t.Logf("conflating slow reader: %d values in 5 s, oldest seen %v under max_lag %v; conflated %v",
		n, oldest.Round(time.Millisecond), maxLag, r.metric(t, "mdgate_fanout_conflated_total"))
	if oldest > maxLag+freshnessSlack {
		t.Fatalf("a conflating client saw a value %v old, want at most %v + %v", oldest, maxLag, freshnessSlack)
	}
}

// TestPausedConflatingClientOnQuietFeed: a conflating client that stops
// reading while the feed is quiet holds only latest values: it is not
// behind, and is not cut off for lag (it was, after 2.1 s).
func TestPausedConflatingClientOnQuietFeed(t *testing.T) {
	r, c := freshnessRig(t, slowsub.Limits{MaxBytes: 1 << 20, MaxLag: 300 * time.Millisecond},
		`{"op":"subscribe","prefixes":["md."],"snapshot":false,"slow":"conflate"}`)
	var last uint64
	for range 50 {
		last = r.publish("md.q", `{"px":1}`)
	}
	testpeer.Eventually(t, wait, "a second past the lag limit, by the sweeper's count", func() bool {
		return r.metric(t, "mdgate_fanout_sweeps_total") >= 15
	})
	for {
		m := c.next(t)
		if m["seq"] == float64(last) {
			break
		}
	}
	for _, rs := range []string{"lag", "queue_bytes", "write_timeout"} {
		if n := r.metric(t, "mdgate_fanout_disconnects_total", "reason", rs); n != 0 {
			t.Fatalf("disconnects{reason=%s} = %v, want 0", rs, n)
		}
	}
}

// TestInvalidUTF8PayloadSentAsBase64: a JSON payload with a byte that is not
// UTF-8 inside a string passes json.Valid; sent raw in a text frame it made
// every browser fail the connection (and loop on reconnect). It now goes as
// base64.
func TestInvalidUTF8PayloadSentAsBase64(t *testing.T) {
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	c.send(t, `{"op":"subscribe","topics":["md.x"],"snapshot":false}`)
	c.until(t, "ack")
	r.publish("md.x", "{\"note\":\"caf\xe9\"}")
	c.ws.SetReadDeadline(time.Now().Add(wait))
	_, frame, err := c.ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(frame) {
		t.Fatalf("gateway wrote invalid UTF-8 in a text frame: %q", frame)
	}
	if !strings.Contains(string(frame), `"enc":"base64"`) {
		t.Fatalf("frame %s: want the payload as base64", frame)
	}
}

// TestCloseCodesReachTheClient: each reason to close comes as a close frame
// the client reads, not a reset (before: 1009 and 1008 were resets, a
// silent client got 1001).
func TestCloseCodesReachTheClient(t *testing.T) {
	cases := []struct {
		name string
		do   func(c *client)
		want int
	}{
		{"frame over the read limit", func(c *client) {
			c.ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"ping","pad":"`+strings.Repeat("x", 70<<10)+`"}`))
		}, websocket.CloseMessageTooBig},
		{"too many bad requests", func(c *client) {
			for range 20 {
				c.ws.WriteMessage(websocket.TextMessage, []byte(`nonsense`))
			}
		}, websocket.ClosePolicyViolation},
		{"invalid UTF-8", func(c *client) {
			c.ws.WriteMessage(websocket.TextMessage, []byte("{\"op\":\"ping\",\"id\":\"\xff\"}"))
		}, websocket.CloseInvalidFramePayloadData},
		{"silent past the pong wait", func(c *client) {
			c.ws.SetPingHandler(func(string) error { return nil }) // answers nothing
		}, CloseNoPong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, wsConfig(func(c *Config) { c.PongWait = 500 * time.Millisecond }), blackbox.DefaultConfig())
			c := r.dial(t, nil)
			tc.do(c)
			var err error
			for err == nil {
				_, err = c.read(wait)
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.want {
				t.Fatalf("%s: client read %v, want close %d", tc.name, err, tc.want)
			}
		})
	}
}
