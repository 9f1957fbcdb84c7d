package snapshot_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/snapshot"
	"github.com/mdgate/mdgate/tick"
)

// A client holding seq 2 of md.eq.AAPL asks for what followed. The cache
// keeps the last 3 updates of md.eq. topics, so after 6 updates seqs 4 to 6
// are held: 3 is gone, and the reply says so.
func ExampleSince() {
	cfg := lvc.DefaultConfig()
	cfg.History = []lvc.HistoryRule{{Prefix: "md.eq.", MaxCount: 3, MaxBytes: 1 << 20}}
	cache := lvc.New(cfg, nil)
	for seq := uint64(1); seq <= 6; seq++ {
		cache.Update(&tick.Message{Topic: "md.eq.AAPL", Frames: [][]byte{[]byte("md.eq.AAPL"), fmt.Appendf(nil, "px %d", 190+seq)},
			Stamp: tick.Stamp{Epoch: 7, Seq: seq}})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := snapshot.NewServer("tcp://127.0.0.1:*", cache, 7, snapshot.DefaultConfig(), nil, zerolog.Nop())
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()

	for _, held := range []uint64{4, 2} {
		res, err := snapshot.Since(ctx, srv.Bound(), "md.eq.AAPL", 7, held)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("after seq %d: %s, missed %d:", held, res.Status, res.Missed)
		for _, m := range res.Values {
			fmt.Printf(" %d=%q", m.Stamp.Seq, m.Frames[1])
		}
		fmt.Println()
	}
	cancel()
	<-done
	// Output:
	// after seq 4: recovered, missed 0: 5="px 195" 6="px 196"
	// after seq 2: gap, missed 1: 4="px 194" 5="px 195" 6="px 196"
}
