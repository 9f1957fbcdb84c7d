package clock

import "time"

// Clock tells the time and makes tickers and timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTicker returns a ticker that sends the time on its channel every
	// d; d must be more than 0.
	NewTicker(d time.Duration) Ticker
	// NewTimer returns a timer that sends the time on its channel once,
	// after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f once d has passed (Real: on its own goroutine) and
	// returns a timer whose channel is nil, to stop or reset the call.
	AfterFunc(d time.Duration, f func()) Timer
}

// Ticker is a time.Ticker behind an interface.
type Ticker interface {
	// C is the channel the ticks arrive on.
	C() <-chan time.Time
	// Stop turns the ticker off; no tick arrives after it returns.
	Stop()
	// Reset stops the ticker and restarts it with period d (more than 0).
	Reset(d time.Duration)
}

// Timer is a time.Timer behind an interface.
type Timer interface {
	// C is the channel the time arrives on; nil for AfterFunc.
	C() <-chan time.Time
	// Stop prevents the timer from firing; false if it had fired or was
	// stopped already.
	Stop() bool
	// Reset makes the timer fire after d; false if it had fired or was
	// stopped already.
	Reset(d time.Duration) bool
}

// Real is the wall clock: each method is the time package's function of the
// same name.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

func (Real) AfterFunc(d time.Duration, f func()) Timer { return realTimer{time.AfterFunc(d, f)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time   { return r.t.C }
func (r realTicker) Stop()                 { r.t.Stop() }
func (r realTicker) Reset(d time.Duration) { r.t.Reset(d) }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
