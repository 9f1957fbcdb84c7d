package web_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mdgate/mdgate/internal/testpeer"
)

// wsSpy runs in the page before its own scripts: it counts the WebSockets
// opened, the close codes, each connection's bytes received, and the
// largest frame sent and the resume requests.
const wsSpy = `(() => {
	const W = window.WebSocket, send = W.prototype.send, enc = new TextEncoder();
	const S = window.__ws = {opened: 0, closes: [], recv: [], maxSend: 0, resumes: 0, sends: 0};
	window.WebSocket = class extends W {
		constructor(...a) {
			super(...a);
			const i = S.opened++;
			S.recv[i] = 0;
			this.addEventListener("message", (e) => { S.recv[i] += typeof e.data === "string" ? e.data.length : 0; });
			this.addEventListener("close", (e) => { S.closes.push(e.code); });
		}
	};
	W.prototype.send = function (d) {
		const n = typeof d === "string" ? enc.encode(d).length : d.byteLength;
		S.sends++;
		if (n > S.maxSend) S.maxSend = n;
		if (typeof d === "string" && d.startsWith('{"op":"resume"')) S.resumes++;
		return send.call(this, d);
	};
})()`

// TestDashboardLoadsBigCache: with 50,000 topics cached under md., the
// dashboard loads every row on one connection (not cut off, no reconnect),
// and after its connection drops it resumes with requests under the
// gateway's 64 KiB read limit (no 1009): nothing is sent again, and live
// updates follow.
func TestDashboardLoadsBigCache(t *testing.T) {
	const n = 50_000
	began := time.Now()
	g := hStart(t, "127.0.0.1:0", nil)
	pub := hPublisher(t, g)
	topic := func(i int) string { return fmt.Sprintf("md.big.%05d", i) }
	for i := range n {
		pub.send(topic(i), fmt.Sprintf(`{"px":%d.25,"bid":%d.2,"ask":%d.3}`, 100+i%900, 100+i%900, 100+i%900))
	}
	// The publisher's and the ingress's high-water marks (1,000,000 and
	// 100,000) hold the whole burst: nothing is dropped on the way in.
	testpeer.Eventually(t, wait, fmt.Sprintf("the gateway caching %d topics", n), func() bool {
		topics, _ := g.Cache().Len()
		return topics >= n+1 // +1: the publisher's warm-up topic
	})
	t.Logf("%d topics cached in %v", n, time.Since(began).Round(time.Millisecond))

	tab, cancel := chromedp.NewContext(hBrowser(t))
	t.Cleanup(cancel)
	ctx, tcancel := context.WithTimeout(tab, 2*time.Minute)
	t.Cleanup(tcancel)
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: wsSpy})
			return err
		}),
		chromedp.Navigate("http://"+g.HTTPAddr()+"/"),
	); err != nil {
		t.Fatal(err)
	}
	p := &hPage{t: t, ctx: ctx}
	loading := time.Now()
	p.pollFor("all rows", fmt.Sprintf(`window.mdgate && window.mdgate.rows.size === %d || (window.__ws && window.__ws.closes.length > 0)`, n), time.Minute)
	state := func() string {
		return p.eval(`JSON.stringify({rows: window.mdgate.rows.size, state: window.mdgate.state(), reconnects: window.mdgate.stats.reconnects,
			note: document.getElementById("note").textContent, ws: window.__ws, rowcount: document.getElementById("rowcount").textContent})`)
	}
	if got := p.eval(`String(window.mdgate.rows.size)`); got != fmt.Sprint(n) {
		t.Fatalf("the dashboard's connection closed before all rows were in: %s", state())
	}
	t.Logf("%d rows in the dashboard in %v", n, time.Since(loading).Round(time.Millisecond))
	p.poll("live, and the row count shown", fmt.Sprintf(`window.mdgate.state() === "live" && document.getElementById("rowcount").textContent === "%d instruments"`, n))
	if got := p.eval(`String(window.__ws.opened === 1 && window.__ws.closes.length === 0 && window.mdgate.stats.reconnects === 0 && document.getElementById("note").textContent === "")`); got != "true" {
		t.Fatalf("after the load, want one connection, never closed, no note: %s", state())
	}
	if got := p.eval(`String(window.__ws.recv[0])`); atoi(t, got) < n*40 {
		t.Fatalf("the first connection got %s bytes for %d values", got, n)
	}

	// The connection drops: the client resumes, in requests each under the
	// read limit, and the gateway sends nothing again.
	sends := atoi(t, p.eval(`String(window.__ws.sends)`))
	p.eval(`window.mdgate.client._ws.close(), "ok"`)
	p.pollFor("live again", `window.mdgate.stats.reconnects === 1 && window.mdgate.state() === "live" || window.__ws.closes.length > 1`, time.Minute)
	var ws struct {
		Opened  int   `json:"opened"`
		Closes  []int `json:"closes"`
		Recv    []int `json:"recv"`
		MaxSend int   `json:"maxSend"`
		Resumes int   `json:"resumes"`
		Sends   int   `json:"sends"`
	}
	p.json(`JSON.stringify(window.__ws)`, &ws)
	t.Logf("reconnect: %d resume requests, largest frame sent %d bytes, %d bytes received on the new connection", ws.Resumes, ws.MaxSend, ws.Recv[len(ws.Recv)-1])
	if ws.Opened != 2 || len(ws.Closes) != 1 || ws.Closes[0] == 1009 {
		t.Fatalf("after one dropped connection, want 2 opened and 1 closed (not 1009): %s", state())
	}
	if ws.MaxSend >= 64<<10 {
		t.Fatalf("largest frame sent %d bytes, want under the 64 KiB read limit", ws.MaxSend)
	}
	if min := n * len(topic(0)) / (48 << 10); ws.Resumes < min {
		t.Fatalf("%d resume requests for %d topics, want at least %d (resume points for every topic)", ws.Resumes, n, min)
	}
	if ws.Sends-sends != ws.Resumes+1 {
		t.Fatalf("%d requests on the new connection, want the %d resumes and one subscribe", ws.Sends-sends, ws.Resumes)
	}
	if got := ws.Recv[1]; got > 64<<10 {
		t.Fatalf("%d bytes received after the resume, want little (nothing changed: no values sent again)", got)
	}
	if note := p.eval(`document.getElementById("note").textContent`); note != "" {
		t.Fatalf("note %q after the resume, want none", note)
	}
	pub.send(topic(n-1), `{"px":7.5}`)
	p.poll("a live update of the last topic", fmt.Sprintf(`window.mdgate.rows.get(%q).px === 7.5`, topic(n-1)))
	if gaps := p.eval(`String(window.mdgate.stats.gaps)`); gaps != "0" {
		t.Fatalf("%s gaps, want 0", gaps)
	}
	t.Logf("whole test %v", time.Since(began).Round(time.Millisecond))
}

// pollFor is poll with its own time limit.
func (p *hPage) pollFor(what, cond string, within time.Duration) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(within))); err != nil {
		p.t.Fatalf("waiting for %s (%s): %v", what, cond, err)
	}
}
