package slowsub

import (
	"errors"
	"fmt"
	"time"

	zmq "github.com/pebbe/zmq4"

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
	Now      func() time.Time
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
}

// Dial connects and subscribes.
func Dial(cfg SubConfig) (*Sub, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sock, err := zsock.Sub(zsock.SubConfig{Connect: []string{cfg.Endpoint}, Prefixes: cfg.Prefixes, RcvHWM: cfg.RcvHWM})
	if err != nil {
		return nil, fmt.Errorf("slowsub: %w", err)
	}
	return &Sub{cfg: cfg, sock: sock, seen: map[string]last{}}, nil
}

// Close closes the socket.
func (s *Sub) Close() error { return s.sock.Close() }

// SetTimeout bounds how long Recv waits for a message (-1: forever); when
// it passes, Recv returns an error wrapping EAGAIN (zmq.Errno).
func (s *Sub) SetTimeout(d time.Duration) error { return s.sock.SetRcvtimeo(d) }

// Recv returns the next message, or an error wrapping ErrTooSlow or ErrGap
// (after which the subscriber should stop: it no longer has a true picture),
// or the socket's error. Replays of values already seen are skipped. A
// delete (tick.FlagDelete) forgets its topic: the topic's next seq, whatever
// it is, starts it afresh.
func (s *Sub) Recv() (*tick.Message, error) {
	for {
		frames, err := s.sock.RecvMessageBytes(0)
		if err != nil {
			return nil, fmt.Errorf("slowsub: recv: %w", err)
		}
		if len(frames) < 2 {
			return nil, fmt.Errorf("slowsub: %d frames: not the stamped stream", len(frames))
		}
		st, err := tick.ParseStamp(frames[len(frames)-1])
		if err != nil {
			return nil, fmt.Errorf("slowsub: %w", err)
		}
		m := &tick.Message{Topic: string(frames[0]), Frames: frames[:len(frames)-1], Stamp: st}
		prev, ok := s.seen[m.Topic]
		switch {
		case ok && prev.epoch == st.Epoch && st.Seq <= prev.seq:
			continue // a replay (or repeat) of what we have
		case ok && prev.epoch != st.Epoch:
			return m, &GapError{Topic: m.Topic, Epoch: prev.epoch, NewEpoch: st.Epoch}
		case ok && st.Seq != prev.seq+1 && st.Flags&tick.FlagReplay == 0:
			return m, &GapError{Topic: m.Topic, Want: prev.seq + 1, Got: st.Seq}
		}
		if st.Flags&tick.FlagDelete != 0 {
			// The topic is gone. The gateway starts a topic created again
			// above every seq it has handed out, not at this one plus one:
			// whatever seq comes next is the new topic's start.
			delete(s.seen, m.Topic)
		} else {
			s.seen[m.Topic] = last{st.Epoch, st.Seq}
		}
		if s.cfg.MaxLag > 0 && st.Flags&tick.FlagReplay == 0 {
			if lag := s.cfg.Now().Sub(time.Unix(0, st.Ingress)); lag > s.cfg.MaxLag {
				return m, &LagError{Topic: m.Topic, Lag: lag, Max: s.cfg.MaxLag}
			}
		}
		return m, nil
	}
}
