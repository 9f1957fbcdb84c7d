package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/internal/clock/clocktest"
	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const wait = 10 * time.Second

const epoch = 0x00c0ffee00000001

// rig is a bridge over a running fan-out and a cache, served on loopback;
// publish plays the proxy's part (cache, then fan-out).
type rig struct {
	b      *Bridge
	srv    *httptest.Server
	engine *blackbox.Engine
	cache  *lvc.Cache
	seq    map[string]uint64
}

// wsConfig is DefaultConfig changed by edit: New refuses what Validate
// refuses, so a test starts from the defaults.
func wsConfig(edit func(*Config)) Config {
	c := DefaultConfig()
	if edit != nil {
		edit(&c)
	}
	return c
}

func newRig(t *testing.T, cfg Config, fan blackbox.Config) *rig {
	t.Helper()
	return newRigCache(t, cfg, fan, lvc.DefaultConfig())
}

func newRigCache(t *testing.T, cfg Config, fan blackbox.Config, cc lvc.Config) *rig {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := blackbox.New(fan, []blackbox.Encoder{EncodeUpdate}, reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cache := lvc.New(cc, reg)
	b, err := New(cfg, e, cache, reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { b.Close(); srv.Close(); cancel(); <-done })
	return &rig{b: b, srv: srv, engine: e, cache: cache, seq: map[string]uint64{}}
}

func (r *rig) publish(topic string, payload string) uint64 {
	r.seq[topic]++
	m := &tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), []byte(payload)},
		Stamp: tick.Stamp{Epoch: epoch, Seq: r.seq[topic], Ingress: time.Now().UnixNano()}}
	r.cache.Update(m)
	r.engine.Publish(m)
	return m.Stamp.Seq
}

func (r *rig) metric(t *testing.T, name string, labels ...string) float64 {
	f, err := promscrape.Scrape(context.Background(), r.srv.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := f.Value(name, labels...)
	return v
}

// client is a real WebSocket client; the reader splits frames into messages.
type client struct {
	ws      *websocket.Conn
	pending []map[string]any // each with its line under "\x00raw"
}

func (r *rig) dial(t *testing.T, hdr http.Header) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/ws", hdr)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{ws: ws}
}

func (c *client) send(t *testing.T, v any) {
	t.Helper()
	b, ok := v.(string)
	if !ok {
		j, _ := json.Marshal(v)
		b = string(j)
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(b)); err != nil {
		t.Fatal(err)
	}
}

// next returns the next message, skipping heartbeats.
func (c *client) next(t *testing.T) map[string]any {
	t.Helper()
	m, err := c.read(wait)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func (c *client) read(d time.Duration) (map[string]any, error) {
	for len(c.pending) == 0 {
		c.ws.SetReadDeadline(time.Now().Add(d))
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				return nil, fmt.Errorf("gateway sent bad JSON %q: %w", line, err)
			}
			if m["op"] != "heartbeat" {
				m["\x00raw"] = line
				c.pending = append(c.pending, m)
			}
		}
	}
	m := c.pending[0]
	c.pending = c.pending[1:]
	return m, nil
}

// until reads until an op arrives and returns it.
func (c *client) until(t *testing.T, op string) map[string]any {
	t.Helper()
	for {
		if m := c.next(t); m["op"] == op {
			return m
		}
	}
}

func TestSubscribeSnapshotToNewClientOnlyThenUpdates(t *testing.T) {
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	r.publish("md.eq.AAPL", `{"px":1}`)
	r.publish("md.eq.MSFT", `{"px":2}`)
	r.publish("md.fx.EURUSD", `{"px":3}`)

	old := r.dial(t, nil)
	old.send(t, `{"op":"subscribe","id":"a","prefixes":["md.eq."]}`)
	ack := old.next(t)
	if ack["op"] != "ack" || ack["id"] != "a" || ack["snapshot"] != 2.0 || ack["subscriptions"] != 1.0 {
		t.Fatalf("ack = %v, want id a, 2 snapshot values, 1 subscription", ack)
	}
	for _, topic := range []string{"md.eq.AAPL", "md.eq.MSFT"} {
		m := old.next(t)
		if m["op"] != "snapshot" || m["topic"] != topic || m["epoch"] != "00c0ffee00000001" || m["seq"] != 1.0 {
			t.Fatalf("snapshot = %v, want %s seq 1 epoch 00c0ffee00000001", m, topic)
		}
	}
	// A second client subscribes: it gets a snapshot, the first does not.
	late := r.dial(t, nil)
	late.send(t, `{"op":"subscribe","topics":["md.eq.AAPL"]}`)
	if m := late.until(t, "snapshot"); m["topic"] != "md.eq.AAPL" {
		t.Fatalf("late snapshot = %v", m)
	}
	r.publish("md.eq.AAPL", `{"px":1.5}`)
	for name, c := range map[string]*client{"old": old, "late": late} {
		m := c.next(t)
		data, _ := m["data"].(map[string]any)
		if m["op"] != "update" || m["topic"] != "md.eq.AAPL" || m["seq"] != 2.0 || data["px"] != 1.5 {
			t.Fatalf("%s client got %v, want update md.eq.AAPL seq 2 px 1.5", name, m)
		}
		if ts, _ := m["ts"].(float64); ts < float64(time.Now().Add(-time.Minute).UnixMicro()) {
			t.Fatalf("%s: ts %v is not the ingress time in microseconds", name, m["ts"])
		}
	}
}

func TestPayloadEncodings(t *testing.T) {
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	c.send(t, `{"op":"subscribe","prefixes":["p."],"snapshot":false}`)
	c.until(t, "ack")
	r.publish("p.json", "{\n  \"px\": 1\n}") // pretty JSON is compacted onto one line
	r.publish("p.bin", "\x00\x01\xff")
	got := map[string]string{}
	for range 2 {
		m := c.next(t)
		got[m["topic"].(string)] = m["\x00raw"].(string)
	}
	for topic, want := range map[string]string{"p.json": `"data":{"px":1}`, "p.bin": `"enc":"base64","data":"AAH/"`} {
		if !strings.Contains(got[topic], want) {
			t.Errorf("update %s does not contain %s", got[topic], want)
		}
	}
}

func TestUnsubscribeStopsUpdates(t *testing.T) {
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	c.send(t, `{"op":"subscribe","topics":["a","b"],"snapshot":false}`)
	c.until(t, "ack")
	c.send(t, `{"op":"unsubscribe","id":2,"topics":["a"]}`)
	if m := c.until(t, "ack"); m["removed"] != 1.0 || m["subscriptions"] != 1.0 {
		t.Fatalf("unsubscribe ack = %v, want removed 1, 1 left", m)
	}
	r.publish("a", "1")
	r.publish("b", "1")
	if m := c.next(t); m["topic"] != "b" {
		t.Fatalf("after unsubscribing a got %v, want only b", m)
	}
}

func TestResume(t *testing.T) {
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	for range 5 {
		r.publish("x.cur", "1")
		r.publish("x.old", "1")
		r.publish("x.next", "1")
		r.publish("x.epoch", "1")
	}
	c := r.dial(t, nil)
	c.send(t, map[string]any{"op": "subscribe", "prefixes": []string{"x."}, "resume": map[string]any{
		"x.cur":   map[string]any{"seq": 5, "epoch": "00c0ffee00000001"},
		"x.old":   map[string]any{"seq": 2, "epoch": "00c0ffee00000001"},
		"x.next":  map[string]any{"seq": 4, "epoch": "00c0ffee00000001"},
		"x.epoch": map[string]any{"seq": 5, "epoch": "0000000000000009"},
	}})
	if ack := c.next(t); ack["snapshot"] != 3.0 {
		t.Fatalf("ack = %v, want 3 snapshot values (x.cur is up to date)", ack)
	}
	got := map[string]string{}
	for range 3 {
		m := c.next(t)
		got[m["topic"].(string)] = fmt.Sprintf("gap=%v missed=%v", m["gap"], m["missed"])
	}
	want := map[string]string{"x.old": "gap=true missed=2", "x.next": "gap=<nil> missed=<nil>", "x.epoch": "gap=true missed=<nil>"}
	for topic, w := range want {
		if got[topic] != w {
			t.Errorf("resume %s: %s, want %s", topic, got[topic], w)
		}
	}
	// The up-to-date topic resumes with the next live update, nothing older.
	r.publish("x.cur", "1")
	if m := c.next(t); m["topic"] != "x.cur" || m["seq"] != 6.0 || m["op"] != "update" {
		t.Fatalf("after resume got %v, want update x.cur seq 6", m)
	}
}

func TestBadInputGetsErrorAndConnectionStays(t *testing.T) {
	r := newRig(t, wsConfig(func(c *Config) { c.MaxSubs, c.AbuseLimit = 3, 100 }), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	for _, tc := range []struct {
		name, in string
		code     ErrorCode
	}{
		{"malformed JSON", `{"op":`, CodeBadJSON},
		{"not an object", `[1,2]`, CodeBadRequest},
		{"two values", `{"op":"ping"} {"op":"ping"}`, CodeBadJSON},
		{"unknown op", `{"op":"launch"}`, CodeUnknownOp},
		{"missing op", `{"topics":["a"]}`, CodeBadRequest},
		{"unknown field", `{"op":"ping","bogus":1}`, CodeBadRequest},
		{"nothing to subscribe", `{"op":"subscribe"}`, CodeBadRequest},
		{"empty topic", `{"op":"subscribe","topics":[""]}`, CodeBadRequest},
		{"bad slow policy", `{"op":"subscribe","topics":["a"],"slow":"maybe"}`, CodeBadRequest},
		{"bad resume epoch", `{"op":"subscribe","topics":["a"],"resume":{"a":{"seq":1,"epoch":"xyz"}}}`, CodeBadRequest},
		{"topic too long", `{"op":"subscribe","topics":["` + strings.Repeat("a", MaxTopicLen+1) + `"]}`, CodeBadRequest},
		{"too many subscriptions", `{"op":"subscribe","topics":["a","b","c","d"]}`, CodeTooManySubs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.send(t, tc.in)
			if m := c.next(t); m["op"] != "error" || m["code"] != tc.code.String() || m["message"] == "" {
				t.Errorf("send(%q): got %v, want error %s", tc.in, m, tc.code)
			}
		})
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if m := c.next(t); m["code"] != CodeBadFrame.String() {
		t.Errorf("binary frame got %v, want error %s", m, CodeBadFrame)
	}
	// Nothing was subscribed by the refused request, and the connection works.
	c.send(t, `{"op":"subscribe","id":7,"topics":["a","b","c"],"snapshot":false}`)
	if m := c.next(t); m["op"] != "ack" || m["subscriptions"] != 3.0 {
		t.Fatalf("subscribe after the errors = %v, want ack with 3 subscriptions", m)
	}
	c.send(t, `{"op":"ping","id":8}`)
	if m := c.next(t); m["op"] != "pong" || m["id"] != 8.0 {
		t.Fatalf("ping = %v, want pong id 8", m)
	}
	if got := r.metric(t, "mdgate_ws_errors_total", "code", CodeBadRequest.String()); got != 8 {
		t.Errorf("errors{code=bad_request} = %v, want 8", got)
	}
}

func TestRepeatedAbuseClosesWith1008(t *testing.T) {
	r := newRig(t, wsConfig(func(c *Config) { c.AbuseLimit, c.AbuseRefill = 3, time.Hour }), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	for range 4 {
		c.send(t, `nonsense`)
	}
	for {
		_, err := c.read(wait)
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			t.Fatalf("abusive client ended with %v, want close 1008", err)
		}
		break
	}
	testpeer.Eventually(t, wait, "closes{reason=abuse} = 1", func() bool { return r.metric(t, "mdgate_ws_closes_total", "reason", "abuse") == 1 })
}

// Subscription requests are limited by a token bucket on the bridge's
// clock: the burst at once, then one a second (SubscribeRate 1).
func TestSubscribeRateLimited(t *testing.T) {
	start := time.Now()
	clk := clock.NewFake(start)
	r := newRig(t, wsConfig(func(c *Config) { c.SubscribeRate, c.SubscribeBurst, c.Clock = 1, 2, clk }), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	steps := []struct {
		advance time.Duration
		want    string // the reply's op, or an error's code
	}{
		{0, "ack"}, {0, "ack"}, // the burst
		{0, CodeRateLimited.String()},
		{999 * time.Millisecond, CodeRateLimited.String()},
		{time.Millisecond, "ack"}, // a token a second
		{0, CodeRateLimited.String()},
		{time.Second, "ack"},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		c.send(t, fmt.Sprintf(`{"op":"subscribe","topics":["t%d"],"snapshot":false}`, i))
		m := c.next(t)
		if got, _ := m["op"].(string); got == "error" {
			got, _ = m["code"].(string)
			if got != s.want {
				t.Fatalf("subscribe %d at +%v: %s, want %s", i, clk.Now().Sub(start), got, s.want)
			}
		} else if got != s.want {
			t.Fatalf("subscribe %d: %v, want %s", i, m["\x00raw"], s.want)
		}
	}
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	r := newRig(t, wsConfig(func(c *Config) { c.ReadLimit = 1024 }), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	c.send(t, `{"op":"ping","id":"`+strings.Repeat("x", 2000)+`"}`)
	for {
		_, err := c.read(wait)
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Fatalf("oversized frame ended with %v, want close 1009", err)
		}
		break
	}
}

func TestOriginCheck(t *testing.T) {
	for _, tc := range []struct {
		allowed []string
		origin  string
		ok      bool
	}{
		{nil, "", true}, // not a browser
		{nil, "http://SAME", true},
		{nil, "http://evil.example", false},
		{[]string{"https://desk.example"}, "https://desk.example", true},
		{[]string{"https://desk.example"}, "http://SAME", false},
		{[]string{"*"}, "http://evil.example", true},
	} {
		t.Run(fmt.Sprintf("%q/%s", tc.allowed, tc.origin), func(t *testing.T) {
			r := newRig(t, wsConfig(func(c *Config) { c.AllowedOrigins = tc.allowed }), blackbox.DefaultConfig())
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", strings.Replace(tc.origin, "SAME", strings.TrimPrefix(r.srv.URL, "http://"), 1))
			}
			ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/ws", hdr)
			if (err == nil) != tc.ok {
				t.Errorf("Dial(allowed %q, Origin %q) error = %v, want ok=%v", tc.allowed, tc.origin, err, tc.ok)
			}
			if err == nil {
				ws.Close()
			} else if resp != nil && resp.StatusCode != http.StatusForbidden {
				t.Errorf("Dial(allowed %q, Origin %q) status %d, want 403", tc.allowed, tc.origin, resp.StatusCode)
			}
		})
	}
}

// Fifty clients read everything while one stops reading: the stalled one is
// cut off (4008 if its writer was not blocked, a dropped connection if it
// was), the others get every message, and the cut-off is counted. The
// publisher keeps within 100 messages of the slowest fast reader, so "fast"
// means keeping up, not winning a race against the race detector.
func TestStalledClientCutOffOthersComplete(t *testing.T) {
	fan := blackbox.DefaultConfig()
	// The lag limit is wide: what a client has not read counts as lag, and
	// the race detector on a loaded 2-core machine stalls a fast reader for
	// seconds at times; the stalled one is cut off by its queue's bytes.
	fan.Limits = slowsub.Limits{MaxBytes: 256 << 10, MaxLag: 10 * time.Second}
	r := newRig(t, wsConfig(func(c *Config) { c.SendBuffer = 32 << 10 }), fan)
	sub := `{"op":"subscribe","prefixes":["md."],"snapshot":false}`
	var fast []*client
	for range 50 {
		c := r.dial(t, nil)
		c.send(t, sub)
		c.until(t, "ack")
		fast = append(fast, c)
	}
	// The stalled client's receive buffer is small, so the gateway's
	// writes to it block early.
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	sws, _, err := d.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sws.Close()
	stalled := &client{ws: sws}
	stalled.send(t, sub)
	stalled.until(t, "ack")

	const n = 3000
	payload := `{"px":1,"pad":"` + strings.Repeat("x", 300) + `"}`
	progress := make([]atomic.Int64, len(fast))
	results := make(chan error, len(fast))
	for i, c := range fast {
		go func() {
			for want := 1; want <= n; want++ {
				m, err := c.read(wait)
				if err != nil {
					results <- err
					return
				}
				if m["seq"] != float64(want) {
					results <- fmt.Errorf("got seq %v, want %d", m["seq"], want)
					return
				}
				progress[i].Store(int64(want))
			}
			results <- nil
		}()
	}
	slowest := func() int64 {
		low := int64(n)
		for i := range progress {
			low = min(low, progress[i].Load())
		}
		return low
	}
	for i := 1; i <= n; i++ {
		r.publish("md.x", payload)
		if i%50 == 0 {
			testpeer.Eventually(t, wait, "the fast clients to keep up", func() bool { return slowest() >= int64(i-100) })
		}
	}
	for range fast {
		if err := <-results; err != nil {
			t.Fatalf("a fast client: %v", err)
		}
	}
	testpeer.Eventually(t, wait, "the stalled client cut off", func() bool {
		return r.metric(t, "mdgate_fanout_disconnects_total", "reason", "queue_bytes")+
			r.metric(t, "mdgate_fanout_disconnects_total", "reason", "lag") == 1
	})
	for err == nil {
		_, err = stalled.read(wait)
	}
	if !cutOff(err) {
		t.Fatalf("stalled client ended with %v, want close %d or a dropped connection", err, CloseSlowConsumer)
	}
}

// cutOff reports whether err, the error that ended a client's reads, is the
// gateway cutting it off as a slow consumer: close 4008, or the connection
// dropped (no close frame, a reset, EOF). A read timeout, a close with any
// other code and the client's own close are not.
func cutOff(err error) bool {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code == CloseSlowConsumer || ce.Code == websocket.CloseAbnormalClosure
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && !ne.Timeout() && !errors.Is(err, net.ErrClosed)
}

// A client that asked to conflate and stops reading is not cut off; when it
// reads again it ends holding the latest value of every topic, and is told
// how many updates it skipped.
func TestConflatingClientEndsWithLatest(t *testing.T) {
	fan := blackbox.DefaultConfig()
	fan.Limits = slowsub.Limits{MaxBytes: 1 << 20, MaxLag: time.Hour}
	r := newRig(t, DefaultConfig(), fan)
	c := r.dial(t, nil)
	c.send(t, `{"op":"subscribe","prefixes":["md."],"snapshot":false,"slow":"conflate"}`)
	if ack := c.until(t, "ack"); ack["slow"] != "conflate" {
		t.Fatalf("ack = %v, want slow conflate", ack)
	}
	pad := strings.Repeat("x", 2000)
	topics := []string{"md.a", "md.b", "md.c", "md.d"}
	var last uint64
	for range 3000 { // about 24 MB: far more than the socket buffers hold
		for _, topic := range topics {
			last = r.publish(topic, `{"pad":"`+pad+`"}`)
		}
	}
	testpeer.Eventually(t, wait, "conflation", func() bool { return r.metric(t, "mdgate_fanout_conflated_total") > 0 })
	seen := map[string]float64{}
	var skipped float64
	for {
		done := true
		for _, topic := range topics {
			done = done && seen[topic] == float64(last)
		}
		if done {
			break
		}
		m := c.next(t)
		seen[m["topic"].(string)] = m["seq"].(float64)
		if s, ok := m["skipped"].(float64); ok {
			skipped += s
		}
	}
	if skipped == 0 {
		t.Fatal("no update said how many it skipped")
	}
	if got := r.metric(t, "mdgate_fanout_disconnects_total", "reason", "queue_bytes"); got != 0 {
		t.Fatalf("the conflating client was cut off (%v)", got)
	}
}

// A client that only listens stays connected while updates flow: the
// gateway pings on a fixed beat (not only when idle), the client's pongs
// keep it inside its read deadline.
func TestListeningClientKeptAliveWhileBusy(t *testing.T) {
	fan := blackbox.DefaultConfig()
	fan.Heartbeat = 20 * time.Millisecond
	r := newRig(t, wsConfig(func(c *Config) { c.PongWait = 150 * time.Millisecond }), fan)
	c := r.dial(t, nil)
	c.send(t, `{"op":"subscribe","topics":["busy"],"snapshot":false}`)
	c.until(t, "ack")
	for i := 1; i <= 60; i++ { // about 4 read deadlines of steady traffic
		r.publish("busy", "1")
		m, err := c.read(wait)
		if err != nil {
			t.Fatalf("after %d updates the listening client was dropped: %v", i-1, err)
		}
		if m["seq"] != float64(i) {
			t.Fatalf("update %d has seq %v", i, m["seq"])
		}
		time.Sleep(10 * time.Millisecond) // the feed's pace, not synchronisation
	}
}

// The heartbeat comes on the fan-out's clock and says the bridge's time;
// a pong says it too.
func TestHeartbeatOnTheClock(t *testing.T) {
	clk := clock.NewFake(time.Now())
	fan := blackbox.DefaultConfig()
	fan.Heartbeat, fan.Clock = time.Minute, clk
	// Not reading while the clock moves, the client answers no probe: a
	// minute past the 10 s write timeout would cut it off as stalled.
	fan.WriteTimeout = time.Hour
	r := newRig(t, wsConfig(func(c *Config) { c.Clock = clk }), fan)
	c := r.dial(t, nil)
	c.send(t, `{"op":"ping","id":1}`)
	if m := c.next(t); m["op"] != "pong" || m["ts"] != float64(clk.Now().UnixMicro()) {
		t.Fatalf("ping = %v, want pong with ts %d (the clock's)", m["\x00raw"], clk.Now().UnixMicro())
	}
	clocktest.BlockUntil(t, clk, 1) // the fan-out's sweeper, which also beats
	clk.Advance(time.Minute)
	c.ws.SetReadDeadline(time.Now().Add(wait))
	_, b, err := c.ws.ReadMessage() // the client's read skips heartbeats
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`{"op":"heartbeat","ts":%d}`, clk.Now().UnixMicro()); string(b) != want {
		t.Fatalf("after a minute the client got %s, want %s", b, want)
	}
}

func TestCutOff(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		err  error
		want bool
	}{
		{&websocket.CloseError{Code: CloseSlowConsumer}, true},
		{&websocket.CloseError{Code: websocket.CloseAbnormalClosure}, true},
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{reset, true},
		{&websocket.CloseError{Code: websocket.CloseNormalClosure}, false},
		{&websocket.CloseError{Code: websocket.CloseGoingAway}, false},
		{timeout, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}, false},
		{errors.New(`gateway sent bad JSON "x"`), false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			if got := cutOff(tc.err); got != tc.want {
				t.Errorf("cutOff(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
