package zsock

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// DefaultWait is how long a Loop's receive waits, when Loop.Wait is zero,
// before it looks at its context again.
const DefaultWait = 50 * time.Millisecond

// Stop, returned by a Loop's Handle, ends the loop without an error.
var Stop = errors.New("zsock: stop")

// Temporary reports whether err, or an error it wraps, is EAGAIN (the
// receive timeout passed, or a non-blocking call found nothing to do) or
// EINTR (a signal interrupted the call): the call may be made again. Every
// other error is fatal for the socket.
func Temporary(err error) bool {
	var zerr zmq.Errno
	if errors.As(err, &zerr) {
		return zerr == zmq.Errno(syscall.EAGAIN) || zerr == zmq.Errno(syscall.EINTR)
	}
	var serr syscall.Errno
	if errors.As(err, &serr) {
		return serr == syscall.EAGAIN || serr == syscall.EINTR
	}
	return false
}

// Own locks the calling goroutine to its OS thread, opens a socket with
// open and hands it to use, then closes it, whatever use returns, and
// unlocks the thread. open runs on the locked thread too; when it fails it
// closes whatever it made, and Own returns its error as it is.
func Own(open func() (*zmq.Socket, error), use func(*zmq.Socket) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sock, err := open()
	if err != nil {
		return err
	}
	defer sock.Close()
	return use(sock)
}

// Loop receives whole messages on a socket and hands each to Handle.
type Loop struct {
	// Handle is called with each message received, on the socket's
	// goroutine. An error ends the loop and is returned as it is, except
	// Stop, which ends it without an error. The frames are the handler's
	// to keep.
	Handle func(sock *zmq.Socket, msg [][]byte) error
	// Idle, when set, is called whenever a receive waited Wait for nothing.
	// An error ends the loop and is returned as it is.
	Idle func() error
	// Wait bounds a receive (ZMQ_RCVTIMEO), and so how long after its
	// context ends the loop returns. 0: DefaultWait.
	Wait time.Duration
}

// Run is Own(open, ...) with the loop serving the socket until ctx ends.
func (l Loop) Run(ctx context.Context, open func() (*zmq.Socket, error)) error {
	return Own(open, func(sock *zmq.Socket) error { return l.Serve(ctx, sock) })
}

// Serve receives on sock until ctx ends (it returns nil), Handle or Idle
// fail or return Stop, or a receive fails with an error that is not
// Temporary (it returns that error wrapped: "recv: %w"). It sets the
// socket's receive timeout to Wait. The calling goroutine must own sock,
// with its OS thread locked.
func (l Loop) Serve(ctx context.Context, sock *zmq.Socket) error {
	wait := l.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	if err := sock.SetRcvtimeo(wait); err != nil {
		return fmt.Errorf("set receive timeout: %w", err)
	}
	for ctx.Err() == nil {
		msg, err := sock.RecvMessageBytes(0)
		switch {
		case err == nil:
			err = l.Handle(sock, msg)
		case Temporary(err):
			err = nil
			if l.Idle != nil {
				err = l.Idle()
			}
		default:
			return fmt.Errorf("recv: %w", err)
		}
		if errors.Is(err, Stop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// SubConfig is what a subscriber of the gateway's streams sets on its SUB.
type SubConfig struct {
	Connect  []string // endpoints to connect to, e.g. the stamped egress
	Prefixes []string // topic prefixes to subscribe to; nil: everything
	RcvHWM   int      // libzmq's receive high-water mark; 0: libzmq's default
}

// Sub opens a SUB socket with linger 0, cfg's high-water mark and
// subscriptions, connected to every endpoint of cfg.Connect. On an error it
// closes the socket and returns all the errors joined. The socket belongs to
// the calling goroutine (see Own).
func Sub(cfg SubConfig) (*zmq.Socket, error) {
	sock, err := zmq.NewSocket(zmq.SUB)
	if err != nil {
		return nil, fmt.Errorf("new SUB socket: %w", err)
	}
	prefixes := cfg.Prefixes
	if prefixes == nil {
		prefixes = []string{""}
	}
	errs := []error{sock.SetLinger(0)}
	if cfg.RcvHWM > 0 {
		errs = append(errs, sock.SetRcvhwm(cfg.RcvHWM))
	}
	for _, p := range prefixes {
		errs = append(errs, sock.SetSubscribe(p))
	}
	for _, ep := range cfg.Connect {
		if err := sock.Connect(ep); err != nil {
			errs = append(errs, fmt.Errorf("connect %s: %w", ep, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		sock.Close()
		return nil, err
	}
	return sock, nil
}
