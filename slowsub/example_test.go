package slowsub_test

import (
	"fmt"
	"time"

	"github.com/mdgate/mdgate/slowsub"
)

// A dashboard that asked for conflation falls behind: its queue keeps the
// latest price of each topic and says how many it skipped.
func ExampleQueue() {
	q := slowsub.NewQueue(slowsub.Limits{MaxBytes: 1 << 20, MaxLag: 2 * time.Second})
	for _, px := range []string{"101.0", "101.5", "102.0"} {
		q.Push(slowsub.Item{Topic: "md.eq.AAPL", Data: []byte(px), Conflate: true}, 0)
	}
	for _, it := range q.Drain(nil) {
		fmt.Printf("%s %s (skipped %d)\n", it.Topic, it.Data, it.Skipped)
	}
	// Output: md.eq.AAPL 102.0 (skipped 2)
}

func ExampleDecide() {
	l := slowsub.DefaultLimits()
	fmt.Println(slowsub.Decide(l, 2<<20, 0))
	fmt.Println(slowsub.Decide(l, 512, 3*time.Second))
	fmt.Println(slowsub.Decide(l, 512, 10*time.Millisecond))
	// Output:
	// queue_bytes
	// lag
	// none
}
