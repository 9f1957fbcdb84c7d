package bridge

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/clock"
)

// TestWriteBatchFrames: what WriteBatch frames by hand reads back through a
// gorilla client as the same messages, at every length encoding (7, 16 and
// 64 bits), split into frames past maxFrame, with the skipped counts, the
// heartbeat and the probe.
func TestWriteBatchFrames(t *testing.T) {
	ws, client := wsPair(t)
	pings := make(chan string, 16)
	client.SetPingHandler(func(p string) error { pings <- p; return nil })
	clk := clock.NewFake(time.UnixMicro(1_700_000_000_000_000))
	c := &wsConn{ws: ws, clk: clk}

	data := func(n int) []byte { return []byte(`{"v":"` + strings.Repeat("x", max(n-8, 0)) + `"}`) }
	tests := []struct {
		name  string
		sizes []int
	}{
		{"one short", []int{20}},
		{"7-bit edge", []int{125}},
		{"16-bit", []int{126}},
		{"two making 16-bit", []int{100, 100}},
		{"16-bit edge", []int{65535}},
		{"64-bit", []int{70000}},
		{"split past maxFrame", []int{40000, 40000, 40000, 10}},
		{"many small", []int{30, 31, 32, 33, 34, 35, 36, 37, 38, 39}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var items []blackbox.Item
			var want []string
			for i, n := range tc.sizes {
				it := blackbox.Item{Topic: "t", Data: data(n)}
				w := string(it.Data)
				if i%3 == 1 {
					it.Skipped = uint32(i * 7)
					w = w[:len(w)-1] + fmt.Sprintf(`,"skipped":%d}`, it.Skipped)
				}
				items = append(items, it)
				want = append(want, w)
			}
			b := &blackbox.Batch{Items: items, Heartbeat: true, Probe: 42}
			if err := c.WriteBatch(time.Now().Add(wait), b); err != nil {
				t.Fatal(err)
			}
			client.SetReadDeadline(time.Now().Add(wait))
			var got []string
			for len(got) < len(want) {
				_, m, err := client.ReadMessage()
				if err != nil {
					t.Fatalf("after %d messages: %v", len(got), err)
				}
				got = append(got, strings.Split(string(m), "\n")...)
			}
			for i := range want {
				if i >= len(got) || got[i] != want[i] {
					t.Fatalf("message %d: got %.60q (len %d), want %.60q (len %d)", i, at(got, i), len(at(got, i)), want[i], len(want[i]))
				}
			}
			if len(got) != len(want) {
				t.Fatalf("got %d messages, want %d", len(got), len(want))
			}
			_, m, err := client.ReadMessage() // the heartbeat, after the pings are handled
			if wantHB := fmt.Sprintf(`{"op":"heartbeat","ts":%d}`, clk.Now().UnixMicro()); err != nil || !bytes.Equal(m, []byte(wantHB)) {
				t.Fatalf("after the messages: %q, %v; want %s", m, err, wantHB)
			}
		})
	}
}

// wsPair returns both ends of a WebSocket connection over loopback TCP: the
// server's (upgraded by gorilla, as the bridge does) and a gorilla client's.
// Both close when the test ends.
func wsPair(tb testing.TB) (server, client *websocket.Conn) {
	tb.Helper()
	up := websocket.Upgrader{}
	conns := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			tb.Error(err)
			close(conns)
			return
		}
		conns <- ws
	}))
	tb.Cleanup(srv.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	server, ok := <-conns
	if !ok {
		client.Close()
		tb.FailNow()
	}
	tb.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// A client's ping gets its pong (written by the reader, which moves the
// connection's write deadline to a second away), and updates written after
// it still flow: the writer sets its own deadline again, even within its
// slack (made long here, so only resetDeadline makes it).
func TestClientPingThenUpdates(t *testing.T) {
	defer func(d time.Duration) { deadlineSlack = d }(deadlineSlack)
	deadlineSlack = time.Hour
	r := newRig(t, wsConfig(nil), blackbox.DefaultConfig())
	c := r.dial(t, nil)
	pongs := make(chan string, 1)
	c.ws.SetPongHandler(func(p string) error { pongs <- p; return nil })
	c.send(t, `{"op":"subscribe","topics":["x"],"snapshot":false}`)
	c.until(t, "ack")
	if err := c.ws.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		r.publish("x", "1")
		m := c.next(t) // reading runs the pong handler
		if m["seq"] != float64(i) {
			t.Fatalf("update %d has seq %v", i, m["seq"])
		}
		if i == 1 {
			time.Sleep(1100 * time.Millisecond) // past the pong's one-second deadline: the condition under test, not synchronisation
		}
	}
	select {
	case p := <-pongs:
		if p != "hello" {
			t.Fatalf("pong %q, want hello", p)
		}
	default:
		t.Fatal("no pong to the client's ping")
	}
}
