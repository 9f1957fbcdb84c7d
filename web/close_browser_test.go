package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/bridge"
	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/internal/testgw"
	"github.com/mdgate/mdgate/internal/testpeer"
)

// What a browser sees when the gateway closes its WebSocket: the close
// codes of docs/protocol.md ("Errors and limits", "Slow clients") must reach
// a real browser's onclose as sent, not as 1006 (a TCP reset or a bare drop),
// and a publisher's payload that is not UTF-8 must not make browsers fail
// the connection. bridge/freshness_test.go checks the same with gorilla.
//
// Two of the gateway's closes cannot be produced from a browser, so they are
// checked only there (TestCloseCodesReachTheClient):
//   - 4009 (CloseNoPong, nothing received for --ws-pong-wait): a browser
//     answers every ping by itself, in its network stack, whatever the page
//     does; no page can stay silent.
//   - 1007 (invalid UTF-8 in a client's text frame): WebSocket.send takes a
//     JavaScript string and encodes it as UTF-8 (lone surrogates become
//     U+FFFD), so a browser never sends an invalid text frame.

// closePage is the harness the test evaluates in a page of the gateway's own
// origin (the default --ws-origin policy admits it): one WebSocket to /ws,
// every event and message recorded in window.T for the test to read back.
const closePage = `(() => {
	const T = window.T = {events: [], msgs: [], n: 0};
	const ws = T.ws = new WebSocket("ws://" + location.host + "/ws");
	ws.onopen = () => T.events.push({type: "open"});
	ws.onerror = () => T.events.push({type: "error"});
	ws.onclose = e => T.events.push({type: "close", code: e.code, reason: e.reason, clean: e.wasClean, n: T.n});
	ws.onmessage = e => {
		for (const line of e.data.split("\n")) {
			T.n++;
			if (T.msgs.length < 2000) T.msgs.push(JSON.parse(line));
		}
	};
	return "ok";
})()`

// pageEvent is one entry of T.events.
type pageEvent struct {
	Type   string `json:"type"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	Clean  bool   `json:"clean"`
	N      int    `json:"n"` // messages the page had read when it closed
}

// page is one browser tab connected to a gateway's /ws.
type page struct {
	t   *testing.T
	ctx context.Context
}

// openPage opens a tab on the gateway at addr and runs closePage in it,
// waiting for the WebSocket to open.
func openPage(t *testing.T, browser context.Context, addr string) *page {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel) // closes the tab, and its WebSocket
	ctx, tcancel := context.WithTimeout(tab, 2*time.Minute)
	t.Cleanup(tcancel)
	// /healthz: a page of the gateway's origin with no script of its own
	// (the dashboard at / would open a WebSocket of its own).
	if _, err := chromedp.Run(ctx, chromedp.Navigate("http://"+addr+"/healthz")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	p := &page{t: t, ctx: ctx}
	p.eval(closePage)
	p.poll(`T.events.length > 0`)
	if ev := p.events(); ev[0].Type != "open" {
		t.Fatalf("the page's WebSocket did not open: %+v", ev)
	}
	return p
}

// eval runs js in the page and returns its value as a string (JSON for
// anything that is not one).
func (p *page) eval(js string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluate %.80s: %v", js, err)
	}
	return s
}

// poll waits, within wait, for the page's expression cond to be true.
func (p *page) poll(cond string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(wait))); err != nil {
		p.t.Fatalf("waiting for %s in the page: %v; events %+v", cond, err, p.events())
	}
}

func (p *page) events() []pageEvent {
	p.t.Helper()
	var ev []pageEvent
	if err := json.Unmarshal([]byte(p.eval(`JSON.stringify(T.events)`)), &ev); err != nil {
		p.t.Fatal(err)
	}
	return ev
}

// closed waits for the page's close event and returns it.
func (p *page) closed() pageEvent {
	p.t.Helper()
	p.poll(`T.events.some(e => e.type === "close")`)
	for _, e := range p.events() {
		if e.Type == "close" {
			return e
		}
	}
	panic("unreachable")
}

// send sends text on the page's WebSocket.
func (p *page) send(js string) { p.t.Helper(); p.eval(`T.ws.send(` + js + `), "ok"`) }

// subscribe subscribes and waits for the ack.
func (p *page) subscribe(req string) {
	p.t.Helper()
	p.send("JSON.stringify(" + req + ")")
	p.poll(`T.msgs.some(m => m.op === "ack" && m.req === "subscribe")`)
}

// testGateway is a gateway on free 127.0.0.1 ports, no demo feed, no
// snapshot ROUTER.
type testGateway struct {
	*gateway.Gateway
	stop func() // cancels its context and waits for Run; also at cleanup
}

func startGateway(t *testing.T) *testGateway {
	t.Helper()
	g, stop := testgw.Start(t, testgw.Config("127.0.0.1:0"), wait)
	return &testGateway{Gateway: g, stop: stop}
}

// metric reads one of the gateway's metrics from /metrics.
func (g *testGateway) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	f, err := promscrape.Scrape(context.Background(), "http://"+g.HTTPAddr()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := f.Value(name, labels...)
	return v
}

// publisher is a libzmq PUB connected to the gateway's ingress.
func publisher(t *testing.T, g *testGateway) *zmq.Socket {
	t.Helper()
	pub, err := zmq.NewSocket(zmq.PUB)
	if err != nil {
		t.Fatal(err)
	}
	pub.SetLinger(0)
	pub.SetSndhwm(100_000)
	if err := pub.Connect(g.Proxy().Endpoints().Ingress[0]); err != nil {
		pub.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

// warmUp publishes to topic until the page has an update of it: the PUB is
// connected and the page subscribed (a PUB drops what it sends before it is
// connected).
func warmUp(t *testing.T, p *page, pub *zmq.Socket, topic string) {
	t.Helper()
	q := fmt.Sprintf(`T.msgs.some(m => m.op === "update" && m.topic === %q)`, topic)
	testpeer.Eventually(t, wait, "the page's first update of "+topic, func() bool {
		if _, err := pub.SendMessage(topic, `{"warm":1}`); err != nil {
			t.Fatal(err)
		}
		return p.eval(`String(`+q+`)`) == "true"
	})
}

// TestCloseCodesInChromium: each reason the gateway closes a browser's
// WebSocket reaches the page's onclose with the documented code and reason
// (before 90a0d60 and e250a23: a TCP reset or a drop, which a browser reports
// as 1006), and a payload that is not UTF-8 leaves browsers connected.
func TestCloseCodesInChromium(t *testing.T) {
	browser := hBrowser(t) // a tab in the background has its timers unthrottled

	cases := []struct {
		name   string
		run    func(t *testing.T, g *testGateway, p *page)
		code   int    // the page's close event; 0: no close
		reason string // its reason starts with this
		// knownBug: a gateway bug, not fixed yet, that makes the page see
		// 1006: then, and only for 1006, the case is skipped (not passed)
		// with this text. Empty it once the bug is fixed.
		knownBug string
	}{
		{"1009 frame over the read limit", func(t *testing.T, g *testGateway, p *page) {
			p.send(`JSON.stringify({op: "ping", pad: "x".repeat(70 << 10)})`)
		}, 1009, "", ""}, // gorilla writes this close itself (no reason); the bridge then half-closes and drains

		{"1008 too many bad requests", func(t *testing.T, g *testGateway, p *page) {
			p.eval(`for (let i = 0; i < 20; i++) T.ws.send("nonsense"); "ok"`)
		}, 1008, "too many bad requests", ""},

		{"1001 gateway shutdown", func(t *testing.T, g *testGateway, p *page) {
			p.subscribe(`{op: "subscribe", prefixes: ["md."], snapshot: false}`)
			g.stop()
		}, 1001, "", ""},

		{"4008 slow consumer", func(t *testing.T, g *testGateway, p *page) {
			// max_queue_bytes 64 KiB, not 4 KiB: 4 KiB is 12 updates of this
			// feed, a few milliseconds, and a page that reads everything was
			// cut off in the control phase 1 run in 3 under -race.
			pub := publisher(t, g)
			p.subscribe(`{op: "subscribe", prefixes: ["md."], snapshot: false, max_queue_bytes: 65536, max_lag_ms: 500}`)
			warmUp(t, p, pub, "md.warm")
			stop, done := make(chan struct{}), make(chan int)
			go func() { // the feed, about 1,000 updates of 340 bytes a second; owns pub from here
				seq, pad := 0, `,"pad":"`+strings.Repeat("x", 300)+`"}`
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						done <- seq
						return
					case <-tick.C:
					}
					seq++
					pub.SendMessage(fmt.Sprintf("md.%d", seq%10), fmt.Sprintf(`{"seq":%d`, seq)+pad)
				}
			}()
			fed, stopFeed := 0, func() {}
			stopFeed = func() { close(stop); fed = <-done; stopFeed = func() {} }
			defer func() { stopFeed() }()
			cutOff := func() float64 {
				return g.metric(t, "mdgate_fanout_disconnects_total", "reason", "queue_bytes") +
					g.metric(t, "mdgate_fanout_disconnects_total", "reason", "lag")
			}
			// Control: a page that reads keeps up with this feed.
			p.poll(`T.n > 1000`)
			if n := cutOff(); n != 0 {
				t.Fatalf("control: the page was cut off (%v) while reading; events %+v", n, p.events())
			}
			// Then its main thread stops for 2 s (a long task): the browser
			// stops reading the socket and answering the gateway's probes,
			// what the gateway wrote goes unanswered past max_lag_ms and
			// its queue grows, and it cuts the page off while it is blocked.
			// The close frame then waits behind data the page has not read.
			//
			// 2 s, not longer: the gateway closes the socket 2 x --ws-close-
			// grace (2 s) after the cut-off when the client sends nothing
			// (the reader's grace, then the drain's), and a page that is
			// still blocked then loses the rest of the backlog and the close
			// frame and sees 1006 (presumably: its pongs to the backlog's
			// probes meet a closed socket, whose reset discards the rest).
			// Measured with the cut-off about 0.5 s into the block: blocked
			// 1.5, 2, 3 or 4 s: 4008 every time (3/3, 12/12, 5/5, 3/3); 5 s:
			// 1006 in 2 runs of 3; 6 s: 1006 in 3 of 3.
			p.eval(`setTimeout(() => { T.nBlocked = T.n; const end = Date.now() + 2000; while (Date.now() < end) {} }, 0); "ok"`)
			testpeer.Eventually(t, wait, "the gateway cutting the blocked page off", func() bool { return cutOff() > 0 })
			stopFeed()
			e := p.closed()
			nBlocked, _ := strconv.Atoi(p.eval(`String(T.nBlocked)`))
			t.Logf("fed %d updates; disconnects queue_bytes %v, lag %v; the page had read %d when blocked, %d when it saw the close", fed,
				g.metric(t, "mdgate_fanout_disconnects_total", "reason", "queue_bytes"),
				g.metric(t, "mdgate_fanout_disconnects_total", "reason", "lag"), nBlocked, e.N)
			// How much the page still read before the close depends on what
			// the gateway's in-flight window let through before the block
			// (often nothing: the window had stopped the writes): logged,
			// not asserted. The close code is asserted below.
		}, bridge.CloseSlowConsumer, "slow consumer: ", ""},

		{"bad UTF-8 payload stays connected", func(t *testing.T, g *testGateway, p *page) {
			pub := publisher(t, g)
			p.subscribe(`{op: "subscribe", topics: ["md.note", "md.warm"], snapshot: false}`)
			warmUp(t, p, pub, "md.warm")
			bad := "{\"note\":\"caf\xe9\"}"
			if _, err := pub.SendMessage("md.note", bad); err != nil {
				t.Fatal(err)
			}
			if _, err := pub.SendMessage("md.note", `{"note":"ok","px":2}`); err != nil {
				t.Fatal(err)
			}
			p.poll(`T.msgs.some(m => m.op === "update" && m.topic === "md.note" && m.data && m.data.px === 2) || T.events.some(e => e.type === "close")`)
			var got []struct {
				Op   string          `json:"op"`
				Seq  int             `json:"seq"`
				Enc  string          `json:"enc"`
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal([]byte(p.eval(`JSON.stringify(T.msgs.filter(m => m.topic === "md.note"))`)), &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("the page got %d updates of md.note, want 2: %+v; events %+v", len(got), got, p.events())
			}
			var b64 string
			if err := json.Unmarshal(got[0].Data, &b64); err != nil || got[0].Enc != "base64" {
				t.Fatalf("first update %+v: want its data as a base64 string with enc base64", got[0])
			}
			if raw, err := base64.StdEncoding.DecodeString(b64); err != nil || string(raw) != bad {
				t.Fatalf("first update's data decodes to %q (%v), want the publisher's %q", raw, err, bad)
			}
			if got[1].Enc != "" || string(got[1].Data) != `{"note":"ok","px":2}` || got[1].Seq != got[0].Seq+1 {
				t.Fatalf("second update %+v (data %s), want seq %d with its JSON data", got[1], got[1].Data, got[0].Seq+1)
			}
			// Still connected both ways: a ping is answered.
			p.send(`JSON.stringify({op: "ping", id: "after"})`)
			p.poll(`T.msgs.some(m => m.op === "pong" && m.id === "after") || T.events.some(e => e.type === "close")`)
			if s := p.eval(`String(T.ws.readyState)`); s != "1" {
				t.Fatalf("readyState %s after the bad payload, want 1 (open); events %+v", s, p.events())
			}
		}, 0, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t)
			p := openPage(t, browser, g.HTTPAddr())
			tc.run(t, g, p)
			if tc.code == 0 {
				for _, e := range p.events() {
					if e.Type != "open" {
						t.Fatalf("page events %+v, want it connected", p.events())
					}
				}
				return
			}
			e := p.closed()
			t.Logf("page saw close %d %q (clean %v) after %d messages", e.Code, e.Reason, e.Clean, e.N)
			if e.Code == 1006 && tc.knownBug != "" {
				t.Skipf("KNOWN GATEWAY BUG, the page saw 1006, not %d: %s", tc.code, tc.knownBug)
			}
			if e.Code != tc.code || !strings.HasPrefix(e.Reason, tc.reason) {
				t.Fatalf("page saw close %d %q, want %d %q...; events %+v", e.Code, e.Reason, tc.code, tc.reason, p.events())
			}
		})
	}
}
