package snapshot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/internal/zsock"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/tick"
)

// Source is what the server reads (*lvc.Cache): a point-in-time view of
// the cache, taken when a SNAP starts to be served; a topic's latest value,
// taken when a SINCE starts; and the topic's retained updates, read a chunk
// at a time.
type Source interface {
	View() lvc.View
	Get(topic string) (*tick.Message, bool)
	HistoryAfter(topic string, epoch, seq uint64, now int64, max int, fn func(*tick.Message)) lvc.HistoryResult
}

// result is how a request ended; a metric label.
type result uint8

const (
	resOK       result = iota // answered in full (END sent)
	resError                  // a bad request, answered with ERR
	resBusy                   // refused at once: MaxRequests or MaxPerPeer reached
	resEvicted                // a waiting request dropped at MaxRequests to admit another peer's
	resStalled                // nothing could be sent for StallTimeout: its requester does not read
	resGone                   // the requester disconnected
	resShutdown               // the server stopped first
	resPassive                // refused: this gateway is a failover pair's standby
	numResults
)

var resultNames = [numResults]string{"ok", "error", "busy", "evicted", "stalled", "gone", "shutdown", "passive"}

// sinceLabel is the result label of a SINCE: its Status when answered in
// full (resOK), else the result's name.
func sinceLabel(res result, st Status) string {
	if res == resOK {
		return st.String()
	}
	return resultNames[res]
}

// Waits of the serving loop.
const (
	idleWait   = 100 * time.Millisecond // nothing to send: how often ctx is checked
	minBackoff = time.Millisecond       // every requester's pipe was full: first wait before retrying
	maxBackoff = 16 * time.Millisecond  // and the longest, doubling in between
	recvBatch  = 256                    // requests taken per loop iteration at most
	voteWait   = time.Second            // bound on asking a failover pair whether to serve
)

var valWord = []byte(RepVal)

// Server answers snapshot requests on a ROUTER socket it owns. Requests are
// served a chunk at a time, taking turns, with non-blocking sends: a
// requester that does not read holds at most Config.HWM messages and loses
// its request after Config.StallTimeout, and nobody else waits for it.
type Server struct {
	endpoint string
	src      Source
	epoch    uint64 // the gateway's current epoch, sent in END
	cfg      Config
	log      zerolog.Logger
	met      metrics
	ready    chan struct{}
	bound    string

	// Vote, when set before Run, is asked for each well-formed request
	// whether this gateway serves now (a failover pair's standby refuses,
	// and a request to it while its peer is dead is the vote that makes it
	// active: proxy.Proxy.Vote); false answers ERR passive. Epoch, when
	// set, gives the epoch END carries (a pair's changes on takeover).
	Vote  func(context.Context) bool
	Epoch func() uint64
}

type metrics struct {
	requests [numResults]prometheus.Counter // SNAP
	active   prometheus.Gauge
	values   prometheus.Counter
	blocked  prometheus.Counter
	seconds  prometheus.Observer

	since        [numResults]prometheus.Counter // SINCE ended other than resOK
	sinceOK      [numStatus]prometheus.Counter  // SINCE answered in full, by status
	sinceUpdates prometheus.Counter
	sinceMissed  prometheus.Counter
	sinceSeconds prometheus.Observer

	lvc lvcMetrics // SNAP, under its former names; metrics.go
}

// NewServer returns a server for endpoint reading src, with its metrics
// registered with reg (nil: not registered). It rejects a config that does
// not Validate.
func NewServer(endpoint string, src Source, epoch uint64, cfg Config, reg prometheus.Registerer, log zerolog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{endpoint: endpoint, src: src, epoch: epoch, cfg: cfg, log: log, ready: make(chan struct{})}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_snapshot_requests_total", Help: "Snapshot requests, by how they ended."}, []string{"result"})
	for r := range s.met.requests {
		s.met.requests[r] = requests.WithLabelValues(resultNames[r])
	}
	active := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mdgate_snapshot_active_requests", Help: "Snapshot requests accepted and not finished (served or waiting behind their peer's previous one)."})
	values := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_snapshot_values_total", Help: "Values sent in snapshot replies."})
	blocked := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_snapshot_blocked_total", Help: "Times a request found its requester's pipe full (at --snapshot-hwm) and waited."})
	seconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mdgate_snapshot_seconds", Help: "Time from accepting a snapshot request to its END.",
		Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10)})
	s.met.active, s.met.values, s.met.blocked, s.met.seconds = active, values, blocked, seconds
	since := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_snapshot_since_requests_total", Help: "SINCE requests (recovery of a topic's updates after a seq), by how they ended: recovered, gap, nohistory, or the reason they were refused or dropped."}, []string{"result"})
	for r := range s.met.since {
		if result(r) != resOK {
			s.met.since[r] = since.WithLabelValues(resultNames[r])
		}
	}
	for st := Recovered; st < numStatus; st++ {
		s.met.sinceOK[st] = since.WithLabelValues(st.String())
	}
	sinceUpdates := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_snapshot_since_updates_total", Help: "Retained updates sent in SINCE replies."})
	sinceMissed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_snapshot_since_missed_total", Help: "Updates SINCE replies reported gone (gap, counted where known)."})
	sinceSeconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mdgate_snapshot_since_seconds", Help: "Time from accepting a SINCE request to its END.",
		Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10)})
	s.met.sinceUpdates, s.met.sinceMissed, s.met.sinceSeconds = sinceUpdates, sinceMissed, sinceSeconds
	var lvcCollectors []prometheus.Collector
	s.met.lvc, lvcCollectors = newLVCMetrics()
	if reg != nil {
		errs := []error{reg.Register(requests), reg.Register(active), reg.Register(values),
			reg.Register(blocked), reg.Register(seconds), reg.Register(since), reg.Register(sinceUpdates),
			reg.Register(sinceMissed), reg.Register(sinceSeconds)}
		for _, c := range lvcCollectors {
			errs = append(errs, reg.Register(c))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("snapshot metrics: %w", err)
		}
	}
	return s, nil
}

// Ready is closed once the socket is bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Bound is the bound endpoint (a wildcard port resolved); valid after Ready.
func (s *Server) Bound() string { return s.bound }

// Config returns the server's bounds.
func (s *Server) Config() Config { return s.cfg }

// Run serves until ctx is done (then it returns nil) or the socket fails.
func (s *Server) Run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sock, err := zmq.NewSocket(zmq.ROUTER)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer sock.Close()
	err = errors.Join(sock.SetLinger(0), sock.SetRouterMandatory(1), sock.SetSndhwm(s.cfg.HWM),
		sock.SetMaxmsgsize(64<<10))
	if err != nil {
		return fmt.Errorf("snapshot options: %w", err)
	}
	if err := sock.Bind(s.endpoint); err != nil {
		return fmt.Errorf("snapshot bind %s: %w", s.endpoint, err)
	}
	s.bound, _ = sock.GetLastEndpoint()
	close(s.ready)
	l := &loop{s: s, sock: sock, peers: make(map[string]*peer)}
	defer l.dropAll(resShutdown)
	return l.run(ctx)
}

// loop is Run's state. Owned by Run's goroutine, like the socket.
type loop struct {
	s     *Server
	sock  *zmq.Socket
	peers map[string]*peer // every peer with a request accepted and not finished
	ring  []*peer          // the same peers, in turn order
	turn  int              // where in ring the next turn starts
	total int              // requests accepted and not finished

	order  []*peer         // scratch: this turn's order
	frames [][]byte        // scratch: one reply's frames
	stamp  []byte          // scratch: one encoded stamp
	hist   []*tick.Message // scratch: one SINCE chunk

	logNext       time.Time // refusals and drops are logged at warn at most once a second
	logSuppressed int
}

// peer is one requester (a ZeroMQ identity) and its requests in order.
type peer struct {
	id    []byte
	queue []*request // queue[0] is being served; the rest wait
}

// request is one accepted SNAP or SINCE.
type request struct {
	delim    bool // came with REQ's empty delimiter, echoed on every reply
	q        query
	sent     uint64
	done     bool // every value sent; END still to go
	blocked  bool // the last send found the pipe full
	accepted time.Time
	progress time.Time // the last send that went through, or the start

	// SNAP
	view  lvc.View // taken when the request starts to be served
	after string   // the cursor: the last topic sent

	// SINCE. The cursor is q.epoch, q.seq: the point asked from, then the
	// last update sent.
	until     *tick.Message // the topic's latest when the request started: the reply ends there
	status    Status        // Recovered until a gap is seen; NoHistory once the topic is not kept
	missed    uint64        // updates of the same epoch found gone
	missedAny bool          // some gone updates could not be counted (another epoch)
}

func (l *loop) run(ctx context.Context) error {
	poller := zmq.NewPoller()
	poller.Add(l.sock, zmq.POLLIN)
	var backoff time.Duration
	for ctx.Err() == nil {
		wait := idleWait
		if l.total > 0 {
			wait = backoff
		}
		polled, err := poller.Poll(wait)
		if err != nil {
			if zsock.Temporary(err) {
				continue
			}
			return fmt.Errorf("snapshot poll: %w", err)
		}
		if len(polled) > 0 {
			if err := l.receive(time.Now()); err != nil {
				return err
			}
		}
		progressed, err := l.serveTurn(time.Now())
		if err != nil {
			return err
		}
		switch {
		case progressed:
			backoff = 0
		case backoff == 0:
			backoff = minBackoff
		default:
			backoff = min(2*backoff, maxBackoff)
		}
	}
	return nil
}

// receive takes the requests waiting on the socket.
func (l *loop) receive(now time.Time) error {
	for range recvBatch {
		msg, err := l.sock.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if zsock.Temporary(err) {
				return nil // nothing more now (or a signal): the next turn polls again
			}
			return fmt.Errorf("snapshot recv: %w", err)
		}
		if err := l.admit(msg[0], msg[1:], now); err != nil {
			return err
		}
	}
	return nil
}

// admit answers a bad or refused request at once, or queues it behind its
// peer's earlier ones.
func (l *loop) admit(id []byte, req [][]byte, now time.Time) error {
	delim := len(req) > 0 && len(req[0]) == 0
	if delim {
		req = req[1:]
	}
	q, code, text := parseRequest(req)
	if code != "" {
		return l.refuse(id, delim, resError, code, text, q, now)
	}
	if l.s.Vote != nil {
		ctx, cancel := context.WithTimeout(context.Background(), voteWait)
		ok := l.s.Vote(ctx)
		cancel()
		if !ok {
			return l.refuse(id, delim, resPassive, ErrPassive, "this gateway is the standby of a failover pair: ask the active one", q, now)
		}
	}
	p := l.peers[string(id)]
	if p != nil && len(p.queue) >= l.s.cfg.MaxPerPeer {
		return l.refuse(id, delim, resBusy, ErrBusy,
			fmt.Sprintf("%d requests of yours in progress, at most %d: send the next after END", len(p.queue), l.s.cfg.MaxPerPeer), q, now)
	}
	if l.total >= l.s.cfg.MaxRequests {
		mine := 0
		if p != nil {
			mine = len(p.queue)
		}
		evicted, err := l.evict(mine, now)
		if err != nil {
			return err
		}
		if !evicted {
			return l.refuse(id, delim, resBusy, ErrBusy,
				fmt.Sprintf("%d requests in progress, at most %d: try again later", l.total, l.s.cfg.MaxRequests), q, now)
		}
	}
	if p == nil {
		p = &peer{id: id}
		l.peers[string(id)] = p
		l.ring = append(l.ring, p)
	}
	r := &request{delim: delim, q: q, accepted: now}
	p.queue = append(p.queue, r)
	l.total++
	l.s.met.active.Set(float64(l.total))
	if len(p.queue) == 1 {
		l.start(r, now)
	}
	return nil
}

func (l *loop) start(r *request, now time.Time) {
	if r.q.since {
		r.until, _ = l.s.src.Get(r.q.prefix)
		r.status = Recovered
	} else {
		r.view = l.s.src.View()
	}
	r.progress = now
}

// refuse counts a refusal and answers ERR (best effort: a full pipe loses
// it). Counted first, so a peer holding the answer sees the count.
func (l *loop) refuse(id []byte, delim bool, res result, code, text string, q query, now time.Time) error {
	l.count(q.since, res, StatusNone, 0)
	l.logDrop(now, res, id, q, text)
	_, err := l.send(id, delim, RepErr, []byte(code), []byte(text))
	return err
}

// evict makes room for a request from a peer holding mine requests by
// dropping the last waiting (not yet started) request of a peer holding more
// than mine+1: a peer's first request goes before another's second. The
// victim is a peer whose served request is blocked on a full pipe if there is
// one (the longest blocked), else the peer with the most requests.
func (l *loop) evict(mine int, now time.Time) (bool, error) {
	var victim *peer
	better := func(p, q *peer) bool {
		if a, b := p.queue[0].blocked, q.queue[0].blocked; a != b {
			return a
		}
		if p.queue[0].blocked {
			return p.queue[0].progress.Before(q.queue[0].progress)
		}
		return len(p.queue) > len(q.queue)
	}
	for _, p := range l.ring {
		if len(p.queue) > mine+1 && (victim == nil || better(p, victim)) {
			victim = p
		}
	}
	if victim == nil {
		return false, nil
	}
	last := len(victim.queue) - 1
	r := victim.queue[last]
	victim.queue[last] = nil
	victim.queue = victim.queue[:last]
	text := "a waiting request dropped to make room for another requester's"
	if _, err := l.send(victim.id, r.delim, RepErr, []byte(ErrEvicted), []byte(text)); err != nil {
		return false, err
	}
	l.end(r, resEvicted, now)
	l.logDrop(now, resEvicted, victim.id, r.q, text)
	return true, nil
}

// serveTurn gives every peer's current request one chunk, starting with a
// different peer each time, and drops those stalled or gone. It reports
// whether anything was sent.
func (l *loop) serveTurn(now time.Time) (progressed bool, err error) {
	if len(l.ring) == 0 {
		return false, nil
	}
	start := l.turn % len(l.ring)
	l.turn = start + 1
	l.order = append(append(l.order[:0], l.ring[start:]...), l.ring[:start]...)
	emptied := false
	for _, p := range l.order {
		r := p.queue[0]
		send := l.sendChunk
		if r.q.since {
			send = l.sendSinceChunk
		}
		moved, st, err := send(p, r, now)
		if err != nil {
			return progressed, err
		}
		progressed = progressed || moved
		switch {
		case st == sendGone:
			l.dropPeer(p, resGone, "disconnected with a request in progress", now)
			emptied = true
			continue
		case moved:
			r.progress = now
		case now.Sub(r.progress) >= l.s.cfg.StallTimeout:
			text := fmt.Sprintf("nothing could be sent for %v: you are not reading", l.s.cfg.StallTimeout)
			if _, err := l.send(p.id, r.delim, RepErr, []byte(ErrStalled), []byte(text)); err != nil {
				return progressed, err
			}
			l.dropPeer(p, resStalled, text, now)
			emptied = true
			continue
		}
		if r.done && !r.blocked { // END went through
			p.queue[0] = nil
			p.queue = p.queue[1:]
			l.end(r, resOK, now)
			if len(p.queue) > 0 {
				l.start(p.queue[0], now)
			} else {
				emptied = true
			}
		}
	}
	clear(l.order)
	if emptied {
		l.prune()
	}
	return progressed, nil
}

// sendChunk sends the next chunk of r, then its END once every value is
// out. It stops early at a full pipe (r.blocked) or a gone peer.
func (l *loop) sendChunk(p *peer, r *request, _ time.Time) (moved bool, st sendStatus, err error) {
	cfg := l.s.cfg
	if !r.done {
		values, bytes, more := 0, 0, false
		st = sendOK
		r.view.Ascend(r.q.prefix, r.after, func(m *tick.Message) bool {
			if values == cfg.ChunkValues || bytes >= cfg.ChunkBytes {
				more = true
				return false
			}
			l.stamp = tick.AppendStamp(l.stamp[:0], m.Stamp)
			l.frames = append(append(l.frames[:0], valWord, l.stamp), m.Frames...)
			st, err = l.sendFrames(p.id, r.delim, l.frames)
			if err != nil || st != sendOK {
				more = true
				return false
			}
			r.after = m.Topic
			r.sent++
			values++
			bytes += tick.StampSize + m.Size()
			return true
		})
		l.s.met.values.Add(float64(values))
		moved = values > 0
		if err != nil || st != sendOK {
			l.block(r, st)
			return moved, st, err
		}
		if more {
			r.blocked = false
			return moved, st, nil
		}
		r.done = true
	}
	st, err = l.send(p.id, r.delim, RepEnd, binary.BigEndian.AppendUint64(nil, r.sent), binary.BigEndian.AppendUint64(nil, l.s.currentEpoch()))
	if err != nil {
		return moved, st, err
	}
	l.block(r, st)
	return moved || st == sendOK, st, nil
}

// sendSinceChunk sends the next chunk of a SINCE: the topic's retained
// updates after the cursor (HistoryAfter, at most a chunk), up to the
// topic's latest when the request started, then END with the status and
// the count of updates found gone. When nothing after the cursor is
// retained though the topic moved on, its latest value is sent last. A gap
// is noted wherever one shows, from the seqs of the updates sent: before
// the first, or between two (the history moved past the cursor between two
// chunks, or the epoch changed).
func (l *loop) sendSinceChunk(p *peer, r *request, now time.Time) (moved bool, st sendStatus, err error) {
	cfg := l.s.cfg
	if !r.done {
		// The latest first: an update is retained before it becomes the
		// latest, so if none after the cursor is retained below, every one
		// before this latest is gone and it is the one to send.
		latest, _ := l.s.src.Get(r.q.prefix)
		hist, bytes, reached := l.hist[:0], 0, false
		res := l.s.src.HistoryAfter(r.q.prefix, r.q.epoch, r.q.seq, now.UnixNano(), cfg.ChunkValues, func(m *tick.Message) {
			if reached || bytes >= cfg.ChunkBytes {
				return // the next turn asks again from the last one sent
			}
			hist = append(hist, m)
			bytes += tick.StampSize + m.Size()
			reached = r.until != nil && m.Stamp.Epoch == r.until.Stamp.Epoch && m.Stamp.Seq >= r.until.Stamp.Seq
		})
		switch {
		case !res.Kept:
			r.status = NoHistory
		case res.N == 0 && latest != nil && (latest.Stamp.Epoch != r.q.epoch || latest.Stamp.Seq > r.q.seq):
			// Nothing after the cursor is retained, yet the topic moved on
			// (its newest update was too big to keep, or every one after
			// the cursor is gone): the latest value ends the reply, and the
			// gap check below counts what is gone before it.
			hist, reached = append(hist, latest), true
		}
		l.hist = hist
		values := 0
		st = sendOK
		for _, m := range hist {
			l.stamp = tick.AppendStamp(l.stamp[:0], m.Stamp)
			l.frames = append(append(l.frames[:0], valWord, l.stamp), m.Frames...)
			st, err = l.sendFrames(p.id, r.delim, l.frames)
			if err != nil || st != sendOK {
				break
			}
			switch {
			case m.Stamp.Epoch != r.q.epoch:
				r.gone(0, false)
			case m.Stamp.Seq != r.q.seq+1:
				r.gone(m.Stamp.Seq-r.q.seq-1, true)
			}
			r.q.epoch, r.q.seq = m.Stamp.Epoch, m.Stamp.Seq
			r.sent++
			values++
		}
		clear(l.hist) // scratch: hold no message past the turn
		l.s.met.sinceUpdates.Add(float64(values))
		moved = values > 0
		if err != nil || st != sendOK {
			l.block(r, st)
			return moved, st, err
		}
		if !reached && (res.More || len(hist) < res.N) {
			r.blocked = false
			return moved, st, nil
		}
		r.done = true
	}
	missed := r.missed
	if r.missedAny {
		missed = 0 // not known
	}
	st, err = l.send(p.id, r.delim, RepEnd, binary.BigEndian.AppendUint64(nil, r.sent), binary.BigEndian.AppendUint64(nil, l.s.currentEpoch()),
		[]byte(r.status.String()), binary.BigEndian.AppendUint64(nil, missed))
	if err != nil {
		return moved, st, err
	}
	l.block(r, st)
	return moved || st == sendOK, st, nil
}

// gone notes n updates found gone (known: n is their number; else updates
// of an epoch no longer held, not counted). NoHistory stays.
func (r *request) gone(n uint64, known bool) {
	if r.status == Recovered {
		r.status = Gap
	}
	if known {
		r.missed += n
	} else {
		r.missedAny = true
	}
}

func (l *loop) block(r *request, st sendStatus) {
	if st == sendFull && !r.blocked {
		l.s.met.blocked.Inc()
	}
	r.blocked = st == sendFull
}

// dropPeer ends every request of p with res.
func (l *loop) dropPeer(p *peer, res result, text string, now time.Time) {
	for _, r := range p.queue {
		l.end(r, res, now)
	}
	l.logDrop(now, res, p.id, p.queue[0].q, text)
	p.queue = nil
}

// prune forgets the peers with no request left.
func (l *loop) prune() {
	ring := l.ring[:0]
	for _, p := range l.ring {
		if len(p.queue) > 0 {
			ring = append(ring, p)
		} else {
			delete(l.peers, string(p.id))
		}
	}
	clear(l.ring[len(ring):])
	l.ring = ring
}

// dropAll ends every request (the server is stopping).
func (l *loop) dropAll(res result) {
	now := time.Now()
	for _, p := range l.ring {
		for _, r := range p.queue {
			l.end(r, res, now)
		}
		p.queue = nil
	}
	l.prune()
}

// end counts an accepted request out.
func (l *loop) end(r *request, res result, now time.Time) {
	l.total--
	l.s.met.active.Set(float64(l.total))
	r.view, r.until = lvc.View{}, nil // let go of what they pin
	l.count(r.q.since, res, r.status, now.Sub(r.accepted))
	switch {
	case res != resOK:
	case r.q.since:
		l.s.met.sinceSeconds.Observe(now.Sub(r.accepted).Seconds())
		l.s.met.sinceMissed.Add(float64(r.missed))
	default:
		l.s.met.seconds.Observe(now.Sub(r.accepted).Seconds())
	}
}

// count counts a request's end: a SNAP's by result (and under its former
// names), a SINCE's by result or, answered in full, by status.
func (l *loop) count(since bool, res result, st Status, d time.Duration) {
	switch {
	case !since:
		l.s.met.requests[res].Inc()
		l.s.met.lvc.observe(res == resOK, d)
	case res == resOK:
		l.s.met.sinceOK[st].Inc()
	default:
		l.s.met.since[res].Inc()
	}
}

// logDrop logs a refusal or drop: every one at debug, at most one a second
// at warn with the number left out since.
func (l *loop) logDrop(now time.Time, res result, id []byte, q query, text string) {
	cmd, field := CmdSnap, "prefix"
	if q.since {
		cmd, field = CmdSince, "topic"
	}
	if e := l.s.log.Debug(); e.Enabled() {
		e.Str("result", resultNames[res]).Str("command", cmd).Hex("peer", id).Str(field, trim(q.prefix)).Msg(text)
	}
	if now.Before(l.logNext) {
		l.logSuppressed++
		return
	}
	l.s.log.Warn().Str("result", resultNames[res]).Str("command", cmd).Hex("peer", id).Str(field, trim(q.prefix)).
		Int("not_logged_since", l.logSuppressed).Msg("snapshot request refused or dropped: " + text)
	l.logNext, l.logSuppressed = now.Add(time.Second), 0
}

type sendStatus uint8

const (
	sendOK   sendStatus = iota
	sendFull            // the peer's pipe is at its HWM (EAGAIN)
	sendGone            // the peer has disconnected (EHOSTUNREACH)
)

// currentEpoch is the epoch END carries.
func (s *Server) currentEpoch() uint64 {
	if s.Epoch != nil {
		return s.Epoch()
	}
	return s.epoch
}

// send sends one reply [word, frames...] to peer id without waiting.
func (l *loop) send(id []byte, delim bool, word string, frames ...[]byte) (sendStatus, error) {
	l.frames = append(append(l.frames[:0], []byte(word)), frames...)
	return l.sendFrames(id, delim, l.frames)
}

// sendFrames sends [id, (""), frames...] without waiting. Only the identity
// frame can meet a full pipe or a gone peer (ROUTER_MANDATORY); once it is
// through, the rest of the message is accepted whole.
func (l *loop) sendFrames(id []byte, delim bool, frames [][]byte) (sendStatus, error) {
	if _, err := l.sock.SendBytes(id, zmq.SNDMORE|zmq.DONTWAIT); err != nil {
		switch zmq.AsErrno(err) {
		case zmq.Errno(syscall.EAGAIN):
			return sendFull, nil
		case zmq.Errno(syscall.EHOSTUNREACH):
			return sendGone, nil
		}
		return sendOK, fmt.Errorf("snapshot send: %w", err)
	}
	if delim {
		if _, err := l.sock.SendBytes(nil, zmq.SNDMORE|zmq.DONTWAIT); err != nil {
			return sendOK, fmt.Errorf("snapshot send: %w", err)
		}
	}
	for i, f := range frames {
		flag := zmq.DONTWAIT
		if i < len(frames)-1 {
			flag |= zmq.SNDMORE
		}
		if _, err := l.sock.SendBytes(f, flag); err != nil {
			return sendOK, fmt.Errorf("snapshot send: %w", err)
		}
	}
	return sendOK, nil
}
