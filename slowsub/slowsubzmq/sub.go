package slowsubzmq

import (
	"errors"
	"fmt"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/internal/zsock"
	"github.com/mdgate/mdgate/tick"
)

// ErrTooSlow and ErrGap are what a Sub ends with; the returned errors wrap
// them with the details (*LagError, *GapError).
var (
	ErrTooSlow = errors.New("subscriber too slow")
	ErrGap     = errors.New("gap in sequence")
)

// LagError: a message arrived older than the limit.
type LagError struct {
	Topic    string
	Lag, Max time.Duration
}

func (e *LagError) Error() string {
	return fmt.Sprintf("subscriber too slow: %s arrived %v after ingress (limit %v)", e.Topic, e.Lag.Round(time.Microsecond), e.Max)
}
func (e *LagError) Unwrap() error { return ErrTooSlow }

// GapError: updates of a topic were missed (dropped at a high-water mark, or
// the stream restarted under a new epoch).
type GapError struct {
	Topic           string
	Want, Got       uint64
	Epoch, NewEpoch uint64 // NewEpoch != 0: the epoch changed from Epoch to NewEpoch
}

func (e *GapError) Error() string {
	if e.NewEpoch != 0 {
		return fmt.Sprintf("gap in sequence: %s epoch changed %016x -> %016x", e.Topic, e.Epoch, e.NewEpoch)
	}
	return fmt.Sprintf("gap in sequence: %s want seq %d, got %d", e.Topic, e.Want, e.Got)
}
func (e *GapError) Unwrap() error { return ErrGap }

// SubConfig configures a Sub.
type SubConfig struct {
	Endpoint string   // the gateway's stamped egress, e.g. tcp://gw:5559
	Prefixes []string // nil: everything
	MaxLag   time.Duration
	RcvHWM   int // libzmq's receive high-water mark (0: libzmq's default)
	// Clock is what a message's lag is measured on (nil: clock.Real). The
	// receive and repair timeouts are libzmq poll waits, in wall time.
	Clock clock.Clock

	// Repair, when set, is the gateway's snapshot endpoint (e.g.
	// tcp://gw:5558): a gap in a topic's seqs is then repaired through
	// SINCE (docs/snapshot.md) when the gateway's history covers it, and the
	// Sub ends with ErrGap (a *RepairError) only when it does not. repair.go.
	Repair string
	// RepairMaxBytes bounds the frame bytes of live updates held, every
	// topic together, for topics being repaired (0: DefaultRepairMaxBytes).
	// Past it the topic's held updates are let go; the next repair brings
	// them back from the history.
	RepairMaxBytes int
	// RepairTimeout bounds one SINCE from request to END (0:
	// DefaultRepairTimeout); past it the Sub ends with a *RepairError.
	RepairTimeout time.Duration
}

type last struct{ epoch, seq uint64 }

// Sub is the ZeroMQ guide's Suicidal Snail: a SUB on the gateway's stamped
// stream that ends with an error, instead of silently falling behind, when
// a message is older than MaxLag or a topic's sequence skips. It is not safe
// for concurrent use: one goroutine (ideally with its OS thread locked, as
// libzmq sockets want) owns it.
type Sub struct {
	cfg  SubConfig
	sock *zmq.Socket
	seen map[string]last // owned by the Recv goroutine
	rep  *repairer       // nil without SubConfig.Repair
}

// Dial connects and subscribes.
func Dial(cfg SubConfig) (*Sub, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	sock, err := zsock.Sub(zsock.SubConfig{Connect: []string{cfg.Endpoint}, Prefixes: cfg.Prefixes, RcvHWM: cfg.RcvHWM})
	if err != nil {
		return nil, fmt.Errorf("slowsub: %w", err)
	}
	s := &Sub{cfg: cfg, sock: sock, seen: map[string]last{}}
	if cfg.Repair != "" {
		if s.rep, err = newRepairer(s); err != nil {
			sock.Close()
			return nil, fmt.Errorf("slowsub: %w", err)
		}
	}
	return s, nil
}

// Close closes the sockets.
func (s *Sub) Close() error {
	if s.rep != nil {
		return errors.Join(s.rep.dealer.Close(), s.sock.Close())
	}
	return s.sock.Close()
}

// SetTimeout bounds how long Recv waits for a message (-1: forever); when
// it passes, Recv returns an error wrapping EAGAIN (zmq.Errno).
func (s *Sub) SetTimeout(d time.Duration) error {
	if s.rep != nil {
		s.rep.timeout = d
	}
	return s.sock.SetRcvtimeo(d)
}

// Recv returns the next message, or an error wrapping ErrTooSlow or ErrGap
// (after which the subscriber should stop: it no longer has a true picture),
// or the socket's error. Replays of values already seen are skipped. A
// delete (tick.FlagDelete) forgets its topic: the topic's next seq, whatever
// it is, starts it afresh. With SubConfig.Repair a gap is repaired first
// (repair.go): the updates missed come, in order, before those after them.
func (s *Sub) Recv() (*tick.Message, error) {
	if s.rep != nil {
		return s.rep.recv()
	}
	for {
		frames, err := s.sock.RecvMessageBytes(0)
		if err != nil {
			return nil, fmt.Errorf("slowsub: recv: %w", err)
		}
		m, err := parse(frames)
		if err != nil {
			return nil, err
		}
		if m.Stamp.Flags&tick.FlagHeartbeat != 0 {
			continue // a failover pair's heartbeat (subscribed to every topic): not an update
		}
		st := m.Stamp
		prev, ok := s.seen[m.Topic]
		switch {
		case ok && prev.epoch == st.Epoch && st.Seq <= prev.seq:
			continue // a replay (or repeat) of what we have
		case ok && prev.epoch != st.Epoch:
			return m, &GapError{Topic: m.Topic, Epoch: prev.epoch, NewEpoch: st.Epoch}
		case ok && st.Seq != prev.seq+1 && st.Flags&tick.FlagReplay == 0:
			return m, &GapError{Topic: m.Topic, Want: prev.seq + 1, Got: st.Seq}
		}
		s.note(m)
		return m, s.lagged(m)
	}
}

// parse reads one message of the stamped stream.
func parse(frames [][]byte) (*tick.Message, error) {
	if len(frames) < 2 {
		return nil, fmt.Errorf("slowsub: %d frames: not the stamped stream", len(frames))
	}
	st, err := tick.ParseStamp(frames[len(frames)-1])
	if err != nil {
		return nil, fmt.Errorf("slowsub: %w", err)
	}
	return &tick.Message{Topic: string(frames[0]), Frames: frames[:len(frames)-1], Stamp: st}, nil
}

// note records m as its topic's last update. A delete forgets the topic:
// the gateway starts a topic created again above every seq it has handed
// out, not at this one plus one, so whatever seq comes next is the new
// topic's start.
func (s *Sub) note(m *tick.Message) {
	if m.Stamp.Flags&tick.FlagDelete != 0 {
		delete(s.seen, m.Topic)
	} else {
		s.seen[m.Topic] = last{m.Stamp.Epoch, m.Stamp.Seq}
	}
}

// lagged returns a *LagError when m, a live update, is older than MaxLag.
func (s *Sub) lagged(m *tick.Message) error {
	if s.cfg.MaxLag > 0 && m.Stamp.Flags&tick.FlagReplay == 0 {
		if lag := s.cfg.Clock.Now().Sub(time.Unix(0, m.Stamp.Ingress)); lag > s.cfg.MaxLag {
			return &LagError{Topic: m.Topic, Lag: lag, Max: s.cfg.MaxLag}
		}
	}
	return nil
}
