package gateway_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/internal/testpeer"
)

// rawGet opens a TCP connection, sends one keep-alive GET /healthz and reads
// the answer; the connection stays open.
func rawGet(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	if err := getOn(c, r); err != nil {
		t.Fatalf("GET /healthz on a fresh connection: %v", err)
	}
	return c, r
}

// getOn sends GET /healthz on c and reads a 200 answer.
func getOn(c net.Conn, r *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(wait))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// wsClient subscribes to prefix over /ws and reads the ack.
func wsClient(t *testing.T, addr, prefix string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","id":1,"prefixes":["`+prefix+`"]}`))
	if m := wsNext(t, ws, func(m map[string]any) bool { return m["op"] == "ack" }); m == nil {
		t.Fatal("no ack for the subscription")
	}
	return ws
}

// wsNext reads until a message matches, failing on a read error.
func wsNext(t *testing.T, ws *websocket.Conn, match func(map[string]any) bool) map[string]any {
	t.Helper()
	for {
		ws.SetReadDeadline(time.Now().Add(wait))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("WebSocket read: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && match(m) {
				return m
			}
		}
	}
}

// wsReceives publishes topic through the gateway's ingress until the
// WebSocket client reads an update of it.
func wsReceives(t *testing.T, g *gateway.Gateway, ws *websocket.Conn, topic string) {
	t.Helper()
	testpeer.Start(t, "pub", map[string]any{"endpoint": g.Proxy().Endpoints().Ingress[0],
		"messages": [][]string{{topic, `{"px":1}`}}, "repeat": 50, "interval_ms": 20})
	wsNext(t, ws, func(m map[string]any) bool { return m["op"] == "update" && m["topic"] == topic })
}

// Idle keep-alive connections are closed by the server after the idle
// timeout; a WebSocket client idle for several times the idle and read
// timeouts is still connected and receiving; a good client's /healthz
// answers throughout.
func TestHTTPIdleConnectionsReaped(t *testing.T) {
	testpeer.Require(t)
	c := testConfig()
	c.HTTPIdleTimeout = 300 * time.Millisecond
	c.HTTPReadTimeout = 200 * time.Millisecond
	g := start(t, c)
	good := &http.Client{Timeout: 2 * time.Second}
	healthz := func() {
		t.Helper()
		resp, err := good.Get("http://" + g.HTTPAddr() + "/healthz")
		if err != nil {
			t.Fatalf("good client's /healthz: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("good client's /healthz: %s", resp.Status)
		}
	}
	healthz()
	ws := wsClient(t, g.HTTPAddr(), "idle.")
	wsIdleSince := time.Now()

	const n = 50
	type idle struct {
		c net.Conn
		r *bufio.Reader
	}
	var conns []idle
	for range n {
		c, r := rawGet(t, g.HTTPAddr())
		conns = append(conns, idle{c, r})
	}
	opened := time.Now()
	healthz()
	for i, ic := range conns {
		ic.c.SetReadDeadline(time.Now().Add(wait))
		_, err := ic.r.ReadByte()
		if err != io.EOF {
			t.Fatalf("idle connection %d: read %v, want EOF (closed by the server)", i, err)
		}
	}
	t.Logf("%d idle keep-alive connections closed by the server within %v of their request (idle timeout %v)",
		n, time.Since(opened).Round(time.Millisecond), c.HTTPIdleTimeout)
	healthz()

	// The WebSocket client, silent all along, outlives both timeouts
	// several times over and still gets data.
	for time.Since(wsIdleSince) < 5*(c.HTTPIdleTimeout+c.HTTPReadTimeout) {
		healthz() // the good client, meanwhile; also paces this loop
	}
	wsReceives(t, g, ws, "idle.x")
	healthz()
}

// Connections past --http-max-conns are closed as soon as accepted and
// counted; a WebSocket connection counts until it closes; a good client
// that holds its connection is served throughout.
func TestHTTPMaxConnsRefused(t *testing.T) {
	testpeer.Require(t)
	c := testConfig()
	c.HTTPMaxConns = 4
	c.HTTPIdleTimeout = time.Minute
	g := start(t, c)
	addr := g.HTTPAddr()

	good := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}} // keeps its one connection
	healthz := func() {
		t.Helper()
		resp, err := good.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("good client's /healthz: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	healthz()                       // 1: the good client
	ws := wsClient(t, addr, "lim.") // 2
	rawGet(t, addr)                 // 3
	rawGet(t, addr)                 // 4: the limit

	const over = 3
	for i := range over {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		err = getOn(conn, bufio.NewReader(conn))
		conn.Close()
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("connection %d over the limit: GET = %v, want it closed at once", i+1, err)
		}
	}
	healthz() // the good client's connection is one of the four

	// Scraped over the good client's connection: a new one would be refused.
	scrape := func() promscrape.Families {
		t.Helper()
		resp, err := good.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		f, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		return f
	}
	f := scrape()
	if v, _ := f.Value("mdgate_http_refused_total", "reason", "max_conns"); v != over {
		t.Errorf("mdgate_http_refused_total{reason=max_conns} = %v, want %d", v, over)
	}
	if v, _ := f.Value("mdgate_http_connections"); v != 4 {
		t.Errorf("mdgate_http_connections = %v, want 4 (good client, WebSocket, two raw)", v)
	}
	wsReceives(t, g, ws, "lim.x")

	// The WebSocket connection gives its place back when it closes.
	ws.Close()
	testpeer.Eventually(t, wait, "mdgate_http_connections 3 after the WebSocket closed", func() bool {
		v, _ := scrape().Value("mdgate_http_connections")
		return v == 3
	})
	healthz()
}

func TestHTTPBoundsValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*gateway.Config)
		want string
	}{
		{"idle", func(c *gateway.Config) { c.HTTPIdleTimeout = -time.Second }, "http idle timeout"},
		{"read", func(c *gateway.Config) { c.HTTPReadTimeout = -time.Second }, "http read timeout"},
		{"max conns", func(c *gateway.Config) { c.HTTPMaxConns = -1 }, "http max conns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.set(&c)
			if _, err := gateway.New(c, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(negative %s) = %v, want an error naming %q", tc.name, err, tc.want)
			}
		})
	}
}
