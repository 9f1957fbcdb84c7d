package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/testgw"
	"github.com/mdgate/mdgate/internal/testpeer"
)

// The harness of the mdgate.js and dashboard tests: a headless chromium,
// gateways on free ports (optionally a fixed one, to restart on it), a libzmq
// publisher, and a TCP relay that can drop and refuse connections. Names
// start with h so as not to meet those of the other test files.

// hBrowser starts one headless chromium for a test; tabs come from hTab.
func hBrowser(t *testing.T) context.Context { return hBrowserAt(t, chromium(t)) }

// hBrowserAt starts the headless chromium at exe (tests and benchmarks). A
// tab in the background must not have its timers throttled.
func hBrowserAt(tb testing.TB, exe string) context.Context {
	tb.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(tb.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	tb.Cleanup(acancel)
	browser, bcancel := chromedp.NewContext(actx)
	tb.Cleanup(bcancel)
	if _, err := chromedp.Run(browser, chromedp.Navigate("about:blank")); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return browser
}

// hPage is one browser tab.
type hPage struct {
	t   *testing.T
	ctx context.Context
}

// hTab opens url in a new tab of browser.
func hTab(t *testing.T, browser context.Context, url string) *hPage {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	ctx, tcancel := context.WithTimeout(tab, 2*time.Minute)
	t.Cleanup(tcancel)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
	return &hPage{t: t, ctx: ctx}
}

// eval runs js and returns its value as a string.
func (p *hPage) eval(js string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluate %.120s: %v", js, err)
	}
	return s
}

// json evaluates js, which must give a JSON string, into v.
func (p *hPage) json(js string, v any) {
	p.t.Helper()
	if err := json.Unmarshal([]byte(p.eval(js)), v); err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
}

// poll waits, within wait, for cond to hold in the page; what names it.
func (p *hPage) poll(what, cond string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(wait))); err != nil {
		p.t.Fatalf("waiting for %s (%s): %v", what, cond, err)
	}
}

// hGateway is a gateway on 127.0.0.1, no demo feed unless asked, no
// snapshot ROUTER.
type hGateway struct {
	*gateway.Gateway
	stop func()
}

// hStart runs a gateway with HTTP on addr ("127.0.0.1:0" for any port);
// edit adjusts its configuration.
func hStart(t testing.TB, addr string, edit func(*gateway.Config)) *hGateway {
	t.Helper()
	c := testgw.Config(addr)
	c.ShutdownTimeout = 2 * time.Second
	if edit != nil {
		edit(&c)
	}
	g, stop := testgw.Start(t, c, wait)
	return &hGateway{Gateway: g, stop: stop}
}

// hPub is a libzmq PUB connected to g's ingress.
type hPub struct {
	t   *testing.T
	s   *zmq.Socket
	g   *hGateway
	mu  sync.Mutex
	seq int
}

func hPublisher(t *testing.T, g *hGateway) *hPub {
	t.Helper()
	s, err := zmq.NewSocket(zmq.PUB)
	if err != nil {
		t.Fatal(err)
	}
	s.SetLinger(0)
	s.SetSndhwm(1_000_000)
	if err := s.Connect(g.Proxy().Endpoints().Ingress[0]); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// A PUB drops what it sends before it is connected: publish to a topic
	// no test subscribes to until the gateway has it.
	testpeer.Eventually(t, wait, "the publisher to be connected", func() bool {
		if _, err := s.SendMessage("warm-up", "1"); err != nil {
			t.Fatal(err)
		}
		_, ok := g.Cache().Get("warm-up")
		return ok
	})
	return &hPub{t: t, s: s, g: g}
}

// send publishes one value.
func (p *hPub) send(topic, payload string) {
	p.t.Helper()
	if _, err := p.s.SendMessage(topic, payload); err != nil {
		p.t.Fatal(err)
	}
}

// cached publishes one value and waits for the gateway's cache to hold it;
// it returns its seq.
func (p *hPub) cached(topic, payload string) uint64 {
	p.t.Helper()
	var seq uint64
	before, _ := p.g.Cache().Get(topic)
	p.send(topic, payload)
	testpeer.Eventually(p.t, wait, "the gateway caching "+topic, func() bool {
		m, ok := p.g.Cache().Get(topic)
		if ok && m != before {
			seq = m.Stamp.Seq
			return true
		}
		return false
	})
	return seq
}

// clientPage is what a test page runs: mdgate.js from the gateway, every
// event recorded in window.T. %s: the MdGate options, then the
// subscription, as JavaScript object literals.
const clientPage = `(() => {
	const T = window.T = {ev: [], ups: [], n: 0, ready: false};
	import("/mdgate.js").then(({MdGate}) => {
		const g = T.g = new MdGate(%s);
		for (const e of ["gap", "epoch", "cutoff", "state", "error"]) g.on(e, x => T.ev.push(Object.assign({type: e}, x)));
		g.on("update", m => { T.n++; if (T.ups.length < 20000) T.ups.push(m); });
		T.sub = g.subscribe(%s);
		T.ready = true;
	}, e => { T.importError = String(e); });
	return "ok";
})()`

// hEvent is an entry of T.ev.
type hEvent struct {
	Type    string `json:"type"`
	State   string `json:"state"`
	URL     string `json:"url"`
	Topic   string `json:"topic"`
	Missed  int    `json:"missed"`
	From    string `json:"from"`
	To      string `json:"to"`
	Code    any    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// hUpdate is an entry of T.ups.
type hUpdate struct {
	Op      string          `json:"op"`
	Topic   string          `json:"topic"`
	Seq     uint64          `json:"seq"`
	Epoch   string          `json:"epoch"`
	Ts      float64         `json:"ts"`
	Data    json.RawMessage `json:"data"`
	Deleted bool            `json:"deleted"`
	Stale   bool            `json:"stale"`
	Gap     bool            `json:"gap"`
	Missed  int             `json:"missed"`
	Skipped int             `json:"skipped"`
}

// startClient runs clientPage in p with the given options and subscription
// and waits for the library to load.
func (p *hPage) startClient(opts, sub string) {
	p.t.Helper()
	p.eval(fmt.Sprintf(clientPage, opts, sub))
	p.poll("mdgate.js to load", `T.ready || T.importError`)
	if e := p.eval(`String(T.importError || "")`); e != "" {
		p.t.Fatalf("import /mdgate.js: %s", e)
	}
}

func (p *hPage) events() []hEvent {
	p.t.Helper()
	var ev []hEvent
	p.json(`JSON.stringify(T.ev)`, &ev)
	return ev
}

func (p *hPage) updates(filter string) []hUpdate {
	p.t.Helper()
	var ups []hUpdate
	p.json(`JSON.stringify(T.ups.filter(m => `+filter+`))`, &ups)
	return ups
}

// lives counts the page's "live" state events: one per connection that
// got its subscriptions acknowledged.
func (p *hPage) lives() string {
	return `T.ev.filter(e => e.type === "state" && e.state === "live").length`
}

// cachedSeq waits for the gateway's cache to hold topic at seq or later.
func (p *hPub) cachedSeq(topic string, seq uint64) {
	p.t.Helper()
	testpeer.Eventually(p.t, wait, fmt.Sprintf("the gateway caching %s seq %d", topic, seq), func() bool {
		m, ok := p.g.Cache().Get(topic)
		return ok && m.Stamp.Seq >= seq
	})
}
