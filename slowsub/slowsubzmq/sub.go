package slowsubzmq

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
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

// ErrDiverged is what a *DivergedError wraps. Unlike ErrTooSlow and ErrGap
// it does not end the Sub: Recv returns the message with it, and the
// topic goes on from that message.
var ErrDiverged = errors.New("diverged")

// DivergedError: a failover pair's new active stamped Got under a higher
// term (NewTerm) than the update the Sub held (Seq under Term), at or below
// Seq: the updates the Sub handed out past Got.Seq-1 of this topic were
// never on the gateway now active (docs/ha.md, the client rule). Recv
// returns the message with this error and has taken it as the topic's
// latest: the caller replaces what it held of the topic past the message's
// seq with the message, and reads on. With repair, the same is returned
// for the update at the held seq that the repair's check (a SINCE from the
// seq before the held one) found under another term than the one held.
type DivergedError struct {
	Topic      string
	Epoch, Seq uint64 // the update held
	Term       uint16 // its term
	Got        uint64 // the seq of the update returned with the error
	NewTerm    uint16 // its term
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("diverged: %s seq %d under term %d after seq %d under term %d: the updates past seq %d were not on the gateway now active",
		e.Topic, e.Got, e.NewTerm, e.Seq, e.Term, e.Got-1)
}
func (e *DivergedError) Unwrap() error { return ErrDiverged }

// SilentBeats is how many of SubConfig.HeartbeatEvery pass with nothing on
// the stream before a Sub votes.
const SilentBeats = 3

// FailoverStats counts what a Sub did about a failover pair.
type FailoverStats struct {
	Votes     int // subscribes to tick.VoteTopic after silence
	Diverged  int // updates returned with a *DivergedError
	StaleTerm int // updates under a lower term than their topic's, dropped
	Moves     int // moves to the next repair endpoint (ERR passive, no connection within RepairConnectWait, or no answer within RepairTimeout)
	Passive   int // ERR passive answers
}

// FailoverStats returns the counts so far.
func (s *Sub) FailoverStats() FailoverStats {
	st := s.fo
	if s.rep != nil {
		st.Moves, st.Passive = s.rep.moves, s.rep.passive
	}
	return st
}

// SubConfig configures a Sub.
type SubConfig struct {
	Endpoint string // the gateway's stamped egress, e.g. tcp://gw:5559
	// Endpoints are more stamped egresses, connected with Endpoint: a
	// failover pair's two gateways. Only the active publishes; the seqs
	// drop what comes twice.
	Endpoints []string
	Prefixes  []string // nil: everything
	MaxLag    time.Duration
	RcvHWM    int // libzmq's receive high-water mark (0: libzmq's default)
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
	// RepairEndpoints are more snapshot endpoints, after Repair (a failover
	// pair: both gateways'). The Sub connects to every one at Dial and
	// keeps the connections. A SINCE goes to one at a time; at ERR passive
	// (a standby: the ask was a vote), when the endpoint has no connection
	// within RepairConnectWait (its gateway is down), or when RepairTimeout
	// passes without an answer it goes to the next, after a backoff once
	// every one has been asked. The Sub ends with a *RepairError when no endpoint has
	// answered within RepairTimeout times the number of endpoints.
	RepairEndpoints []string

	// HeartbeatEvery is a failover pair's heartbeat interval (the gateways'
	// --ha-heartbeat); 0: none. With it the Sub subscribes to
	// tick.HeartbeatTopic as well (so that quiet topics are not silence),
	// and when SilentBeats of it pass with nothing on the stream, not even
	// a heartbeat, it subscribes to tick.VoteTopic: a vote, which makes a
	// standby whose peer is dead active (docs/ha.md). It votes again every
	// HeartbeatEvery while the silence lasts. Recv does this while it waits.
	HeartbeatEvery time.Duration
}

// last is a topic's last update: the point a repair asks from, and what
// the term rule compares with.
type last struct {
	epoch, seq uint64
	term       uint16
}

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

	timeout  time.Duration // SetTimeout's (-1: none)
	poller   *zmq.Poller   // the SUB, with HeartbeatEvery and no repair
	heard    time.Time     // when the stream last gave anything, heartbeats included
	nextVote time.Time
	voted    bool
	fo       FailoverStats
}

// Dial connects and subscribes.
func Dial(cfg SubConfig) (*Sub, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	connect := append([]string{cfg.Endpoint}, cfg.Endpoints...)
	if cfg.Endpoint == "" {
		connect = connect[1:]
	}
	if len(connect) == 0 {
		return nil, errors.New("slowsub: no endpoint")
	}
	prefixes := cfg.Prefixes
	if cfg.HeartbeatEvery > 0 && prefixes != nil && !slices.Contains(prefixes, "") {
		prefixes = append(slices.Clip(prefixes), tick.HeartbeatTopic)
	}
	sock, err := zsock.Sub(zsock.SubConfig{Connect: connect, Prefixes: prefixes, RcvHWM: cfg.RcvHWM})
	if err != nil {
		return nil, fmt.Errorf("slowsub: %w", err)
	}
	s := &Sub{cfg: cfg, sock: sock, seen: map[string]last{}, timeout: -1}
	s.heard = time.Now()
	s.nextVote = s.heard.Add(SilentBeats * cfg.HeartbeatEvery)
	if cfg.Repair != "" || len(cfg.RepairEndpoints) > 0 {
		if s.rep, err = newRepairer(s); err != nil {
			sock.Close()
			return nil, fmt.Errorf("slowsub: %w", err)
		}
	}
	if s.rep == nil && cfg.HeartbeatEvery > 0 {
		s.poller = zmq.NewPoller()
		s.poller.Add(sock, zmq.POLLIN)
	}
	return s, nil
}

// heardNow notes that the stream gave something.
func (s *Sub) heardNow() {
	if s.cfg.HeartbeatEvery > 0 {
		s.heard = time.Now()
		s.nextVote = s.heard.Add(SilentBeats * s.cfg.HeartbeatEvery)
	}
}

// voteIfSilent votes when the stream has been silent for SilentBeats
// heartbeats, and again every heartbeat while it stays so: it subscribes
// to tick.VoteTopic (unsubscribing first, so that libzmq keeps one
// subscription; the gateway's XPUB is verbose and sees every subscribe).
func (s *Sub) voteIfSilent(now time.Time) error {
	if s.cfg.HeartbeatEvery <= 0 || now.Before(s.nextVote) {
		return nil
	}
	s.nextVote = now.Add(s.cfg.HeartbeatEvery)
	if s.voted {
		if err := s.sock.SetUnsubscribe(tick.VoteTopic); err != nil {
			return fmt.Errorf("slowsub: vote: %w", err)
		}
	}
	if err := s.sock.SetSubscribe(tick.VoteTopic); err != nil {
		return fmt.Errorf("slowsub: vote: %w", err)
	}
	s.voted = true
	s.fo.Votes++
	return nil
}

// untilVote is how long until the next vote is due (-1: never).
func (s *Sub) untilVote() time.Duration {
	if s.cfg.HeartbeatEvery <= 0 {
		return -1
	}
	return max(time.Until(s.nextVote), 0)
}

// Close closes the sockets.
func (s *Sub) Close() error {
	if s.rep != nil {
		return errors.Join(s.rep.close(), s.sock.Close())
	}
	return s.sock.Close()
}

// SetTimeout bounds how long Recv waits for a message (-1: forever); when
// it passes, Recv returns an error wrapping EAGAIN (zmq.Errno).
func (s *Sub) SetTimeout(d time.Duration) error {
	s.timeout = d
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
	var deadline time.Time
	if s.timeout >= 0 {
		deadline = time.Now().Add(s.timeout)
	}
	for {
		flags := zmq.Flag(0)
		if s.poller != nil {
			if err := s.awaitLive(deadline); err != nil {
				return nil, err
			}
			flags = zmq.DONTWAIT
		}
		frames, err := s.sock.RecvMessageBytes(flags)
		if err != nil {
			if s.poller != nil && zsock.Temporary(err) {
				continue
			}
			return nil, fmt.Errorf("slowsub: recv: %w", err)
		}
		s.heardNow()
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
		case ok && prev.epoch == st.Epoch && st.Term < prev.term:
			s.fo.StaleTerm++
			continue // stamped by an active since replaced: the highest term wins within an epoch
		case ok && prev.epoch == st.Epoch && st.Term > prev.term && st.Seq <= prev.seq:
			s.note(m)
			s.fo.Diverged++
			return m, &DivergedError{Topic: m.Topic, Epoch: prev.epoch, Seq: prev.seq, Term: prev.term, Got: st.Seq, NewTerm: st.Term}
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

// awaitLive waits for the SUB to be readable, voting on silence meanwhile;
// past deadline (zero: none) it returns an error wrapping EAGAIN.
func (s *Sub) awaitLive(deadline time.Time) error {
	for {
		wait := s.untilVote()
		if !deadline.IsZero() {
			if left := max(time.Until(deadline), 0); wait < 0 || left < wait {
				wait = left
			}
		}
		polled, err := s.poller.Poll(wait)
		if err != nil && !zsock.Temporary(err) {
			return fmt.Errorf("slowsub: poll: %w", err)
		}
		if len(polled) > 0 {
			return nil
		}
		if err := s.voteIfSilent(time.Now()); err != nil {
			return err
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return fmt.Errorf("slowsub: recv: %w", zmq.Errno(syscall.EAGAIN))
		}
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
		s.seen[m.Topic] = last{m.Stamp.Epoch, m.Stamp.Seq, m.Stamp.Term}
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
