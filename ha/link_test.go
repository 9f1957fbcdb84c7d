package ha_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mdgate/mdgate/ha"
)

// freeEndpoint returns a loopback tcp endpoint on a port that was free a
// moment ago (for the one side that must be named before the other binds).
func freeEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "tcp://" + ln.Addr().String()
}

// runLink starts l and returns a function that stops it and returns Run's
// error.
func runLink(t *testing.T, l *ha.Link) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	select {
	case <-l.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Link.Run = %v before ready", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("Link not ready after 5s")
	}
	var stopped bool
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				err = errors.New("Link.Run did not return within 5s of cancel")
			}
		}
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Link.Run = %v, want nil after cancel", err)
		}
	})
	return stop
}

// linkPair starts two Links connected to each other on loopback ports.
func linkPair(t *testing.T, queue int) (a, b *ha.Link, stopA, stopB func() error) {
	t.Helper()
	bEnd := freeEndpoint(t)
	a, err := ha.NewLink(ha.LinkConfig{Bind: "tcp://127.0.0.1:*", Peer: bEnd, Queue: queue, ConnHeartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stopA = runLink(t, a)
	b, err = ha.NewLink(ha.LinkConfig{Bind: bEnd, Peer: a.Endpoint(), Queue: queue, ConnHeartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stopB = runLink(t, b)
	return a, b, stopA, stopB
}

// beatUntilHeard beats s on from, once per wait, until to delivers a state;
// PUB/SUB drops what is sent before the connection is up.
func beatUntilHeard(t *testing.T, from, to *ha.Link, s ha.State) ha.State {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if err := from.Beat(s); err != nil {
			t.Fatalf("Beat(%+v) = %v", s, err)
		}
		select {
		case got := <-to.Recv():
			return got
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no state through the link in 10s (sender %+v, receiver %+v)", from.Stats(), to.Stats())
		}
	}
}

func TestLinkExchangesStates(t *testing.T) {
	a, b, _, _ := linkPair(t, 0)
	sa := ha.State{Role: ha.RolePrimary, Mode: ha.ModePrimary, Term: 1, Epoch: 0xa, Time: 100}
	sb := ha.State{Role: ha.RoleBackup, Mode: ha.ModeBackup, Term: 2, Epoch: 0xb, Time: 200}
	if got := beatUntilHeard(t, a, b, sa); got != sa {
		t.Errorf("b received %+v, want %+v", got, sa)
	}
	if got := beatUntilHeard(t, b, a, sb); got != sb {
		t.Errorf("a received %+v, want %+v", got, sb)
	}
	// Connected now: each beat arrives, in order (a PUB high-water mark of
	// 4 lost one of the first ten here).
	for i := range 200 {
		s := sa
		s.Mode, s.Time = ha.ModeActive, int64(1000+i)
		if err := a.Beat(s); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-b.Recv():
			if got != s {
				t.Errorf("b received %+v, want %+v", got, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("beat %d not received in 5s; a %+v, b %+v", i, a.Stats(), b.Stats())
		}
	}
	if st := a.Stats(); st.Sent == 0 || st.Refused != 0 || st.Dropped != 0 {
		t.Errorf("a.Stats() = %+v, want Sent > 0, nothing refused or dropped", st)
	}
}

// TestLinkBeatsOnlyWhenToldTo: the Link has no timer; without Beat nothing
// reaches the peer, which is how a hung owner goes dead to its peer.
func TestLinkBeatsOnlyWhenToldTo(t *testing.T) {
	a, b, _, _ := linkPair(t, 0)
	s := ha.State{Role: ha.RolePrimary, Mode: ha.ModeActive, Term: 1}
	beatUntilHeard(t, a, b, s)
	// A last beat, told apart by its time: once b has it, a has published
	// every beat it was given.
	last := s
	last.Time = 42
	if err := a.Beat(last); err != nil {
		t.Fatal(err)
	}
	for got := (ha.State{}); got != last; {
		select {
		case got = <-b.Recv():
		case <-time.After(5 * time.Second):
			t.Fatalf("the last beat did not arrive in 5s; a %+v, b %+v", a.Stats(), b.Stats())
		}
	}
	// Two quiet windows: nothing arrives, and Sent (read after the first,
	// so the count of the last beat has landed) stays put.
	var sent uint64
	for i := range 2 {
		select {
		case got := <-b.Recv():
			t.Fatalf("b received %+v with no Beat on a", got)
		case <-time.After(300 * time.Millisecond):
		}
		if got := a.Stats().Sent; i == 0 {
			sent = got
		} else if got != sent {
			t.Errorf("a.Stats().Sent = %d with no Beat, want %d", got, sent)
		}
	}
}

func TestLinkStops(t *testing.T) {
	a, b, stopA, _ := linkPair(t, 0)
	beatUntilHeard(t, a, b, ha.State{Role: ha.RolePrimary, Mode: ha.ModeActive, Term: 1})
	if err := stopA(); err != nil {
		t.Fatalf("Link.Run = %v, want nil after cancel", err)
	}
	if err := a.Beat(ha.State{Role: ha.RolePrimary, Mode: ha.ModeActive}); !errors.Is(err, ha.ErrLinkDown) {
		t.Errorf("Beat after Run returned = %v, want ErrLinkDown", err)
	}
	for range a.Recv() { // drains, then ends: Recv is closed
	}
	if err := a.Run(context.Background()); err == nil {
		t.Error("a second Run = nil, want an error")
	}
}

func TestLinkBeatRefuses(t *testing.T) {
	l, err := ha.NewLink(ha.LinkConfig{Bind: "tcp://127.0.0.1:*", Peer: "tcp://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Beat(ha.State{Role: ha.RolePrimary, Mode: ha.ModeActive}); !errors.Is(err, ha.ErrLinkDown) {
		t.Errorf("Beat before Run = %v, want ErrLinkDown", err)
	}
	runLink(t, l)
	if err := l.Beat(ha.State{Role: ha.RolePrimary, Mode: 0}); !errors.Is(err, ha.ErrNotState) {
		t.Errorf("Beat(mode 0) = %v, want ErrNotState", err)
	}
	if err := l.Beat(ha.State{Role: ha.RolePrimary, Mode: ha.ModeActive}); err != nil {
		t.Errorf("Beat with no peer listening = %v, want nil (the PUB drops it)", err)
	}
}

func TestNewLinkRejects(t *testing.T) {
	tests := []ha.LinkConfig{
		{Peer: "tcp://127.0.0.1:1"},
		{Bind: "tcp://127.0.0.1:*"},
		{Bind: "tcp://127.0.0.1:*", Peer: "tcp://127.0.0.1:1", Queue: -1},
		{Bind: "tcp://127.0.0.1:*", Peer: "tcp://127.0.0.1:1", ConnHeartbeat: -1},
	}
	for _, c := range tests {
		if l, err := ha.NewLink(c); err == nil {
			t.Errorf("NewLink(%+v) = %v, nil, want an error", c, l)
		}
	}
}

func TestLinkBindFails(t *testing.T) {
	l, err := ha.NewLink(ha.LinkConfig{Bind: "nope://x", Peer: "tcp://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "bind state PUB nope://x") || errors.Unwrap(err) == nil {
			t.Errorf("Run(bind nope://x) = %v, want a wrapped bind error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run with a bad endpoint did not return in 5s")
	}
	select {
	case <-l.Ready():
		t.Error("Ready closed after a failed bind")
	default:
	}
}

// TestLinkAndMachines is the wiring in small: each gateway's owner loop
// beats its machine's state every heartbeat and feeds the peer's states to
// its machine, on an injected clock. The pair settles primary active,
// backup passive.
func TestLinkAndMachines(t *testing.T) {
	a, b, _, _ := linkPair(t, 0)
	now := t0
	p, _ := ha.NewMachine(ha.RolePrimary, 0, hb, now)
	k, _ := ha.NewMachine(ha.RoleBackup, 0, hb, now)
	deadline := time.After(10 * time.Second)
	for p.Mode() != ha.ModeActive || k.Mode() != ha.ModePassive {
		now = now.Add(hb)
		if err := errors.Join(a.Beat(p.State(1, now)), b.Beat(k.State(2, now))); err != nil {
			t.Fatal(err)
		}
		p.Tick(now)
		k.Tick(now)
		// Wait for this round's states (or give up on them: a lost beat).
		for got := 0; got < 2; {
			select {
			case s := <-a.Recv():
				if _, err := p.Peer(s, now); err != nil {
					t.Fatal(err)
				}
				got++
			case s := <-b.Recv():
				if _, err := k.Peer(s, now); err != nil {
					t.Fatal(err)
				}
				got++
			case <-time.After(50 * time.Millisecond):
				got = 2
			case <-deadline:
				t.Fatalf("primary, backup = %v, %v after 10s, want active, passive", p.Mode(), k.Mode())
			}
		}
	}
	if p.Term() != 1 {
		t.Errorf("primary term = %d, want 1", p.Term())
	}
}

func ExampleLink() {
	// Two gateways' links on loopback; the second binds a port it is given.
	a, _ := ha.NewLink(ha.LinkConfig{Bind: "tcp://127.0.0.1:*", Peer: "tcp://127.0.0.1:1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-a.Ready()
	fmt.Println(strings.HasPrefix(a.Endpoint(), "tcp://127.0.0.1:"))
	fmt.Println(a.Beat(ha.State{Role: ha.RolePrimary, Mode: ha.ModePrimary}))
	cancel()
	fmt.Println(<-done)
	// Output:
	// true
	// <nil>
	// <nil>
}
