package web_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/bridge"
	"github.com/mdgate/mdgate/internal/testgw"
)

// opsPoll waits in the page for a JavaScript predicate, failing with what.
func opsPoll(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(wait))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, js, err)
	}
}

// TestOpsPageInChromium drives /ops in real headless chromium against a demo
// gateway: WebSocket clients and ingress msgs/s go non-zero once a client
// connects; a gateway that goes away is shown as an error with the age of
// the last sample still ticking, and a new one is picked up (new epoch).
// MDGATE_OPS_SCREENSHOT=path saves a full-page screenshot (docs/ops.png).
func TestOpsPageInChromium(t *testing.T) {
	ctx, addr, stop := demoPage(t, "/ops", 2*time.Minute)
	value := func(id string) string {
		return `(+(document.getElementById("` + id + `").dataset.value || "NaN"))`
	}

	opsPoll(t, ctx, "live, no WebSocket client yet",
		`document.body.dataset.state === "live" && `+value("ws-clients")+` === 0`)

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","id":1,"prefixes":["md."]}`)); err != nil {
		t.Fatal(err)
	}
	go func() { // read everything, so the client is never cut off as slow
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	opsPoll(t, ctx, "ingress msgs/s, deliveries/s and one WebSocket client",
		value("ingress-rate")+` > 0 && `+value("deliveries-rate")+` > 0 && `+value("ws-clients")+` === 1`)
	opsPoll(t, ctx, "the demo cache (300 topics) and a fan-out lag p99",
		value("cache-topics")+` === 300 && `+value("lag-p99-all")+` > 0 && document.getElementById("epoch").textContent.length === 16`)

	if path := os.Getenv("MDGATE_OPS_SCREENSHOT"); path != "" {
		// A picture, not a check: let the sparklines cover 20 seconds.
		opsPoll(t, ctx, "20 s of sparkline",
			`document.querySelector("#ingress-spark polyline").getAttribute("points").split(" ").length >= 20 && `+value("lag-p99")+` > 0`)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Clean(path), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	epoch, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("epoch").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	// The gateway goes away: the page says so and keeps counting the age of
	// its last sample (it is not frozen).
	stop()
	opsPoll(t, ctx, "the fetch error shown",
		`document.body.dataset.state === "error" && !document.getElementById("error").hidden && document.getElementById("error").textContent.includes("/api/ops")`)
	opsPoll(t, ctx, "the age of the last sample ticking", `/updated [1-9][0-9]* s ago/.test(document.getElementById("updated").textContent)`)

	// A new gateway (a new epoch) on the same address: live again.
	runGateway(t, addr)
	opsPoll(t, ctx, "live on the new gateway",
		`document.body.dataset.state === "live" && document.getElementById("epoch").textContent !== "`+epoch+`" && `+value("ingress-rate")+` > 0`)
}

// TestOpsPageWithAuthInChromium: with JWT auth on, /ops without a token and
// with a token lacking the ops claim says "unauthorized" (not a frozen
// page); /ops?token=<JWT with "ops": true> goes live.
func TestOpsPageWithAuthInChromium(t *testing.T) {
	browser := hBrowser(t)
	secret := []byte("0123456789abcdef0123456789abcdef")
	auth, err := bridge.NewHMACAuth(secret)
	if err != nil {
		t.Fatal(err)
	}
	c := testgw.Config("127.0.0.1:0")
	c.Demo = true
	c.DemoRate = 500
	c.Bridge.Auth = auth
	g, _ := testgw.Start(t, c, wait)
	token := func(ops bool) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, bridge.Claims{Ops: ops, Topics: []string{"md."},
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	ctx, tcancel := context.WithTimeout(browser, time.Minute)
	defer tcancel()
	base := "http://" + g.HTTPAddr() + "/ops"
	for _, tc := range []struct{ name, url, js string }{
		{"no token", base, `document.body.dataset.state === "unauthorized" && document.getElementById("error").textContent.includes("HTTP 401")`},
		{"no ops claim", base + "?token=" + token(false), `document.body.dataset.state === "unauthorized" && document.getElementById("error").textContent.includes("HTTP 403")`},
		{"ops claim", base + "?token=" + token(true), `document.body.dataset.state === "live" && +document.getElementById("ingress-rate").dataset.value > 0`},
	} {
		if _, err := chromedp.Run(ctx, chromedp.Navigate(tc.url)); err != nil {
			t.Fatalf("%s: navigate: %v", tc.name, err)
		}
		opsPoll(t, ctx, tc.name, tc.js)
	}
}
