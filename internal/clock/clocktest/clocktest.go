// Package clocktest is what tests driving a clock.Fake share: waiting, with
// a bound, for the code under test to arm its timers before Advance.
package clocktest

import (
	"context"
	"testing"
	"time"

	"github.com/mdgate/mdgate/internal/clock"
)

// Wait bounds BlockUntil: a timer not armed by then is a failure.
const Wait = 10 * time.Second

// BlockUntil waits for n timers and tickers on clk: the code under test has
// armed them, so Advance cannot pass them by. It fails t after Wait.
func BlockUntil(t testing.TB, clk *clock.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := clk.BlockUntil(ctx, n); err != nil {
		t.Fatalf("waiting for %d timers (%d armed): %v", n, clk.Pending(), err)
	}
}
