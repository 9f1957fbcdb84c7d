package zsock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
	"golang.org/x/sys/unix"
)

// Waiter lets a socket-owning goroutine wait for its sockets in the Go
// runtime's netpoller instead of inside a blocking zmq_poll. A cgo call
// that blocks keeps its P (a Go scheduler slot) until the runtime's sysmon
// takes it back; with one P a core, the fan-out's goroutines waited that
// long behind an idle proxy loop. Parked in Wait, the owner holds no P.
//
// The owner polls its sockets without blocking (zmq_poll with timeout 0)
// and calls Wait only when that found nothing: every socket's ZMQ_FD is
// edge-triggered, signalled when the socket gets something new after its
// events were last read, and the netpoller keeps an edge that came before
// Wait, so nothing that arrives after the poll is missed. Wait may return
// when nothing is ready (the owner polls again); that costs a poll, not a
// message.
//
// One goroutine per socket waits for its descriptor's edges; the Waiter owns
// them and Close stops them. Wait and Close are for the owner's goroutine
// only.
type Waiter struct {
	wake  chan struct{} // an edge on any descriptor; cap 1
	files []*os.File    // dups of the sockets' ZMQ_FDs, closed by Close
	wg    sync.WaitGroup
	timer *time.Timer
}

// ErrNotPollable is returned by NewWaiter where a socket's descriptor cannot
// be waited for in the netpoller; the caller keeps its blocking poll.
var ErrNotPollable = errors.New("zsock: socket descriptor not pollable by the Go runtime")

// NewWaiter starts waiting for socks' descriptors. It is called on the
// sockets' owning goroutine (reading ZMQ_FD is a socket call).
func NewWaiter(socks ...*zmq.Socket) (*Waiter, error) {
	w := &Waiter{wake: make(chan struct{}, 1)}
	for _, s := range socks {
		fd, err := s.GetFd()
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("zsock: ZMQ_FD: %w", err)
		}
		// A dup: closing the File must not close libzmq's descriptor. It
		// shares the open file, so its epoll registration sees the same edges.
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("zsock: dup ZMQ_FD: %w", err)
		}
		if fl, err := unix.FcntlInt(uintptr(dup), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
			unix.Close(dup)
			w.Close()
			return nil, ErrNotPollable
		}
		f := os.NewFile(uintptr(dup), "zmq-fd")
		// SetReadDeadline works only on a descriptor in the netpoller.
		if err := f.SetReadDeadline(time.Time{}); err != nil {
			f.Close()
			w.Close()
			return nil, fmt.Errorf("%w: %w", ErrNotPollable, err)
		}
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			w.Close()
			return nil, fmt.Errorf("zsock: %w", err)
		}
		w.files = append(w.files, f)
		w.wg.Add(1)
		go w.watch(rc)
	}
	return w, nil
}

// watch reports every edge on one descriptor until its File is closed. It
// never reads the descriptor: libzmq does. It stays inside one RawConn.Read
// for its whole life, reporting from the callback: each new Read would
// begin by clearing a readiness the netpoller kept, and an edge that came
// between two Reads was lost (a wait then ran to its timeout).
func (w *Waiter) watch(rc syscall.RawConn) {
	defer w.wg.Done()
	first := true
	rc.Read(func(uintptr) bool {
		if !first { // called again: an edge
			select {
			case w.wake <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
		first = false
		return false // wait for the next edge; Close ends the Read with an error
	})
}

// Wait returns when any socket may have something (true), or when d has
// passed or ctx ended (false), whichever is first; d < 0 waits without a
// limit.
func (w *Waiter) Wait(ctx context.Context, d time.Duration) bool {
	if d == 0 {
		return false
	}
	var tc <-chan time.Time
	if d > 0 {
		if w.timer == nil {
			w.timer = time.NewTimer(d)
		} else {
			w.timer.Reset(d)
		}
		tc = w.timer.C
		defer w.timer.Stop()
	}
	select {
	case <-w.wake:
		return true
	case <-tc:
	case <-ctx.Done():
	}
	return false
}

// Close stops the watching goroutines and closes the dups; the sockets and
// their own descriptors are untouched.
func (w *Waiter) Close() {
	for _, f := range w.files {
		f.Close()
	}
	w.files = nil
	w.wg.Wait()
}
