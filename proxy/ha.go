package proxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdgate/mdgate/ha"
	"github.com/mdgate/mdgate/tick"
)

// HA makes the proxy one gateway of a Binary Star failover pair
// (docs/ha.md). The loop owns the state machine: it beats every Heartbeat
// from the loop itself (a hung loop stops its beats), takes the peer's
// states, and counts votes (Vote, and every ZeroMQ subscribe). While not
// active it refuses its publishers' messages (counted "passive") and
// mirrors the active's stamped egress into the cache and history instead,
// keeping the active's stamps; when it takes over it stamps its
// publishers' messages under the pair's epoch, each topic's seq continuing
// from the last it mirrored, with a new term.
type HA struct {
	Role      ha.Role
	Bind      string        // this gateway's HA state endpoint (a PUB)
	Peer      string        // the peer's HA state endpoint
	Mirror    []string      // the peer's stamped egress, mirrored while not active
	Heartbeat time.Duration // state published this often; the peer is dead after 2 missed
	Term      uint64        // the term the last run saved (0: none)
	// SaveTerm is called on the loop before the first stamp under a new
	// term; an error stops the gateway (it must not stamp under a term a
	// restart could reuse). nil: the term is not saved.
	SaveTerm func(uint64) error
	// OnStandby is called on the loop when this gateway stops being the
	// active one (it yielded to a higher term): the gateway closes its
	// WebSocket clients so they resume on the other. nil: nothing.
	OnStandby func()
}

// DefaultHAHeartbeat is HA.Heartbeat when zero.
const DefaultHAHeartbeat = 500 * time.Millisecond

func (h *HA) validate() error {
	var errs []error
	if h.Role != ha.RolePrimary && h.Role != ha.RoleBackup {
		errs = append(errs, fmt.Errorf("ha role %v: want primary or backup", h.Role))
	}
	if h.Bind == "" || h.Peer == "" {
		errs = append(errs, errors.New("ha: both the state endpoint to bind and the peer's are needed"))
	}
	if len(h.Mirror) == 0 {
		errs = append(errs, errors.New("ha: the peer's stamped egress to mirror is needed"))
	}
	if h.Heartbeat < 0 {
		errs = append(errs, fmt.Errorf("ha heartbeat %v: want more than 0", h.Heartbeat))
	}
	if h.Term > math.MaxUint16 {
		errs = append(errs, fmt.Errorf("ha term %d: past the stamp's %d", h.Term, math.MaxUint16))
	}
	return errors.Join(errs...)
}

// haState is the pair's bookkeeping.
type haState struct {
	cfg   HA
	votes chan chan bool // Vote's requests, answered by the loop

	// Owned by the loop.
	machine  *ha.Machine
	link     *ha.Link
	nextBeat time.Time
	pair     uint64          // the epoch the active stamps under, learned from its states
	lastTick time.Time       // the loop's previous turn
	stop     <-chan struct{} // closed when the link is told to end
	// hold: after a stall of the loop past a beat (kill -STOP, a pause) an active
	// gateway does not read its publishers for two beats, time for the
	// peer's current state to reach it (states queued during the stall are
	// old: a peer passive then may have taken over since, under a higher
	// term, and its state saying so is behind them). If it has, this one
	// yields and never stamps under its stale term; if not, it reads on.
	// Publishers' messages wait in the ingress socket meanwhile.
	hold time.Time
}

type haMetrics struct {
	mode      *prometheus.GaugeVec
	term      prometheus.Gauge
	takeovers prometheus.Counter
	votes     *prometheus.CounterVec
}

func newHAMetrics(reg prometheus.Registerer) *haMetrics {
	m := &haMetrics{
		mode: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mdgate_ha_mode",
			Help: "1 for the failover pair mode this gateway is in (primary and backup are the starting modes)."}, []string{"mode"}),
		term: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_ha_term",
			Help: "The failover pair term this gateway holds; stamps carry it while it is active."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "mdgate_ha_takeovers_total",
			Help: "Times this gateway became active."}),
		votes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_ha_votes_total",
			Help: "Client requests counted as votes while not active, by result."}, []string{"result"}),
	}
	for _, r := range []string{"accepted", "refused", "busy"} {
		m.votes.WithLabelValues(r)
	}
	reg.MustRegister(m.mode, m.term, m.takeovers, m.votes)
	return m
}

// Vote asks the pair whether this gateway serves a client now: true when
// it is active or becomes active (the peer is dead and this request is the
// vote); false when the peer is active, or when ctx ends first. Without a
// pair it is always true. Safe from any goroutine.
func (p *Proxy) Vote(ctx context.Context) bool {
	if p.ha == nil || ha.Mode(p.haMode.Load()) == ha.ModeActive {
		return true
	}
	reply := make(chan bool, 1)
	select {
	case p.ha.votes <- reply:
	default:
		p.m.ha.votes.WithLabelValues("busy").Inc()
		return false // a storm of clients: the loop answers those it has
	case <-ctx.Done():
		return false
	}
	select {
	case ok := <-reply:
		return ok
	case <-ctx.Done():
		return false
	}
}

// active reports whether the loop stamps and serves: always without a
// pair. Loop only.
func (p *Proxy) active() bool {
	return p.ha == nil || p.ha.machine.Mode() == ha.ModeActive
}

// startHA runs the state link and opens the mirror socket. The link's
// goroutine ends when ctx does; wait on the returned channel.
func (p *Proxy) startHA(ctx context.Context, s *sockets) (<-chan struct{}, error) {
	h := p.ha
	h.stop = ctx.Done()
	now := p.now()
	var err error
	if h.machine, err = ha.NewMachine(h.cfg.Role, h.cfg.Term, h.cfg.Heartbeat, now); err != nil {
		return nil, err
	}
	if h.link, err = ha.NewLink(ha.LinkConfig{Bind: h.cfg.Bind, Peer: h.cfg.Peer}); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() { defer close(done); errc <- h.link.Run(ctx) }()
	select {
	case <-h.link.Ready():
	case err := <-errc:
		<-done
		return nil, fmt.Errorf("ha link: %w", err)
	}
	if s.mirror, err = s.newSocket(zmq.SUB); err != nil {
		return done, err
	}
	opts := []error{s.mirror.SetRcvhwm(p.cfg.IngressHWM), s.mirror.SetLinger(0), s.mirror.SetSubscribe("")}
	for _, e := range h.cfg.Mirror {
		opts = append(opts, s.mirror.Connect(e))
	}
	if err := errors.Join(opts...); err != nil {
		return done, fmt.Errorf("ha mirror: %w", err)
	}
	p.haSet(h.machine.Mode(), h.machine.Term())
	p.log.Info().Stringer("role", h.cfg.Role).Str("state", h.link.Endpoint()).Str("peer", h.cfg.Peer).
		Strs("mirror", h.cfg.Mirror).Uint64("term", h.cfg.Term).Msg("failover pair: starting, waiting for the peer")
	return done, nil
}

// tickHA runs once per loop iteration: beats when due, the peer's states,
// the votes waiting. An error is fatal (docs/ha.md).
func (p *Proxy) tickHA(s *sockets) error {
	h := p.ha
	now := p.now()
	// The peer declares us dead 2 beats after the last beat it had, which
	// may be a beat older than the stall's start: a stall past one beat
	// may have let it take over.
	if stall := now.Sub(h.lastTick); !h.lastTick.IsZero() && stall > h.cfg.Heartbeat && p.active() {
		h.hold = now.Add(2 * h.cfg.Heartbeat)
		p.log.Warn().Dur("stalled", stall).Msg("failover pair: the loop stalled past a heartbeat; publishers are not read for 2 beats, until the peer's current state is in")
	}
	h.lastTick = now
	for {
		select {
		case st, ok := <-h.link.Recv():
			if !ok {
				select {
				case <-h.stop:
					return nil // a shutdown: the loop sees its ctx done
				default:
					return errors.New("ha link ended")
				}
			}
			if st.Mode == ha.ModeActive && st.Epoch != 0 {
				h.pair = st.Epoch
			}
			res, err := h.machine.Peer(st, now)
			if err != nil {
				return fmt.Errorf("failover pair: %w", err)
			}
			if err := p.haApply(res); err != nil {
				return err
			}
			continue
		case reply := <-h.votes:
			res := h.machine.ClientRequest(now)
			p.m.ha.votes.WithLabelValues(map[bool]string{true: "accepted", false: "refused"}[res.Accepted]).Inc()
			err := p.haApply(res)
			reply <- res.Accepted && err == nil
			if err != nil {
				return err
			}
			continue
		default:
		}
		break
	}
	p.haPeerAlive.Store(h.machine.PeerAlive(now))
	if now.Before(h.nextBeat) {
		return nil
	}
	h.nextBeat = now.Add(h.cfg.Heartbeat)
	if err := p.haApply(h.machine.Tick(now)); err != nil {
		return err
	}
	if err := h.link.Beat(h.machine.State(p.epoch.Load(), now)); err != nil {
		return fmt.Errorf("ha beat: %w", err)
	}
	if p.active() && s.spub != nil && !p.holding(now) {
		// The same beat on the stamped egress: subscribers of every topic
		// (edges) hear a hung or dead core go silent.
		p.scratch = tick.AppendStamp(p.scratch[:0], tick.Stamp{Epoch: p.epoch.Load(), Term: p.seq.term,
			Ingress: now.UnixNano(), Flags: tick.FlagHeartbeat})
		p.out[egressStamped].add([][]byte{heartbeatTopic}, p.scratch)
		p.flush(s)
	}
	return nil
}

var heartbeatTopic = []byte(tick.HeartbeatTopic)

// resubscribeIfSilent subscribes upstream to tick.VoteTopic when a stamped
// ingress has heard nothing, not even a heartbeat, for
// Config.IngressResubscribe: a failover pair's standby whose peer is dead
// takes over on it. Loop only.
func (p *Proxy) resubscribeIfSilent(s *sockets, now time.Time) {
	every := p.cfg.IngressResubscribe
	if !p.cfg.IngressStamped || every <= 0 {
		return
	}
	if p.heard.IsZero() {
		p.heard = now
	}
	silent := now.Sub(p.heard)
	if silent < every {
		return
	}
	p.heard = now // at most once per interval
	if _, err := s.xsub.SendBytes(append([]byte{1}, tick.VoteTopic...), zmq.DONTWAIT); err != nil {
		p.log.Warn().Err(err).Msg("voting upstream")
		return
	}
	p.m.resubscribes.Inc()
	p.log.Warn().Dur("silent", silent).Msg("upstream silent: a vote sent upstream (a failover pair's standby whose peer is dead takes over on it)")
}

// stampsWait takes the peer's states again when the process stalled past a
// beat since this turn took them (kill -STOP landing inside a receive, after
// tickHA): the peer may have taken over meanwhile, and tickHA then starts a
// hold. It reports whether stamping must wait for the hold's end. Loop only.
func (p *Proxy) stampsWait(s *sockets) (bool, error) {
	if p.ha == nil {
		return false, nil
	}
	now := p.now()
	if now.Sub(p.ha.lastTick) > p.ha.cfg.Heartbeat {
		if err := p.tickHA(s); err != nil {
			return false, err
		}
	}
	return p.holding(now), nil
}

// holding reports whether the loop leaves its publishers' messages unread
// for now (haState.hold). Loop only.
func (p *Proxy) holding(now time.Time) bool { return p.ha != nil && now.Before(p.ha.hold) }

// voteSubscribe counts a ZeroMQ subscribe as a vote while not active.
// Loop only.
func (p *Proxy) voteSubscribe() error {
	if p.active() {
		return nil
	}
	res := p.ha.machine.ClientRequest(p.now())
	p.m.ha.votes.WithLabelValues(map[bool]string{true: "accepted", false: "refused"}[res.Accepted]).Inc()
	return p.haApply(res)
}

// haApply acts on what one event did to the machine. Loop only.
func (p *Proxy) haApply(res ha.Result) error {
	if res.PeerDead {
		p.log.Warn().Stringer("mode", res.Mode).Msg("failover pair: the peer missed 2 heartbeats")
	}
	if !res.Changed() {
		if res.Mode == ha.ModeActive && uint16(res.Term) != p.seq.term && p.seq.term != 0 {
			return p.reterm(res.Term) // re-termed above a peer's higher one
		}
		return nil
	}
	if res.Mode == ha.ModeActive {
		if res.Term > math.MaxUint16 {
			return fmt.Errorf("failover pair: term %d is past the stamp's %d", res.Term, math.MaxUint16)
		}
		if f := p.ha.cfg.SaveTerm; f != nil {
			if err := f(res.Term); err != nil {
				return fmt.Errorf("failover pair: saving term %d: %w", res.Term, err)
			}
		}
		if p.ha.pair != 0 { // continue the pair's sequence
			p.seq.epoch = p.ha.pair
			p.epoch.Store(p.ha.pair)
		}
		p.seq.term = uint16(res.Term)
		p.m.ha.takeovers.Inc()
	}
	p.haSet(res.Mode, res.Term)
	if res.From == ha.ModeActive && p.ha.cfg.OnStandby != nil {
		p.ha.cfg.OnStandby()
	}
	p.log.Warn().Stringer("from", res.From).Stringer("to", res.Mode).Uint64("term", res.Term).
		Str("epoch", fmt.Sprintf("%016x", p.epoch.Load())).Msg("failover pair: mode changed")
	return nil
}

// reterm makes an active gateway stamp under a higher term, saved first.
// Loop only.
func (p *Proxy) reterm(term uint64) error {
	if term > math.MaxUint16 {
		return fmt.Errorf("failover pair: term %d is past the stamp's %d", term, math.MaxUint16)
	}
	if f := p.ha.cfg.SaveTerm; f != nil {
		if err := f(term); err != nil {
			return fmt.Errorf("failover pair: saving term %d: %w", term, err)
		}
	}
	p.seq.term = uint16(term)
	p.haSet(ha.ModeActive, term)
	p.log.Warn().Uint64("term", term).Msg("failover pair: the peer holds a higher term; stamping above it")
	return nil
}

func (p *Proxy) haSet(mode ha.Mode, term uint64) {
	p.haMode.Store(int32(mode))
	p.haTerm.Store(term)
	for _, m := range []ha.Mode{ha.ModePrimary, ha.ModeBackup, ha.ModeActive, ha.ModePassive} {
		v := 0.0
		if m == mode {
			v = 1
		}
		p.m.ha.mode.WithLabelValues(m.String()).Set(v)
	}
	p.m.ha.term.Set(float64(term))
}

// drainMirror takes the active's stamped messages: into the cache (and its
// history) with their stamps while this gateway is not active, so a
// takeover continues each topic's sequence; dropped while it is.
func (p *Proxy) drainMirror(s *sockets) error {
	if err := s.in.recv(s.mirror, p.cfg.Batch, p.cfg.MaxFrames+2); err != nil {
		return fmt.Errorf("ha mirror recv: %w", err)
	}
	at := p.now().UnixNano()
	s.in.each(func(_, n int, in *tick.Message) {
		if n < 0 {
			p.drop(DropTooManyFrames, nil)
			return
		}
		if p.active() {
			p.drop(DropMirror, nil)
			return
		}
		if m := p.admit(in, at, true); m != nil {
			if p.ha.pair == 0 {
				p.ha.pair = m.Stamp.Epoch
			}
			if p.cache != nil {
				p.cache.Update(m)
			}
		}
	})
	return nil
}
