package blackbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
	"golang.org/x/sync/errgroup"
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
// (libzmq drops at a SUB's HWM without telling; use slowsub.Sub on the
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

func readSub(ctx context.Context, cfg SubConfig, queues []chan [][]byte) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sock, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		return fmt.Errorf("blackbox sub: %w", err)
	}
	defer sock.Close()
	prefixes := cfg.Prefixes
	if prefixes == nil {
		prefixes = []string{""}
	}
	errs := []error{sock.SetLinger(0), sock.SetRcvtimeo(50 * time.Millisecond)}
	if cfg.RcvHWM > 0 {
		errs = append(errs, sock.SetRcvhwm(cfg.RcvHWM))
	}
	for _, p := range prefixes {
		errs = append(errs, sock.SetSubscribe(p))
	}
	errs = append(errs, sock.Connect(cfg.Endpoint))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blackbox sub: %w", err)
	}
	for ctx.Err() == nil {
		frames, err := sock.RecvMessageBytes(0)
		if err != nil {
			if e := zmq.AsErrno(err); e == zmq.Errno(syscall.EAGAIN) || e == zmq.Errno(syscall.EINTR) {
				continue // the receive timeout: look at ctx again
			}
			return fmt.Errorf("blackbox sub: recv: %w", err)
		}
		if len(frames) == 0 {
			continue
		}
		q := queues[fnv(frames[0])%uint32(len(queues))]
		select {
		case q <- frames:
		case <-ctx.Done():
		}
	}
	return nil
}
