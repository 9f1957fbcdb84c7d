package zsock_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/zsock"
)

// wait bounds every wait of these tests; none of them sleeps.
const wait = 10 * time.Second

func TestTemporary(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{zmq.Errno(syscall.EAGAIN), true},
		{zmq.Errno(syscall.EINTR), true},
		{syscall.EAGAIN, true},
		{syscall.EINTR, true},
		{fmt.Errorf("recv: %w", zmq.Errno(syscall.EAGAIN)), true},
		{fmt.Errorf("poll: %w", syscall.EINTR), true},
		{errors.Join(errors.New("other"), zmq.Errno(syscall.EINTR)), true},
		{zmq.ETERM, false},
		{zmq.EFSM, false},
		{zmq.ENOTSOCK, false},
		{syscall.EBADF, false},
		{fmt.Errorf("recv: %w", zmq.ETERM), false},
		{context.Canceled, false},
		{errors.New("resource temporarily unavailable"), false},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if got := zsock.Temporary(tt.err); got != tt.want {
				t.Errorf("Temporary(%q) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if zsock.Temporary(nil) {
		t.Errorf("Temporary(nil) = true, want false")
	}
}

// xpub is a libzmq XPUB bound to a free loopback port, owned by the test's
// goroutine (its OS thread locked by the caller).
func xpub(t *testing.T) (*zmq.Socket, string) {
	t.Helper()
	s, err := zmq.NewSocket(zmq.XPUB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := errors.Join(s.SetLinger(0), s.SetSndhwm(0), s.SetRcvtimeo(wait), s.Bind("tcp://127.0.0.1:*")); err != nil {
		t.Fatal(err)
	}
	ep, err := s.GetLastEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	return s, ep
}

// subscribed waits for n subscription messages on an XPUB and returns them.
func subscribed(t *testing.T, pub *zmq.Socket, n int) []string {
	t.Helper()
	var got []string
	for range n {
		b, err := pub.RecvBytes(0)
		if err != nil {
			t.Fatalf("no subscription within %v: %v", wait, err)
		}
		got = append(got, fmt.Sprintf("%d%s", b[0], b[1:]))
	}
	return got
}

// run starts l.Run on a goroutine of its own and returns its result channel
// and the socket open made (to look at once Run has returned).
func run(ctx context.Context, l zsock.Loop, open func() (*zmq.Socket, error)) (<-chan error, <-chan *zmq.Socket) {
	done, opened := make(chan error, 1), make(chan *zmq.Socket, 1)
	go func() {
		done <- l.Run(ctx, func() (*zmq.Socket, error) {
			s, err := open()
			opened <- s
			return s, err
		})
	}()
	return done, opened
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatalf("Run still running after %v", wait)
		return nil
	}
}

// closed reports whether Run closed the socket it was given.
func closed(s *zmq.Socket) bool {
	_, err := s.GetType()
	return err != nil
}

func TestLoopDeliversUntilStop(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, ep := xpub(t)
	var got []string
	l := zsock.Loop{Handle: func(_ *zmq.Socket, msg [][]byte) error {
		if string(msg[0]) == "a.stop" {
			return zsock.Stop
		}
		got = append(got, fmt.Sprintf("%s=%s", msg[0], msg[1]))
		return nil
	}}
	done, opened := run(context.Background(), l, func() (*zmq.Socket, error) {
		return zsock.Sub(zsock.SubConfig{Connect: []string{ep}, Prefixes: []string{"a.", "c."}, RcvHWM: 10})
	})
	subs := subscribed(t, pub, 2)
	if strings.Join(subs, " ") != "1a. 1c." {
		t.Errorf("subscriptions = %q, want [1a. 1c.]", subs)
	}
	for i := range 3 {
		for _, topic := range []string{"a.x", "b.x", "c.x"} {
			pub.SendMessage(topic, i)
		}
	}
	pub.SendMessage("a.stop", "")
	if err := result(t, done); err != nil {
		t.Fatalf("Run = %v, want nil after Stop", err)
	}
	want := "a.x=0 c.x=0 a.x=1 c.x=1 a.x=2 c.x=2"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("handled %q, want %q", s, want)
	}
	if s := <-opened; !closed(s) {
		t.Errorf("socket still open after Run returned")
	}
}

func TestLoopEndsWithContext(t *testing.T) {
	_, ep := xpub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idle := 0
	l := zsock.Loop{
		Wait:   time.Millisecond,
		Handle: func(*zmq.Socket, [][]byte) error { return errors.New("nothing was sent") },
		Idle: func() error {
			if idle++; idle == 3 {
				cancel()
			}
			return nil
		},
	}
	done, opened := run(ctx, l, func() (*zmq.Socket, error) { return zsock.Sub(zsock.SubConfig{Connect: []string{ep}}) })
	if err := result(t, done); err != nil {
		t.Fatalf("Run = %v, want nil once ctx is done", err)
	}
	if idle != 3 {
		t.Errorf("Idle called %d times, want 3 (ctx cancelled in the third)", idle)
	}
	if s := <-opened; !closed(s) {
		t.Errorf("socket still open after Run returned")
	}
}

func TestLoopReturnsHandlerAndIdleErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub, ep := xpub(t)
	errHandle := errors.New("handler failed")
	done, opened := run(context.Background(), zsock.Loop{
		Handle: func(*zmq.Socket, [][]byte) error { return fmt.Errorf("message: %w", errHandle) },
	}, func() (*zmq.Socket, error) { return zsock.Sub(zsock.SubConfig{Connect: []string{ep}}) })
	subscribed(t, pub, 1)
	pub.SendMessage("t", "1")
	if err := result(t, done); !errors.Is(err, errHandle) {
		t.Errorf("Run = %v, want the handler's error", err)
	}
	if s := <-opened; !closed(s) {
		t.Errorf("socket still open after a handler error")
	}

	errIdle := errors.New("idle failed")
	done, opened = run(context.Background(), zsock.Loop{
		Wait:   time.Millisecond,
		Handle: func(*zmq.Socket, [][]byte) error { return nil },
		Idle:   func() error { return errIdle },
	}, func() (*zmq.Socket, error) { return zsock.Sub(zsock.SubConfig{Connect: []string{ep}}) })
	if err := result(t, done); err != errIdle {
		t.Errorf("Run = %v, want the idle error", err)
	}
	if s := <-opened; !closed(s) {
		t.Errorf("socket still open after an idle error")
	}
}

// A REP that never replies cannot receive again: libzmq says EFSM, which is
// fatal, and Run returns it wrapped instead of trying again.
func TestLoopReturnsFatalRecvError(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	req, err := zmq.NewSocket(zmq.REQ)
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	req.SetLinger(0)
	handled := 0
	bound := make(chan string, 1)
	done, opened := run(context.Background(), zsock.Loop{
		Handle: func(*zmq.Socket, [][]byte) error { handled++; return nil },
	}, func() (*zmq.Socket, error) {
		s, err := zmq.NewSocket(zmq.REP)
		if err != nil {
			return nil, err
		}
		if err := errors.Join(s.SetLinger(0), s.Bind("tcp://127.0.0.1:*")); err != nil {
			s.Close()
			return nil, err
		}
		ep, _ := s.GetLastEndpoint() // here: only open's goroutine may touch the socket
		bound <- ep
		return s, nil
	})
	rep := <-opened
	if err := req.Connect(<-bound); err != nil {
		t.Fatal(err)
	}
	if _, err := req.SendMessage("ping"); err != nil {
		t.Fatal(err)
	}
	err = result(t, done)
	if !errors.Is(err, zmq.EFSM) || zsock.Temporary(err) || !strings.HasPrefix(err.Error(), "recv: ") {
		t.Errorf("Run = %v, want recv: wrapping EFSM", err)
	}
	if handled != 1 {
		t.Errorf("handled %d messages, want 1", handled)
	}
	if !closed(rep) {
		t.Errorf("socket still open after a fatal error")
	}
}

func TestOwnOpenError(t *testing.T) {
	errOpen := errors.New("no socket")
	used := false
	err := zsock.Own(func() (*zmq.Socket, error) { return nil, errOpen }, func(*zmq.Socket) error { used = true; return nil })
	if err != errOpen || used {
		t.Errorf("Own with a failing open = %v (use called: %v), want the open error and no use", err, used)
	}
}

func TestSubConnectError(t *testing.T) {
	s, err := zsock.Sub(zsock.SubConfig{Connect: []string{"tcp://127.0.0.1:*", "nosuch://x"}})
	if err == nil {
		s.Close()
		t.Fatalf("Sub with bad endpoints = nil error, want one per bad endpoint")
	}
	for _, want := range []string{"connect tcp://127.0.0.1:*: ", "connect nosuch://x: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Sub error %q does not contain %q", err, want)
		}
	}
	if !errors.Is(err, zmq.Errno(syscall.EPROTONOSUPPORT)) {
		t.Errorf("Sub error %q does not wrap EPROTONOSUPPORT", err)
	}
}
