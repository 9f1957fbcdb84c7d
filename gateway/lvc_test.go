package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/snapshot"
	"github.com/mdgate/mdgate/tick"
)

// publish sends messages from a python3-zmq publisher and waits until the
// cache holds want topics.
func publish(t *testing.T, g *gateway.Gateway, want int, msgs ...[]string) {
	t.Helper()
	testpeer.Start(t, "pub", map[string]any{"endpoint": g.Proxy().Endpoints().Ingress[0], "messages": msgs})
	testpeer.Eventually(t, wait, fmt.Sprintf("%d topics cached", want), func() bool {
		n, _ := g.Cache().Len()
		return n == want
	})
}

func TestLateSubscriberGetsLastValues(t *testing.T) {
	g := start(t, testConfig())
	publish(t, g, 3, []string{"md.eq.AAPL", "1"}, []string{"md.eq.AAPL", "2"}, []string{"md.eq.IBM", "7"}, []string{"md.fx.EUR", "1.08"})

	sub := testpeer.Start(t, "sub", map[string]any{"endpoint": g.Proxy().Endpoints().Egress[0], "prefixes": []string{"md.eq.AAPL"}, "count": 1})
	sub.Next(t, wait) // ready: connected
	connected := time.Now()
	got := sub.Until(t, "done", wait)
	if len(got) != 1 || strings.Join(got[0].Strings(), " ") != "md.eq.AAPL 2" {
		t.Fatalf("late subscriber got %v, want [md.eq.AAPL 2]", got)
	}
	t.Logf("late subscriber had its last value %v after connecting", time.Since(connected).Round(time.Microsecond))

	prefix := testpeer.Start(t, "sub", map[string]any{"endpoint": g.Proxy().Endpoints().Stamped[0], "prefixes": []string{"md.eq."}, "count": 2})
	var seen []string
	for _, e := range prefix.Until(t, "done", wait) {
		f := e.Bytes()
		st, err := tick.ParseStamp(f[len(f)-1])
		if err != nil || st.Flags&tick.FlagReplay == 0 {
			t.Errorf("replayed value %q: stamp %+v %v, want the replay flag", f, st, err)
		}
		seen = append(seen, fmt.Sprintf("%s=%s#%d", f[0], f[1], st.Seq))
	}
	if s := strings.Join(sortStrings(seen), " "); s != "md.eq.AAPL=2#2 md.eq.IBM=7#1" {
		t.Errorf("prefix subscriber got %q, want md.eq.AAPL=2#2 md.eq.IBM=7#1", s)
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestSnapshotBadRequestsGetErrors(t *testing.T) {
	g := start(t, testConfig())
	publish(t, g, 1, []string{"a.b", "1"})
	ep := g.SnapshotEndpoint()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tests := []struct {
		name string
		req  []string
		code string
	}{
		{"unknown command", []string{"GIMME", "a"}, snapshot.ErrUnknownCommand},
		{"no prefix", []string{"SNAP"}, snapshot.ErrBadRequest},
		{"two prefixes", []string{"SNAP", "a", "b"}, snapshot.ErrBadRequest},
		{"prefix too long", []string{"SNAP", strings.Repeat("x", snapshot.MaxPrefix+1)}, snapshot.ErrPrefixTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req [][]byte
			for _, f := range tt.req {
				req = append(req, []byte(f))
			}
			_, err := snapshot.Request(ctx, ep, req)
			var se *snapshot.ServerError
			if !errors.As(err, &se) || se.Code != tt.code {
				t.Errorf("Request(%.20q) error = %v, want code %s", tt.req, err, tt.code)
			}
		})
	}
	res, err := snapshot.Fetch(ctx, ep, "a.")
	if err != nil || len(res.Values) != 1 || res.Epoch != g.Proxy().Epoch() {
		t.Errorf("Fetch after bad requests = %+v, %v; want one value and the gateway's epoch", res, err)
	}
}

func TestTTLExpiryPublishesDeleteNotice(t *testing.T) {
	c := testConfig()
	c.Cache.TTL = append(c.Cache.TTL, ttlRule("quotes.", 300*time.Millisecond))
	g := start(t, c)
	sub := testpeer.Start(t, "sub", map[string]any{"endpoint": g.Proxy().Endpoints().Stamped[0], "prefixes": []string{"quotes."}, "count": 2})
	sub.Next(t, wait)
	testpeer.Eventually(t, wait, "the stamped subscription", func() bool { return g.Proxy().Health().StampedPeers > 0 })
	publish(t, g, 1, []string{"quotes.X", "42"})
	testpeer.Eventually(t, wait, "quotes.X to expire", func() bool { n, _ := g.Cache().Len(); return n == 0 })
	got := sub.Until(t, "done", wait)
	if len(got) != 2 {
		t.Fatalf("subscriber got %d messages, want the value and its delete notice", len(got))
	}
	f := got[1].Bytes()
	st, _ := tick.ParseStamp(f[len(f)-1])
	if string(f[0]) != "quotes.X" || len(f[1]) != 0 || st.Flags&tick.FlagDelete == 0 || st.Seq != 2 {
		t.Errorf("delete notice = %q stamp %+v, want [quotes.X, \"\", stamp] with the delete flag and seq 2", f, st)
	}
}

func TestRestartKeepsCacheMarkedStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.lvc")
	c := testConfig()
	c.CacheFile = path
	c.CacheSaveEvery = time.Hour // only the shutdown save
	first, err := gateway.New(c, nopLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	<-first.Ready()
	publish(t, first, 2, []string{"md.a", "1"}, []string{"md.b", "2"}, []string{"md.a", "3"})
	testpeer.Eventually(t, wait, "md.a's second value cached", func() bool {
		m, ok := first.Cache().Get("md.a")
		return ok && m.Stamp.Seq == 2
	})
	oldEpoch := first.Proxy().Epoch()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	second := start(t, c)
	ctx2, cancel2 := context.WithTimeout(context.Background(), wait)
	defer cancel2()
	res, err := snapshot.Fetch(ctx2, second.SnapshotEndpoint(), "md.")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Values {
		got = append(got, fmt.Sprintf("%s=%s#%d stale=%v old=%v", m.Topic, m.Frames[1], m.Stamp.Seq, m.Stamp.Flags&tick.FlagStale != 0, m.Stamp.Epoch == oldEpoch))
	}
	want := "md.a=3#2 stale=true old=true md.b=2#1 stale=true old=true"
	if s := strings.Join(sortStrings(got), " "); s != want {
		t.Errorf("after restart the snapshot is %q, want %q", s, want)
	}
	if res.Epoch == oldEpoch {
		t.Error("the restarted gateway kept the old epoch, want a new one")
	}
}

// TestSnapshotConsistentUnderFullSpeed: subscribe to the stamped egress,
// fetch a snapshot while a publisher runs flat out, then merge: for every
// topic, the stream after the snapshot continues at exactly snapshot seq+1.
func TestSnapshotConsistentUnderFullSpeed(t *testing.T) {
	c := testConfig()
	c.Proxy.EgressHWM, c.Proxy.EgressMaxBytes = 0, 0 // no bound: nothing may drop
	g := start(t, c)
	ep := g.Proxy().Endpoints()
	const topics, total = 100, 100_000
	pubDone := make(chan error, 1)
	go func() { pubDone <- fullSpeed(ep.Ingress[0], topics, total) }()
	testpeer.Eventually(t, wait, "all topics cached", func() bool { n, _ := g.Cache().Len(); return n == topics })

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sub, _ := zmq.NewSocket(zmq.SUB)
	defer sub.Close()
	sub.SetLinger(0)
	sub.SetRcvhwm(0)
	sub.SetSubscribe("t.")
	sub.Connect(ep.Stamped[0])
	testpeer.Eventually(t, wait, "the stamped subscription", func() bool { return g.Proxy().Health().StampedPeers > 0 })
	// Subscribe first, then snapshot.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := snapshot.Fetch(ctx, g.SnapshotEndpoint(), "t.")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Values) != topics {
		t.Fatalf("snapshot has %d topics, want %d (no topic missing)", len(res.Values), topics)
	}
	last := map[string]uint64{}
	for _, m := range res.Values {
		last[m.Topic] = m.Stamp.Seq
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	// Round-robin over the topics: every topic ends at exactly this seq.
	final := map[string]uint64{}
	for i := range topics {
		final["t."+strconv.Itoa(i)] = total / topics
	}
	sub.SetRcvtimeo(wait)
	applied := 0
	for !done(last, final) {
		f, err := sub.RecvMessageBytes(0)
		if err != nil {
			t.Fatalf("stream ended before every topic caught up (%d applied): %v", applied, err)
		}
		st, _ := tick.ParseStamp(f[len(f)-1])
		topic := string(f[0])
		if st.Flags&tick.FlagReplay != 0 || st.Seq <= last[topic] {
			continue // already in the snapshot
		}
		if st.Seq != last[topic]+1 {
			t.Fatalf("topic %s: snapshot/stream at seq %d, next streamed seq %d: an update was lost", topic, last[topic], st.Seq)
		}
		last[topic] = st.Seq
		applied++
	}
	t.Logf("snapshot of %d topics, then %d streamed updates applied without a gap", topics, applied)
}

func done(last, final map[string]uint64) bool {
	for t, s := range final {
		if last[t] != s {
			return false
		}
	}
	return true
}

// fullSpeed publishes total messages round-robin over topics as fast as a
// libzmq PUB goes, after the gateway's subscription has arrived (XPUB).
func fullSpeed(endpoint string, topics, total int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, err := zmq.NewSocket(zmq.XPUB)
	if err != nil {
		return err
	}
	defer pub.Close()
	pub.SetSndhwm(0)
	pub.SetLinger(time.Second)
	if err := pub.Connect(endpoint); err != nil {
		return err
	}
	if _, err := pub.RecvBytes(0); err != nil { // the gateway's subscription
		return err
	}
	names := make([][]byte, topics)
	for i := range names {
		names[i] = []byte("t." + strconv.Itoa(i))
	}
	for i := range total {
		pub.SendBytes(names[i%topics], zmq.SNDMORE)
		pub.SendBytes([]byte(strconv.Itoa(i)), 0)
	}
	return nil
}

// TestHistoryEndpoint: /api/history gives one topic's recovery window (the
// per-topic figure /metrics does not carry); 404 for a topic without one,
// 400 without a topic.
func TestHistoryEndpoint(t *testing.T) {
	c := testConfig()
	c.Cache.History = []lvc.HistoryRule{{Prefix: "ev.", MaxCount: 2, MaxBytes: 1 << 20}}
	g := start(t, c)
	publish(t, g, 2, []string{"ev.a", "1"}, []string{"ev.a", "2"}, []string{"ev.a", "3"}, []string{"px.a", "1"})
	testpeer.Eventually(t, wait, "ev.a's third value cached", func() bool {
		m, ok := g.Cache().Get("ev.a")
		return ok && m.Stamp.Seq == 3
	})
	get := func(q string) (int, map[string]any) {
		resp, err := http.Get("http://" + g.HTTPAddr() + "/api/history" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	tests := []struct {
		query string
		code  int
		want  string // updates and oldest seq, for 200
	}{
		{"?topic=ev.a", 200, "2 2"},
		{"?topic=px.a", 404, ""},
		{"?topic=ev.none", 404, ""},
		{"", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			code, v := get(tt.query)
			got := ""
			if code == 200 {
				got = fmt.Sprintf("%v %v", v["updates"], v["oldest_seq"])
			}
			if code != tt.code || got != tt.want {
				t.Errorf("GET /api/history%s = %d %q, want %d %q", tt.query, code, got, tt.code, tt.want)
			}
		})
	}
}
