package testrelay

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Relay forwards TCP connections to a target until it is cut.
type Relay struct {
	ln     net.Listener
	target string
	delay  time.Duration // each chunk held this long in each direction (NewDelayed)
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// New starts a relay on a free 127.0.0.1 port to target (host:port). When
// the test ends it stops accepting, drops what it carries and waits for its
// goroutines.
func New(tb testing.TB, target string) *Relay {
	tb.Helper()
	return NewDelayed(tb, target, 0)
}

// NewDelayed is New with each chunk held d in each direction before it is
// passed on: a long round trip.
func NewDelayed(tb testing.TB, target string, d time.Duration) *Relay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &Relay{ln: ln, target: target, delay: d, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	tb.Cleanup(func() {
		ln.Close()
		r.Cut()
		r.wg.Wait()
	})
	return r
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// accept relays each connection it accepts while the link is not cut, and
// closes it at once while it is (or when the target does not answer).
func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.cut {
			r.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.conns[c], r.conns[up] = struct{}{}, struct{}{}
		r.wg.Add(2)
		r.mu.Unlock()
		go r.pipe(up, c)
		go r.pipe(c, up)
	}
}

// pipe copies src to dst until either ends, then closes both.
func (r *Relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	defer src.Close()
	defer dst.Close()
	if r.delay <= 0 {
		io.Copy(dst, src)
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(r.delay) // the simulated network's latency
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut drops every relayed connection (both sides) and refuses new ones
// until Heal.
func (r *Relay) Cut() { r.setCut(true) }

// Heal relays new connections again.
func (r *Relay) Heal() { r.setCut(false) }

// setCut cuts (true) or heals (false) the link.
func (r *Relay) setCut(cut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = cut
	if cut {
		for c := range r.conns {
			c.Close()
		}
		clear(r.conns)
	}
}
