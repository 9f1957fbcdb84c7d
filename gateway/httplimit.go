package gateway

import (
	"errors"
	"fmt"
	"net"
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
	refused prometheus.Counter // reason max_conns

	logMu   sync.Mutex
	lastLog time.Time // refusals logged at most once a second
}

func newLimitListener(ln net.Listener, max int, reg prometheus.Registerer, log zerolog.Logger) *limitListener {
	conns := prometheus.NewGauge(prometheus.GaugeOpts{Name: "mdgate_http_connections",
		Help: "Open HTTP connections, WebSocket ones included."})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_http_refused_total",
		Help: "HTTP connections closed as soon as accepted, by reason (max_conns: --http-max-conns open already)."}, []string{"reason"})
	reg.MustRegister(conns, refused)
	l := &limitListener{Listener: ln, max: int64(max), log: log, conns: conns, refused: refused.WithLabelValues("max_conns")}
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
			c.Close()
			l.refused.Inc()
			l.logRefusal(c.RemoteAddr())
			continue
		}
		l.conns.Set(float64(n))
		if tc, ok := c.(*net.TCPConn); ok {
			return &countedTCPConn{TCPConn: tc, l: l}, nil
		}
		return &countedConn{Conn: c, l: l}, nil
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
	l    *limitListener
	once sync.Once
}

func (c *countedTCPConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(c.l.done)
	return err
}

// countedConn is countedTCPConn for a listener that is not TCP.
type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.done)
	return err
}
