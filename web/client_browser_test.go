package web_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testrelay"
)

// mdgate.js (web/static/mdgate.js, docs/client-js.md) in real headless
// chromium against in-process gateways: the page imports it from the
// gateway that serves it, as an application would.

// TestClientResumesWithoutGap: values arrive with their fields; a dropped
// connection (the gateway stays up) resumes where it left off, so the next
// value is seq+1 and nothing is sent again or reported as a gap; updates
// missed while the network was down come back as one "gap" with the count.
func TestClientResumesWithoutGap(t *testing.T) {
	g := hStart(t, "127.0.0.1:0", nil)
	relay := testrelay.New(t, g.HTTPAddr())
	pub := hPublisher(t, g)
	seq := pub.cached("t.a", `{"px":1}`)
	pub.cached("t.b", `{"px":2}`)

	p := hTab(t, hBrowser(t), "http://"+relay.Addr()+"/healthz")
	p.startClient(`{urls: ["ws://`+relay.Addr()+`/ws"], backoff: {min: 20, max: 200}}`, `{prefixes: ["t."]}`)
	p.poll("the snapshot", `T.ups.some(m => m.topic === "t.a") && T.ups.some(m => m.topic === "t.b")`)
	p.poll("live", p.lives()+` === 1`)
	ups := p.updates(`m.topic === "t.a"`)
	if len(ups) != 1 || ups[0].Op != "snapshot" || ups[0].Seq != seq || len(ups[0].Epoch) != 16 || ups[0].Ts == 0 || string(ups[0].Data) != `{"px":1}` {
		t.Fatalf("snapshot of t.a = %+v, want one snapshot seq %d data {\"px\":1}", ups, seq)
	}
	pub.send("t.a", `{"px":3}`)
	p.poll("a live update", fmt.Sprintf(`T.ups.some(m => m.op === "update" && m.topic === "t.a" && m.seq === %d)`, seq+1))
	if got := p.eval(`JSON.stringify(T.g.last("t.a"))`); got != fmt.Sprintf(`{"seq":%d,"epoch":%q}`, seq+1, ups[0].Epoch) {
		t.Fatalf("last(t.a) = %s", got)
	}

	// 1. The page's side closes its socket; the gateway stays up, and nothing
	// is published meanwhile: after the reconnect nothing is sent again,
	// and the next value is seq+2.
	n := p.eval(`String(T.n)`)
	p.eval(`T.g._ws.close(), "ok"`)
	p.poll("live again", p.lives()+` === 2`)
	pub.send("t.a", `{"px":4}`)
	p.poll("the next update", fmt.Sprintf(`T.ups.some(m => m.topic === "t.a" && m.seq === %d)`, seq+2))
	if got := p.eval(`String(T.n)`); got != fmt.Sprint(atoi(t, n)+1) {
		t.Fatalf("%s values after the reconnect, want 1: %+v", fmt.Sprint(atoi(t, got)-atoi(t, n)), p.updates(`true`))
	}
	if ev := p.eventsOf("gap", "epoch", "cutoff", "error"); len(ev) != 0 {
		t.Fatalf("events %+v after a resume with nothing missed, want none", ev)
	}
	compact := p.eval(`String(T.g._caps.get(T.g._url).resume)`)

	// 2. The network fails (both sides dropped, reconnects refused) while
	// three updates are published: one value comes back, the latest, with a
	// gap of two; then live updates follow on.
	relay.Cut()
	p.poll("reconnecting", `T.g.state === "reconnecting"`)
	for i := 5; i <= 7; i++ {
		pub.send("t.a", fmt.Sprintf(`{"px":%d}`, i))
	}
	pub.cachedSeq("t.a", seq+5)
	relay.Heal()
	p.poll("live again", p.lives()+` === 3`)
	p.poll("the gap", `T.ev.some(e => e.type === "gap")`)
	ev := p.eventsOf("gap")
	if len(ev) != 1 || ev[0].Topic != "t.a" || ev[0].Missed != 2 {
		t.Fatalf("gap events %+v, want one for t.a with 2 missed", ev)
	}
	last := p.updates(`m.topic === "t.a"`)
	if u := last[len(last)-1]; u.Seq != seq+5 || string(u.Data) != `{"px":7}` {
		t.Fatalf("last value of t.a %+v, want seq %d {\"px\":7}", u, seq+5)
	}
	if got := p.updates(`m.topic === "t.b"`); len(got) != 1 {
		t.Fatalf("t.b sent %d times, want once (it did not change)", len(got))
	}
	pub.send("t.a", `{"px":8}`)
	p.poll("live after the gap", fmt.Sprintf(`T.ups.some(m => m.topic === "t.a" && m.seq === %d)`, seq+6))
	if compact == "true" {
		t.Log("resumed with the compact resume op")
	} else {
		t.Logf("the gateway has no compact resume op (caps %s): resumed with subscribe's per-topic map", compact)
	}
}

// TestClientCompactResume: thousands of topics with long names resume in
// requests under the read limit; after the reconnect nothing is sent again.
func TestClientCompactResume(t *testing.T) {
	const topics = 3000 // about 190 KiB as subscribe's per-topic resume map: three times the read limit
	g := hStart(t, "127.0.0.1:0", nil)
	pub := hPublisher(t, g)
	pad := strings.Repeat("x", 40)
	pub.cached("r.warm", `1`)
	for i := range topics {
		pub.send(fmt.Sprintf("r.%s.%05d", pad, i), fmt.Sprintf(`{"px":%d}`, i))
	}
	last := fmt.Sprintf("r.%s.%05d", pad, topics-1)
	pub.cachedSeq(last, 1)

	p := hTab(t, hBrowser(t), "http://"+g.HTTPAddr()+"/healthz")
	p.startClient(`{urls: ["ws://`+g.HTTPAddr()+`/ws"], backoff: {min: 20, max: 200}}`, `{prefixes: ["r."]}`)
	p.poll("the snapshot", fmt.Sprintf(`T.n === %d`, topics+1))
	p.poll("live", p.lives()+` === 1`)
	p.eval(`T.g._ws.close(), "ok"`)
	p.poll("live again", p.lives()+` === 2`)
	if ev := p.eventsOf("cutoff", "error", "gap"); len(ev) != 0 {
		t.Fatalf("events %+v on the resume, want none", ev)
	}
	pub.send("r.warm", `2`)
	p.poll("an update after the resume", `T.ups.some(m => m.topic === "r.warm" && m.op === "update")`)
	sentAgain := atoi(t, p.eval(`String(T.n)`)) - (topics + 1) - 1
	if caps := p.eval(`String(T.g._caps.get(T.g._url).resume)`); caps != "true" {
		// The per-topic map holds only what fits in 48 KiB; the rest came again.
		t.Skipf("the gateway has no compact resume op yet ({\"op\":\"resume\",...} refused); "+
			"fallback checked: no 1009, %d of %d values sent again", sentAgain, topics+1)
	}
	if sentAgain != 0 {
		t.Fatalf("%d values sent again after the compact resume, want 0", sentAgain)
	}
}

// TestClientEpochAfterRestart: the gateway shuts down (the page sees the
// 1001 cut-off), comes back on the same port with a new epoch: the page
// reports "epoch", not a gap, and takes the new values.
func TestClientEpochAfterRestart(t *testing.T) {
	addr := testpair.FreeAddr(t)
	g := hStart(t, addr, nil)
	pub := hPublisher(t, g)
	pub.cached("t.a", `{"px":1}`)
	p := hTab(t, hBrowser(t), "http://"+addr+"/healthz")
	p.startClient(`{urls: ["ws://`+addr+`/ws"], backoff: {min: 50, max: 300}}`, `{topics: ["t.a"]}`)
	p.poll("the snapshot", `T.n === 1`)
	p.poll("live", p.lives()+` === 1`)
	epoch1 := p.updates(`true`)[0].Epoch

	g.stop()
	p.poll("the cut-off", `T.ev.some(e => e.type === "cutoff")`)
	if ev := p.eventsOf("cutoff"); ev[0].Code != float64(1001) {
		t.Fatalf("cutoff %+v, want 1001", ev)
	}
	g = hStart(t, addr, nil)
	pub = hPublisher(t, g)
	seq := pub.cached("t.a", `{"px":2}`)
	p.poll("the new value", `T.ups.some(m => m.data && m.data.px === 2)`)
	ev := p.eventsOf("epoch")
	u := p.updates(`m.data.px === 2`)[0]
	if len(ev) != 1 || ev[0].From != epoch1 || ev[0].To != u.Epoch || u.Epoch == epoch1 || u.Seq != seq {
		t.Fatalf("epoch events %+v, update %+v; want one from %s to the new epoch", ev, u, epoch1)
	}
	if gaps := p.eventsOf("gap"); len(gaps) != 0 {
		t.Fatalf("gap events %+v after a restart, want none (an epoch change is not a gap)", gaps)
	}
}

// TestClientFailover: two gateways; the first goes down and the page moves
// to the second.
func TestClientFailover(t *testing.T) {
	a := hStart(t, "127.0.0.1:0", nil)
	b := hStart(t, "127.0.0.1:0", func(c *gateway.Config) { c.Bridge.AllowedOrigins = []string{"*"} })
	pa, pb := hPublisher(t, a), hPublisher(t, b)
	pa.cached("t.a", `{"px":1}`)
	pb.cached("t.a", `{"px":1}`)
	p := hTab(t, hBrowser(t), "http://"+a.HTTPAddr()+"/healthz")
	p.startClient(`{urls: ["ws://`+a.HTTPAddr()+`/ws", "ws://`+b.HTTPAddr()+`/ws"], backoff: {min: 20, max: 200}}`, `{prefixes: ["t."]}`)
	p.poll("live on the first", p.lives()+` === 1`)
	a.stop()
	p.poll("live on the second", p.lives()+` === 2`)
	lives := []hEvent{}
	for _, e := range p.eventsOf("state") {
		if e.State == "live" {
			lives = append(lives, e)
		}
	}
	if lives[0].URL != "ws://"+a.HTTPAddr()+"/ws" || lives[1].URL != "ws://"+b.HTTPAddr()+"/ws" {
		t.Fatalf("live on %s then %s, want the first gateway then the second", lives[0].URL, lives[1].URL)
	}
	pb.send("t.a", `{"px":9}`)
	p.poll("a value from the second", `T.ups.some(m => m.data && m.data.px === 9)`)
	if gaps := p.eventsOf("gap"); len(gaps) != 0 {
		t.Fatalf("gap events %+v on failover, want an epoch change only", gaps)
	}
}

// TestClientCutoff: a close frame's code and reason reach "cutoff"; after
// 1008 or 1009 the client reconnects without the request that caused it.
func TestClientCutoff(t *testing.T) {
	browser := hBrowser(t)
	for _, tc := range []struct {
		name, send string
		code       float64
		reason     string
	}{
		{"1008 too many bad requests", `for (let i = 0; i < 20; i++) T.g._ws.send("nonsense")`, 1008, "too many bad requests"},
		{"1009 frame over the read limit", `T.g._ws.send(JSON.stringify({op: "ping", pad: "x".repeat(70 << 10)}))`, 1009, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := hStart(t, "127.0.0.1:0", nil)
			pub := hPublisher(t, g)
			pub.cached("t.a", `{"px":1}`)
			p := hTab(t, browser, "http://"+g.HTTPAddr()+"/healthz")
			p.startClient(`{urls: ["ws://`+g.HTTPAddr()+`/ws"], backoff: {min: 20, max: 200}}`, `{prefixes: ["t."]}`)
			p.poll("live", p.lives()+` === 1`)
			p.eval(tc.send + `, "ok"`)
			p.poll("live again", p.lives()+` === 2`)
			ev := p.eventsOf("cutoff")
			if len(ev) != 1 || ev[0].Code != tc.code || !strings.HasPrefix(ev[0].Reason, tc.reason) {
				t.Fatalf("cutoff events %+v, want one %v %q", ev, tc.code, tc.reason)
			}
			pub.send("t.a", `{"px":2}`)
			p.poll("values after the cut-off", `T.ups.some(m => m.data && m.data.px === 2)`)
		})
	}
}

// TestClientThrottle: throttleMs is sent as throttle_ms; a gateway that
// does not know it yet refuses it, and the client subscribes without it.
func TestClientThrottle(t *testing.T) {
	g := hStart(t, "127.0.0.1:0", nil)
	pub := hPublisher(t, g)
	pub.cached("t.a", `{"px":0}`)
	p := hTab(t, hBrowser(t), "http://"+g.HTTPAddr()+"/healthz")
	p.startClient(`{urls: ["ws://`+g.HTTPAddr()+`/ws"]}`, `{prefixes: ["t."], slow: "conflate", throttleMs: 300}`)
	p.poll("live", p.lives()+` === 1`)
	for i := 1; i <= 50; i++ {
		pub.send("t.a", fmt.Sprintf(`{"px":%d}`, i))
	}
	p.poll("the latest value", `T.ups.some(m => m.data && m.data.px === 50)`)
	n := len(p.updates(`m.op === "update"`))
	if p.eval(`String(T.g._caps.get(T.g._url).throttle)`) == "false" {
		t.Skipf("the gateway has no throttle_ms yet (refused; subscribed without it): %d updates of 50", n)
	}
	if n > 10 {
		t.Fatalf("%d updates of 50 published at once under throttleMs 300, want a few", n)
	}
}

func (p *hPage) eventsOf(types ...string) []hEvent {
	var out []hEvent
	for _, e := range p.events() {
		for _, ty := range types {
			if e.Type == ty {
				out = append(out, e)
			}
		}
	}
	return out
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
