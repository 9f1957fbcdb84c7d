package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/internal/testgw"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
)

const wait = 10 * time.Second

// testConfig is a gateway on free loopback ports with a snapshot ROUTER.
func testConfig() gateway.Config {
	c := testgw.Config("127.0.0.1:0")
	c.SnapshotBind = "tcp://127.0.0.1:*"
	return c
}

func start(t *testing.T, c gateway.Config) *gateway.Gateway {
	t.Helper()
	g, err := gateway.New(c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	testpeer.Serve(t, g, c.ShutdownTimeout+2*time.Second) // the shutdown bound, and some
	return g
}

func TestDemoFeedReachesPythonSubscriberAndMetrics(t *testing.T) {
	c := testConfig()
	c.Demo = true
	c.DemoRate = 5000
	g := start(t, c)
	sub := testpeer.Start(t, "sub", map[string]any{"endpoint": g.Proxy().Endpoints().Egress[0], "prefixes": []string{"md.fx."}, "count": 20})
	got := sub.Until(t, "done", wait)
	if len(got) != 20 {
		t.Fatalf("python subscriber got %d demo messages, want 20", len(got))
	}
	for _, e := range got {
		f := e.Strings()
		var v map[string]any
		if len(f) != 2 || !strings.HasPrefix(f[0], "md.fx.") || json.Unmarshal([]byte(f[1]), &v) != nil || v["px"] == nil {
			t.Fatalf("demo message %q: want [md.fx.*, JSON with px]", f)
		}
	}

	base := "http://" + g.HTTPAddr()
	fams, err := promscrape.Scrape(context.Background(), base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"mdgate_ingress_messages_total", nil, 20},
		{"mdgate_zmq_egress_messages_total", []string{"egress", "raw"}, 20},
		{"mdgate_zmq_subscription_events_total", []string{"egress", "raw", "op", "subscribe"}, 1},
		{"mdgate_sequenced_topics", nil, 10},
		{"mdgate_stage_forward_seconds", nil, 20},
		{"mdgate_ingress_dropped_total", []string{"reason", "empty_topic"}, 0},
	} {
		t.Run(m.name, func(t *testing.T) {
			if v, ok := fams.Value(m.name, m.labels...); !ok || v < m.min {
				t.Errorf("Value(%q, %q) = %v, %v, want >= %v", m.name, m.labels, v, ok, m.min)
			}
		})
	}

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status string
		Proxy  struct {
			Running bool
			Epoch   string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 || h.Status != "ok" || !h.Proxy.Running || len(h.Proxy.Epoch) != 16 {
		t.Errorf("/healthz = %d %+v (%v), want 200 ok running with a 16-hex-digit epoch", resp.StatusCode, h, err)
	}
}

func TestHTTPListenFailureIsReported(t *testing.T) {
	g1 := start(t, testConfig())
	c := testConfig()
	c.HTTP = g1.HTTPAddr()
	g2, err := gateway.New(c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "http listen") {
		t.Errorf("Run on a busy HTTP port = %v, want an http listen error", err)
	}
}

var nopLog = zerolog.Nop()

func ttlRule(prefix string, d time.Duration) lvc.TTLRule { return lvc.TTLRule{Prefix: prefix, TTL: d} }
