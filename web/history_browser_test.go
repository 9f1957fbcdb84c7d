package web_test

import (
	"fmt"
	"testing"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/testrelay"
	"github.com/mdgate/mdgate/lvc"
)

// mdgate.js and the dashboard against a gateway that keeps a per-topic
// history (lvc.Config.History, --history): a client that comes back after
// missing updates gets every one of them replayed, in order, or, past the
// history's window, a gap of exactly what is gone.

// historyGateway runs a gateway with the given history rules behind a relay
// that can cut the network.
func historyGateway(t *testing.T, rules ...lvc.HistoryRule) (*hGateway, *testrelay.Relay, *hPub) {
	t.Helper()
	g := hStart(t, "127.0.0.1:0", func(c *gateway.Config) { c.Cache.History = rules })
	return g, testrelay.New(t, g.HTTPAddr()), hPublisher(t, g)
}

// hReplay is an entry of T.ups with the fields of a replayed update.
type hReplay struct {
	hUpdate
	Replay    bool `json:"replay"`
	Recovered bool `json:"recovered"`
}

func (p *hPage) replays(filter string) []hReplay {
	p.t.Helper()
	var ups []hReplay
	p.json(`JSON.stringify(T.ups.filter(m => `+filter+`))`, &ups)
	return ups
}

// recordRecovered adds the "recovered" events to T.ev (clientPage records
// the others); the first connection has nothing to recover.
func (p *hPage) recordRecovered() {
	p.eval(`T.g.on("recovered", x => T.ev.push(Object.assign({type: "recovered"}, x))), "ok"`)
}

// away cuts the network (the client's connection dropped, reconnects
// refused) while publish runs and the gateway caches topic up to seq, then
// lets the client back and waits for its next live state.
func away(p *hPage, relay *testrelay.Relay, pub *hPub, lives int, topic string, seq uint64, publish func()) {
	p.t.Helper()
	relay.Cut()
	p.poll("reconnecting", `T.g.state === "reconnecting"`)
	publish()
	pub.cachedSeq(topic, seq)
	relay.Heal()
	p.poll("live again", fmt.Sprintf(`%s === %d`, p.lives(), lives))
}

// checkReplay checks that ups are seqs from..to of topic, each a replayed
// update carrying {"px":seq}, the first flagged as first.
func checkReplay(t *testing.T, ups []hReplay, topic string, from, to uint64, first func(hReplay) bool) {
	t.Helper()
	if len(ups) != int(to-from+1) {
		t.Fatalf("%d values of %s, want the %d replayed (seqs %d..%d): %+v", len(ups), topic, to-from+1, from, to, ups)
	}
	for i, u := range ups {
		want := from + uint64(i)
		if u.Op != "update" || !u.Replay || u.Seq != want || string(u.Data) != fmt.Sprintf(`{"px":%d}`, want) {
			t.Fatalf("value %d of %s = %+v, want a replayed update seq %d {\"px\":%d}", i, topic, u, want, want)
		}
		if i == 0 && !first(u) {
			t.Fatalf("first replayed %+v: not flagged as it should be", u)
		}
		if i > 0 && (u.Recovered || u.Gap) {
			t.Fatalf("replayed seq %d flagged %+v; only the first may be", want, u)
		}
	}
}

// TestClientRecoversFromHistory: a client away for 50 updates of a topic
// with history gets all 50 replayed in order (replay:true), a "recovered"
// event, no gap, nothing sent again; the replayed updates advance its seq,
// so a second time away resumes after the last one replayed; live updates
// follow each replay with no duplicate and no hole.
func TestClientRecoversFromHistory(t *testing.T) {
	const away1, away2 = 50, 7
	_, relay, pub := historyGateway(t, lvc.HistoryRule{Prefix: "h.", MaxCount: 1000, MaxBytes: 1 << 20})
	seq := pub.cached("h.a", `{"px":1}`) // a fresh gateway: seq 1, so px == seq below
	if seq != 1 {
		t.Fatalf("first seq of h.a %d, want 1", seq)
	}
	pub.cached("h.b", `{"px":1}`)
	p := hTab(t, hBrowser(t), "http://"+relay.Addr()+"/healthz")
	p.startClient(`{urls: ["ws://`+relay.Addr()+`/ws"], backoff: {min: 20, max: 200}}`, `{prefixes: ["h."]}`)
	p.recordRecovered()
	p.poll("live", p.lives()+` === 1`)
	p.poll("the snapshot", `T.ups.some(m => m.topic === "h.a") && T.ups.some(m => m.topic === "h.b")`)
	pub.send("h.a", `{"px":2}`)
	p.poll("a live update", `T.ups.some(m => m.topic === "h.a" && m.seq === 2)`)

	// 1. Away for seqs 3..52.
	away(p, relay, pub, 2, "h.a", 2+away1, func() {
		for s := 3; s <= 2+away1; s++ {
			pub.send("h.a", fmt.Sprintf(`{"px":%d}`, s))
		}
	})
	p.poll("the replay", fmt.Sprintf(`T.ups.some(m => m.topic === "h.a" && m.seq === %d)`, 2+away1))
	checkReplay(t, p.replays(`m.topic === "h.a" && m.seq > 2`), "h.a", 3, 2+away1, func(u hReplay) bool { return u.Recovered && !u.Gap })
	if ev := p.eventsOf("recovered", "gap", "epoch", "error"); len(ev) != 1 || ev[0].Type != "recovered" || ev[0].Topic != "h.a" {
		t.Fatalf("events %+v after the reconnect, want one recovered for h.a", ev)
	}
	if got := p.eval(`JSON.stringify(T.g.last("h.a").seq)`); got != fmt.Sprint(2+away1) {
		t.Fatalf("last(h.a).seq = %s after the replay, want %d", got, 2+away1)
	}

	// 2. Away again at once (the last seq it holds came from the replay)
	// for 53..59: the replay starts after the last replayed update.
	last := uint64(2 + away1 + away2)
	away(p, relay, pub, 3, "h.a", last, func() {
		for s := 3 + away1; s <= int(last); s++ {
			pub.send("h.a", fmt.Sprintf(`{"px":%d}`, s))
		}
	})
	p.poll("the second replay", fmt.Sprintf(`T.ups.some(m => m.topic === "h.a" && m.seq === %d)`, last))
	checkReplay(t, p.replays(fmt.Sprintf(`m.topic === "h.a" && m.seq > %d`, 2+away1)), "h.a", 3+away1, last, func(u hReplay) bool { return u.Recovered && !u.Gap })
	if ev := p.eventsOf("recovered"); len(ev) != 2 || ev[1].Topic != "h.a" {
		t.Fatalf("recovered events %+v, want a second for h.a", ev)
	}

	// Live again, after the replay: seq last+1, not a replay.
	pub.send("h.a", fmt.Sprintf(`{"px":%d}`, last+1))
	p.poll("a live update after the replays", fmt.Sprintf(`T.ups.some(m => m.topic === "h.a" && m.seq === %d)`, last+1))
	all := p.replays(`m.topic === "h.a"`)
	for i, u := range all {
		if u.Seq != uint64(i+1) {
			t.Fatalf("h.a values by seq: %d at %d, want every seq 1..%d once, in order", u.Seq, i, last+1)
		}
	}
	if u := all[len(all)-1]; u.Replay || u.Recovered || u.Op != "update" {
		t.Fatalf("live update after the replay %+v, want no replay flags", u)
	}
	if got := p.replays(`m.topic === "h.b"`); len(got) != 1 {
		t.Fatalf("h.b sent %d times, want once (it did not change)", len(got))
	}
	if ev := p.eventsOf("gap", "epoch", "error", "cutoff"); len(ev) != 0 {
		t.Fatalf("events %+v, want no gap, epoch, error or cut-off", ev)
	}
}

// TestClientGapPastHistory: away for more updates than the history keeps
// (MaxCount 5 of 20), the client gets a "gap" of exactly the 15 gone, then
// the 5 kept, replayed in order, and no "recovered"; a topic without
// history falls back to its latest value, a snapshot with its own gap.
func TestClientGapPastHistory(t *testing.T) {
	const kept, missed = 5, 20
	_, relay, pub := historyGateway(t, lvc.HistoryRule{Prefix: "h.", MaxCount: kept, MaxBytes: 1 << 20})
	if seq := pub.cached("h.a", `{"px":1}`); seq != 1 {
		t.Fatalf("first seq of h.a %d, want 1", seq)
	}
	pub.cached("x.a", `{"px":1}`) // no history rule
	p := hTab(t, hBrowser(t), "http://"+relay.Addr()+"/healthz")
	p.startClient(`{urls: ["ws://`+relay.Addr()+`/ws"], backoff: {min: 20, max: 200}}`, `{prefixes: ["h.", "x."]}`)
	p.recordRecovered()
	p.poll("live", p.lives()+` === 1`)
	p.poll("the snapshot", `T.ups.some(m => m.topic === "h.a") && T.ups.some(m => m.topic === "x.a")`)

	away(p, relay, pub, 2, "h.a", 1+missed, func() {
		for s := 2; s <= 1+missed; s++ {
			pub.send("h.a", fmt.Sprintf(`{"px":%d}`, s))
		}
		for s := 2; s <= 4; s++ {
			pub.send("x.a", fmt.Sprintf(`{"px":%d}`, s))
		}
		pub.cachedSeq("x.a", 4)
	})
	p.poll("the replay", fmt.Sprintf(`T.ups.some(m => m.topic === "h.a" && m.seq === %d)`, 1+missed))
	p.poll("x.a's latest", `T.ups.some(m => m.topic === "x.a" && m.seq === 4)`)
	gone := uint64(missed - kept) // seqs 2..16
	checkReplay(t, p.replays(`m.topic === "h.a" && m.seq > 1`), "h.a", 2+gone, 1+missed, func(u hReplay) bool {
		return u.Gap && u.Missed == int(gone) && !u.Recovered
	})
	x := p.replays(`m.topic === "x.a"`)
	if len(x) != 2 || x[1].Op != "snapshot" || x[1].Seq != 4 || !x[1].Gap || x[1].Missed != 2 || x[1].Replay {
		t.Fatalf("x.a values %+v, want the snapshot then its latest as a snapshot with gap, missed 2", x)
	}
	gaps := map[string]int{}
	for _, e := range p.eventsOf("gap") {
		gaps[e.Topic] += e.Missed
	}
	if len(p.eventsOf("gap")) != 2 || gaps["h.a"] != int(gone) || gaps["x.a"] != 2 {
		t.Fatalf("gap events %+v, want one for h.a of %d and one for x.a of 2", p.eventsOf("gap"), gone)
	}
	if ev := p.eventsOf("recovered", "epoch", "error"); len(ev) != 0 {
		t.Fatalf("events %+v, want no recovered (updates were lost), epoch or error", ev)
	}
	pub.send("h.a", fmt.Sprintf(`{"px":%d}`, missed+2))
	p.poll("live after the gap", fmt.Sprintf(`T.ups.some(m => m.topic === "h.a" && m.seq === %d && !m.replay)`, missed+2))
}

// TestDashboardMarksRecoveries: after a reconnect the dashboard counts the
// recovered instruments next to the gaps and marks their rows, "recovered"
// where the history replayed every missed update, "gapped" where some were
// gone; the marks go with the next reconnect.
func TestDashboardMarksRecoveries(t *testing.T) {
	_, relay, pub := historyGateway(t,
		lvc.HistoryRule{Prefix: "md.", MaxCount: 1000, MaxBytes: 1 << 20},
		lvc.HistoryRule{Prefix: "md.g.", MaxCount: 2, MaxBytes: 1 << 20})
	pub.cached("md.r", `{"px":1}`)
	pub.cached("md.g.x", `{"px":1}`)
	pub.cached("md.q", `{"px":1}`)
	p := hTab(t, hBrowser(t), "http://"+relay.Addr()+"/")
	p.poll("the rows", rowJS("md.r")+` && `+rowJS("md.g.x")+` && `+rowJS("md.q")+` && document.body.dataset.conn === "live"`)

	relay.Cut()
	p.poll("reconnecting", `document.body.dataset.conn === "reconnecting"`)
	for i := 2; i <= 6; i++ {
		pub.send("md.r", fmt.Sprintf(`{"px":%d}`, i))
		pub.send("md.g.x", fmt.Sprintf(`{"px":%d}`, i))
	}
	pub.cachedSeq("md.r", 6)
	pub.cachedSeq("md.g.x", 6)
	relay.Heal()
	p.poll("the marks", rowJS("md.r")+`.className === "recovered" && `+rowJS("md.g.x")+`.className === "gapped" && `+
		rowJS("md.r")+`.cells[1].textContent === "6.0000" && `+rowJS("md.g.x")+`.cells[1].textContent === "6.0000"`)
	p.poll("the counters", `document.getElementById("recovered").textContent === "1" && document.getElementById("gaps").textContent === "1"`)
	if c := p.eval(rowJS("md.q") + `.className`); c != "" {
		t.Fatalf("md.q (unchanged) class %q, want none", c)
	}
	if got := p.eval(rowJS("md.r") + `.title`); got != "recovered after the reconnect: 5 missed updates replayed" {
		t.Fatalf("md.r title %q", got)
	}
	if got := p.eval(rowJS("md.g.x") + `.title`); got != "gap: 3 updates lost, 2 replayed" {
		t.Fatalf("md.g.x title %q", got)
	}

	// The next reconnect, with nothing missed, takes the marks off.
	relay.Cut()
	p.poll("reconnecting", `document.body.dataset.conn === "reconnecting"`)
	relay.Heal()
	p.poll("live again", `window.mdgate.stats.reconnects === 2`)
	p.poll("the marks gone", rowJS("md.r")+`.className === "" && `+rowJS("md.g.x")+`.className === ""`)
	if s := p.eval(`JSON.stringify([window.mdgate.stats.recovered, window.mdgate.stats.gaps])`); s != "[1,1]" {
		t.Fatalf("[recovered, gaps] = %s after a reconnect with nothing missed, want [1,1]", s)
	}
}
