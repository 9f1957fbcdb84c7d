package proxy

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus"
)

// acceptGuard pauses a listener whose accepts fail for lack of descriptors.
//
// libzmq 4.3.4 keeps polling a listening socket whose accept(2) failed with
// EMFILE or ENFILE: the connection stays in the backlog, the listener stays
// readable, and its I/O thread spins. Measured with the gateway at 256
// descriptors and 300 idle TCP connections on the ingress: a core at
// 35-101 %, and /healthz silent (HTTP could not accept either). The guard
// acts on the monitor's ZMQ_EVENT_ACCEPT_FAILED: it unbinds that endpoint,
// and binds the same resolved endpoint, same port, again once the process
// has descriptors to spare, checked on a backoff. The unbind closes the
// listener and resets its backlog; measured with libzmq 4.3.4, it also drops
// the connections still in the ZMTP handshake (idle ones that never sent a
// greeting), while peers past the handshake stay connected. So a set of idle
// connections is cleared by one pause; an attacker that dials again meets a
// refused port, then at most one bound window a second.
//
// drainMonitor records failures (failed) and the loop acts on them once per
// iteration (tickAccept), so the unbind is not delayed behind a flood of events.
type acceptGuard struct {
	// Owned by the loop goroutine.
	started bool
	pending []pausedListener // accept failures not yet acted on
	paused  []pausedListener
	resumed map[string]time.Time // when each endpoint was last bound again

	shown  atomic.Pointer[[]string] // paused endpoints, for Health
	res    fdReserve
	errLog rateLimit // unbind failures, at most one logged a second
}

// pausedListener is one unbound endpoint.
type pausedListener struct {
	role     int
	endpoint string // the resolved endpoint libzmq reported, e.g. tcp://0.0.0.0:5556
	errno    int
	next     time.Time     // the next check for free descriptors
	backoff  time.Duration // the wait after a failed check
}

const (
	acceptBackoffMin = 250 * time.Millisecond
	acceptBackoffMax = time.Second
	// acceptFlapWindow: a listener paused again this soon after being bound
	// again keeps its longer backoff, so a steady flood gets at most one
	// pause (and one warning) a second per endpoint.
	acceptFlapWindow = 5 * time.Second
)

// fdReserveCount descriptors are held open (on /dev/null) while no listener
// is paused and released when a pause starts. Without them the pause may
// free only the listener's descriptor (when the connections holding the rest
// are past the handshake), and HTTP needs one per connection to
// answer /healthz and /metrics (the scrape's process collector opens a few
// more under /proc): an operator would see the gateway silent exactly when it
// has something to say. They are taken back before the last paused listener
// is bound again, so the next flood leaves the same room. Eight is a scrape
// and a few health checks at once; more only moves the point where the
// process runs out.
const fdReserveCount = 8

// fdReserve is the held descriptors. The loop releases and takes them back;
// close runs on its own goroutine when the loop's context ends.
type fdReserve struct {
	mu     sync.Mutex
	files  []*os.File
	closed bool
}

func (r *fdReserve) acquire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.closed && len(r.files) < fdReserveCount {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return // best effort: the margin checked before a resume covers it
		}
		r.files = append(r.files, f)
	}
}

func (r *fdReserve) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.files {
		f.Close()
	}
	r.files = nil
}

func (r *fdReserve) close() {
	r.release()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// failed records an accept failure the monitor reported on endpoint of role.
// It reports whether this starts a pause: drainMonitor then returns to the
// loop, which unbinds before reading more events.
func (g *acceptGuard) failed(role int, endpoint string, errno int) bool {
	if errno != int(syscall.EMFILE) && errno != int(syscall.ENFILE) {
		return false // ECONNABORTED and the like: libzmq retries and does not spin
	}
	same := func(l pausedListener) bool { return l.endpoint == endpoint && l.role == role }
	if slices.ContainsFunc(g.pending, same) || slices.ContainsFunc(g.paused, same) {
		return false // events the I/O thread emitted before the unbind took
	}
	g.pending = append(g.pending, pausedListener{role: role, endpoint: endpoint, errno: errno})
	return true
}

// tickAccept unbinds listeners that failed to accept and binds paused ones again
// when descriptors are free. It runs once per loop iteration; with nothing
// paused it costs two length checks.
func (p *Proxy) tickAccept(ctx context.Context, s *sockets) {
	g := &p.accept
	if !g.started {
		g.started = true
		g.res.acquire()
		context.AfterFunc(ctx, g.res.close)
	}
	if len(g.pending) == 0 && len(g.paused) == 0 {
		return
	}
	now := time.Now()
	changed := false
	for _, l := range g.pending {
		if !p.pauseListener(s, &l, now) {
			continue
		}
		if len(g.paused) == 0 {
			g.res.release()
		}
		g.paused = append(g.paused, l)
		changed = true
	}
	g.pending = g.pending[:0]
	for i := 0; i < len(g.paused); i++ {
		l := &g.paused[i]
		if now.Before(l.next) {
			continue
		}
		if !p.resumeListener(s, l, len(g.paused) == 1) {
			l.backoff = min(2*l.backoff, acceptBackoffMax)
			l.next = now.Add(l.backoff)
			continue
		}
		if g.resumed == nil {
			g.resumed = map[string]time.Time{}
		}
		g.resumed[l.endpoint] = now
		g.paused = slices.Delete(g.paused, i, i+1)
		i--
		changed = true
	}
	if changed {
		shown := make([]string, len(g.paused))
		for i, l := range g.paused {
			shown[i] = l.endpoint
		}
		g.shown.Store(&shown)
	}
}

// pauseListener unbinds l's endpoint.
func (p *Proxy) pauseListener(s *sockets, l *pausedListener, now time.Time) bool {
	sock := s.byRole(l.role)
	if sock == nil {
		return false
	}
	if err := sock.Unbind(l.endpoint); err != nil {
		if !p.accept.errLog.Allow() {
			return false
		}
		p.log.Error().Err(err).Str("socket", roleNames[l.role]).Str("endpoint", l.endpoint).
			Msg("accepts fail for lack of descriptors, and the listener could not be unbound: libzmq may spin a core")
		return false
	}
	l.backoff = acceptBackoffMin
	if at, ok := p.accept.resumed[l.endpoint]; ok && now.Sub(at) < acceptFlapWindow {
		l.backoff = acceptBackoffMax
	}
	l.next = now.Add(l.backoff)
	p.m.accept.pauses[l.role].Inc()
	p.m.accept.paused[l.role].Inc()
	soft, _ := fdLimit()
	p.log.Warn().Str("socket", roleNames[l.role]).Str("endpoint", l.endpoint).Str("errno", syscall.Errno(l.errno).Error()).
		Uint64("fd_limit", soft).
		Msg("accepts fail for lack of descriptors: listener unbound until descriptors are free (see mdgate_zmq_accept_pauses_total; raise the open-file limit or find who holds the connections)")
	return true
}

// resumeListener binds l's endpoint again if descriptors are free. last
// says it is the only paused listener: the reserve is taken back first.
func (p *Proxy) resumeListener(s *sockets, l *pausedListener, last bool) bool {
	need := 0
	if last {
		need = fdReserveCount
	}
	if !fdsFree(need) {
		return false
	}
	if last {
		p.accept.res.acquire()
	}
	sock := s.byRole(l.role)
	if err := sock.Bind(l.endpoint); err != nil {
		if last {
			p.accept.res.release()
		}
		p.log.Warn().Err(err).Str("socket", roleNames[l.role]).Str("endpoint", l.endpoint).Msg("paused listener not bound again yet")
		return false
	}
	p.m.accept.paused[l.role].Dec()
	p.log.Info().Str("socket", roleNames[l.role]).Str("endpoint", l.endpoint).Msg("listener bound again: descriptors are free")
	return true
}

// pausedEndpoints is what Health shows; safe from any goroutine.
func (g *acceptGuard) pausedEndpoints() []string {
	if v := g.shown.Load(); v != nil && len(*v) > 0 {
		return slices.Clone(*v)
	}
	return nil
}

// byRole returns the socket a monitor of role watches.
func (s *sockets) byRole(role int) *zmq.Socket {
	switch role {
	case roleIngress:
		return s.xsub
	case roleEgress:
		return s.xpub
	case roleStamped:
		return s.spub
	}
	return nil
}

// fdLimit is the soft and hard RLIMIT_NOFILE.
func fdLimit() (soft, hard uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0
	}
	return lim.Cur, lim.Max
}

// fdsFree reports whether the process has extra descriptors plus a margin
// (a 32nd of the limit, at least 16) free under its soft limit, counting
// /proc/self/fd. Where that cannot be read (not Linux) it says yes: the bind
// is tried, and a listener out of descriptors again pauses again.
func fdsFree(extra int) bool {
	soft, _ := fdLimit()
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil || soft == 0 {
		return true
	}
	margin := max(16, soft/32)
	open := uint64(len(names))
	return open < soft && soft-open >= margin+uint64(extra)
}

// acceptMetrics count listener pauses by socket role.
type acceptMetrics struct {
	pauses [3]prometheus.Counter
	paused [3]prometheus.Gauge
}

func newAcceptMetrics(reg prometheus.Registerer) acceptMetrics {
	pauses := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_zmq_accept_pauses_total",
		Help: "Times a ZeroMQ listener was unbound because accepting failed for lack of descriptors (EMFILE/ENFILE), by socket."}, []string{"socket"})
	paused := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mdgate_zmq_accept_paused",
		Help: "ZeroMQ listeners unbound now, waiting for free descriptors, by socket."}, []string{"socket"})
	reg.MustRegister(pauses, paused)
	var m acceptMetrics
	for r, n := range roleNames {
		m.pauses[r] = pauses.WithLabelValues(n)
		m.paused[r] = paused.WithLabelValues(n)
	}
	return m
}
