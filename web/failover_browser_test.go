package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/web"
)

// mdgate.js against the WebSocket side of a failover pair (docs/ha.md,
// docs/protocol.md): terms, "diverged" and the standby's refusal and close.
//
// The "gateways" here are fakes: a few lines of Go (gorilla) that serve
// /mdgate.js and, on /ws, write the frames each test crafts, exactly as
// bridge encodes them ("term", "diverged":true, close 1012 "standby", 503
// "passive"). That is enough for the client's logic, which is what these
// tests are about, and it makes the orders that a real pair gives only
// under a race (a value stamped again under a higher term, a resume past the
// new active's latest) deterministic. The gateway's side is tested with real
// pairs in cmd/gateway/ha_test.go (TestFailoverKill9, TestFailoverStopCont).

const fakeEpoch = "5290101cf4376fd4"

// fakeGW is one fake gateway: an HTTP server with /mdgate.js, a blank page
// at / and /ws.
type fakeGW struct {
	srv    *httptest.Server
	refuse atomic.Bool  // /ws answers 503 "passive", as a standby does
	hits   atomic.Int32 // handshakes asked for on /ws, refused or not
	conns  chan *fakeConn
	mu     sync.Mutex
	all    []*fakeConn
}

func newFakeGW(t *testing.T) *fakeGW {
	t.Helper()
	f := &fakeGW{conns: make(chan *fakeConn, 16)}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.Handle("/mdgate.js", web.Handler())
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if f.refuse.Load() {
			http.Error(w, "passive: this gateway is the standby of a failover pair; connect to the active one", http.StatusServiceUnavailable)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		fc := &fakeConn{c: c, in: make(chan fakeMsg, 256), done: make(chan struct{})}
		f.mu.Lock()
		f.all = append(f.all, fc)
		f.mu.Unlock()
		go fc.read()
		select {
		case f.conns <- fc:
		default:
			c.Close()
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>fake gateway</title>")
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, fc := range f.all {
			fc.c.Close()
			<-fc.done
		}
	})
	return f
}

func (f *fakeGW) wsURL() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws" }

// accept waits, within d, for the client's next connection.
func (f *fakeGW) accept(t *testing.T, d time.Duration, what string) *fakeConn {
	t.Helper()
	select {
	case fc := <-f.conns:
		return fc
	case <-time.After(d):
		t.Fatalf("no connection to %s within %v: %s", f.wsURL(), d, what)
		return nil
	}
}

// fakeConn is one client connection of a fakeGW.
type fakeConn struct {
	c    *websocket.Conn
	in   chan fakeMsg // what the client sent, in order
	done chan struct{}
}

// fakeMsg is a client request.
type fakeMsg struct {
	Op    string            `json:"op"`
	ID    json.RawMessage   `json:"id"`
	Epoch string            `json:"epoch"`
	Term  uint16            `json:"term"`
	Seqs  map[string]uint64 `json:"seqs"`
	raw   string
}

func (fc *fakeConn) read() {
	defer close(fc.done)
	for {
		_, b, err := fc.c.ReadMessage()
		if err != nil {
			return
		}
		m := fakeMsg{raw: string(b)}
		json.Unmarshal(b, &m)
		fc.in <- m
	}
}

func (fc *fakeConn) next(t *testing.T) fakeMsg {
	t.Helper()
	select {
	case m := <-fc.in:
		return m
	case <-fc.done:
		t.Fatal("the client closed the connection")
	case <-time.After(wait):
		t.Fatal("no request from the client")
	}
	return fakeMsg{}
}

// send writes lines as one frame, as the gateway batches messages.
func (fc *fakeConn) send(t *testing.T, lines ...string) {
	t.Helper()
	if err := fc.c.WriteMessage(websocket.TextMessage, []byte(strings.Join(lines, "\n"))); err != nil {
		t.Fatal(err)
	}
}

// handshake answers the client's requests up to its subscribe, as the
// gateway does (an ack each), and returns its resume request, if any.
func (fc *fakeConn) handshake(t *testing.T) *fakeMsg {
	t.Helper()
	var resume *fakeMsg
	for {
		m := fc.next(t)
		switch m.Op {
		case "resume":
			resume = &m
			fc.send(t, fmt.Sprintf(`{"op":"ack","id":%s,"req":"resume","held":%d}`, m.ID, len(m.Seqs)))
		case "subscribe":
			fc.send(t, fmt.Sprintf(`{"op":"ack","id":%s,"req":"subscribe","prefixes":["t."],"topics":[],"slow":"disconnect","snapshot":0,"subscriptions":1}`, m.ID))
			return resume
		default:
			t.Fatalf("request %s before the subscribe", m.raw)
		}
	}
}

// closeWith closes the connection as the gateway does: a close frame, then
// the client's answer.
func (fc *fakeConn) closeWith(t *testing.T, code int, reason string) {
	t.Helper()
	if err := fc.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fc.done:
	case <-time.After(wait):
		t.Fatal("the client did not answer the close frame")
	}
	fc.c.Close()
}

// fakeValue is an update or snapshot as bridge encodes it: "term" when not
// 0, then extra (such as `,"diverged":true`); data {"px":seq}.
func fakeValue(op, topic string, seq, term uint64, extra string) string {
	t := ""
	if term != 0 {
		t = fmt.Sprintf(`,"term":%d`, term)
	}
	return fmt.Sprintf(`{"op":%q,"topic":%q,"seq":%d,"epoch":%q,"ts":%d%s%s,"data":{"px":%d}}`,
		op, topic, seq, fakeEpoch, time.Now().UnixMicro(), t, extra, seq)
}

// hTermUpdate is an entry of T.ups with the failover fields.
type hTermUpdate struct {
	hUpdate
	Term     uint64 `json:"term"`
	Diverged bool   `json:"diverged"`
}

func (p *hPage) termUpdates(filter string) []hTermUpdate {
	p.t.Helper()
	var ups []hTermUpdate
	p.json(`JSON.stringify(T.ups.filter(m => `+filter+`))`, &ups)
	return ups
}

// hDiverged is a "diverged" event.
type hDiverged struct {
	Topic    string `json:"topic"`
	From, To struct {
		Seq  uint64 `json:"seq"`
		Term uint64 `json:"term"`
	}
}

// recordDiverged keeps the "diverged" events in T.div (their from and to
// are objects, not the strings of T.ev's epoch events).
func (p *hPage) recordDiverged() {
	p.eval(`T.div = [], T.g.on("diverged", x => T.div.push(x)), "ok"`)
}

func (p *hPage) diverged() []hDiverged {
	p.t.Helper()
	var d []hDiverged
	p.json(`JSON.stringify(T.div)`, &d)
	return d
}

func (d hDiverged) String() string {
	return fmt.Sprintf("%s (%d, %d) -> (%d, %d)", d.Topic, d.From.Term, d.From.Seq, d.To.Term, d.To.Seq)
}

// checkValues checks the (op, term, seq, diverged) of ups.
func checkValues(t *testing.T, what string, ups []hTermUpdate, want ...hTermUpdate) {
	t.Helper()
	ok := len(ups) == len(want)
	for i := 0; ok && i < len(ups); i++ {
		u, w := ups[i], want[i]
		ok = u.Op == w.Op && u.Term == w.Term && u.Seq == w.Seq && u.Diverged == w.Diverged &&
			string(u.Data) == fmt.Sprintf(`{"px":%d}`, u.Seq)
	}
	if !ok {
		show := func(us []hTermUpdate) string {
			var s []string
			for _, u := range us {
				s = append(s, fmt.Sprintf("%s (%d, %d) diverged=%v", u.Op, u.Term, u.Seq, u.Diverged))
			}
			return "[" + strings.Join(s, "; ") + "]"
		}
		t.Fatalf("%s: %s, want %s", what, show(ups), show(want))
	}
}

func tv(op string, term, seq uint64, diverged bool) hTermUpdate {
	return hTermUpdate{hUpdate: hUpdate{Op: op, Seq: seq}, Term: term, Diverged: diverged}
}

// TestClientTermDivergence: a value of a higher term whose seq is not past
// the client's (a new active stamped those seqs again over updates it never
// got) is taken, resets the topic's seq and fires "diverged" (not "gap");
// the seqs go on from it (a jump after it is a gap of the right size);
// within a term a value already seen is still dropped, and so is one of a
// lower term not past the client's seq. Values without "term" are term 0.
func TestClientTermDivergence(t *testing.T) {
	f := newFakeGW(t)
	p := hTab(t, hBrowser(t), f.srv.URL+"/")
	p.startClient(`{urls: ["`+f.wsURL()+`"], backoff: {min: 20, max: 200}}`, `{prefixes: ["t."]}`)
	p.recordDiverged()
	fc := f.accept(t, wait, "the first connection")
	if r := fc.handshake(t); r != nil {
		t.Fatalf("the first connection resumed: %s", r.raw)
	}
	fc.send(t, fakeValue("snapshot", "t.a", 10, 1, ""), fakeValue("snapshot", "t.z", 3, 0, ""))
	p.poll("live", p.lives()+` === 1`)
	fc.send(t,
		fakeValue("update", "t.a", 11, 1, ""),
		fakeValue("update", "t.a", 9, 2, ""),  // higher term, seq not past 11: diverged
		fakeValue("update", "t.a", 10, 2, ""), // goes on from 9: no gap
		fakeValue("update", "t.a", 10, 2, ""), // seen: dropped
		fakeValue("update", "t.a", 10, 1, ""), // lower term, not past 10: dropped
		fakeValue("update", "t.a", 12, 2, ""), // 11 missed: a gap of 1
		fakeValue("update", "t.end", 1, 0, ""),
	)
	p.poll("the last value", `T.ups.some(m => m.topic === "t.end")`)

	checkValues(t, "values of t.a", p.termUpdates(`m.topic === "t.a"`),
		tv("snapshot", 1, 10, false), tv("update", 1, 11, false), tv("update", 2, 9, true),
		tv("update", 2, 10, false), tv("update", 2, 12, false))
	checkValues(t, "values of t.z", p.termUpdates(`m.topic === "t.z"`), tv("snapshot", 0, 3, false))
	if d := p.diverged(); len(d) != 1 || d[0].String() != "t.a (1, 11) -> (2, 9)" {
		t.Fatalf("diverged events %v, want one: t.a (1, 11) -> (2, 9)", d)
	}
	if gaps := p.eventsOf("gap", "epoch", "error"); len(gaps) != 1 || gaps[0].Type != "gap" || gaps[0].Topic != "t.a" || gaps[0].Missed != 1 {
		t.Fatalf("events %+v, want one gap of t.a with 1 missed (12 after 10), the divergence not counted as one", gaps)
	}
	if got, want := p.eval(`JSON.stringify(T.g.last("t.a"))`), fmt.Sprintf(`{"seq":12,"epoch":%q,"term":2}`, fakeEpoch); got != want {
		t.Fatalf("last(t.a) = %s, want %s", got, want)
	}
	if got, want := p.eval(`JSON.stringify(T.g.last("t.z"))`), fmt.Sprintf(`{"seq":3,"epoch":%q}`, fakeEpoch); got != want {
		t.Fatalf("last(t.z) = %s, want %s (no term from a gateway that is not one of a pair)", got, want)
	}
}

// TestClientDivergedSnapshotOnResume: the client holds t.a at seq 12 from
// the old active and resumes on the new one, whose latest is 10 (it never
// got 11 and 12): the gateway sends its latest as a snapshot with
// "diverged":true, and the client takes it although its seq is lower
// ("diverged", not dropped as seen), then goes on from it with the new
// term's updates, no gap. A second such value of the topic on the same
// connection (an overlapping subscription's, resumed from the seq held
// before the first arrived) is not a divergence again.
func TestClientDivergedSnapshotOnResume(t *testing.T) {
	a, b := newFakeGW(t), newFakeGW(t)
	p := hTab(t, hBrowser(t), a.srv.URL+"/")
	p.startClient(`{urls: ["`+a.wsURL()+`", "`+b.wsURL()+`"], backoff: {min: 20, max: 200}}`, `{prefixes: ["t."]}`)
	p.recordDiverged()
	fa := a.accept(t, wait, "the first connection")
	fa.handshake(t)
	fa.send(t, fakeValue("snapshot", "t.a", 10, 1, ""), fakeValue("snapshot", "t.b", 5, 1, ""))
	fa.send(t, fakeValue("update", "t.a", 11, 1, ""), fakeValue("update", "t.a", 12, 1, ""))
	p.poll("t.a at 12", `T.g.last("t.a") && T.g.last("t.a").seq === 12`)
	n := atoi(t, p.eval(`String(T.n)`))

	fa.closeWith(t, 1001, "shutting down")
	fb := b.accept(t, wait, "the reconnect to the second")
	r := fb.handshake(t)
	if r == nil || r.Epoch != fakeEpoch || r.Term != 1 || len(r.Seqs) != 2 || r.Seqs["t.a"] != 12 || r.Seqs["t.b"] != 5 {
		t.Fatalf("resume on the second: %+v, want epoch %s term 1 seqs t.a 12, t.b 5 (the term lets the gateway see a divergence)", r, fakeEpoch)
	}
	fb.send(t,
		fakeValue("snapshot", "t.a", 10, 1, `,"diverged":true`),
		fakeValue("update", "t.a", 11, 2, ""),
		fakeValue("snapshot", "t.a", 10, 1, `,"diverged":true`), // an overlapping subscription's: seen
		fakeValue("update", "t.end", 1, 2, ""),
	)
	p.poll("the last value", `T.ups.some(m => m.topic === "t.end")`)

	checkValues(t, "values of t.a after the resume", p.termUpdates(fmt.Sprintf(`m.topic === "t.a" && T.ups.indexOf(m) >= %d`, n)),
		tv("snapshot", 1, 10, true), tv("update", 2, 11, false))
	if d := p.diverged(); len(d) != 1 || d[0].String() != "t.a (1, 12) -> (1, 10)" {
		t.Fatalf("diverged events %v, want one: t.a (1, 12) -> (1, 10)", d)
	}
	if ev := p.eventsOf("gap", "epoch", "error"); len(ev) != 0 {
		t.Fatalf("events %+v, want none (a divergence is neither a gap nor an epoch)", ev)
	}
	if got, want := p.eval(`JSON.stringify(T.g.last("t.a"))`), fmt.Sprintf(`{"seq":11,"epoch":%q,"term":2}`, fakeEpoch); got != want {
		t.Fatalf("last(t.a) = %s, want %s", got, want)
	}
}

// TestClientStandbyMovesOnAtOnce: three gateways, A active, B a standby
// (503 "passive"), C the other one. A closes with 1012 "standby": the
// client goes to B at once, is refused, goes to C at once and resumes there
// with the seqs it holds, all without its backoff, which the test makes 29.7 s
// (backoff min 30 s, Math.random pinned at 0.99). Then C closes with 1012
// "standby" while A and B refuse: A and B are each tried once at once, then
// the client backs off instead of going round the list.
func TestClientStandbyMovesOnAtOnce(t *testing.T) {
	a, b, c := newFakeGW(t), newFakeGW(t), newFakeGW(t)
	b.refuse.Store(true)
	p := hTab(t, hBrowser(t), a.srv.URL+"/")
	p.eval(`Math.random = () => 0.99, "ok"`)
	p.startClient(fmt.Sprintf(`{urls: [%q, %q, %q], backoff: {min: 30000, max: 30000}}`, a.wsURL(), b.wsURL(), c.wsURL()), `{prefixes: ["t."]}`)
	fa := a.accept(t, wait, "the first connection")
	fa.handshake(t)
	fa.send(t, fakeValue("snapshot", "t.a", 7, 1, ""))
	p.poll("live on A", p.lives()+` === 1`)

	const quick = 5 * time.Second // the backoff would be 29.7 s
	closed := time.Now()
	fa.closeWith(t, 1012, "standby")
	fc := c.accept(t, quick, "1012 standby then B's 503 should move on at once, without the backoff")
	r := fc.handshake(t)
	took := time.Since(closed)
	if b.hits.Load() != 1 {
		t.Fatalf("B asked %d times, want once (refused) on the way to C", b.hits.Load())
	}
	if r == nil || r.Epoch != fakeEpoch || len(r.Seqs) != 1 || r.Seqs["t.a"] != 7 {
		t.Fatalf("resume on C: %+v, want epoch %s seqs t.a 7", r, fakeEpoch)
	}
	p.poll("live on C", p.lives()+` === 2`)
	var lives []string
	for _, e := range p.eventsOf("state") {
		if e.State == "live" {
			lives = append(lives, e.URL)
		}
	}
	if len(lives) != 2 || lives[0] != a.wsURL() || lives[1] != c.wsURL() {
		t.Fatalf("live on %v, want A then C", lives)
	}
	if ev := p.eventsOf("cutoff"); len(ev) != 1 || ev[0].Code != float64(1012) || ev[0].Reason != "standby" {
		t.Fatalf("cutoff events %+v, want one 1012 standby", ev)
	}
	t.Logf("from A's 1012 to C's resume: %v", took)

	// Nobody active: one round at once, then the backoff.
	a.refuse.Store(true)
	fc.closeWith(t, 1012, "standby")
	p.poll("the backoff after A and B refused", `T.g.state === "reconnecting" && T.g._attempt === 1 && T.g._timer !== null`)
	if ha, hb, hc := a.hits.Load(), b.hits.Load(), c.hits.Load(); ha != 2 || hb != 2 || hc != 1 {
		t.Fatalf("handshakes asked A %d, B %d, C %d; want A and B once more, C not again", ha, hb, hc)
	}
}

// TestDashboardGatewaysParam: /?gateways=host:port,... gives the dashboard's
// client the page's own gateway first, then each one listed (a bare
// host:port becomes its /ws; a full ws:// URL is kept; duplicates dropped),
// so it moves to the other gateway of a pair when its own is gone.
func TestDashboardGatewaysParam(t *testing.T) {
	addr := testpair.FreeAddr(t)
	hStart(t, addr, nil)
	p := hTab(t, hBrowser(t), "http://"+addr+"/?gateways=127.0.0.1:1,%20ws://other:2/ws,127.0.0.1:1")
	p.poll("the client made", `window.mdgate && window.mdgate.client !== undefined`)
	got := p.eval(`JSON.stringify(window.mdgate.client.urls)`)
	want := `["ws://` + addr + `/ws","ws://127.0.0.1:1/ws","ws://other:2/ws"]`
	if got != want {
		t.Errorf("urls with ?gateways = %s, want %s", got, want)
	}
}
