package testpeer

import (
	"context"
	"testing"
	"time"
)

// Server is a stage that runs until its context ends and says when it
// listens: gateway.Gateway, proxy.Proxy, snapshot.Server.
type Server interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
}

// Serve runs s until the test ends. It returns once s is ready, failing the
// test when Run ends first; when the test ends it cancels Run and fails the
// test on Run's error, or when Run has not returned within stop.
func Serve(t testing.TB, s Server, stop time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() { err = s.Run(ctx); close(done) }()
	select {
	case <-s.Ready():
	case <-done:
		cancel()
		t.Fatalf("Run ended before it was ready: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(stop):
			t.Errorf("Run did not return within %v of the test's end", stop)
		}
	})
}
