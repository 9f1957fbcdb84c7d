package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// HTTP connection bounds, defaults of DefaultConfig.
//
// Without an idle timeout a keep-alive connection that went quiet after one
// request was held for good: measured, 1,000 of them after one GET /healthz
// each were all open 60 s later, and at a 256-descriptor limit new WebSocket
// and ZeroMQ clients were refused. WebSocket connections are not affected by
// either timeout: net/http clears a connection's deadlines when gorilla
// hijacks it for the upgrade, and the bridge sets its own (--ws-pong-wait,
// --write-timeout).
const (
	// DefaultHTTPIdleTimeout closes a keep-alive connection with no request
	// for this long. Above a browser's or Prometheus's usual reuse gap
	// costs nothing; a reconnect after it costs one handshake.
	DefaultHTTPIdleTimeout = 30 * time.Second
	// DefaultHTTPReadTimeout bounds reading a whole request, headers and
	// body (headers alone: --ws-handshake-timeout). The gateway's requests
	// are bodiless GETs.
	DefaultHTTPReadTimeout = 10 * time.Second
	// DefaultHTTPMaxConns bounds open HTTP connections, WebSocket ones
	// included: far above the 10,000 idle WebSocket clients of the load
	// test, below the hard open-file limit of a typical systemd service
	// (524,288), so that the bound, not EMFILE, is what a flood meets once
	// the limit is lowered to fit a host.
	DefaultHTTPMaxConns = 65536
)

// validateHTTP checks the HTTP bounds of c.
func (c *Config) validateHTTP() error {
	var errs []error
	if c.HTTPIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("http idle timeout %v: want 0 (the read timeout) or more", c.HTTPIdleTimeout))
	}
	if c.HTTPReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("http read timeout %v: want 0 (none) or more", c.HTTPReadTimeout))
	}
	if c.HTTPMaxConns < 0 {
		errs = append(errs, fmt.Errorf("http max conns %d: want 0 (no limit) or more", c.HTTPMaxConns))
	}
	return errors.Join(errs...)
}

// httpReserveCount descriptors are held on /dev/null for HTTP's own
// accepts. When the process is out of descriptors (a flood of idle ZeroMQ
// connections holds them until --zmq-handshake-timeout), an accept failing
// with EMFILE/ENFILE closes one and accepts again at once, so /healthz and
// /metrics answer (net/http alone would retry after a backoff of up to 1 s
// and lose the freed descriptor to libzmq's accepts, which run in a loop
// then: measured, /healthz answered 0 of 1 within 2 s). They are opened
// again when an HTTP connection closes and after each accept. libzmq's I/O
// thread can take the one freed first (the accept then fails again and the
// next is freed). Sixteen: measured with four, a stream of health checks
// ran them dry after about 30 under the race detector; with sixteen and
// the proxy shutting idle connections down, none ran dry in 4 runs.
const httpReserveCount = 16

// limitListener counts open HTTP connections, WebSocket ones included until
// they close, and closes at once any accepted past max.
type limitListener struct {
	net.Listener
	max  int64 // 0: no limit
	open atomic.Int64
	log  zerolog.Logger

	resMu     sync.Mutex
	reserve   []int // descriptors on /dev/null (httpReserveCount)
	resClosed bool

	conns   prometheus.Gauge
	refused [numRefuseReasons]prometheus.Counter

	logMu   sync.Mutex
	lastLog time.Time // refusals logged at most once a second
}

func newLimitListener(ln net.Listener, max int, reg prometheus.Registerer, log zerolog.Logger) *limitListener {
	conns := prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_http_connections",
		Help: "Open HTTP connections, WebSocket ones included."})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_http_refused_total",
		Help: "HTTP connections the gateway closed without serving a request, by reason (max_conns: closed as soon as accepted, --http-max-conns open already; header_timeout: a request's headers, or the TLS handshake, not complete in time)."}, []string{"reason"})
	reg.MustRegister(conns, refused)
	l := &limitListener{Listener: ln, max: int64(max), log: log, conns: conns, refused: genRefusedCounters(refused)}
	l.fillReserve()
	return l
}

// fillReserve opens descriptors on /dev/null until httpReserveCount are
// held, as far as the process has free ones.
func (l *limitListener) fillReserve() {
	l.resMu.Lock()
	defer l.resMu.Unlock()
	for !l.resClosed && len(l.reserve) < httpReserveCount {
		fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		l.reserve = append(l.reserve, fd)
	}
}

// freeReserve closes one held descriptor; false if none is held.
func (l *limitListener) freeReserve() bool {
	l.resMu.Lock()
	defer l.resMu.Unlock()
	if len(l.reserve) == 0 {
		return false
	}
	syscall.Close(l.reserve[len(l.reserve)-1])
	l.reserve = l.reserve[:len(l.reserve)-1]
	return true
}

// Close closes the listener and lets the reserve go.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.resMu.Lock()
	for _, fd := range l.reserve {
		syscall.Close(fd)
	}
	l.reserve, l.resClosed = nil, true
	l.resMu.Unlock()
	return err
}

// Accept returns the next connection within the limit; those past it are
// closed without a byte and counted. Out of descriptors, it frees one of the
// reserve and accepts again; other errors, and EMFILE with the reserve gone,
// go to net/http, which retries with a backoff.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) && l.freeReserve() {
				continue
			}
			return nil, err
		}
		l.fillReserve()
		n := l.open.Add(1)
		if l.max > 0 && n > l.max {
			l.open.Add(-1)
			// Counted before the close: a client that saw its connection
			// closed sees the count.
			l.refused[refuseMaxConns].Inc()
			l.logRefusal(c.RemoteAddr())
			c.Close()
			continue
		}
		l.conns.Set(float64(n))
		if tc, ok := c.(*net.TCPConn); ok {
			return &countedTCPConn{TCPConn: tc, connTrack: connTrack{l: l}}, nil
		}
		return &countedConn{Conn: c, connTrack: connTrack{l: l}}, nil
	}
}

func (l *limitListener) done() {
	l.conns.Set(float64(l.open.Add(-1)))
	l.fillReserve() // the descriptor just closed, before anything else takes it
}

func (l *limitListener) logRefusal(addr net.Addr) {
	l.logMu.Lock()
	allow := time.Since(l.lastLog) >= time.Second
	if allow {
		l.lastLog = time.Now()
	}
	l.logMu.Unlock()
	if allow {
		l.log.Warn().Stringer("remote", addr).Int64("max", l.max).
			Msg("HTTP connection refused: --http-max-conns open (see mdgate_http_refused_total; at most one logged a second)")
	}
}

// countedTCPConn is an accepted TCP connection that gives its count back on
// the first Close. It keeps every *net.TCPConn method (SetWriteBuffer, for
// the bridge; ReadFrom, for sendfile).
type countedTCPConn struct {
	*net.TCPConn
	connTrack
}

func (c *countedTCPConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(c.l.done)
	return err
}

func (c *countedTCPConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	c.read(n, err)
	return n, err
}

// countedConn is countedTCPConn for a listener that is not TCP.
type countedConn struct {
	net.Conn
	connTrack
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.done)
	return err
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read(n, err)
	return n, err
}

// refuseReason is why the gateway closed an HTTP connection without serving
// it: mdgate_http_refused_total{reason}.
type refuseReason uint8

const (
	refuseMaxConns      refuseReason = iota // --http-max-conns open: closed as soon as accepted
	refuseHeaderTimeout                     // a request's headers (or the TLS handshake) not complete in time
	numRefuseReasons
)

var refuseReasonNames = [numRefuseReasons]string{
	refuseMaxConns:      "max_conns",
	refuseHeaderTimeout: "header_timeout",
}

func (r refuseReason) String() string { return refuseReasonNames[r] }

// genRefusedCounters resolves every reason's child of v up front, so each
// is exported at 0. It panics if refuseReasonNames has drifted from the
// enum: a reason left without a name, or a name given twice.
func genRefusedCounters(v *prometheus.CounterVec) (out [numRefuseReasons]prometheus.Counter) {
	seen := map[string]bool{}
	for r, name := range refuseReasonNames {
		if name == "" || seen[name] {
			panic(fmt.Sprintf("gateway: refuseReason %d is named %q: refuseReasonNames has drifted from the enum", r, name))
		}
		seen[name] = true
		out[r] = v.WithLabelValues(name)
	}
	return out
}

// connTrack follows one HTTP connection through net/http's states to count
// the ones closed because a request's headers did not arrive within
// ReadHeaderTimeout (slowloris), which net/http closes without a word.
//
// net/http, on a header read that times out, closes the connection; it
// first marks it active if the request had read any byte. So a header
// timeout is: a read that failed on its deadline, then active (bytes of
// the request came); or then closed straight from new (nothing came, or the
// TLS handshake did not finish) or from idle after bytes of a next request
// came. Closed from idle with no byte is the idle timeout; a timeout while
// active (a handler's body read, net/http's background read being stopped)
// is not a header's. Hijacked (WebSocket) connections get no more states.
type connTrack struct {
	l        *limitListener
	once     sync.Once
	timedOut atomic.Bool  // a read failed on its deadline since the last idle
	got      atomic.Bool  // a byte was read since the last idle
	state    atomic.Int32 // the last http.ConnState
}

// read notes what a Read on the connection gave.
func (t *connTrack) read(n int, err error) {
	if n > 0 && !t.got.Load() {
		t.got.Store(true)
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		t.timedOut.Store(true)
	}
}

// instrument has srv report its connections' states to l, which counts
// header timeouts. srv must serve l.
func (l *limitListener) instrument(srv *http.Server) {
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		l.connState(c, st)
		if next != nil {
			next(c, st)
		}
	}
}

func (l *limitListener) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	var t *connTrack
	switch c := c.(type) {
	case *countedTCPConn:
		t = &c.connTrack
	case *countedConn:
		t = &c.connTrack
	default:
		return
	}
	prev := http.ConnState(t.state.Swap(int32(st)))
	switch st {
	case http.StateActive:
		if t.timedOut.Load() {
			l.refused[refuseHeaderTimeout].Inc()
			t.timedOut.Store(false) // counted; the close that follows is not counted again
		}
	case http.StateIdle:
		t.timedOut.Store(false)
		t.got.Store(false)
	case http.StateClosed:
		if t.timedOut.Load() && (prev == http.StateNew || (prev == http.StateIdle && t.got.Load())) {
			l.refused[refuseHeaderTimeout].Inc()
		}
	}
}
