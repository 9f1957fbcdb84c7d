package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/internal/zsock"
	"github.com/mdgate/mdgate/tick"
)

// Sink receives every forwarded message, on the loop's goroutine, in ingress
// order. It must not block: the loop is every publisher's only path.
type Sink interface {
	Publish(m *tick.Message)
}

// Cache is the last-value cache as the loop uses it (package lvc). Every
// call comes from the loop's goroutine.
type Cache interface {
	// Update stores m (or removes its topic when m is a delete).
	Update(m *tick.Message) bool
	// ReplayFrom calls fn with at most max cached values under prefix
	// after topic `after`, in topic order; it returns the last topic given
	// and whether the prefix is done.
	ReplayFrom(prefix, after string, max int, fn func(*tick.Message)) (last string, done bool)
	// NextExpiry is the Unix ns of the earliest expiry, 0 for none.
	NextExpiry() int64
	// Expire removes values whose time to live ran out by now.
	Expire(now int64, fn func(topic string))
}

// Options are the proxy's collaborators.
type Options struct {
	Registerer prometheus.Registerer // nil: a private registry
	Logger     zerolog.Logger
	Sinks      []Sink
	Cache      Cache // nil: no last-value cache
	HA         *HA   // nil: not one of a failover pair
}

// Proxy is the core loop. Create it with New and start it with Run.
type Proxy struct {
	cfg   Config
	log   zerolog.Logger
	m     *metrics
	sinks []Sink
	cache Cache
	now   func() time.Time
	epoch atomic.Uint64 // the run's, or the failover pair's once this gateway took over
	ha    *haState      // nil: not one of a pair

	haMode      atomic.Int32  // ha.Mode, written by the loop
	haTerm      atomic.Uint64 // written by the loop
	haPeerAlive atomic.Bool   // written by the loop

	ready     chan struct{} // closed once every socket is bound
	mu        sync.Mutex    // guards endpoints
	endpoints Endpoints

	authLog rateLimit // refusal logs, at most one a second
	dropLog rateLimit // ingress drop logs below debug level, at most one a second

	running atomic.Bool
	turn    atomic.Int64           // Unix ns the loop last went round (Alive)
	accept  acceptGuard            // listeners shed for lack of descriptors (accept.go)
	peers   [numRoles]atomic.Int64 // by role; written by the loop, read by Health

	// Owned by the loop goroutine.
	seq     *sequencer
	subs    [numEgress]subscriptions
	replays *replayer
	longest time.Duration // the longest loop iteration
	scratch []byte
	haErr   error                // a failover pair error met where it could not be returned (a subscribe's vote)
	heard   time.Time            // stamped ingress: when upstream last sent anything, a heartbeat included
	out     [numEgress]sendBatch // messages queued per egress, flushed per batch
	ingress []int64              // ingress times of the batch being forwarded
	// ingressHeld: s.in holds a batch received across a stall of the
	// loop, stamped (or dropped as passive) once the hold ends (drainIngress).
	ingressHeld bool
}

// New checks cfg and returns a proxy ready to Run.
func New(cfg Config, opts Options) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy config: %w", err)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	epoch := cfg.Epoch
	for epoch == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("proxy epoch: %w", err)
		}
		epoch = binary.BigEndian.Uint64(b[:])
	}
	if opts.HA != nil {
		if cfg.IngressStamped {
			return nil, errors.New("proxy config: a gateway of a failover pair stamps its publishers' messages: not with a stamped ingress")
		}
		if err := opts.HA.validate(); err != nil {
			return nil, fmt.Errorf("proxy config: %w", err)
		}
	}
	p := &Proxy{
		cfg: cfg, log: opts.Logger, m: newMetrics(reg), sinks: opts.Sinks, cache: opts.Cache,
		now: now, ready: make(chan struct{}),
		seq: newSequencer(epoch, cfg.MaxTopics), replays: newReplayer(&cfg),
	}
	p.epoch.Store(epoch)
	if opts.HA != nil {
		h := *opts.HA
		if h.Heartbeat == 0 {
			h.Heartbeat = DefaultHAHeartbeat
		}
		p.ha = &haState{cfg: h, votes: make(chan chan bool, 64)}
		p.m.ha = newHAMetrics(reg)
	}
	for i := range p.subs {
		p.subs[i] = newSubscriptions(cfg.MaxSubscriptions)
	}
	p.subs[egressRaw].unreported = !subscriptionsReported(cfg.EgressBind)
	p.subs[egressStamped].unreported = !subscriptionsReported(cfg.StampedBind)
	return p, nil
}

// Epoch is this run's random id, carried in every stamp it makes.
func (p *Proxy) Epoch() uint64 { return p.epoch.Load() }

// Ready is closed when every socket is bound and the loop is about to poll.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Run binds the sockets and runs the loop until ctx is done or a socket
// fails. It returns nil after a clean shutdown.
func (p *Proxy) Run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if p.cfg.CurveSecret != "" {
		allowed := map[string]bool{}
		for _, k := range p.cfg.CurveClients {
			allowed[k] = true
		}
		zctx, zcancel := context.WithCancel(ctx)
		zdone := make(chan struct{})
		ready := make(chan error, 1)
		go func() { defer close(zdone); p.runZAP(zctx, allowed, ready) }()
		defer func() { zcancel(); <-zdone }()
		if err := <-ready; err != nil {
			return err
		}
	}
	s := &sockets{}
	defer s.close(p.cfg.Linger)
	if err := p.open(s); err != nil {
		return err
	}
	if sh, err := p.startShedder(); err != nil {
		p.log.Warn().Err(err).Msg("no descriptor table of its own for shedding: a listener out of descriptors is shed with a reserve of 8, which libzmq's accepts can use up (docs/operations.md)")
	} else if sh != nil {
		p.accept.sh = sh
		defer sh.close() // before the sockets close (deferred above)
	}
	if p.ha != nil {
		hctx, hcancel := context.WithCancel(ctx)
		done, err := p.startHA(hctx, s)
		if done != nil {
			defer func() { hcancel(); <-done }()
		} else {
			hcancel()
		}
		if err != nil {
			return err
		}
	}
	poller := zmq.NewPoller()
	var polledSocks []*zmq.Socket
	// Subscriptions first: a loop turn takes a subscription before the
	// messages that came with it, which fanOut would skip on an egress it
	// still believed had no subscriber.
	for _, sock := range append([]*zmq.Socket{s.xpub, s.spub, s.xsub, s.mirror}, s.monitors[:]...) {
		if sock != nil {
			poller.Add(sock, zmq.POLLIN)
			polledSocks = append(polledSocks, sock)
		}
	}
	// The loop waits in the netpoller, holding no P (zsock.Waiter), and
	// polls libzmq only without blocking; where that cannot be set up it
	// blocks in zmq_poll.
	waiter, err := zsock.NewWaiter(polledSocks...)
	if err != nil {
		p.log.Warn().Err(err).Msg("proxy loop waits inside zmq_poll, holding a scheduler slot while idle")
	} else {
		defer waiter.Close()
	}
	p.running.Store(true)
	defer p.running.Store(false)
	close(p.ready)
	p.log.Info().Str("epoch", fmt.Sprintf("%016x", p.epoch.Load())).Interface("endpoints", p.Endpoints()).Msg("proxy running")

	const pollEvery = 50 * time.Millisecond // how soon a cancelled ctx is seen
	for ctx.Err() == nil {
		timeout := pollEvery
		// Expiry and replays run only while active: a standby's (its
		// peer's mirror subscribes to it) wait for a takeover instead of
		// spinning the loop (they once made a standby burn a core).
		if p.cache != nil && p.active() {
			if at := p.cache.NextExpiry(); at != 0 {
				timeout = min(timeout, max(time.Duration(at-p.now().UnixNano()), time.Millisecond))
			}
		}
		if w := p.replays.wait(p.now().UnixNano()); w >= 0 && p.active() {
			timeout = min(timeout, time.Duration(w))
		}
		polled, err := pollOnce(ctx, poller, waiter, timeout)
		if err != nil {
			if zsock.Temporary(err) {
				continue
			}
			return fmt.Errorf("proxy poll: %w", err)
		}
		start := p.now()
		p.turn.Store(start.UnixNano())
		if p.ha != nil { // the peer's states before any stamping: a stalled active may have been replaced
			if p.haErr != nil {
				return p.haErr
			}
			if err := p.tickHA(s); err != nil {
				return err
			}
			ev := zmq.POLLIN
			if p.holding(start) {
				ev = 0
			}
			poller.UpdateBySocket(s.xsub, ev)
		}
		for _, pd := range polled {
			switch sock := pd.Socket; sock {
			case s.xsub:
				if p.holding(start) || p.ingressHeld {
					continue // a held batch goes first, below
				}
				if err := p.drainIngress(s); err != nil {
					return err
				}
			case s.mirror:
				if err := p.drainMirror(s); err != nil {
					return err
				}
			case s.xpub:
				p.drainSubscriptions(s, sock, egressRaw)
			case s.spub:
				p.drainSubscriptions(s, sock, egressStamped)
			default:
				for role, mon := range s.monitors {
					if sock == mon {
						p.drainMonitor(mon, socketRole(role))
					}
				}
			}
		}
		if p.ingressHeld && !p.holding(p.now()) {
			if err := p.drainIngress(s); err != nil {
				return err
			}
		}
		p.resubscribeIfSilent(s, start)
		if p.active() { // a passive gateway serves nothing: the active's deletes reach it mirrored
			p.expire(s)
			p.runReplays(s)
		}
		p.tickAccept(ctx)
		p.observeLoop(p.now().Sub(start))
	}
	p.log.Info().Msg("proxy stopping")
	return nil
}

// pollOnce returns the polled sockets with something to read, after
// waiting at most timeout for one: in the waiter when there is one (a poll
// without blocking first, another after the wait), in zmq_poll otherwise.
func pollOnce(ctx context.Context, poller *zmq.Poller, w *zsock.Waiter, timeout time.Duration) ([]zmq.Polled, error) {
	if w == nil {
		return poller.Poll(timeout)
	}
	polled, err := poller.Poll(0)
	if err != nil || len(polled) > 0 {
		return polled, err
	}
	w.Wait(ctx, timeout)
	return poller.Poll(0)
}

// rateLimit allows one event a second.
type rateLimit struct {
	mu   sync.Mutex
	last time.Time
}

func (r *rateLimit) Allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.last) < time.Second {
		return false
	}
	r.last = time.Now()
	return true
}
