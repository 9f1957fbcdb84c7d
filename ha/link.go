package ha

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// LinkConfig configures a Link.
type LinkConfig struct {
	// Bind is the local state endpoint: the PUB binds here and the peer's
	// Link connects to it ("tcp://*:5570"; "tcp://127.0.0.1:*" picks a free
	// port, see Endpoint).
	Bind string
	// Peer is the peer's state endpoint (--ha-peer): the SUB connects here,
	// and reconnects by itself whenever the peer restarts.
	Peer string
	// Queue is how many received states wait for the owner; 0 means 8.
	// When it is full the oldest is dropped and counted (LinkStats.Dropped).
	Queue int
	// ConnHeartbeat turns on ZMTP heartbeats on the SUB's connection: a
	// connection that carries nothing at the transport level for three of
	// them is dropped and made again, so a peer host that vanished without
	// closing its TCP connections (power loss, then a reboot) is reached
	// again. These pings are libzmq's and never count as beats: only states
	// keep the peer alive. 0: off.
	ConnHeartbeat time.Duration
}

// LinkStats counts what a Link did.
type LinkStats struct {
	Sent     uint64 // states published
	Skipped  uint64 // states handed to Beat but superseded by a newer one before Run published them
	Received uint64 // states received from the peer
	Refused  uint64 // messages received that are not states (Parse refused them)
	Dropped  uint64 // received states dropped, oldest first, because the owner did not keep up
}

// ErrLinkDown is returned by Beat when Run is not running.
var ErrLinkDown = errors.New("ha: link not running")

// Link exchanges States with the peer gateway over PUB/SUB. Run, one
// goroutine with its OS thread locked, owns both libzmq sockets. The owner
// hands it the state to publish with Beat, every heartbeat; the Link never
// publishes on its own, so when the owner stops beating the peer stops
// hearing from this gateway. States from the peer come out of Recv.
type Link struct {
	cfg   LinkConfig
	pipe  string        // inproc endpoint of the beat pipe into Run
	recv  chan State    // received states; sent to by Run only, closed when Run returns
	ready chan struct{} // closed once both sockets are up
	ran   atomic.Bool   // Run was called

	mu     sync.Mutex
	push   *zmq.Socket // the writing end of the beat pipe; created and closed by Run, used by Beat. Guarded by mu.
	closed bool        // Run has closed push. Guarded by mu.

	endpoint string // the bound endpoint; written before ready is closed

	sent, skipped, received, refused, dropped atomic.Uint64
}

var pipeSeq atomic.Uint64 // unique inproc names for beat pipes

// NewLink checks cfg and returns a Link ready to Run.
func NewLink(cfg LinkConfig) (*Link, error) {
	switch {
	case cfg.Bind == "":
		return nil, errors.New("ha: link: no local state endpoint (Bind)")
	case cfg.Peer == "":
		return nil, errors.New("ha: link: no peer state endpoint (Peer)")
	case cfg.Queue < 0:
		return nil, fmt.Errorf("ha: link: queue %d, want >= 0", cfg.Queue)
	case cfg.ConnHeartbeat < 0:
		return nil, fmt.Errorf("ha: link: connection heartbeat %v, want >= 0", cfg.ConnHeartbeat)
	}
	if cfg.Queue == 0 {
		cfg.Queue = 8
	}
	return &Link{
		cfg:   cfg,
		pipe:  fmt.Sprintf("inproc://mdgate-ha-beat-%d", pipeSeq.Add(1)),
		recv:  make(chan State, cfg.Queue),
		ready: make(chan struct{}),
	}, nil
}

// Ready is closed once Run has bound the PUB and connected the SUB. If Run
// fails before that, it returns the error and Ready is never closed.
func (l *Link) Ready() <-chan struct{} { return l.ready }

// Endpoint is the endpoint the PUB is bound to (with the port libzmq picked
// for a "*" port), once Ready is closed; "" before.
func (l *Link) Endpoint() string {
	select {
	case <-l.ready:
		return l.endpoint
	default:
		return ""
	}
}

// Recv delivers the states received from the peer, in order, dropping the
// oldest when the owner falls Queue behind. It is closed when Run returns.
func (l *Link) Recv() <-chan State { return l.recv }

// Stats returns the counters.
func (l *Link) Stats() LinkStats {
	return LinkStats{
		Sent:     l.sent.Load(),
		Skipped:  l.skipped.Load(),
		Received: l.received.Load(),
		Refused:  l.refused.Load(),
		Dropped:  l.dropped.Load(),
	}
}

// Beat hands Run the state to publish now. It does not block: Run publishes
// it as soon as it wakes, or a newer one if Beat was called again first.
// It returns ErrLinkDown before Run is ready and after it returns, and an
// error wrapping ErrNotState for a State with an unknown role or mode.
// Safe for concurrent use.
func (l *Link) Beat(s State) error {
	if err := s.check(); err != nil {
		return err
	}
	return l.send(Append(make([]byte, 0, StateSize), s))
}

// send writes b into the beat pipe; an empty b only wakes Run.
func (l *Link) send(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.push == nil || l.closed {
		return ErrLinkDown
	}
	if _, err := l.push.SendBytes(b, zmq.DONTWAIT); err != nil {
		return fmt.Errorf("ha: beat: %w", err)
	}
	return nil
}

// Run binds the PUB on Bind, connects the SUB to Peer, and publishes every
// state handed to Beat and delivers every state received, until ctx is done
// (then it returns nil) or a socket fails. It may be called once.
func (l *Link) Run(ctx context.Context) error {
	if l.ran.Swap(true) {
		return errors.New("ha: link: Run called twice")
	}
	defer close(l.recv)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	var socks []*zmq.Socket // closed in reverse order on return
	newSocket := func(t zmq.Type) (*zmq.Socket, error) {
		s, err := zmq.NewSocket(t)
		if err != nil {
			return nil, fmt.Errorf("ha: link: new %v socket: %w", t, err)
		}
		socks = append(socks, s)
		return s, s.SetLinger(0) // a state is worthless once we stop
	}
	defer func() {
		l.mu.Lock()
		l.closed = true
		if l.push != nil {
			l.push.Close()
		}
		l.mu.Unlock()
		for i := len(socks) - 1; i >= 0; i-- {
			socks[i].Close()
		}
	}()

	pull, err := newSocket(zmq.PULL)
	if err != nil {
		return err
	}
	if err := pull.Bind(l.pipe); err != nil {
		return fmt.Errorf("ha: link: bind beat pipe: %w", err)
	}
	push, err := zmq.NewSocket(zmq.PUSH)
	if err != nil {
		return fmt.Errorf("ha: link: new PUSH socket: %w", err)
	}
	l.mu.Lock()
	l.push = push
	l.mu.Unlock()
	if err := errors.Join(push.SetLinger(0), push.Connect(l.pipe)); err != nil {
		return fmt.Errorf("ha: link: connect beat pipe: %w", err)
	}

	pub, err := newSocket(zmq.PUB)
	if err != nil {
		return err
	}
	if err := errors.Join(pub.SetSndhwm(stateHWM), pub.SetTcpKeepalive(1)); err != nil {
		return fmt.Errorf("ha: link: state PUB options: %w", err)
	}
	if err := pub.Bind(l.cfg.Bind); err != nil {
		return fmt.Errorf("ha: link: bind state PUB %s: %w", l.cfg.Bind, err)
	}
	l.endpoint = l.cfg.Bind
	if got, err := pub.GetLastEndpoint(); err == nil {
		l.endpoint = got
	}

	sub, err := newSocket(zmq.SUB)
	if err != nil {
		return err
	}
	opts := []error{sub.SetRcvhwm(stateHWM), sub.SetTcpKeepalive(1), sub.SetSubscribe("")}
	if hb := l.cfg.ConnHeartbeat; hb > 0 {
		opts = append(opts, sub.SetHeartbeatIvl(hb), sub.SetHeartbeatTimeout(3*hb))
	}
	if err := errors.Join(opts...); err != nil {
		return fmt.Errorf("ha: link: state SUB options: %w", err)
	}
	if err := sub.Connect(l.cfg.Peer); err != nil {
		return fmt.Errorf("ha: link: connect state SUB %s: %w", l.cfg.Peer, err)
	}

	// A cancelled ctx wakes the poll below through the pipe.
	stop := context.AfterFunc(ctx, func() { _ = l.send(nil) })
	defer stop()
	poller := zmq.NewPoller()
	poller.Add(pull, zmq.POLLIN)
	poller.Add(sub, zmq.POLLIN)
	close(l.ready)

	for ctx.Err() == nil {
		polled, err := poller.Poll(-1)
		if err != nil {
			if zmq.AsErrno(err) == zmq.Errno(syscall.EINTR) {
				continue
			}
			return fmt.Errorf("ha: link: poll: %w", err)
		}
		for _, p := range polled {
			switch p.Socket {
			case pull:
				if err := l.publish(pull, pub); err != nil {
					return err
				}
			case sub:
				l.receive(sub)
			}
		}
	}
	return nil
}

// stateHWM is the high-water mark of both state sockets. libzmq counts a
// pipe's free room from acknowledgements it takes in lazily, so a small mark
// (4 dropped beats sent back to back in a test) fills while the peer has
// read everything; 64 states are a minute of beats at a second each.
const stateHWM = 64

// drainMax bounds the messages taken from one socket per wake-up.
const drainMax = 256

// publish takes every beat waiting in the pipe and publishes the newest.
func (l *Link) publish(pull, pub *zmq.Socket) error {
	var newest []byte
	for range drainMax {
		b, err := pull.RecvBytes(zmq.DONTWAIT)
		if err != nil {
			break // EAGAIN: the pipe is empty
		}
		if len(b) == 0 {
			continue // a wake-up
		}
		if newest != nil {
			l.skipped.Add(1)
		}
		newest = b
	}
	if newest == nil {
		return nil
	}
	// A PUB never blocks: with no peer connected, or one that does not
	// read, libzmq drops the state, which is what a missed beat is.
	if _, err := pub.SendBytes(newest, zmq.DONTWAIT); err != nil {
		if zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN) {
			return nil
		}
		return fmt.Errorf("ha: link: publish state: %w", err)
	}
	l.sent.Add(1)
	return nil
}

// receive parses every waiting message from the peer and delivers the states.
func (l *Link) receive(sub *zmq.Socket) {
	for range drainMax {
		msg, err := sub.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			return // EAGAIN: nothing more waits
		}
		if len(msg) != 1 {
			l.refused.Add(1)
			continue
		}
		s, err := Parse(msg[0])
		if err != nil {
			l.refused.Add(1)
			continue
		}
		l.received.Add(1)
		l.deliver(s)
	}
}

// deliver queues s for the owner, dropping the oldest queued state while the
// queue is full. Run is the only sender, so this ends: every pass either
// queues s or frees a slot.
func (l *Link) deliver(s State) {
	for {
		select {
		case l.recv <- s:
			return
		default:
		}
		select {
		case <-l.recv:
			l.dropped.Add(1)
		default:
		}
	}
}
