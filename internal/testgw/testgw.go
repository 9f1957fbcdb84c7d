package testgw

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/gateway"
)

// Config is gateway.DefaultConfig on loopback: HTTP on addr ("127.0.0.1:0"
// for any free port), ingress, egress and stamped egress on free 127.0.0.1
// ports, linger 0, no snapshot ROUTER and no demo feed.
func Config(addr string) gateway.Config {
	c := gateway.DefaultConfig()
	c.HTTP = addr
	c.Proxy.IngressBind = []string{"tcp://127.0.0.1:*"}
	c.Proxy.EgressBind = []string{"tcp://127.0.0.1:*"}
	c.Proxy.StampedBind = []string{"tcp://127.0.0.1:*"}
	c.Proxy.Linger = 0
	c.SnapshotBind = ""
	return c
}

// Start runs a gateway with c and returns once it is ready, failing the
// test when it cannot be built or Run ends first. stop cancels Run and
// waits for it, failing the test on Run's error or when Run has not
// returned within c.ShutdownTimeout and grace; it runs once, at the latest
// when the test ends.
func Start(tb testing.TB, c gateway.Config, grace time.Duration) (g *gateway.Gateway, stop func()) {
	tb.Helper()
	g, err := gateway.New(c, zerolog.Nop())
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Run(ctx) }()
	select {
	case <-g.Ready():
	case err := <-errc:
		cancel()
		tb.Fatalf("gateway: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					tb.Errorf("gateway: %v", err)
				}
			case <-time.After(c.ShutdownTimeout + grace):
				tb.Errorf("gateway did not stop within %v of its shutdown bound %v", grace, c.ShutdownTimeout)
			}
		})
	}
	tb.Cleanup(stop)
	return g, stop
}
