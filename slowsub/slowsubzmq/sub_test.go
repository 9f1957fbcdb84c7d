package slowsubzmq_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/slowsub/slowsubzmq"
	"github.com/mdgate/mdgate/tick"
)

// stampedPub is an XPUB on loopback tcp speaking the gateway's stamped
// stream; it waits for the subscription before sending, so nothing is lost
// to the slow joiner.
type stampedPub struct {
	sock *zmq.Socket
	ep   string
}

func newPub(t testing.TB) *stampedPub {
	s, err := zmq.NewSocket(zmq.XPUB)
	if err != nil {
		t.Fatal(err)
	}
	s.SetLinger(0)
	s.SetSndhwm(0)
	if err := s.Bind("tcp://127.0.0.1:*"); err != nil {
		t.Fatal(err)
	}
	ep, _ := s.GetLastEndpoint()
	t.Cleanup(func() { s.Close() })
	return &stampedPub{s, ep}
}

func (p *stampedPub) awaitSubscriber(t testing.TB) {
	p.sock.SetRcvtimeo(10 * time.Second)
	if _, err := p.sock.RecvBytes(0); err != nil {
		t.Fatalf("no subscription within 10s: %v", err)
	}
}

func (p *stampedPub) send(topic string, st tick.Stamp) {
	p.sock.SendMessage(topic, `{"px":1}`, tick.AppendStamp(nil, st))
}

func dial(t testing.TB, ep string, maxLag time.Duration) *slowsubzmq.Sub {
	s, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: ep, MaxLag: maxLag})
	if err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(10 * time.Second)
	t.Cleanup(func() { s.Close() })
	return s
}

// A consumer slowed on purpose (10 ms of work a message) falls behind a
// burst and ends with ErrTooSlow instead of drifting further behind.
func TestSlowConsumerEndsTooSlow(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub := newPub(t)
	sub := dial(t, pub.ep, 100*time.Millisecond)
	pub.awaitSubscriber(t)
	for i := uint64(1); i <= 200; i++ {
		pub.send("md.eq.AAPL", tick.Stamp{Epoch: 1, Seq: i, Ingress: time.Now().UnixNano()})
	}
	for n := 1; ; n++ {
		_, err := sub.Recv()
		if err != nil {
			var lag *slowsubzmq.LagError
			if !errors.Is(err, slowsubzmq.ErrTooSlow) || !errors.As(err, &lag) || lag.Lag <= 100*time.Millisecond {
				t.Fatalf("after %d messages: %v, want a lag error past 100ms", n, err)
			}
			if n >= 200 {
				t.Fatalf("the slow consumer read all %d messages before failing", n)
			}
			return
		}
		time.Sleep(10 * time.Millisecond) // the consumer's slow work, not synchronisation
	}
}

// A message's lag is measured on the Sub's clock: within MaxLag it is
// delivered, past it by a millisecond the Sub ends with that exact lag.
func TestLagOnTheClock(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	clk := clock.NewFake(time.Now())
	pub := newPub(t)
	sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: pub.ep, MaxLag: 100 * time.Millisecond, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sub.SetTimeout(10 * time.Second)
	pub.awaitSubscriber(t)
	ingress := clk.Now().UnixNano()
	for seq := uint64(1); seq <= 2; seq++ {
		pub.send("md.eq.AAPL", tick.Stamp{Epoch: 1, Seq: seq, Ingress: ingress})
	}
	clk.Advance(100 * time.Millisecond)
	if m, err := sub.Recv(); err != nil || m.Stamp.Seq != 1 {
		t.Fatalf("Recv at exactly MaxLag = %v, %v; want seq 1", m, err)
	}
	clk.Advance(time.Millisecond)
	_, err = sub.Recv()
	var lag *slowsubzmq.LagError
	if !errors.As(err, &lag) || lag.Lag != 101*time.Millisecond {
		t.Fatalf("Recv 1ms past MaxLag = %v, want a *LagError of 101ms", err)
	}
}

func TestGapAndEpochChangeDetected(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, tc := range []struct {
		name  string
		sends []tick.Stamp
		want  string
	}{
		{"missed seq", []tick.Stamp{{Epoch: 1, Seq: 1}, {Epoch: 1, Seq: 2}, {Epoch: 1, Seq: 4}}, "gap in sequence: t want seq 3, got 4"},
		{"new epoch", []tick.Stamp{{Epoch: 1, Seq: 1}, {Epoch: 2, Seq: 1}}, "gap in sequence: t epoch changed 0000000000000001 -> 0000000000000002"},
		{"replays skipped", []tick.Stamp{{Epoch: 1, Seq: 1}, {Epoch: 1, Seq: 1, Flags: tick.FlagReplay}, {Epoch: 1, Seq: 2}, {Epoch: 1, Seq: 4}}, "gap in sequence: t want seq 3, got 4"},
	} {
		pub := newPub(t)
		sub := dial(t, pub.ep, 0)
		pub.awaitSubscriber(t)
		for _, st := range tc.sends {
			pub.send("t", st)
		}
		var err error
		for n := 0; err == nil && n < len(tc.sends); n++ {
			_, err = sub.Recv()
		}
		if !errors.Is(err, slowsubzmq.ErrGap) || err.Error() != tc.want {
			t.Errorf("%s: Recv = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func ExampleSub() {
	pub, _ := zmq.NewSocket(zmq.XPUB) // stands in for the gateway's stamped egress
	defer pub.Close()
	pub.SetLinger(0)
	pub.Bind("inproc://example-stamped")

	sub, _ := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: "inproc://example-stamped", Prefixes: []string{"md.eq."}, MaxLag: 2 * time.Second})
	defer sub.Close()
	pub.RecvBytes(0) // the subscription has arrived

	now := time.Now().UnixNano()
	for _, seq := range []uint64{1, 2, 4} { // seq 3 was lost
		pub.SendMessage("md.eq.AAPL", "101.5", tick.AppendStamp(nil, tick.Stamp{Epoch: 7, Seq: seq, Ingress: now}))
	}
	for {
		m, err := sub.Recv()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(m.Topic, m.Stamp.Seq)
	}
	// Output:
	// md.eq.AAPL 1
	// md.eq.AAPL 2
	// gap in sequence: md.eq.AAPL want seq 3, got 4
}

func TestDialBadEndpoint(t *testing.T) {
	s, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: "nosuch://x"})
	if err == nil {
		s.Close()
		t.Fatal(`Dial("nosuch://x") = nil error, want one`)
	}
	if want := "slowsub: connect nosuch://x: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf(`Dial("nosuch://x") = %q, want it to start %q`, err, want)
	}
}

// Recv with nothing sent ends at the timeout with EAGAIN, which callers
// polling a Sub tell from the errors that end it.
func TestRecvTimeoutIsEAGAIN(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub := newPub(t)
	sub := dial(t, pub.ep, 0)
	sub.SetTimeout(time.Millisecond)
	if m, err := sub.Recv(); m != nil || !errors.Is(err, zmq.Errno(syscall.EAGAIN)) {
		t.Errorf("Recv() with nothing sent = %v, %v, want nil, EAGAIN", m, err)
	}
}
