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

func ExampleFetch() {
	cache := lvc.New(lvc.DefaultConfig(), nil)
	for i, px := range []string{`{"px":190.1}`, `{"px":190.2}`} {
		cache.Update(&tick.Message{Topic: "md.eq.AAPL", Frames: [][]byte{[]byte("md.eq.AAPL"), []byte(px)},
			Stamp: tick.Stamp{Epoch: 7, Seq: uint64(i + 1)}})
	}
	cache.Update(&tick.Message{Topic: "md.fx.EURUSD", Frames: [][]byte{[]byte("md.fx.EURUSD"), []byte("1.0841")},
		Stamp: tick.Stamp{Epoch: 7, Seq: 1}})

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

	res, err := snapshot.Fetch(ctx, srv.Bound(), "md.eq.")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("epoch", res.Epoch)
	for _, m := range res.Values {
		fmt.Printf("%s seq=%d %s\n", m.Topic, m.Stamp.Seq, m.Frames[1])
	}
	cancel()
	<-done
	// Output:
	// epoch 7
	// md.eq.AAPL seq=2 {"px":190.2}
}
