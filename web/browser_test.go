package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mdgate/mdgate/internal/testgw"
	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
)

const wait = 20 * time.Second

// runGateway runs a demo gateway with HTTP on addr until stop is called.
func runGateway(t *testing.T, addr string) (stop func()) {
	t.Helper()
	c := testgw.Config(addr)
	c.Demo = true
	c.DemoRate = 1000
	_, stop = testgw.Start(t, c, wait)
	return stop
}

// demoPage starts chromium and a demo gateway (runGateway) on a free port
// it can restart on, and opens path there in the browser's tab, which the
// returned context ends after d. It returns the gateway's address and stop.
func demoPage(t *testing.T, path string, d time.Duration) (ctx context.Context, addr string, stop func()) {
	t.Helper()
	browser := hBrowser(t)
	addr = testpair.FreeAddr(t) // the gateway takes this port, twice
	stop = runGateway(t, addr)
	ctx, cancel := context.WithTimeout(browser, d)
	t.Cleanup(cancel)
	if _, err := chromedp.Run(ctx, chromedp.Navigate("http://"+addr+path)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	return ctx, addr, stop
}

func chromium(t *testing.T) string {
	testpeer.RequireIntegration(t, "headless chromium")
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("no chromium: `make test` installs Debian's chromium package (scripts/ensure-deps chromium)")
	return ""
}

// TestDashboardInChromium drives the dashboard in real headless chromium
// against a demo gateway: the table fills, prices change, the filter narrows
// the rows, and a gateway restart shows "reconnecting" then live data.
// MDGATE_SCREENSHOT=path saves a screenshot of the live page.
func TestDashboardInChromium(t *testing.T) {
	ctx, addr, stop := demoPage(t, "/", 3*time.Minute)
	str := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return s
	}
	rowCount := func() int {
		// The table is virtualised: only the rows in view are in the DOM.
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.mdgate ? window.mdgate.rows.size : 0`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	seqs := func() string {
		return str(`Array.from(document.querySelectorAll('#rows tr:not([hidden])')).map(tr => tr.cells[6].textContent).join(',')`)
	}
	state := func() string { return str(`document.body.dataset.conn || ''`) }

	testpeer.Eventually(t, wait, "the table to fill (300 demo instruments)", func() bool { return rowCount() >= 300 })
	before := seqs()
	testpeer.Eventually(t, wait, "prices to change", func() bool { return seqs() != before })
	if s := state(); s != "live" {
		t.Fatalf("status = %q, want live", s)
	}
	if path := os.Getenv("MDGATE_SCREENSHOT"); path != "" {
		time.Sleep(1500 * time.Millisecond)                         // let sparklines grow: this is a picture, not a check
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()) // the viewport
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Clean(path), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The filter subscribes by prefix and narrows the rows.
	str(`(() => { const f = document.getElementById('filter'); f.value = 'md.fx.'; f.dispatchEvent(new Event('change')); return 'ok' })()`)
	topics := func() []string {
		return strings.Split(str(`Array.from(document.querySelectorAll('#rows tr:not([hidden])')).map(tr => tr.dataset.topic).join(',')`), ",")
	}
	testpeer.Eventually(t, wait, "only md.fx. rows", func() bool {
		ts := topics()
		for _, topic := range ts {
			if !strings.HasPrefix(topic, "md.fx.") {
				return false
			}
		}
		return len(ts) == 10
	})

	// Kill the gateway: the page says so, then comes back live on a new one.
	stop()
	testpeer.Eventually(t, wait, `status "reconnecting"`, func() bool { return state() == "reconnecting" })
	runGateway(t, addr)
	testpeer.Eventually(t, wait, `status "live" again`, func() bool { return state() == "live" })
	before = seqs()
	testpeer.Eventually(t, wait, "live data after the reconnect", func() bool { return seqs() != before })
	if got := topics(); len(got) != 10 {
		t.Fatalf("after the reconnect the filtered table has %d rows, want 10: %s", len(got), fmt.Sprint(got))
	}
}
