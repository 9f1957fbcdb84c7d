// Package clock is where mdgate's packages get the time: a Clock tells the
// time (Now) and makes tickers, timers and delayed calls (NewTicker,
// NewTimer, AfterFunc), after tailscale's tstime.Clock.
//
// Real is the wall clock, the time package's own functions; a Config whose
// Clock is nil gets it. Fake moves only when a test moves it (Advance): its
// timers and tickers fire inside Advance, in order of their due time, so a
// test of a throttle, an expiry or a periodic save states exactly how much
// time passed instead of sleeping and hoping.
//
// Fake is safe for concurrent use. It runs an AfterFunc's function on the
// goroutine that calls Advance, with no lock of the clock held (so the
// function may use the clock), and Advance returns after it has returned;
// a ticker's or timer's value is sent without blocking, and dropped when
// the last one was not received yet, as with the time package's tickers.
// BlockUntil waits for the code under test to have armed its timers, so a
// test does not advance past a timer before it exists.
//
// A fake time given to a real connection's deadline is read by the kernel
// and the runtime as wall time: a Fake that reaches sockets should start at
// time.Now(), and then only makes their deadlines later.
package clock
