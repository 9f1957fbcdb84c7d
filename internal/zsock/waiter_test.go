package zsock_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/zsock"
)

// waitedPull is a PULL socket, owned by the test's goroutine (its OS thread
// locked by the caller), a Waiter for it, and what closes both: to be
// deferred, so they close on the locked thread.
func waitedPull(t *testing.T) (*zmq.Socket, *zsock.Waiter, func()) {
	t.Helper()
	pull, err := zmq.NewSocket(zmq.PULL)
	if err != nil {
		t.Fatal(err)
	}
	pull.SetLinger(0)
	w, err := zsock.NewWaiter(pull)
	if err != nil {
		pull.Close()
		t.Fatal(err)
	}
	return pull, w, func() { w.Close(); pull.Close() }
}

// TestWaiterMissesNoMessage: a PULL socket's owner polls without blocking
// and waits in the Waiter only when that found nothing, while another
// goroutine pushes messages one at a time; every wait must end woken, not
// by its timeout, whether the push came before or during it.
func TestWaiterMissesNoMessage(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pull, w, closeAll := waitedPull(t)
	defer closeAll()
	if err := pull.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, _ := pull.GetLastEndpoint()

	const n = 200
	next := make(chan struct{}) // the receiver asks for the next message
	pushed := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		push, err := zmq.NewSocket(zmq.PUSH)
		if err != nil {
			pushed <- err
			return
		}
		defer push.Close()
		push.SetLinger(0)
		if err := push.Connect(ep); err != nil {
			pushed <- err
			return
		}
		for i := range n {
			if _, ok := <-next; !ok {
				break
			}
			if _, err := push.Send(strconv.Itoa(i), 0); err != nil {
				pushed <- err
				return
			}
		}
		pushed <- nil
	}()
	defer close(next)
	poller := zmq.NewPoller()
	poller.Add(pull, zmq.POLLIN)
	ctx := context.Background()
	for i := range n {
		next <- struct{}{}
		for {
			polled, err := poller.Poll(0)
			if err != nil {
				t.Fatal(err)
			}
			if len(polled) > 0 {
				break
			}
			if !w.Wait(ctx, wait) {
				t.Fatalf("message %d: Wait ran out (%v) with the message sent: an edge was missed", i, wait)
			}
		}
		got, err := pull.Recv(zmq.DONTWAIT)
		if err != nil || got != strconv.Itoa(i) {
			t.Fatalf("message %d: Recv = %q, %v; want %q", i, got, err, strconv.Itoa(i))
		}
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
}

func TestWaiterTimeoutAndContext(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	_, w, closeAll := waitedPull(t)
	defer closeAll()
	zmq.NewPoller().Poll(0) // nothing will come: only the timeout or ctx ends a wait
	if w.Wait(context.Background(), time.Millisecond) {
		t.Error("Wait(1ms) on a silent socket = true, want false (timed out)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w.Wait(ctx, -1) {
		t.Error("Wait(cancelled ctx, no limit) = true, want false")
	}
	if w.Wait(context.Background(), 0) {
		t.Error("Wait(0) = true, want false")
	}
}

// TestWaiterCloseStopsWatchers: Close returns only once every watching
// goroutine has ended, and leaves the socket usable.
func TestWaiterCloseStopsWatchers(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var socks []*zmq.Socket
	for range 3 {
		s, err := zmq.NewSocket(zmq.PULL)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		socks = append(socks, s)
	}
	w, err := zsock.NewWaiter(socks...)
	if err != nil {
		t.Fatal(err)
	}
	// Other tests' goroutines may still be ending: the count may only fall.
	during := runtime.NumGoroutine()
	w.Close()
	if got := runtime.NumGoroutine(); got > during-3 {
		t.Errorf("goroutines after Close = %d, want at most %d (its 3 watchers ended)", got, during-3)
	}
	if err := socks[0].Bind("tcp://127.0.0.1:*"); err != nil {
		t.Errorf("bind after Close: %v (the socket's own descriptor must be untouched)", err)
	}
	if _, err := socks[0].GetEvents(); err != nil {
		t.Errorf("GetEvents after Close: %v", err)
	}
}
