package clock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdgate/mdgate/internal/clock"
)

// wait bounds the waits on real time (Real, goroutines); nothing sleeps.
const wait = 10 * time.Second

var start = time.Date(2025, 1, 2, 9, 30, 0, 0, time.UTC)

func TestFakeFiresInOrder(t *testing.T) {
	type timer struct {
		name string
		d    time.Duration
	}
	tests := []struct {
		name   string
		timers []timer
		steps  []time.Duration
		want   string // name@offset of each call, in order
	}{
		{"by due time", []timer{{"b", 2 * time.Second}, {"a", time.Second}, {"c", 3 * time.Second}}, []time.Duration{5 * time.Second}, "a@1s b@2s c@3s"},
		{"same instant: in order armed", []timer{{"x", time.Second}, {"y", time.Second}, {"z", time.Second}}, []time.Duration{time.Second}, "x@1s y@1s z@1s"},
		{"not before due", []timer{{"a", time.Second}}, []time.Duration{999 * time.Millisecond}, ""},
		{"exactly at due", []timer{{"a", time.Second}}, []time.Duration{999 * time.Millisecond, time.Millisecond}, "a@1s"},
		{"due now: at the next Advance", []timer{{"a", 0}, {"b", -time.Second}}, []time.Duration{0}, "a@0s b@0s"},
		{"in steps", []timer{{"a", time.Second}, {"b", 3 * time.Second}}, []time.Duration{2 * time.Second, 2 * time.Second}, "a@1s b@3s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(start)
			var got []string
			for _, tm := range tt.timers {
				clk.AfterFunc(tm.d, func() { got = append(got, fmt.Sprintf("%s@%v", tm.name, clk.Now().Sub(start))) })
			}
			if len(got) != 0 {
				t.Fatalf("AfterFunc called %q itself, want only Advance to", got)
			}
			var total time.Duration
			for _, d := range tt.steps {
				clk.Advance(d)
				total += d
			}
			if s := strings.Join(got, " "); s != tt.want {
				t.Errorf("after Advance%v: calls %q, want %q", tt.steps, s, tt.want)
			}
			if now := clk.Now(); !now.Equal(start.Add(total)) {
				t.Errorf("Now() = %v, want %v", now, start.Add(total))
			}
		})
	}
}

// TestFakeTimerStopReset runs each script on an AfterFunc and on a NewTimer
// (read after every step) due in 1s: both must tell the same story.
func TestFakeTimerStopReset(t *testing.T) {
	tests := []struct {
		name, script, want string
	}{
		{"fires", "advance:1s", "fired@1s"},
		{"stop before due", "stop advance:5s", "stop=true"},
		{"stop after firing", "advance:1s stop", "fired@1s stop=false"},
		{"stop twice", "stop stop", "stop=true stop=false"},
		{"reset before due moves it", "advance:500ms reset:1s advance:900ms advance:100ms", "reset=true fired@1.5s"},
		{"reset after firing fires again", "advance:1s reset:1s advance:1s", "fired@1s reset=false fired@2s"},
		{"reset after stop", "stop reset:2s advance:2s", "stop=true reset=false fired@2s"},
		{"reset to now", "reset:0s advance:0s", "reset=true fired@0s"},
	}
	for _, kind := range []string{"AfterFunc", "NewTimer"} {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				clk := clock.NewFake(start)
				var got []string
				fired := func(at time.Time) { got = append(got, fmt.Sprintf("fired@%v", at.Sub(start))) }
				var tm clock.Timer
				if kind == "AfterFunc" {
					tm = clk.AfterFunc(time.Second, func() { fired(clk.Now()) })
				} else {
					tm = clk.NewTimer(time.Second)
				}
				for _, step := range strings.Fields(tt.script) {
					op, arg, _ := strings.Cut(step, ":")
					d, _ := time.ParseDuration(arg)
					switch op {
					case "advance":
						clk.Advance(d)
					case "stop":
						got = append(got, fmt.Sprintf("stop=%v", tm.Stop()))
					case "reset":
						got = append(got, fmt.Sprintf("reset=%v", tm.Reset(d)))
					}
					select {
					case at := <-tm.C(): // never ready for AfterFunc: nil
						fired(at)
					default:
					}
				}
				if s := strings.Join(got, " "); s != tt.want {
					t.Errorf("%s(1s) then %q: %q, want %q", kind, tt.script, s, tt.want)
				}
			})
		}
	}
}

// TestFakeStopResetTakeBack: a value sent and not received is taken back by
// Stop and Reset, as time's timers do since Go 1.23.
func TestFakeStopResetTakeBack(t *testing.T) {
	clk := clock.NewFake(start)
	tm := clk.NewTimer(time.Second)
	clk.Advance(time.Second)
	if tm.Stop() {
		t.Error("Stop() after firing = true, want false")
	}
	select {
	case at := <-tm.C():
		t.Fatalf("received %v after Stop, want nothing", at)
	default:
	}
	tm.Reset(time.Second)
	clk.Advance(time.Second)
	tm.Reset(time.Second) // the 2s value is not received: taken back
	clk.Advance(time.Second)
	if at := <-tm.C(); at.Sub(start) != 3*time.Second {
		t.Errorf("after Reset received %v, want 3s (not the stale 2s)", at.Sub(start))
	}
	tk := clk.NewTicker(time.Second)
	clk.Advance(time.Second)
	tk.Stop()
	select {
	case at := <-tk.C():
		t.Fatalf("ticker: received %v after Stop, want nothing", at.Sub(start))
	default:
	}
}

func TestFakeTicker(t *testing.T) {
	clk := clock.NewFake(start)
	tk := clk.NewTicker(time.Second)
	recv := func() string {
		select {
		case at := <-tk.C():
			return at.Sub(start).String()
		default:
			return "nothing"
		}
	}
	steps := []struct {
		name string
		do   func()
		want string // what the receiver finds next
	}{
		{"first tick", func() { clk.Advance(time.Second) }, "1s"},
		{"not yet", func() { clk.Advance(999 * time.Millisecond) }, "nothing"},
		{"second tick", func() { clk.Advance(time.Millisecond) }, "2s"},
		{"unreceived ticks dropped: the first kept", func() { clk.Advance(3 * time.Second) }, "3s"},
		{"then nothing", func() {}, "nothing"},
		{"on the beat", func() { clk.Advance(time.Second) }, "6s"},
		{"reset: a new period from now", func() { tk.Reset(2 * time.Second); clk.Advance(time.Second) }, "nothing"},
		{"reset period", func() { clk.Advance(time.Second) }, "8s"},
		{"reset's period holds", func() { clk.Advance(2 * time.Second) }, "10s"},
		{"stopped", func() { tk.Stop(); clk.Advance(time.Hour) }, "nothing"},
	}
	for _, s := range steps {
		s.do()
		if got := recv(); got != s.want {
			t.Fatalf("%s: received %s, want %s", s.name, got, s.want)
		}
	}
	if n := clk.Pending(); n != 0 {
		t.Errorf("Pending() = %d after Stop, want 0", n)
	}
}

// A function that arms timers due within the same Advance sees them fire
// in it, in order: a self-resetting AfterFunc is a ticker.
func TestFakeFunctionArmsMore(t *testing.T) {
	clk := clock.NewFake(start)
	var got []string
	var self clock.Timer
	self = clk.AfterFunc(time.Second, func() {
		got = append(got, "beat@"+clk.Now().Sub(start).String())
		self.Reset(time.Second)
	})
	clk.AfterFunc(1500*time.Millisecond, func() {
		clk.AfterFunc(time.Second, func() { got = append(got, "child@"+clk.Now().Sub(start).String()) })
	})
	clk.Advance(3500 * time.Millisecond)
	want := "beat@1s beat@2s child@2.5s beat@3s"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("calls %q, want %q", s, want)
	}
	if n := clk.Pending(); n != 1 {
		t.Errorf("Pending() = %d, want 1 (the beat, re-armed)", n)
	}
}

func TestFakePanics(t *testing.T) {
	clk := clock.NewFake(start)
	tests := []struct {
		name string
		do   func()
	}{
		{"NewTicker(0)", func() { clk.NewTicker(0) }},
		{"NewTicker(-1s)", func() { clk.NewTicker(-time.Second) }},
		{"Ticker.Reset(0)", func() { clk.NewTicker(time.Second).Reset(0) }},
		{"Advance(-1ns)", func() { clk.Advance(-1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tt.name)
				}
			}()
			tt.do()
		})
	}
}

// Timers armed, stopped and fired from many goroutines while the clock
// moves: each either fires once or is stopped, never both (run with -race).
func TestFakeConcurrent(t *testing.T) {
	clk := clock.NewFake(start)
	const n = 200
	var fired, stopped atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tm := clk.AfterFunc(time.Duration(i%10)*time.Millisecond, func() { fired.Add(1) })
			if i%3 == 0 && tm.Stop() {
				stopped.Add(1)
			}
			clk.Now()
		}()
	}
	for range 20 {
		clk.Advance(time.Millisecond)
	}
	wg.Wait()
	clk.Advance(time.Second)
	if f, s := fired.Load(), stopped.Load(); f+s != n {
		t.Errorf("fired %d + stopped %d, want %d", f, s, n)
	}
	if p := clk.Pending(); p != 0 {
		t.Errorf("Pending() = %d, want 0", p)
	}
}

func TestFakeBlockUntil(t *testing.T) {
	clk := clock.NewFake(start)
	ready := make(chan struct{})
	go func() {
		<-ready
		clk.NewTicker(time.Second)
		clk.AfterFunc(time.Second, func() {})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	close(ready)
	if err := clk.BlockUntil(ctx, 2); err != nil {
		t.Fatalf("BlockUntil(2) = %v, want nil once both are armed", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := clk.BlockUntil(short, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("BlockUntil(3) with two armed = %v, want the context's deadline", err)
	}
}

func TestReal(t *testing.T) {
	var clk clock.Clock = clock.Real{}
	if d := time.Since(clk.Now()); d < 0 || d > time.Minute {
		t.Errorf("Real.Now() is %v from time.Now()", d)
	}
	called := make(chan struct{})
	tm := clk.AfterFunc(time.Millisecond, func() { close(called) })
	if tm.C() != nil {
		t.Error("AfterFunc's C() is not nil")
	}
	select {
	case <-called:
	case <-time.After(wait):
		t.Fatal("Real.AfterFunc(1ms) never called")
	}
	if clk.AfterFunc(time.Hour, func() {}).Stop() != true {
		t.Error("Stop() of a pending AfterFunc = false, want true")
	}
	tk := clk.NewTicker(time.Millisecond)
	defer tk.Stop()
	for range 2 {
		select {
		case <-tk.C():
		case <-time.After(wait):
			t.Fatal("Real ticker never ticked")
		}
	}
	timer := clk.NewTimer(time.Millisecond)
	select {
	case <-timer.C():
	case <-time.After(wait):
		t.Fatal("Real timer never fired")
	}
}
