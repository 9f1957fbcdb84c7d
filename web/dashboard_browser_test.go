package web_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mdgate/mdgate/gateway"
)

// demoGateway runs a gateway with the demo feed at its defaults (300
// instruments, 2,000 msgs/s) on a free port.
func demoGateway(t *testing.T, edit func(*gateway.Config)) *hGateway {
	return hStart(t, "127.0.0.1:0", func(c *gateway.Config) {
		c.Demo = true
		if edit != nil {
			edit(c)
		}
	})
}

// TestDashboardLagAtDemoDefaults measures the dashboard's own lag figure
// (Date.now() - ts/1000 of the newest rendered update) for 5 s at the demo
// defaults, sampled every 100 ms in the page, and logs it; it fails past a
// generous 2 s.
func TestDashboardLagAtDemoDefaults(t *testing.T) {
	g := demoGateway(t, nil)
	p := hTab(t, hBrowser(t), "http://"+g.HTTPAddr()+"/")
	p.poll("the table to fill", `document.body.dataset.conn === "live" && window.mdgate && window.mdgate.rows.size >= 300`)
	p.eval(`window.L = []; window.L0 = Date.now(); setInterval(() => { const s = window.mdgate.stats; if (s.lagMs != null) L.push(s.lagMs); }, 100); "ok"`)
	p.poll("5 s of samples", `Date.now() - L0 >= 5000 && L.length >= 5`)
	var lags []float64
	p.json(`JSON.stringify(L)`, &lags)
	slices.Sort(lags)
	med, p95, max := lags[len(lags)/2], lags[len(lags)*95/100], lags[len(lags)-1]
	t.Logf("dashboard lag at the demo defaults over %d samples: median %.0f ms, p95 %.0f ms, max %.0f ms", len(lags), med, p95, max)
	if p95 > 2000 {
		t.Fatalf("dashboard lag p95 %s, want under 2 s", fmt.Sprintf("%.0f ms", p95))
	}
}
