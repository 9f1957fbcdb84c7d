package web_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/testpair"
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

// rowJS is a JavaScript expression for the displayed row of topic.
func rowJS(topic string) string {
	return fmt.Sprintf(`document.querySelector('#rows tr[data-topic=%q]')`, topic)
}

// TestDashboardStaleAndBadValues: values loaded from the gateway's cache
// file are marked stale until a live update replaces them; a price sent as a
// JSON string marks its own row and every other row keeps updating.
func TestDashboardStaleAndBadValues(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cache")
	g1 := hStart(t, "127.0.0.1:0", nil)
	pub := hPublisher(t, g1)
	pub.cached("md.s1", `{"px":1.5}`)
	pub.cached("md.s2", `{"px":2.5}`)
	if err := g1.Cache().Save(file); err != nil {
		t.Fatal(err)
	}
	g1.stop()
	g := hStart(t, "127.0.0.1:0", func(c *gateway.Config) { c.CacheFile = file })
	pub = hPublisher(t, g)
	p := hTab(t, hBrowser(t), "http://"+g.HTTPAddr()+"/")
	p.poll("both cached rows, stale", rowJS("md.s1")+` && `+rowJS("md.s1")+`.className === "stale" && `+rowJS("md.s2")+` && `+rowJS("md.s2")+`.className === "stale"`)
	if got := p.eval(rowJS("md.s2") + `.cells[7].textContent`); !strings.Contains(got, "stale") {
		t.Fatalf("stale row says %q, want it to say stale", got)
	}
	pub.send("md.s1", `{"px":1.75}`)
	p.poll("md.s1 live", rowJS("md.s1")+`.className === "" && `+rowJS("md.s1")+`.cells[1].textContent === "1.7500"`)
	if c := p.eval(rowJS("md.s2") + `.className`); c != "stale" {
		t.Fatalf("md.s2 class %q after md.s1's update, want still stale", c)
	}

	pub.send("md.bad", `{"px":"101.5"}`)
	p.poll("the bad row marked", rowJS("md.bad")+` && `+rowJS("md.bad")+`.className === "bad"`)
	if got := p.eval(rowJS("md.bad") + `.cells[7].textContent`); !strings.Contains(got, "not a number") {
		t.Fatalf("bad row says %q, want the error", got)
	}
	for i := 1; i <= 20; i++ {
		pub.send("md.ok", fmt.Sprintf(`{"px":%d.25}`, i))
	}
	p.poll("other rows still updating", rowJS("md.ok")+` && `+rowJS("md.ok")+`.cells[1].textContent === "20.25"`)
	pub.send("md.s2", `{"px":2.75}`)
	p.poll("md.s2 live", rowJS("md.s2")+`.className === "" && `+rowJS("md.s2")+`.cells[1].textContent === "2.7500"`)
	pub.send("md.bad", `{"px":101.5}`)
	p.poll("the bad row recovered", rowJS("md.bad")+`.className === "" && `+rowJS("md.bad")+`.cells[1].textContent === "101.50"`)
}

// TestDashboardNotes: a gateway restart says "gateway restarted, values
// refreshed" (not gaps), and a cut-off shows its code and reason.
func TestDashboardNotes(t *testing.T) {
	addr := testpair.FreeAddr(t)
	g := hStart(t, addr, nil)
	pub := hPublisher(t, g)
	pub.cached("md.a", `{"px":1}`)
	p := hTab(t, hBrowser(t), "http://"+addr+"/")
	p.poll("the row", rowJS("md.a")+` !== null`)
	p.eval(`window.mdgate.client._ws.send(JSON.stringify({op: "ping", pad: "x".repeat(70 << 10)})), "ok"`)
	p.poll("live again", `window.mdgate.stats.reconnects === 1`)
	note := p.eval(`document.getElementById("note").textContent`)
	if note != "cut off 1009" {
		t.Fatalf("note %q after a 1009, want \"cut off 1009\"", note)
	}
	t.Logf("note after a 70 KiB send: %q", note)
	g.stop()
	p.poll("the 1001 cut-off shown", `document.getElementById("note").textContent.startsWith("cut off 1001")`)
	g = hStart(t, addr, nil)
	pub = hPublisher(t, g)
	pub.cached("md.a", `{"px":2}`)
	p.poll("the restart note", `document.getElementById("note").textContent === "gateway restarted, values refreshed"`)
	p.poll("the new value", rowJS("md.a")+`.cells[1].textContent === "2.0000"`)
	if gaps := p.eval(`String(window.mdgate.stats.gaps)`); gaps != "0" {
		t.Fatalf("%s gaps after a restart, want 0", gaps)
	}
}
