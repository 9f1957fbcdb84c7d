package web_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/gateway"
	"github.com/mdgate/mdgate/internal/testpeer"
)

const wait = 20 * time.Second

// runGateway runs a demo gateway with HTTP on addr until stop is called.
func runGateway(t *testing.T, addr string) (stop func()) {
	t.Helper()
	c := gateway.DefaultConfig()
	c.HTTP = addr
	c.Demo = true
	c.DemoRate = 1000
	c.Proxy.IngressBind = []string{"tcp://127.0.0.1:*"}
	c.Proxy.EgressBind = []string{"tcp://127.0.0.1:*"}
	c.Proxy.StampedBind = []string{"tcp://127.0.0.1:*"}
	c.Proxy.Linger = 0
	c.SnapshotBind = ""
	g, err := gateway.New(c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Run(ctx) }()
	select {
	case <-g.Ready():
	case err := <-errc:
		t.Fatalf("gateway: %v", err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("gateway: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
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
	exe := chromium(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the gateway takes this port, twice
	stop := runGateway(t, addr)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer tcancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatalf("navigate: %v", err)
	}
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
