package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mdgate/mdgate/gateway"
)

// BenchmarkDashboardLag measures how far behind the feed the dashboard is in
// real headless chromium, beside a bare page on the same feed in the same run
// (`make bench`: -benchtime 1x). Each sub-benchmark runs an in-process
// gateway with the demo feed, then, one tab at a time:
//
//   - the dashboard (/, its defaults: prefix md., conflate, throttle 250 ms):
//     its own lag figure, window.mdgate.stats.lagMs (Date.now() - ts/1000 of
//     the newest value it rendered, taken each animation frame), sampled every
//     100 ms in the page; beside it the animation frames' intervals and the
//     long tasks' total time (what a stalled page would show);
//   - the bare page: one WebSocket, the same subscription (prefix md.,
//     conflate, throttle_ms 250), JSON.parse of each line and nothing else,
//     no DOM work; it records Date.now() - ts/1000 of every update, and every
//     100 ms the same figure for the newest value it holds, as the dashboard's.
//
// Each page gets benchWarm to settle after its table (or its stream) is full,
// then benchWindow measured. Metrics, in ms: dash-p50/p95/max (the
// dashboard's figure), bare-p50/p95/max (the bare page's sampled figure),
// bare-msg-p50/p95 (every update the bare page got, throttled ones included,
// so up to 250 ms older by design), dash-frame-p95/max and
// bare-frame-p95/max (animation frame intervals), dash-longtask-ms and
// bare-longtask-ms (long tasks' time in the window). Results:
// docs/benchmarks.md, "Dashboard lag (headless chromium)".
func BenchmarkDashboardLag(b *testing.B) {
	exe := benchChromium()
	if exe == "" {
		b.Skip("no chromium (chromium, chromium-browser or google-chrome on PATH): `make bench` installs Debian's chromium (scripts/ensure-deps chromium)")
	}
	for _, bc := range []struct {
		name              string
		instruments, rate int
	}{
		{"demo", 300, 2000},
		{"5000x20000", 5000, 20000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := hStart(b, "127.0.0.1:0", func(c *gateway.Config) {
				c.Demo = true
				c.DemoInstruments = bc.instruments
				c.DemoRate = bc.rate
			})
			browser := hBrowserAt(b, exe)
			var dash, bare benchLags
			for range b.N {
				dash.add(benchDashboard(b, browser, g.HTTPAddr(), bc.instruments))
				bare.add(benchBare(b, browser, g.HTTPAddr(), bc.instruments))
			}
			b.ReportMetric(0, "ns/op")
			dash.report(b, "dash")
			bare.report(b, "bare")
			b.Logf("%s (%d instruments, %d msgs/s): dashboard lag p50 %.0f p95 %.0f max %.0f ms over %d samples (frames p95 %.0f max %.0f ms, long tasks %.0f ms); bare page p50 %.0f p95 %.0f max %.0f ms over %d samples, every update p50 %.0f p95 %.0f ms over %d",
				bc.name, bc.instruments, bc.rate,
				pct(dash.Lag, 50), pct(dash.Lag, 95), pct(dash.Lag, 100), len(dash.Lag), pct(dash.Frames, 95), pct(dash.Frames, 100), dash.Long,
				pct(bare.Lag, 50), pct(bare.Lag, 95), pct(bare.Lag, 100), len(bare.Lag), pct(bare.Msgs, 50), pct(bare.Msgs, 95), len(bare.Msgs))
		})
	}
}

const (
	benchWarm   = 3 * time.Second
	benchWindow = 10 * time.Second
)

// benchLags is what one page recorded in its window.
type benchLags struct {
	Lag    []float64 `json:"lag"`    // sampled every 100 ms
	Msgs   []float64 `json:"msgs"`   // bare page: every update
	Frames []float64 `json:"frames"` // dashboard: animation frame intervals
	Long   float64   `json:"long"`   // dashboard: long tasks, ms in total
	Closed string    `json:"closed"` // bare page: the close, if any
}

func (l *benchLags) add(o benchLags) {
	l.Lag = append(l.Lag, o.Lag...)
	l.Msgs = append(l.Msgs, o.Msgs...)
	l.Frames = append(l.Frames, o.Frames...)
	l.Long += o.Long
}

func (l *benchLags) report(b *testing.B, name string) {
	b.ReportMetric(pct(l.Lag, 50), name+"-p50-ms")
	b.ReportMetric(pct(l.Lag, 95), name+"-p95-ms")
	b.ReportMetric(pct(l.Lag, 100), name+"-max-ms")
	if len(l.Msgs) > 0 {
		b.ReportMetric(pct(l.Msgs, 50), name+"-msg-p50-ms")
		b.ReportMetric(pct(l.Msgs, 95), name+"-msg-p95-ms")
	}
	if len(l.Frames) > 0 {
		b.ReportMetric(pct(l.Frames, 95), name+"-frame-p95-ms")
		b.ReportMetric(pct(l.Frames, 100), name+"-frame-max-ms")
		b.ReportMetric(l.Long, name+"-longtask-ms")
	}
}

// pct is the p-th percentile (nearest rank) of xs; 100 is the maximum.
func pct(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// benchRecorder runs in a page once its feed flows: after benchWarm it
// records for benchWindow, then sets R.done. %s: the expression of one lag
// sample (null: none yet).
const benchRecorder = `(() => {
	const R = window.R = {lag: [], msgs: [], frames: [], long: 0, rec: false, done: false};
	const t0 = Date.now();
	setTimeout(() => { R.rec = true; R.from = Date.now(); }, %d);
	setTimeout(() => { R.rec = false; R.done = true; }, %d);
	setInterval(() => { if (!R.rec) return; const x = (%s); if (x != null) R.lag.push(x); }, 100);
	let last = 0;
	const f = (t) => { if (R.rec && last) R.frames.push(t - last); last = t; if (!R.done) requestAnimationFrame(f); };
	requestAnimationFrame(f);
	try {
		new PerformanceObserver((l) => { if (R.rec) for (const e of l.getEntries()) R.long += e.duration; }).observe({type: "longtask"});
	} catch (e) {}
	return "ok";
})()`

// benchDashboard loads the dashboard in a new tab, waits for its table to
// hold every instrument, and records its lag figure.
func benchDashboard(b *testing.B, browser context.Context, addr string, instruments int) benchLags {
	b.Helper()
	p := benchTab(b, browser, "http://"+addr+"/")
	defer p.close()
	p.poll("the table to fill", fmt.Sprintf(`document.body.dataset.conn === "live" && window.mdgate && window.mdgate.rows.size >= %d`, instruments), 60*time.Second)
	p.eval(fmt.Sprintf(benchRecorder, benchWarm.Milliseconds(), (benchWarm + benchWindow).Milliseconds(), `window.mdgate.stats.lagMs`))
	return p.collect()
}

// benchBarePage is the bare page: a WebSocket, the dashboard's
// subscription, JSON.parse of each line, no DOM work.
const benchBarePage = `(() => {
	const B = window.B = {n: 0, newest: 0, newestLag: null, closed: ""};
	const ws = B.ws = new WebSocket("ws://" + location.host + "/ws");
	ws.onopen = () => ws.send(JSON.stringify({op: "subscribe", prefixes: ["md."], slow: "conflate", throttle_ms: 250}));
	ws.onclose = (e) => { B.closed = e.code + " " + e.reason; };
	ws.onmessage = (ev) => {
		const d = ev.data;
		let start = 0;
		while (start < d.length) {
			let end = d.indexOf("\n", start);
			if (end < 0) end = d.length;
			if (end > start) {
				const m = JSON.parse(d.slice(start, end));
				if (m.op === "update" || m.op === "snapshot") {
					const now = Date.now(), lag = now - m.ts / 1000;
					B.n++;
					if (m.ts > B.newest) { B.newest = m.ts; B.newestLag = lag; }
					if (m.op === "update" && window.R && R.rec) R.msgs.push(lag);
				}
			}
			start = end + 1;
		}
	};
	return "ok";
})()`

// benchBare runs the bare page in a new tab (same origin as the dashboard)
// and records its lag.
func benchBare(b *testing.B, browser context.Context, addr string, instruments int) benchLags {
	b.Helper()
	p := benchTab(b, browser, "http://"+addr+"/healthz")
	defer p.close()
	p.eval(benchBarePage)
	p.poll("the snapshot", fmt.Sprintf(`B.n >= %d`, instruments), 60*time.Second)
	p.eval(fmt.Sprintf(benchRecorder, benchWarm.Milliseconds(), (benchWarm + benchWindow).Milliseconds(), `B.newestLag`))
	l := p.collect()
	if l.Closed == "" {
		l.Closed = p.eval(`B.closed`)
	}
	if l.Closed != "" {
		b.Fatalf("the bare page's connection closed: %s", l.Closed)
	}
	return l
}

// benchPage is one tab.
type benchPage struct {
	tb     testing.TB
	ctx    context.Context
	cancel func()
}

func benchTab(tb testing.TB, browser context.Context, url string) *benchPage {
	tb.Helper()
	tab, cancel := chromedp.NewContext(browser)
	ctx, tcancel := context.WithTimeout(tab, 3*time.Minute)
	p := &benchPage{tb: tb, ctx: ctx, cancel: func() { tcancel(); cancel() }}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		p.cancel()
		tb.Fatalf("navigate %s: %v", url, err)
	}
	return p
}

// close closes the tab, so that it costs nothing while the next page is
// measured.
func (p *benchPage) close() { p.cancel() }

func (p *benchPage) eval(js string) string {
	p.tb.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.tb.Fatalf("evaluate %.120s: %v", js, err)
	}
	return s
}

func (p *benchPage) poll(what, cond string, within time.Duration) {
	p.tb.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(within))); err != nil {
		p.tb.Fatalf("waiting for %s (%s): %v", what, cond, err)
	}
}

// collect waits for the recorder to finish and returns what it recorded.
func (p *benchPage) collect() benchLags {
	p.tb.Helper()
	p.poll("the measured window", `R.done`, benchWarm+benchWindow+30*time.Second)
	var l benchLags
	if err := json.Unmarshal([]byte(p.eval(`JSON.stringify(R)`)), &l); err != nil {
		p.tb.Fatal(err)
	}
	if len(l.Lag) < int(benchWindow/(100*time.Millisecond))/2 {
		p.tb.Fatalf("%d lag samples in %v, want about %d (the page stalled, or no value arrived)", len(l.Lag), benchWindow, benchWindow/(100*time.Millisecond))
	}
	return l
}

func benchChromium() string {
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}
