package clock_test

import (
	"fmt"
	"time"

	"github.com/mdgate/mdgate/internal/clock"
)

// A test moves a fake clock by hand: what is due fires inside Advance, in
// order, each at its own instant.
func ExampleFake() {
	clk := clock.NewFake(time.Date(2025, 1, 2, 9, 30, 0, 0, time.UTC))
	tk := clk.NewTicker(time.Minute)
	defer tk.Stop()
	clk.AfterFunc(90*time.Second, func() { fmt.Println("expired at", clk.Now().Format(time.TimeOnly)) })
	for range 2 {
		clk.Advance(time.Minute)
		fmt.Println("tick", (<-tk.C()).Format(time.TimeOnly))
	}
	// Output:
	// tick 09:31:00
	// expired at 09:31:30
	// tick 09:32:00
}

// A package takes a Clock in its Config and uses the wall clock when none
// is given.
func ExampleClock() {
	type Config struct{ Clock clock.Clock }
	cfg := Config{}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	start := cfg.Clock.Now()
	t := cfg.Clock.NewTimer(time.Millisecond)
	<-t.C()
	fmt.Println(cfg.Clock.Now().Sub(start) >= time.Millisecond)
	// Output: true
}
