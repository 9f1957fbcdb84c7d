package gateway_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/internal/testpeer"
)

// A python3-zmq publisher's ticks reach a browser-protocol WebSocket client
// through the whole gateway: cached value first, then live updates with the
// stamp.
func TestPythonPublisherToWebSocketClient(t *testing.T) {
	g := start(t, testConfig())
	publish(t, g, 1, []string{"md.eq.AAPL", `{"px":100}`})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+g.HTTPAddr()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","id":1,"prefixes":["md.eq."]}`))
	var msgs []map[string]any
	next := func() map[string]any {
		for len(msgs) == 0 {
			ws.SetReadDeadline(time.Now().Add(wait))
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("bad JSON %q", line)
				}
				msgs = append(msgs, m)
			}
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m
	}
	if m := next(); m["op"] != "ack" || m["snapshot"] != 1.0 {
		t.Fatalf("first message %v, want an ack with 1 cached value", m)
	}
	if m := next(); m["op"] != "snapshot" || m["topic"] != "md.eq.AAPL" || m["seq"] != 1.0 {
		t.Fatalf("second message %v, want the cached md.eq.AAPL seq 1", m)
	}
	testpeer.Start(t, "pub", map[string]any{"endpoint": g.Proxy().Endpoints().Ingress[0],
		"messages": [][]string{{"md.eq.AAPL", `{"px":101}`}, {"md.fx.EUR", "1"}}})
	m := next()
	data, _ := m["data"].(map[string]any)
	if m["op"] != "update" || m["seq"] != 2.0 || data["px"] != 101.0 {
		t.Fatalf("update %v, want md.eq.AAPL seq 2 px 101", m)
	}
	if want := fmt.Sprintf("%016x", g.Proxy().Epoch()); m["epoch"] != want {
		t.Fatalf("epoch %v, want the gateway's %s", m["epoch"], want)
	}
}

// A client that opens a connection and never finishes its request headers
// is dropped after the handshake timeout.
func TestSlowHandshakeTimesOut(t *testing.T) {
	c := testConfig()
	c.Bridge.HandshakeTimeout = 200 * time.Millisecond
	g := start(t, c)
	conn, err := net.Dial("tcp", g.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")) // and then nothing
	conn.SetReadDeadline(time.Now().Add(wait))
	_, err = bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v: the handshake did not time out", wait)
	}
}
