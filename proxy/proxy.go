package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

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
}

// Proxy is the core loop. Create it with New and start it with Run.
type Proxy struct {
	cfg   Config
	log   zerolog.Logger
	m     *metrics
	sinks []Sink
	cache Cache
	now   func() time.Time
	epoch uint64

	ready     chan struct{} // closed once every socket is bound
	mu        sync.Mutex    // guards endpoints
	endpoints Endpoints

	authLog rateLimit // refusal logs, at most one a second
	dropLog rateLimit // ingress drop logs below debug level, at most one a second

	running atomic.Bool
	accept  acceptGuard            // listeners shed for lack of descriptors (accept.go)
	peers   [numRoles]atomic.Int64 // by role; written by the loop, read by Health

	// Owned by the loop goroutine.
	seq     *sequencer
	subs    [numEgress]subscriptions
	replays *replayer
	longest time.Duration // the longest loop iteration
	scratch []byte
	out     [numEgress]sendBatch // messages queued per egress, flushed per batch
	ingress []int64              // ingress times of the batch being forwarded
}

// Endpoints are the addresses the proxy actually bound (a wildcard port such
// as tcp://127.0.0.1:* is resolved).
type Endpoints struct {
	Ingress []string `json:"ingress"`
	Egress  []string `json:"egress"`
	Stamped []string `json:"stamped,omitempty"`
	Capture string   `json:"capture,omitempty"`
}

var monitorSeq atomic.Uint64 // unique inproc names for socket monitors

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
	p := &Proxy{
		cfg: cfg, log: opts.Logger, m: newMetrics(reg), sinks: opts.Sinks, cache: opts.Cache,
		now: now, epoch: epoch, ready: make(chan struct{}),
		seq: newSequencer(epoch, cfg.MaxTopics), replays: newReplayer(&cfg),
	}
	for i := range p.subs {
		p.subs[i] = newSubscriptions(cfg.MaxSubscriptions)
	}
	return p, nil
}

// Epoch is this run's random id, carried in every stamp it makes.
func (p *Proxy) Epoch() uint64 { return p.epoch }

// Ready is closed when every socket is bound and the loop is about to poll.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Endpoints returns the bound addresses; valid once Ready is closed.
func (p *Proxy) Endpoints() Endpoints {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.endpoints
}

// Health is the loop's state for /healthz.
type Health struct {
	Running        bool      `json:"running"`
	Epoch          string    `json:"epoch"`
	Endpoints      Endpoints `json:"endpoints"`
	IngressPeers   int64     `json:"ingress_peers"`
	EgressPeers    int64     `json:"egress_peers"`
	StampedPeers   int64     `json:"stamped_peers"`
	IngressStamped bool      `json:"ingress_stamped"`
	// AcceptExhausted are listeners whose accepts failed for lack of
	// descriptors within the last second: new connections to them are shed
	// (accepted and closed); connected peers are not affected (accept.go).
	AcceptExhausted []string `json:"accept_exhausted,omitempty"`
}

// Health reports the loop's state; safe from any goroutine.
func (p *Proxy) Health() Health {
	return Health{
		Running:         p.running.Load(),
		Epoch:           fmt.Sprintf("%016x", p.epoch),
		Endpoints:       p.Endpoints(),
		IngressPeers:    p.peers[roleIngress].Load(),
		EgressPeers:     p.peers[roleEgress].Load(),
		StampedPeers:    p.peers[roleStamped].Load(),
		IngressStamped:  p.cfg.IngressStamped,
		AcceptExhausted: slices.Clone(p.exhaustedNow()),
	}
}

// sockets are the loop's sockets; all owned by the Run goroutine.
type sockets struct {
	xsub, xpub, spub, capture *zmq.Socket
	monitors                  [numRoles]*zmq.Socket // by role, may be nil
	monitored                 []*zmq.Socket         // sockets with a monitor attached
	all                       []*zmq.Socket
	in                        *recvBatch
}

// egressSocket returns the socket of an egress, or nil.
func (s *sockets) egressSocket(e egress) *zmq.Socket {
	switch e {
	case egressRaw:
		return s.xpub
	case egressStamped:
		return s.spub
	}
	return s.capture
}

// close stops every socket monitor first, while its reader is still
// connected, then closes the sockets. libzmq's I/O thread sends monitor
// events with a blocking send: an event for a monitor whose reader is gone
// would block that thread, and with it every socket of the context, for
// good.
func (s *sockets) close(linger time.Duration) {
	if s.in != nil {
		s.in.free()
	}
	for _, sock := range s.monitored {
		sock.Monitor("", 0)
	}
	for i := len(s.all) - 1; i >= 0; i-- {
		s.all[i].SetLinger(linger)
		s.all[i].Close()
	}
}

func (s *sockets) newSocket(t zmq.Type) (*zmq.Socket, error) {
	sock, err := zmq.NewSocket(t)
	if err != nil {
		return nil, fmt.Errorf("new %v socket: %w", t, err)
	}
	s.all = append(s.all, sock)
	return sock, nil
}

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
	poller := zmq.NewPoller()
	poller.Add(s.xsub, zmq.POLLIN)
	for _, sock := range []*zmq.Socket{s.xpub, s.spub} {
		if sock != nil {
			poller.Add(sock, zmq.POLLIN)
		}
	}
	for _, mon := range s.monitors {
		if mon != nil {
			poller.Add(mon, zmq.POLLIN)
		}
	}
	p.running.Store(true)
	defer p.running.Store(false)
	close(p.ready)
	p.log.Info().Str("epoch", fmt.Sprintf("%016x", p.epoch)).Interface("endpoints", p.Endpoints()).Msg("proxy running")

	const pollEvery = 50 * time.Millisecond // how soon a cancelled ctx is seen
	for ctx.Err() == nil {
		timeout := pollEvery
		if p.cache != nil {
			if at := p.cache.NextExpiry(); at != 0 {
				timeout = min(timeout, max(time.Duration(at-p.now().UnixNano()), time.Millisecond))
			}
		}
		if w := p.replays.wait(p.now().UnixNano()); w >= 0 {
			timeout = min(timeout, time.Duration(w))
		}
		polled, err := poller.Poll(timeout)
		if err != nil {
			if zmq.AsErrno(err) == zmq.Errno(4) { // EINTR
				continue
			}
			return fmt.Errorf("proxy poll: %w", err)
		}
		start := p.now()
		for _, pd := range polled {
			switch sock := pd.Socket; sock {
			case s.xsub:
				if err := p.drainIngress(s); err != nil {
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
		p.expire(s)
		p.tickAccept(ctx)
		p.runReplays(s)
		p.observeLoop(p.now().Sub(start))
	}
	p.log.Info().Msg("proxy stopping")
	return nil
}

// open creates, configures and binds every socket.
func (p *Proxy) open(s *sockets) (err error) {
	c := &p.cfg
	ep := Endpoints{}
	if s.xsub, err = s.newSocket(zmq.XSUB); err != nil {
		return err
	}
	if err := checkHandle(s.xsub); err != nil {
		return err
	}
	s.in = newRecvBatch(c.Batch, 4*c.Batch+p.frameCap())
	opts := []error{
		s.xsub.SetRcvhwm(c.IngressHWM),
		s.xsub.SetMaxmsgsize(c.MaxMsgSize),
	}
	if err := errors.Join(append(opts, p.common(s.xsub))...); err != nil {
		return fmt.Errorf("ingress options: %w", err)
	}
	if s.monitors[roleIngress], err = p.monitor(s, s.xsub); err != nil {
		return err
	}
	for _, e := range c.IngressBind {
		got, err := bind(s.xsub, e)
		if err != nil {
			return fmt.Errorf("ingress: %w", err)
		}
		p.track(roleIngress, got)
		ep.Ingress = append(ep.Ingress, got)
	}
	for _, e := range c.IngressConnect {
		if err := s.xsub.Connect(e); err != nil {
			return fmt.Errorf("ingress connect %s: %w", e, err)
		}
	}
	// Subscribe upstream: everything, or the configured prefixes.
	filters := c.IngressFilter
	if len(filters) == 0 {
		filters = []string{""}
	}
	for _, f := range filters {
		if _, err := s.xsub.SendBytes(append([]byte{1}, f...), 0); err != nil {
			return fmt.Errorf("ingress subscribe %q: %w", f, err)
		}
	}

	if len(c.EgressBind) > 0 {
		if s.xpub, ep.Egress, err = p.openXPUB(s, c.EgressBind, roleEgress); err != nil {
			return fmt.Errorf("egress: %w", err)
		}
	}
	if len(c.StampedBind) > 0 {
		if s.spub, ep.Stamped, err = p.openXPUB(s, c.StampedBind, roleStamped); err != nil {
			return fmt.Errorf("stamped egress: %w", err)
		}
	}
	if c.CaptureBind != "" {
		if s.capture, err = s.newSocket(zmq.PUB); err != nil {
			return err
		}
		if err := s.capture.SetSndhwm(c.egressHWM()); err != nil {
			return fmt.Errorf("capture options: %w", err)
		}
		if ep.Capture, err = bind(s.capture, c.CaptureBind); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
	}
	p.mu.Lock()
	p.endpoints = ep
	p.mu.Unlock()
	return nil
}

func (p *Proxy) openXPUB(s *sockets, endpoints []string, role socketRole) (*zmq.Socket, []string, error) {
	x, err := s.newSocket(zmq.XPUB)
	if err != nil {
		return nil, nil, err
	}
	if err := errors.Join(checkHandle(x), x.SetSndhwm(p.cfg.egressHWM()), x.SetXpubVerbose(1), p.common(x)); err != nil {
		return nil, nil, fmt.Errorf("options: %w", err)
	}
	if s.monitors[role], err = p.monitor(s, x); err != nil {
		return nil, nil, err
	}
	var bound []string
	for _, e := range endpoints {
		got, err := bind(x, e)
		if err != nil {
			return nil, nil, err
		}
		p.track(role, got)
		bound = append(bound, got)
	}
	return x, bound, nil
}

// common sets the options every core socket shares.
func (p *Proxy) common(s *zmq.Socket) error {
	c := &p.cfg
	var errs []error
	if c.CurveSecret != "" {
		errs = append(errs, s.SetCurveServer(1), s.SetCurveSecretkey(c.CurveSecret), s.SetZapDomain(zapDomain))
	}
	errs = append(errs, s.SetTcpKeepalive(1), s.SetLinger(c.Linger), s.SetHandshakeIvl(c.HandshakeIvl),
		s.SetRate(c.MulticastRate), s.SetRecoveryIvl(c.MulticastRecovery), s.SetMulticastHops(c.MulticastHops))
	if c.HeartbeatIvl > 0 {
		errs = append(errs, s.SetHeartbeatIvl(c.HeartbeatIvl))
		if c.HeartbeatTimeout > 0 {
			errs = append(errs, s.SetHeartbeatTimeout(c.HeartbeatTimeout))
		}
		if c.HeartbeatTTL > 0 {
			errs = append(errs, s.SetHeartbeatTtl(c.HeartbeatTTL))
		}
	}
	return errors.Join(errs...)
}

// monitor attaches a PAIR socket that receives s's connection events. The
// reader's receive queue is unbounded (RCVHWM 0): libzmq's I/O thread blocks
// on a full monitor pipe, so a bound here would let a burst of connections
// stall all traffic while the loop is busy. Events are a few dozen bytes per
// connect or disconnect and the loop drains them on every poll.
func (p *Proxy) monitor(s *sockets, sock *zmq.Socket) (*zmq.Socket, error) {
	addr := fmt.Sprintf("inproc://mdgate-monitor-%d", monitorSeq.Add(1))
	if err := sock.Monitor(addr, zmq.EVENT_ACCEPTED|zmq.EVENT_CONNECTED|zmq.EVENT_DISCONNECTED|zmq.EVENT_ACCEPT_FAILED); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	s.monitored = append(s.monitored, sock)
	mon, err := s.newSocket(zmq.PAIR)
	if err != nil {
		return nil, err
	}
	if err := mon.SetRcvhwm(0); err != nil {
		return nil, fmt.Errorf("monitor options: %w", err)
	}
	if err := mon.Connect(addr); err != nil {
		return nil, fmt.Errorf("monitor connect: %w", err)
	}
	return mon, nil
}

func bind(s *zmq.Socket, endpoint string) (string, error) {
	if err := s.Bind(endpoint); err != nil {
		return "", fmt.Errorf("bind %s: %w", endpoint, err)
	}
	got, err := s.GetLastEndpoint()
	if err != nil {
		return endpoint, nil
	}
	return got, nil
}

// frameCap is the most frames an ingress message may arrive with: a message
// with more is drained and dropped as too_many_frames.
func (p *Proxy) frameCap() int {
	if p.cfg.IngressStamped {
		return p.cfg.MaxFrames + 2
	}
	return p.cfg.MaxFrames + 1
}

// drainIngress takes up to Batch messages from the XSUB in one cgo call,
// forwards them, and flushes every egress once.
func (p *Proxy) drainIngress(s *sockets) error {
	if err := s.in.recv(s.xsub, p.cfg.Batch, p.frameCap()); err != nil {
		return fmt.Errorf("ingress recv: %w", err)
	}
	var msgs, bytes int
	s.in.each(func(n int, frames [][]byte) {
		if n < 0 {
			p.drop(DropTooManyFrames, nil)
			return
		}
		if m := p.admit(frames); m != nil {
			msgs++
			bytes += m.Size()
			p.forward(s, m)
		}
	})
	if msgs > 0 {
		p.m.ingressMsgs.Add(float64(msgs))
		p.m.ingressBytes.Add(float64(bytes))
	}
	p.flush(s)
	now := p.now().UnixNano()
	for _, t := range p.ingress {
		p.m.forward.Observe(float64(now-t) / 1e9)
	}
	p.ingress = p.ingress[:0]
	return nil
}

// admit validates and stamps one ingress message; nil means dropped.
func (p *Proxy) admit(frames [][]byte) *tick.Message {
	if len(frames) == 0 || len(frames[0]) == 0 {
		return p.drop(DropEmptyTopic, frames)
	}
	var upstream tick.Stamp
	if p.cfg.IngressStamped {
		if len(frames) < 2 {
			return p.drop(DropBadStamp, frames)
		}
		st, err := tick.ParseStamp(frames[len(frames)-1])
		if err != nil {
			return p.drop(DropBadStamp, frames)
		}
		upstream, frames = st, frames[:len(frames)-1]
	}
	if len(frames) > p.cfg.MaxFrames {
		return p.drop(DropTooManyFrames, frames)
	}
	if len(frames[0]) > p.cfg.MaxTopicBytes {
		return p.drop(DropTopicTooLong, frames)
	}
	if size := frameBytes(frames); size > p.cfg.MaxMsgBytes {
		return p.drop(DropTooLarge, frames)
	}
	n := len(p.seq.topics)
	ts := p.seq.lookup(frames[0])
	if ts == nil {
		return p.drop(DropTopicLimit, frames)
	}
	if len(p.seq.topics) != n {
		p.m.topics.Set(float64(len(p.seq.topics)))
	}
	m := &tick.Message{Topic: ts.topic, Frames: frames}
	if p.cfg.IngressStamped {
		if !p.seq.keep(ts, upstream) {
			return p.drop(DropDuplicate, frames)
		}
		m.Stamp = upstream
		m.Stamp.Flags &^= tick.FlagReplay // replayed upstream, live here
	} else {
		m.Stamp = p.seq.next(ts, p.now().UnixNano())
		if len(frames) == 2 && len(frames[1]) == 0 {
			m.Stamp.Flags |= tick.FlagDelete // a publisher's delete: [topic, ""]
		}
	}
	if m.Stamp.Flags&tick.FlagDelete != 0 {
		p.seq.free(ts) // a deleted topic gives its --max-topics slot back
		p.m.topics.Set(float64(len(p.seq.topics)))
	}
	return m
}

func frameBytes(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

func (p *Proxy) drop(r DropReason, frames [][]byte) *tick.Message {
	p.m.dropped[r].Inc()
	e := p.log.Debug()
	if !e.Enabled() && p.dropLog.Allow() {
		e = p.log.Warn() // refusals are visible at the default level, one a second
	}
	if e.Enabled() {
		topic := []byte(nil)
		if len(frames) > 0 {
			topic = frames[0]
		}
		e.Str("reason", r.String()).Int("frames", len(frames)).Bytes("topic", trim(topic)).Msg("ingress message dropped (see mdgate_ingress_dropped_total; at info level at most one logged a second)")
	}
	return nil
}

func trim(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// forward queues m on every egress and hands it to every sink.
func (p *Proxy) forward(s *sockets, m *tick.Message) {
	if s.xpub != nil {
		p.out[egressRaw].add(m.Frames, nil)
	}
	if s.spub != nil || s.capture != nil {
		p.scratch = tick.AppendStamp(p.scratch[:0], m.Stamp)
	}
	if s.spub != nil {
		p.out[egressStamped].add(m.Frames, p.scratch)
	}
	if s.capture != nil {
		p.queueCapture(captureMsg, p.scratch, m.Frames)
	}
	p.publish(m)
	p.ingress = append(p.ingress, m.Stamp.Ingress)
}

// publish hands m to the cache and every sink.
func (p *Proxy) publish(m *tick.Message) {
	if p.cache != nil {
		p.cache.Update(m)
	}
	for _, sink := range p.sinks {
		sink.Publish(m)
	}
}

// expire publishes a delete notice for every cached value whose time to
// live ran out: on the stamped egress (flag delete), the capture and every
// sink; not on the raw egress, where it could not be told from a value.
func (p *Proxy) expire(s *sockets) {
	if p.cache == nil {
		return
	}
	now := p.now().UnixNano()
	if at := p.cache.NextExpiry(); at == 0 || at > now {
		return
	}
	p.cache.Expire(now, func(topic string) {
		ts := p.seq.lookup([]byte(topic))
		if ts == nil {
			return
		}
		st := p.seq.next(ts, now)
		st.Flags |= tick.FlagDelete
		p.seq.free(ts)
		p.m.topics.Set(float64(len(p.seq.topics)))
		m := &tick.Message{Topic: ts.topic, Frames: [][]byte{[]byte(ts.topic), {}}, Stamp: st}
		p.scratch = tick.AppendStamp(p.scratch[:0], m.Stamp)
		if s.spub != nil {
			p.out[egressStamped].add(m.Frames, p.scratch)
		}
		if s.capture != nil {
			p.queueCapture(captureMsg, p.scratch, m.Frames)
		}
		for _, sink := range p.sinks {
			sink.Publish(m)
		}
	})
	p.flush(s)
}

// runReplays does this iteration's share of replay work and flushes it.
func (p *Proxy) runReplays(s *sockets) {
	if p.replays.pending() == 0 {
		return
	}
	if p.replays.step(p.now().UnixNano(), p.replayStep) {
		p.m.replayCarried.Inc()
	}
	p.m.replayPending.Set(float64(p.replays.pending()))
	p.flush(s)
}

// replayStep queues up to n cached values of k's prefix after topic `after`
// on k's egress. On the stamped egress they carry the replay flag and their
// original seq, so a subscriber that has them already drops them.
func (p *Proxy) replayStep(k replayKey, after string, n int) (string, int, bool) {
	sent := 0
	last, done := p.cache.ReplayFrom(k.prefix, after, n, func(m *tick.Message) {
		sent++
		if k.e == egressStamped {
			st := m.Stamp
			st.Flags |= tick.FlagReplay
			p.scratch = tick.AppendStamp(p.scratch[:0], st)
			p.out[k.e].add(m.Frames, p.scratch)
		} else {
			p.out[k.e].add(m.Frames, nil)
		}
	})
	return last, sent, done
}

// observeLoop records one iteration's work time.
func (p *Proxy) observeLoop(d time.Duration) {
	p.m.loop.Observe(d.Seconds())
	if d > p.longest {
		p.longest = d
		p.m.loopLongest.Set(d.Seconds())
	}
}

// flush sends what every egress has queued. XPUB never blocks: libzmq drops
// for a subscriber whose HWM is full (subscribers see the gap in the stamped
// stream's sequence numbers); a refused send is counted.
func (p *Proxy) flush(s *sockets) {
	for e := range numEgress {
		b := &p.out[e]
		if b.len() == 0 {
			continue
		}
		n := b.len()
		failed := b.flush(s.egressSocket(egress(e)))
		p.m.egressMsgs[e].Add(float64(n - failed))
		if failed > 0 {
			p.m.egressErrors[e].Add(float64(failed))
		}
	}
}

// Capture message kinds: the first frame of every capture message.
const (
	captureMsg   = "msg"
	captureSub   = "sub"
	captureUnsub = "unsub"
)

// queueCapture queues [kind, head, frames...] for the capture PUB.
func (p *Proxy) queueCapture(kind string, head []byte, frames [][]byte) {
	all := make([][]byte, 0, 2+len(frames))
	all = append(all, []byte(kind), head)
	all = append(all, frames...)
	p.out[egressCapture].add(all, nil)
}

// drainSubscriptions reads subscribe (1) and unsubscribe (0) frames.
func (p *Proxy) drainSubscriptions(s *sockets, sock *zmq.Socket, e egress) {
	defer p.flush(s) // capture copies
	for range p.cfg.Batch {
		b, err := sock.RecvBytes(zmq.DONTWAIT)
		if err != nil {
			return
		}
		if len(b) == 0 || b[0] > 1 {
			continue // not a subscription frame: XPUB passes other frames through
		}
		kind := captureSub
		if b[0] == 1 {
			p.m.subscribes[e].Inc()
			p.m.replays[e][p.subscribe(e, b[1:])].Inc()
		} else {
			kind = captureUnsub
			p.m.unsubscribes[e].Inc()
			if p.subs[e].remove(b[1:]) { // libzmq reports only the last unsubscribe
				p.replays.cancel(replayKey{e, string(b[1:])})
			}
		}
		p.m.activeSubs[e].Set(float64(p.subs[e].len()))
		if s.capture != nil {
			p.queueCapture(kind, []byte(egressNames[e]), [][]byte{b[1:]})
		}
		if ev := p.log.Debug(); ev.Enabled() {
			ev.Str("egress", egressNames[e]).Str("op", kind).Bytes("prefix", trim(b[1:])).Msg("subscription")
		}
	}
}

// subscribe records a subscription to prefix and schedules its replay.
func (p *Proxy) subscribe(e egress, prefix []byte) ReplayOutcome {
	if len(prefix) > p.cfg.MaxTopicBytes {
		return ReplayRefusedTooLong // matches nothing: neither tracked nor replayed
	}
	if !p.subs[e].add(prefix) {
		return ReplayRefusedSubLimit
	}
	if p.cache == nil {
		return ReplayQueued
	}
	return p.replays.request(replayKey{e, string(prefix)}, p.now().UnixNano())
}

// drainMonitor keeps the peer gauges current and hands accept failures to
// the accept guard. It reads at most monitorEventsPerTurn events: out of
// descriptors, the I/O thread emits one per failed accept, and the loop
// sheds (tickAccept) before it reads the rest.
func (p *Proxy) drainMonitor(mon *zmq.Socket, role socketRole) {
	for range monitorEventsPerTurn {
		ev, addr, val, err := mon.RecvEvent(zmq.DONTWAIT)
		if err != nil {
			return
		}
		switch ev {
		case zmq.EVENT_ACCEPT_FAILED:
			p.accept.failed(role, addr, val)
		case zmq.EVENT_ACCEPTED, zmq.EVENT_CONNECTED:
			p.m.peers[role].Set(float64(p.peers[role].Add(1)))
			if ev == zmq.EVENT_ACCEPTED {
				p.accept.accepted(role, val)
			}
		case zmq.EVENT_DISCONNECTED:
			p.accept.disconnected(role, val)
			n := p.peers[role].Add(-1)
			if n < 0 {
				p.peers[role].Store(0)
				n = 0
			}
			p.m.peers[role].Set(float64(n))
			p.m.peerDisconnect[role].Inc()
			p.log.Debug().Stringer("socket", role).Str("peer", addr).Msg("peer disconnected")
		}
	}
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
