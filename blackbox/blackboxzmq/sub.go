package blackboxzmq

import (
	"context"
	"fmt"
	"runtime"

	zmq "github.com/pebbe/zmq4"
	"golang.org/x/sync/errgroup"

	"github.com/mdgate/mdgate/internal/zsock"
)

// SubConfig configures a ZeroMQ Black Box subscriber.
type SubConfig struct {
	Endpoint string   // a gateway egress (raw or stamped)
	Prefixes []string // nil: everything
	Workers  int      // 0: GOMAXPROCS
	Queue    int      // messages waiting per worker (bounded); 0: 1024
	RcvHWM   int      // libzmq's receive high-water mark; 0: libzmq's default
}

// Handler processes one message's frames (topic first). Each worker calls
// it for its share of the topics, in arrival order per topic.
type Handler func(frames [][]byte)

// RunSub is the ZeroMQ guide's Black Box for subscribers: one goroutine (OS
// thread locked) owns a libzmq SUB socket and only reads, handing each
// message to one of N workers chosen by topic, so per-topic order is kept
// and the per-message work spreads over cores. A full worker queue makes the
// reader wait, and libzmq's high-water mark then holds or drops upstream
// (libzmq drops at a SUB's HWM without telling; use slowsubzmq.Sub on the
// stamped stream to detect that). It runs until ctx ends.
func RunSub(ctx context.Context, cfg SubConfig, h Handler) error {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	queues := make([]chan [][]byte, cfg.Workers)
	for i := range queues {
		queues[i] = make(chan [][]byte, cfg.Queue)
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, q := range queues {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case frames := <-q:
					h(frames)
				}
			}
		})
	}
	g.Go(func() error { return readSub(ctx, cfg, queues) })
	return g.Wait()
}

// readSub owns the SUB socket: it only reads, handing each message to its
// topic's worker queue.
func readSub(ctx context.Context, cfg SubConfig, queues []chan [][]byte) error {
	open := func() (*zmq.Socket, error) {
		return zsock.Sub(zsock.SubConfig{Connect: []string{cfg.Endpoint}, Prefixes: cfg.Prefixes, RcvHWM: cfg.RcvHWM})
	}
	err := zsock.Loop{Handle: func(_ *zmq.Socket, frames [][]byte) error {
		q := queues[fnv(frames[0])%uint32(len(queues))]
		select {
		case q <- frames:
		case <-ctx.Done():
		}
		return nil
	}}.Run(ctx, open)
	if err != nil {
		return fmt.Errorf("blackbox sub: %w", err)
	}
	return nil
}

// fnv is FNV-1a: a message's worker, by its topic.
func fnv(topic []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range topic {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
