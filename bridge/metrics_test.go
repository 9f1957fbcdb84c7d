package bridge

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mdgate/mdgate/blackbox"
)

// The label values are a contract (docs/operations.md, dashboards): each
// gen function exports exactly these, every one at 0 from the start.
func TestMetricLabels(t *testing.T) {
	vec := func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"l"})
	}
	for _, tc := range []struct {
		name string
		gen  func(*prometheus.CounterVec) []prometheus.Counter
		want []string
	}{
		{"requests", func(v *prometheus.CounterVec) []prometheus.Counter { c := genRequestCounters(v); return c[:] },
			[]string{"subscribe", "unsubscribe", "ping", "resume"}},
		{"errors", func(v *prometheus.CounterVec) []prometheus.Counter { c := genErrorCounters(v); return c[:] },
			[]string{"bad_json", "bad_request", "unknown_op", "bad_frame", "too_many_subscriptions", "rate_limited", "forbidden", "snapshot_busy", "too_many_resume_points"}},
		{"closes", func(v *prometheus.CounterVec) []prometheus.Counter { c := genCloseCounters(v); return c[:] },
			[]string{"abuse", "read_limit", "token_expired", "no_pong", "bad_utf8", "shutdown_forced", "standby"}},
		{"rejected", func(v *prometheus.CounterVec) []prometheus.Counter { c := genRejectCounters(v); return c[:] },
			[]string{"origin", "handshake", "auth", "max_conns", "max_conns_per_ip", "passive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := vec()
			counters := tc.gen(v)
			if n := testutil.CollectAndCount(v); n != len(tc.want) {
				t.Fatalf("CollectAndCount = %d children exported, want %d", n, len(tc.want))
			}
			for i, want := range tc.want {
				counters[i].Inc()
				if got := testutil.ToFloat64(v.WithLabelValues(want)); got != 1 {
					t.Errorf("counter %d is not label %q", i, want)
				}
			}
		})
	}
}

// A names list that drifted from its enum panics when the counters are
// made, at start, not at the first increment.
func TestGenCountersPanicsOnDrift(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		names []string
	}{
		{"name missing", 3, []string{"a", "", "c"}},
		{"name twice", 2, []string{"a", "a"}},
		{"lengths differ", 3, []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("genCounters(%q) into %d did not panic", tc.names, tc.n)
				}
			}()
			v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"l"})
			genCounters(v, make([]prometheus.Counter, tc.n), tc.names)
		})
	}
}

func TestParseOpCoversEveryValidOp(t *testing.T) {
	for o, name := range requestOpNames {
		if got, ok := parseOp(name); !ok || got != requestOp(o) {
			t.Errorf("parseOp(%q) = %v, %v, want %v, true", name, got, ok, requestOp(o))
		}
	}
	if _, ok := parseOp("launch"); ok {
		t.Errorf("parseOp(%q) = ok, want not", "launch")
	}
}

// A refused Origin is counted once, as origin, not also as handshake.
func TestRefusedOriginCountedOnce(t *testing.T) {
	r := newRig(t, DefaultConfig(), blackbox.DefaultConfig())
	hdr := http.Header{"Origin": {"http://evil.example"}}
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/ws", hdr)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Origin http://evil.example: err %v, resp %v; want 403", err, resp)
	}
	if got := r.metric(t, "mdgate_ws_rejected_total", "reason", "origin"); got != 1 {
		t.Errorf("rejected{reason=origin} = %v, want 1", got)
	}
	if got := r.metric(t, "mdgate_ws_rejected_total", "reason", "handshake"); got != 0 {
		t.Errorf("rejected{reason=handshake} = %v, want 0", got)
	}
	// The admission it took is given back.
	r.b.mu.Lock()
	conns, perIP := r.b.conns, len(r.b.perIP)
	r.b.mu.Unlock()
	if conns != 0 || perIP != 0 {
		t.Errorf("after the refusal: %d connections admitted, %d addresses, want 0, 0", conns, perIP)
	}
	// A request that is not a WebSocket handshake is handshake, not origin.
	resp, err = http.Get(r.srv.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := r.metric(t, "mdgate_ws_rejected_total", "reason", "handshake"); got != 1 {
		t.Errorf("after a plain GET: rejected{reason=handshake} = %v, want 1", got)
	}
}
