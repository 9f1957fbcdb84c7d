package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

// Config bounds what one WebSocket client may do.
type Config struct {
	ReadLimit        int64         // bytes per client frame; larger closes with 1009
	MaxSubs          int           // topics plus prefixes per connection
	SubscribeRate    float64       // subscribe/unsubscribe requests a second, sustained
	SubscribeBurst   int           // ... and in a burst
	AbuseLimit       int           // bad requests in a burst before closing with 1008
	AbuseRefill      time.Duration // one bad request forgiven this often
	AllowedOrigins   []string      // browser origins allowed; empty: same origin only; "*": any
	HandshakeTimeout time.Duration
	PongWait         time.Duration // a client silent this long (no message, no pong) is dropped
	SendBuffer       int           // the socket's send buffer (SO_SNDBUF) in bytes; 0: the kernel's
	Auth             *Auth         // nil: open (anyone who reaches /ws may subscribe to anything)
	MaxConns         int           // WebSocket connections in all; 0: no limit
	MaxConnsPerIP    int           // ... from one remote address; 0: no limit
	// CloseGrace bounds how long a closing connection waits for the
	// client's close (reading and discarding at most closeDrainBytes) after
	// the gateway's close frame and half-close, before it is dropped.
	CloseGrace time.Duration
	// Clock is the bridge's time: read and socket deadlines, rate limits,
	// token expiry (checked at the handshake and timed after it), snapshot
	// history ages, pong and heartbeat times; nil: clock.Real. The fan-out
	// engine has its own (blackbox.Config.Clock).
	Clock clock.Clock

	// Vote, when set, is asked before each connection is upgraded whether
	// this gateway serves clients now (a gateway of a failover pair that
	// is not active: proxy.Proxy.Vote, docs/ha.md); false refuses it with
	// 503 and "passive", so the client tries its next gateway. nil: always.
	Vote func(context.Context) bool
}

// closeDrainBytes bounds what a closing connection reads and discards.
const closeDrainBytes = 1 << 20

// DefaultConfig: 64 KiB frames, 1000 subscriptions, 20 subscribes a second
// (burst 50), 10 bad requests, same-origin, 10 s handshake, 60 s pong wait,
// a 512 KiB socket send buffer. The send buffer is capped because bytes in
// the kernel are invisible to the slow-subscriber rule: with the kernel's
// autotuning (up to 4 MiB here) a stalled client would hide seconds of lag
// there before its queue grew.
func DefaultConfig() Config {
	return Config{
		ReadLimit:        64 << 10,
		MaxSubs:          1000,
		SubscribeRate:    20,
		SubscribeBurst:   50,
		AbuseLimit:       10,
		AbuseRefill:      time.Second,
		HandshakeTimeout: 10 * time.Second,
		PongWait:         60 * time.Second,
		SendBuffer:       512 << 10,
		CloseGrace:       2 * time.Second,
		Clock:            clock.Real{},
	}
}

// Cache is the part of the last-value cache the bridge reads for
// snapshots: an O(1) point-in-time view, read as each client takes it.
type Cache interface {
	View() lvc.View
	Get(topic string) (*tick.Message, bool)
	HistoryAfter(topic string, epoch, seq uint64, now int64, max int, fn func(*tick.Message)) lvc.HistoryResult
}

// Bridge is the /ws handler.
type Bridge struct {
	cfg      Config
	engine   *blackbox.Engine
	cache    Cache // nil: no snapshots
	log      zerolog.Logger
	up       websocket.Upgrader
	m        *metrics
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // every connection's reader and writer
	mu       sync.Mutex
	closed   bool                  // guarded by mu; no connection is added once set
	sessions map[*session]struct{} // guarded by mu: open connections, for a forced shutdown
	conns    int                   // guarded by mu: connections admitted
	perIP    map[string]int        // guarded by mu
	logged   time.Time             // guarded by mu: last refusal logged (one a second at most)
}

// New returns a bridge delivering through engine (format 0 must be
// EncodeUpdate) and snapshots from cache (may be nil). It refuses a cfg
// that Validate refuses: start from DefaultConfig. A nil Clock is the real
// clock.
func New(cfg Config, engine *blackbox.Engine, cache Cache, reg prometheus.Registerer, log zerolog.Logger) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ws config: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	b := &Bridge{cfg: cfg, engine: engine, cache: cache, log: log, m: newMetrics(reg)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.up = websocket.Upgrader{
		HandshakeTimeout: cfg.HandshakeTimeout,
		ReadBufferSize:   0, // reuse the hijacked reader: hijacker's readBufferSize one (idle.go)
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},                             // idle connections hold no write buffer
		CheckOrigin:      func(*http.Request) bool { return true }, // ServeHTTP checked it: originAllowed
		Subprotocols:     []string{"mdgate"},                       // chosen when a browser offers it beside its token
	}
	b.perIP, b.sessions = map[string]int{}, map[*session]struct{}{}
	if cfg.Auth == nil {
		log.Warn().Msg("WebSocket clients are NOT authenticated: anyone who reaches /ws may subscribe to every topic (set --ws-jwt-secret-file or --ws-jwt-public-key)")
	}
	return b, nil
}

// Close is Shutdown without a bound.
func (b *Bridge) Close() { b.Shutdown(context.Background()) }

// Shutdown refuses new connections, closes every connection (1001, going
// away) and waits for them until ctx ends; then it drops the rest at once
// (a client that stopped reading cannot take a close frame) and waits for
// their goroutines, which then end promptly. It returns ctx's error when it
// had to drop connections.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	n := len(b.sessions)
	for s := range b.sessions {
		s.ws.Close()
	}
	b.mu.Unlock()
	b.m.recordCloses(closeShutdownForced, n)
	<-done
	return fmt.Errorf("WebSocket shutdown: %d connections dropped: %w", n, ctx.Err())
}

// CloseStandby closes every connection with 1012 (service restart) and
// "standby": this gateway stopped being the active one of a failover pair
// (docs/ha.md), and its clients resume on the other. Each goes through
// its writer's close, as any close does. Safe from any goroutine.
func (b *Bridge) CloseStandby() {
	b.mu.Lock()
	n := 0
	for s := range b.sessions {
		s.c.CloseWith(websocket.CloseServiceRestart, "standby")
		n++
	}
	b.mu.Unlock()
	b.m.recordCloses(closeStandby, n)
}

// originAllowed allows clients without an Origin (not browsers), then the
// allow-list, or by default the page's own origin. ServeHTTP asks it before
// the upgrade, so a refused origin is counted once, as origin (the
// upgrader's own check would fail the upgrade and count it as handshake too).
func (b *Bridge) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	ok := false
	if len(b.cfg.AllowedOrigins) == 0 {
		u, err := url.Parse(origin)
		ok = err == nil && strings.EqualFold(u.Host, r.Host)
	} else {
		ok = slices.Contains(b.cfg.AllowedOrigins, "*") || slices.ContainsFunc(b.cfg.AllowedOrigins,
			func(o string) bool { return strings.EqualFold(strings.TrimSuffix(o, "/"), origin) })
	}
	return ok
}

// ServeHTTP upgrades to WebSocket and serves one client until it leaves, is
// cut off, or the bridge closes.
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.ctx.Err() != nil {
		http.Error(w, "gateway shutting down", http.StatusServiceUnavailable)
		return
	}
	var grant *Grant
	if b.cfg.Auth != nil {
		g, err := b.cfg.Auth.verify(tokenFrom(r), b.cfg.Clock.Now)
		if err != nil {
			b.m.recordReject(rejectAuth)
			b.logRefusal(r, rejectAuth, err)
			http.Error(w, "unauthorized: "+err.Error(), http.StatusUnauthorized)
			return
		}
		grant = g
	}
	ip := remoteIP(r)
	if reason, ok := b.admit(ip); !ok {
		b.m.recordReject(reason)
		b.logRefusal(r, reason, nil)
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	if !b.originAllowed(r) {
		b.release(ip)
		b.m.recordReject(rejectOrigin)
		b.logRefusal(r, rejectOrigin, nil)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	// Only a client that passed every check, asking for a WebSocket, votes
	// (docs/ha.md): a standby whose peer is dead takes over on it.
	if b.cfg.Vote != nil && websocket.IsWebSocketUpgrade(r) && !b.cfg.Vote(r.Context()) {
		b.release(ip)
		b.m.recordReject(rejectPassive)
		b.logRefusal(r, rejectPassive, nil)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "passive: this gateway is the standby of a failover pair; connect to the active one", http.StatusServiceUnavailable)
		return
	}
	hj := &hijacker{ResponseWriter: w}
	ws, err := b.up.Upgrade(hj, r, nil)
	if err != nil {
		b.release(ip)
		b.m.recordReject(rejectHandshake)
		return // the upgrader has answered with an HTTP error
	}
	s := &session{b: b, ws: ws, grant: grant, ip: ip, br: hj.br, raw: rawConn(ws.UnderlyingConn()),
		subRate: newBucket(b.cfg.SubscribeBurst, time.Duration(float64(time.Second)/b.cfg.SubscribeRate)),
		abuse:   newBucket(b.cfg.AbuseLimit, b.cfg.AbuseRefill),
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.release(ip)
		ws.Close()
		return
	}
	s.conn = &wsConn{ws: ws, grace: b.cfg.CloseGrace, clk: b.cfg.Clock}
	s.c = b.engine.NewClient(s.conn, 0, b.engine.Limits()) // before the session is shared (CloseStandby reads it)
	b.sessions[s] = struct{}{}
	b.wg.Add(2)
	b.mu.Unlock()
	// By method, not *net.TCPConn: the gateway's HTTP listener hands out a
	// TCP connection wrapped to count it (gateway/httplimit.go).
	if tc, ok := ws.UnderlyingConn().(interface{ SetWriteBuffer(int) error }); ok && b.cfg.SendBuffer > 0 {
		tc.SetWriteBuffer(b.cfg.SendBuffer)
	}
	b.m.connections.Inc()
	writerDone := make(chan error, 1)
	s.c.Start(b.ctx, func(err error) { // the client's last writer, having ended the connection
		writerDone <- err
		b.wg.Done()
	})
	// The reader gets a goroutine of its own and ServeHTTP returns, so
	// net/http lets go of its per-connection buffers and its goroutine's
	// grown stack: about 10 KB less per idle connection.
	remote := r.RemoteAddr
	stopExpiry := func() bool { return false }
	if grant != nil && !grant.Expires.IsZero() {
		stopExpiry = b.cfg.Clock.AfterFunc(grant.Expires.Sub(b.cfg.Clock.Now()), func() {
			b.m.recordClose(closeTokenExpired)
			s.c.CloseWith(websocket.ClosePolicyViolation, "token expired")
		}).Stop
	}
	go func() {
		defer b.wg.Done()
		s.run(writerDone, stopExpiry, remote)
	}()
}

// session is one connection. Its reader goroutine (run) owns the
// connection's lifetime: it reads, then waits for the client's last writer
// (Start's done: it has written the close), drains what the
// client still sends, bounded, and closes the connection.
type session struct {
	b       *Bridge
	grant   *Grant // nil: no auth
	ip      string
	ws      *websocket.Conn
	conn    *wsConn
	c       *blackbox.Client
	subRate *bucket
	abuse   *bucket
	held    map[string]ResumePoint // resume points for the next subscribe; owned by the reader
	// br is gorilla's reader of the connection and raw its descriptor (nil:
	// TLS, or no descriptor): with both, the reader waits for input on a
	// shallow stack (idle.go). peek is waitReadable's byte. Owned by the reader.
	br   *bufio.Reader
	raw  syscall.RawConn
	peek [1]byte
}

// run is the reader goroutine's whole life.
func (s *session) run(writerDone <-chan error, stopExpiry func() bool, remote string) {
	b := s.b
	defer func() {
		b.mu.Lock()
		delete(b.sessions, s)
		b.mu.Unlock()
	}()
	defer b.release(s.ip)
	defer b.m.connections.Dec()
	defer stopExpiry()
	s.read()
	s.c.Close() // the first reason given wins; here: the client left
	err := <-writerDone
	s.drain()
	s.ws.Close()
	var cut *blackbox.CutOffError
	if errors.As(err, &cut) && b.log.Debug().Enabled() {
		b.log.Debug().Str("remote", remote).Str("reason", cut.Reason.String()).Msg("slow client cut off")
	}
}

// drain reads and discards what the client still sends after the close
// (the rest of an over-limit frame, its close frame) until it closes, for
// at most CloseGrace and closeDrainBytes: closing a socket with unread input
// would reset the connection, and the client would never see the close
// frame's code.
func (s *session) drain() {
	conn := s.ws.UnderlyingConn()
	until := s.b.cfg.Clock.Now().Add(s.b.cfg.CloseGrace)
	if by := s.conn.drainBy.Load(); by != 0 {
		until = time.Unix(0, by) // one grace from the close frame, not two
	}
	conn.SetReadDeadline(until)
	io.CopyN(io.Discard, conn, closeDrainBytes)
}

// read handles the client's messages until it leaves or must be closed.
func (s *session) read() {
	ws, cfg := s.ws, &s.b.cfg
	ws.SetReadLimit(cfg.ReadLimit)
	ws.SetReadDeadline(cfg.Clock.Now().Add(cfg.PongWait))
	ws.SetPingHandler(func(payload string) error { // gorilla's, telling the writer its deadline was moved
		err := ws.WriteControl(websocket.PongMessage, []byte(payload), cfg.Clock.Now().Add(time.Second))
		s.conn.resetDeadline.Store(true)
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil
		}
		return err
	})
	ws.SetPongHandler(func(payload string) error {
		if id, ok := probeID(payload); ok {
			s.c.Answered(id) // the client has read what came before the probe
		}
		if s.closing() {
			return nil // the close's grace is running: keep its deadline
		}
		return ws.SetReadDeadline(cfg.Clock.Now().Add(cfg.PongWait))
	})
	for {
		if s.raw != nil && s.br != nil && s.br.Buffered() == 0 {
			if err := waitReadable(s.raw, s.peek[:]); err != nil {
				s.readFailed(err)
				return
			}
		}
		kind, msg, err := ws.ReadMessage()
		if err != nil {
			s.readFailed(err)
			return
		}
		if s.closing() {
			return
		}
		ws.SetReadDeadline(cfg.Clock.Now().Add(cfg.PongWait))
		if kind == websocket.TextMessage && !utf8.Valid(msg) {
			s.b.m.recordClose(closeBadUTF8)
			s.c.CloseWith(websocket.CloseInvalidFramePayloadData, "text frame is not valid UTF-8")
			return
		}
		if kind != websocket.TextMessage {
			if !s.refuse(nil, &ProtoError{CodeBadFrame, "binary frames are not part of the protocol; send JSON text"}) {
				return
			}
			continue
		}
		req, err := ParseRequest(msg)
		if err != nil {
			var pe *ProtoError
			errors.As(err, &pe)
			if !s.refuse(req.ID, pe) {
				return
			}
			continue
		}
		if op, ok := parseOp(req.Op); ok { // always: ParseRequest refuses any other op
			s.b.m.recordRequest(op)
		}
		if !s.handle(req) {
			return
		}
	}
}

// refuse answers a bad request with an error frame; it reports false (and
// closes with 1008) once the client has used up its allowance.
func (s *session) refuse(id json.RawMessage, e *ProtoError) bool {
	s.b.m.recordError(e.Code)
	s.c.Send(errorReply(id, e))
	if e.Code == CodeRateLimited || e.Code == CodeSnapshotBusy || s.abuse.take(s.b.cfg.Clock.Now()) {
		return true
	}
	s.b.m.recordClose(closeAbuse)
	s.c.CloseWith(websocket.ClosePolicyViolation, "too many bad requests")
	return false
}

// closing reports whether the connection is closing (the writer is writing,
// or has written, its close).
func (s *session) closing() bool {
	select {
	case <-s.c.Done():
		return true
	default:
		return false
	}
}

// readFailed closes the client for what ended its reads.
func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case s.closing(): // the close's grace ran out, or the client answered it
	case errors.Is(err, websocket.ErrReadLimit):
		s.b.m.recordClose(closeReadLimit)
		s.c.CloseWith(websocket.CloseMessageTooBig, fmt.Sprintf("frame over the read limit of %d bytes", s.b.cfg.ReadLimit))
	case errors.As(err, &ne) && ne.Timeout():
		s.b.m.recordClose(closeNoPong)
		s.c.CloseWith(CloseNoPong, fmt.Sprintf("nothing received for %v: no pong, no message", s.b.cfg.PongWait))
	}
}

func (s *session) handle(r *Request) bool {
	switch r.Op {
	case "ping":
		s.c.Send(reply("pong", r.ID, map[string]any{"ts": s.b.cfg.Clock.Now().UnixMicro()}))
		return true
	case "resume":
		if !s.subRate.take(s.b.cfg.Clock.Now()) {
			return s.refuse(r.ID, &ProtoError{CodeRateLimited, "too many subscription requests"})
		}
		if len(s.held)+len(r.Seqs) > MaxResumePoints {
			return s.refuse(r.ID, &ProtoError{CodeTooManyResume, fmt.Sprintf("%d resume points would pass the limit of %d; none added", len(s.held)+len(r.Seqs), MaxResumePoints)})
		}
		if s.held == nil {
			s.held = make(map[string]ResumePoint, len(r.Seqs))
		}
		for t, seq := range r.Seqs {
			s.held[t] = ResumePoint{Seq: seq, Epoch: r.Epoch}
		}
		s.c.Send(reply("ack", r.ID, map[string]any{"req": "resume", "held": len(s.held)}))
		return true
	case "unsubscribe":
		if !s.subRate.take(s.b.cfg.Clock.Now()) {
			return s.refuse(r.ID, &ProtoError{CodeRateLimited, "too many subscription requests"})
		}
		n := s.c.Unsubscribe(subscriptions(r, false, 0))
		s.c.Send(reply("ack", r.ID, map[string]any{"req": "unsubscribe", "topics": nonNil(r.Topics),
			"prefixes": nonNil(r.Prefixes), "removed": n, "subscriptions": s.c.Subscriptions()}))
		return true
	}
	return s.subscribe(r)
}

func (s *session) subscribe(r *Request) bool {
	if !s.subRate.take(s.b.cfg.Clock.Now()) {
		return s.refuse(r.ID, &ProtoError{CodeRateLimited, "too many subscription requests"})
	}
	policy, err := slowsub.ParsePolicy(r.Slow)
	if err != nil {
		return s.refuse(r.ID, &ProtoError{CodeBadRequest, err.Error()})
	}
	for _, key := range append(append([]string(nil), r.Topics...), r.Prefixes...) {
		if !s.grant.Allows(key) {
			s.b.m.recordDenied()
			return s.refuse(r.ID, &ProtoError{CodeForbidden, fmt.Sprintf("your token does not cover %q; none added", key)})
		}
	}
	subs := subscriptions(r, policy == slowsub.Conflate, time.Duration(r.ThrottleMs)*time.Millisecond)
	if n := s.c.Subscriptions() + len(subs); n > s.b.cfg.MaxSubs {
		return s.refuse(r.ID, &ProtoError{CodeTooManySubs,
			fmt.Sprintf("%d subscriptions would pass the limit of %d; none added", n, s.b.cfg.MaxSubs)})
	}
	limits := slowsub.Limits{MaxBytes: r.MaxQueueBytes, MaxLag: time.Duration(r.MaxLagMs) * time.Millisecond}
	if limits != (slowsub.Limits{}) {
		s.c.SetLimits(limits)
	}
	want := limits.Within(s.b.engine.Limits()) // the fan-out's limits are the one source
	var plan *snapshotPlan
	sent := 0
	if (r.Snapshot == nil || *r.Snapshot || len(r.Resume) > 0 || len(s.held) > 0) && s.b.cache != nil {
		if s.c.PendingSnapshots() >= blackbox.MaxPendingSnapshots {
			return s.refuse(r.ID, &ProtoError{CodeSnapshotBusy, fmt.Sprintf("%d snapshots are still being sent; none added, try again when they are done", blackbox.MaxPendingSnapshots)})
		}
		// Counting runs here, on this client's goroutine, holding no lock;
		// the values themselves are read as the writer sends them. Resume
		// points held from resume requests go to this subscribe, then are
		// forgotten; the request's own override them.
		if s.held != nil {
			for t, p := range r.Resume {
				s.held[t] = p
			}
			r.Resume, s.held = s.held, nil
		}
		plan = newSnapshotPlan(r)
		sent = plan.count(s.b.cache.View())
	}
	ack := func(total int) []byte {
		return reply("ack", r.ID, map[string]any{"req": "subscribe", "topics": nonNil(r.Topics),
			"prefixes": nonNil(r.Prefixes), "slow": policy.String(), "snapshot": sent,
			"max_lag_ms": want.MaxLag.Milliseconds(), "max_queue_bytes": want.MaxBytes, "throttle_ms": r.ThrottleMs,
			"subscriptions": total})
	}
	var snap func() blackbox.Snapshot
	if plan != nil {
		// Taken under the client's lock after its subscriptions are
		// indexed: a value either is in the view or arrives live.
		snap = func() blackbox.Snapshot { return plan.start(s.b.cache, s.b.cfg.Clock.Now().UnixNano()) }
	}
	if _, err := s.c.Subscribe(subs, ack, snap); err != nil {
		return s.refuse(r.ID, &ProtoError{CodeSnapshotBusy, err.Error() + "; none added"})
	}
	return true
}

// admit counts a new connection from ip against the limits: true (then
// release must follow when it ends), or false and the refusal reason.
func (b *Bridge) admit(ip string) (rejectReason, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.MaxConns > 0 && b.conns >= b.cfg.MaxConns {
		return rejectMaxConns, false
	}
	if b.cfg.MaxConnsPerIP > 0 && b.perIP[ip] >= b.cfg.MaxConnsPerIP {
		return rejectMaxConnsPerIP, false
	}
	b.conns++
	b.perIP[ip]++
	return 0, true
}

func (b *Bridge) release(ip string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conns--
	if b.perIP[ip]--; b.perIP[ip] <= 0 {
		delete(b.perIP, ip)
	}
}

// logRefusal logs a refused connection, at most one a second.
func (b *Bridge) logRefusal(r *http.Request, reason rejectReason, err error) {
	now := b.cfg.Clock.Now()
	b.mu.Lock()
	ok := now.Sub(b.logged) >= time.Second
	if ok {
		b.logged = now
	}
	b.mu.Unlock()
	if ok {
		b.log.Warn().Str("remote", r.RemoteAddr).Stringer("reason", reason).AnErr("error", err).Msg("WebSocket connection refused (further refusals this second not logged; see mdgate_ws_rejected_total)")
	}
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
