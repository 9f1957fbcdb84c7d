package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/bridge"
	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/testpeer"
)

// getOps GETs /api/ops with an optional bearer token; it returns the status
// and the decoded body (nil unless 200).
func getOps(t *testing.T, addr, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/ops", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/ops: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode /api/ops: %v", err)
	}
	return resp.StatusCode, v
}

// drainingClient subscribes to prefix over /ws and keeps reading (so it is
// never a slow client) until the test ends.
func drainingClient(t *testing.T, addr, prefix string) {
	t.Helper()
	ws := wsClient(t, addr, prefix)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
}

func num(v map[string]any, key string) float64 {
	f, ok := v[key].(float64)
	if !ok {
		return math.NaN()
	}
	return f
}

func hist(v map[string]any, key string) (count float64, p99 any) {
	h, _ := v[key].(map[string]any)
	if h == nil {
		return math.NaN(), nil
	}
	c, _ := h["count"].(float64)
	return c, h["p99"]
}

// /api/ops on a demo gateway with one WebSocket client: every field there,
// of the right kind, with values a live demo gateway must have.
func TestOpsEndpointFields(t *testing.T) {
	c := testConfig()
	c.Demo = true
	c.DemoRate = 2000
	began := time.Now()
	g := start(t, c)
	drainingClient(t, g.HTTPAddr(), "md.")

	var v map[string]any
	testpeer.Eventually(t, wait, "/api/ops to show deliveries to the client and the whole demo cache", func() bool {
		_, v = getOps(t, g.HTTPAddr(), "")
		return num(v, "fanout_deliveries_total") > 0 && num(v, "cache_topics") == float64(c.DemoInstruments)
	})
	for _, tc := range []struct {
		key  string
		sane func(v map[string]any) bool
		want string
	}{
		{"ts", func(v map[string]any) bool { return math.Abs(num(v, "ts")-float64(time.Now().Unix())) < 60 }, "now, in unix seconds"},
		{"epoch", func(v map[string]any) bool { return v["epoch"] == g.Proxy().Health().Epoch }, "the proxy's epoch"},
		{"running", func(v map[string]any) bool { return v["running"] == true }, "true"},
		{"uptime_seconds", func(v map[string]any) bool {
			u := num(v, "uptime_seconds")
			return u > 0 && u <= time.Since(began).Seconds()
		}, "in (0, time since start]"},
		{"ingress_messages_total", func(v map[string]any) bool { return num(v, "ingress_messages_total") > 0 }, "> 0"},
		{"ingress_bytes_total", func(v map[string]any) bool {
			return num(v, "ingress_bytes_total") > num(v, "ingress_messages_total")
		}, "more than the messages"},
		{"fanout_messages_total", func(v map[string]any) bool { return num(v, "fanout_messages_total") > 0 }, "> 0"},
		{"fanout_deliveries_total", func(v map[string]any) bool { return num(v, "fanout_deliveries_total") > 0 }, "> 0"},
		{"ws_connections", func(v map[string]any) bool { return num(v, "ws_connections") == 1 }, "1"},
		{"fanout_clients", func(v map[string]any) bool { return num(v, "fanout_clients") == 1 }, "1"},
		{"zmq_peers", func(v map[string]any) bool {
			p, _ := v["zmq_peers"].(map[string]any)
			return p != nil && p["ingress"] != nil && p["egress"] != nil && p["stamped"] != nil
		}, "ingress, egress and stamped"},
		{"cache_topics", func(v map[string]any) bool { return num(v, "cache_topics") == float64(c.DemoInstruments) }, "the demo's instruments"},
		{"cache_bytes", func(v map[string]any) bool { return num(v, "cache_bytes") > num(v, "cache_topics") }, "more than the topics"},
		{"cutoffs", func(v map[string]any) bool {
			m, _ := v["cutoffs"].(map[string]any)
			return m != nil && m["lag"] == 0.0 && m["queue_bytes"] == 0.0
		}, "every reason, at zero"},
		{"drops", func(v map[string]any) bool {
			m, _ := v["drops"].(map[string]any)
			in, _ := m["mdgate_ingress_dropped_total"].(map[string]any)
			return in != nil && in["empty_topic"] == 0.0 && m["mdgate_fanout_dropped_total"] != nil
		}, "ingress and fan-out drops by reason, at zero"},
		{"fanout_lag_seconds", func(v map[string]any) bool {
			n, p99 := hist(v, "fanout_lag_seconds")
			f, _ := p99.(float64)
			return n > 0 && f > 0 && f < 5
		}, "observations, p99 in (0, 5s)"},
		{"proxy_loop_seconds", func(v map[string]any) bool {
			n, p99 := hist(v, "proxy_loop_seconds")
			return n > 0 && p99 != nil
		}, "observations and a p99"},
		{"proxy_loop_longest_seconds", func(v map[string]any) bool {
			return num(v, "proxy_loop_longest_seconds") > 0
		}, "> 0"},
		{"missing", func(v map[string]any) bool {
			m, ok := v["missing"].([]any)
			return ok && len(m) == 0
		}, "[]"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if _, ok := v[tc.key]; !ok {
				t.Fatalf("/api/ops has no %q", tc.key)
			}
			if !tc.sane(v) {
				t.Errorf("/api/ops %q = %v, want %s", tc.key, v[tc.key], tc.want)
			}
		})
	}
}

// With the cache off its metrics are not registered: /api/ops still answers,
// with the cache fields null and named in "missing".
func TestOpsEndpointMissingMetric(t *testing.T) {
	c := testConfig()
	c.LVC = false
	c.SnapshotBind = ""
	g := start(t, c)
	code, v := getOps(t, g.HTTPAddr(), "")
	if code != 200 {
		t.Fatalf("GET /api/ops = %d, want 200", code)
	}
	if v["cache_topics"] != nil || v["cache_bytes"] != nil {
		t.Errorf("cache_topics, cache_bytes = %v, %v; want null with the cache off", v["cache_topics"], v["cache_bytes"])
	}
	var missing []string
	for _, m := range v["missing"].([]any) {
		missing = append(missing, m.(string))
	}
	if !slices.Contains(missing, "mdgate_lvc_topics") || !slices.Contains(missing, "mdgate_lvc_bytes") {
		t.Errorf("missing = %v, want mdgate_lvc_topics and mdgate_lvc_bytes", missing)
	}
}

var opsSecret = []byte("0123456789abcdef0123456789abcdef")

func opsToken(t *testing.T, ops bool, exp time.Time) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, bridge.Claims{Topics: []string{""}, Ops: ops,
		RegisteredClaims: jwt.RegisteredClaims{Subject: "ops-test", ExpiresAt: jwt.NewNumericDate(exp)}}).SignedString(opsSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// With auth on, /api/ops takes the JWT rule of /ws and wants the ops claim;
// the page itself is static and served to anyone.
func TestOpsEndpointAuth(t *testing.T) {
	c := testConfig()
	auth, err := bridge.NewHMACAuth(opsSecret)
	if err != nil {
		t.Fatal(err)
	}
	c.Bridge.Auth = auth
	g := start(t, c)
	addr := g.HTTPAddr()
	hour := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"not a JWT", "hello", http.StatusUnauthorized},
		{"expired, with ops", opsToken(t, true, time.Now().Add(-time.Minute)), http.StatusUnauthorized},
		{"without the ops claim", opsToken(t, false, hour), http.StatusForbidden},
		{"with the ops claim", opsToken(t, true, hour), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := getOps(t, addr, tc.token); code != tc.want {
				t.Errorf("getOps(%s) = %d, want %d", tc.name, code, tc.want)
			}
		})
	}
	// The token may come as on /ws: query parameter or cookie.
	tok := opsToken(t, true, hour)
	resp, err := http.Get("http://" + addr + "/api/ops?access_token=" + tok)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /api/ops?access_token=: %v %v, want 200", err, resp)
	}
	if resp != nil {
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/ops", nil)
	req.AddCookie(&http.Cookie{Name: bridge.CookieName, Value: tok})
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /api/ops with the cookie: %v %v, want 200", err, resp)
	}
	if resp != nil {
		resp.Body.Close()
	}
	// The token never makes a WebSocket client an ops reader or the reverse:
	// /ws still accepts the ops-less token.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?access_token="+opsToken(t, false, hour), nil)
	if err != nil {
		t.Fatalf("/ws with a topics-only token: %v", err)
	}
	ws.Close()

	resp, err = http.Get("http://" + addr + "/ops")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<script src="ops.js">`) {
		t.Errorf("GET /ops = %d, want 200 with ops.js", resp.StatusCode)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("GET /ops Content-Security-Policy = %q, want the dashboard's", csp)
	}
}

func TestQuantile(t *testing.T) {
	le := []float64{0.001, 0.01, 0.1, 1}
	for _, tc := range []struct {
		q     float64
		cum   []uint64
		total uint64
		want  float64
		ok    bool
	}{
		{0.99, []uint64{0, 0, 0, 0}, 0, 0, false},
		{0.5, []uint64{100, 100, 100, 100}, 100, 0.0005, true},        // half-way into the first bucket, from 0
		{0.99, []uint64{0, 0, 100, 100}, 100, 0.01 + 0.09*0.99, true}, // all in (0.01, 0.1]
		{0.99, []uint64{50, 50, 50, 50}, 100, 1, true},                // past the last finite bound: that bound
	} {
		t.Run(fmt.Sprint(tc.q, tc.cum), func(t *testing.T) {
			got, ok := gateway.Quantile(tc.q, le, tc.cum, tc.total)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("Quantile(%v, %v, %v) = %v, %v; want %v, %v", tc.q, tc.cum, tc.total, got, ok, tc.want, tc.ok)
			}
		})
	}
}
