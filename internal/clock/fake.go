package clock

import (
	"context"
	"sync"
	"time"
)

// Fake is a Clock that moves only when Advance moves it. Create it with
// NewFake. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time        // guarded by mu
	seq     uint64           // guarded by mu: the order waiters were armed in
	armed   map[*waiter]bool // guarded by mu: timers and tickers not yet due or stopped
	changed chan struct{}    // guarded by mu: closed when one is armed (BlockUntil); nil: nobody waits
}

// NewFake returns a fake clock reading start (its monotonic reading, if
// any, dropped). Start it at time.Now() when its times reach real
// connections' deadlines, at a fixed instant for output that never changes.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start.Round(0), armed: map[*waiter]bool{}}
}

// waiter is a fake timer or ticker; its fields after f are guarded by f.mu.
type waiter struct {
	f      *Fake
	c      chan time.Time // cap 1; nil for AfterFunc
	fn     func()         // AfterFunc's function
	period time.Duration  // a ticker's; 0 for a timer
	at     time.Time      // when it is next due, while armed
	seq    uint64         // ties at the same instant fire in the order armed
}

// Now returns the fake's time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTicker returns a ticker due every d from now. It panics if d is not
// more than 0, like time.NewTicker.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	w := &waiter{f: f, c: make(chan time.Time, 1), period: d}
	f.mu.Lock()
	f.armLocked(w, d)
	f.mu.Unlock()
	return fakeTicker{w}
}

// NewTimer returns a timer due after d; one due now (d <= 0) fires at the
// next Advance, Advance(0) included.
func (f *Fake) NewTimer(d time.Duration) Timer {
	w := &waiter{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	f.armLocked(w, d)
	f.mu.Unlock()
	return fakeTimer{w}
}

// AfterFunc returns a timer that calls fn, on the goroutine running
// Advance, once d has passed; one due now (d <= 0) is called at the next
// Advance, Advance(0) included, never by AfterFunc itself (its caller may
// hold a lock fn takes).
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	w := &waiter{f: f, fn: fn}
	f.mu.Lock()
	f.armLocked(w, d)
	f.mu.Unlock()
	return fakeTimer{w}
}

// Advance moves the clock d forward and fires, in order of due time (and of
// arming, at the same instant), every timer and ticker due by then, each
// with the clock reading its instant; those armed meanwhile by an
// AfterFunc's function fire too if due by then. A ticker due several times
// fires at each instant, and what its receiver has not taken is dropped.
// Advance returns once every due function has returned; it panics if d is
// negative.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Advance by a negative duration")
	}
	f.mu.Lock()
	until := f.now.Add(d)
	f.mu.Unlock()
	for f.fireNext(until) {
	}
}

// fireNext fires the earliest waiter due by until and reports whether there
// was one; with none, it moves the clock to until.
func (f *Fake) fireNext(until time.Time) bool {
	f.mu.Lock()
	var w *waiter
	for c := range f.armed {
		if !c.at.After(until) && (w == nil || c.at.Before(w.at) || (c.at.Equal(w.at) && c.seq < w.seq)) {
			w = c
		}
	}
	if w == nil {
		if until.After(f.now) {
			f.now = until
		}
		f.mu.Unlock()
		return false
	}
	at := w.at
	if at.After(f.now) {
		f.now = at
	}
	if w.period > 0 {
		f.seq++
		w.at, w.seq = at.Add(w.period), f.seq
	} else {
		delete(f.armed, w)
	}
	if w.fn == nil {
		select { // under mu, so Stop and Reset can take back a value not received
		case w.c <- at:
		default:
		}
		f.mu.Unlock()
		return true
	}
	f.mu.Unlock()
	w.fn()
	return true
}

// Pending returns how many timers and tickers are armed: not yet due, or
// tickers not stopped.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.armed)
}

// BlockUntil waits until at least n timers and tickers are armed (the code
// under test has made them), or ctx ends.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		if len(f.armed) >= n {
			f.mu.Unlock()
			return nil
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// armLocked makes w due d from now. f.mu is held.
func (f *Fake) armLocked(w *waiter, d time.Duration) {
	f.seq++
	w.at, w.seq = f.now.Add(max(d, 0)), f.seq
	f.armed[w] = true
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// stopLocked disarms w and takes back a value it sent and nobody received,
// as time's timers do since Go 1.23; it reports whether w was armed. f.mu
// is held.
func (f *Fake) stopLocked(w *waiter) bool {
	was := f.armed[w]
	delete(f.armed, w)
	if w.c != nil {
		select {
		case <-w.c:
		default:
		}
	}
	return was
}

type fakeTicker struct{ w *waiter }

func (t fakeTicker) C() <-chan time.Time { return t.w.c }

func (t fakeTicker) Stop() {
	t.w.f.mu.Lock()
	t.w.f.stopLocked(t.w)
	t.w.f.mu.Unlock()
}

// Reset panics if d is not more than 0, like time.Ticker's.
func (t fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	f := t.w.f
	f.mu.Lock()
	f.stopLocked(t.w)
	t.w.period = d
	f.armLocked(t.w, d)
	f.mu.Unlock()
}

type fakeTimer struct{ w *waiter }

func (t fakeTimer) C() <-chan time.Time { return t.w.c }

func (t fakeTimer) Stop() bool {
	t.w.f.mu.Lock()
	defer t.w.f.mu.Unlock()
	return t.w.f.stopLocked(t.w)
}

func (t fakeTimer) Reset(d time.Duration) bool {
	f := t.w.f
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.stopLocked(t.w)
	f.armLocked(t.w, d)
	return was
}
