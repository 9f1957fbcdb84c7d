package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// acceptGuard sheds connections a listener cannot accept for lack of
// descriptors.
//
// libzmq 4.3.4 keeps polling a listening socket whose accept(2) failed with
// EMFILE or ENFILE: the connection stays in the backlog, the listener stays
// readable, and its I/O thread spins (measured with the gateway at 256
// descriptors and 300 idle TCP connections on the ingress: a core at
// 35-101 %, /healthz silent). Unbinding the listener stops the spin but costs
// good peers: libzmq's tcp_listener launches every session it accepted as
// its own child, and zmq_unbind terminates them with it, so a publisher
// connected long before the flood is dropped, loses what was in flight, and
// is back only after the bind (measured: 45 of 9,057 messages lost, p99
// 2.5 s).
//
// So the listener stays bound and the guard empties its backlog from Go
// instead. Each bound TCP listener's descriptor is found once, right after
// bind (findListener). When the monitor reports ZMQ_EVENT_ACCEPT_FAILED with
// EMFILE/ENFILE on it, the guard accepts and closes (RST) what waits in the
// backlog until accept says EAGAIN, and goes on doing so for every new
// connection while accepts keep failing (acceptQuiet). With the backlog empty
// the listener is not readable and libzmq's I/O thread goes back to sleep; no
// session libzmq accepted is touched. Connections that did get a descriptor
// from libzmq but never handshake are dropped by ZMQ_HANDSHAKE_IVL
// (Config.HandshakeIvl), which gives their descriptors back.
//
// Accepting needs a free descriptor, which the process has none of. The
// shedder therefore runs on its own OS thread with its own descriptor table
// (unshare(CLONE_FILES), no privilege needed): it keeps only its copies of
// the listeners, and what it accepts lands in its table, nowhere near the
// limit, so it never races libzmq's spinning I/O thread for a descriptor
// the process frees. Where unshare is refused (a seccomp profile), the loop
// sheds with descriptors of its own held in reserve on /dev/null, closing one
// to accept: libzmq's I/O thread, accepting in a loop, wins some of those
// (measured: 1 in 15 to 1 in 130 accepts), and the reserve then runs dry
// until descriptors are free again, so the spin is only shortened.
//
// Only tcp:// listeners are covered. ipc:// listeners (the same spin is
// possible) and epgm:// (no accept at all) are out of scope: no descriptor is
// looked for, and their failures are only logged.
type acceptGuard struct {
	// Owned by the loop goroutine.
	started   bool
	listeners []*tcpListener
	flagged   bool           // some listener has a failure not acted on yet
	sh        *shedder       // nil: shed from the loop with the reserve
	fresh     []acceptedConn // connections libzmq accepted, not yet known to have spoken
	nextReap  time.Time

	shown   atomic.Pointer[[]string] // exhausted endpoints, for Health
	res     fdReserve
	warnLog rateLimit // at most one warning a second, all listeners
}

// acceptedConn is a connection libzmq accepted (ZMQ_EVENT_ACCEPTED gives
// its descriptor).
type acceptedConn struct {
	fd   int
	role socketRole
	at   time.Time
}

// tcpListener is one bound TCP endpoint and the descriptor libzmq listens on.
type tcpListener struct {
	role     socketRole
	endpoint string // the resolved endpoint libzmq reported, e.g. tcp://0.0.0.0:5556
	fd       int    // -1: not found; failures are then only logged
	ino      uint64 // the socket's inode, checked before each use of fd

	failed    bool // an EMFILE/ENFILE reported since the last shed
	errno     unix.Errno
	exhausted bool         // in an episode: accepts failed within acceptQuiet
	lastFail  time.Time    // the last EMFILE/ENFILE reported
	shed      int          // connections shed since the last warning (loop)
	lost      int          // reserve descriptors libzmq's accept took since the last warning
	shedBy    atomic.Int64 // connections the shedder thread shed since the last warning
}

const (
	// shedPerTurn bounds the connections shed from one listener per loop
	// iteration; the rest wait for the next (the listener is still
	// readable, libzmq fails again and says so).
	shedPerTurn = 1000
	// acceptQuiet: a listener with no failed accept for this long is no
	// longer exhausted (gauge, /healthz).
	acceptQuiet = time.Second
	// idleAfter: while a listener is exhausted, a connection libzmq accepted
	// that has received no byte and no ACK for this long is shut down
	// (reapIdle); a ZMTP peer sends its greeting at once.
	idleAfter = 250 * time.Millisecond
	// maxFresh bounds the accepted connections remembered for reapIdle.
	maxFresh = 4096
	// monitorEventsPerTurn bounds the monitor events read per loop
	// iteration: a spinning I/O thread emits one per failed accept, and the
	// loop should shed rather than read all of them first.
	monitorEventsPerTurn = 1024
)

// fdReserveCount descriptors are held open on /dev/null. Shedding needs one
// free descriptor per accept; libzmq's I/O thread may take the one freed
// (see above), so a few are held. They are opened again after each turn.
const fdReserveCount = 8

// fdReserve is the held descriptors. The loop takes and gives them back;
// close runs on its own goroutine when the loop's context ends.
type fdReserve struct {
	mu     sync.Mutex
	fds    []int
	closed bool
}

// fill opens descriptors until fdReserveCount are held, as far as the
// process has free ones.
func (r *fdReserve) fill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.closed && len(r.fds) < fdReserveCount {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return // out of descriptors: filled on a later turn
		}
		r.fds = append(r.fds, fd)
	}
}

// free closes one held descriptor; false if none is held.
func (r *fdReserve) free() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fds) == 0 {
		return false
	}
	unix.Close(r.fds[len(r.fds)-1])
	r.fds = r.fds[:len(r.fds)-1]
	return true
}

func (r *fdReserve) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	r.fds, r.closed = nil, true
}

// track records a bound endpoint of role and finds its listening
// descriptor. It runs right after the bind, while descriptors are free.
func (p *Proxy) track(role socketRole, endpoint string) {
	if !strings.HasPrefix(endpoint, "tcp://") {
		return // ipc://, epgm://, inproc://: out of scope (see acceptGuard)
	}
	l := &tcpListener{role: role, endpoint: endpoint, fd: -1}
	fd, ino, err := findListener(endpoint)
	if err != nil {
		p.log.Warn().Err(err).Stringer("socket", role).Str("endpoint", endpoint).
			Msg("listening descriptor not found: if this listener runs out of descriptors, libzmq may spin a core")
	} else {
		l.fd, l.ino = fd, ino
	}
	p.accept.listeners = append(p.accept.listeners, l)
}

// findListener returns the descriptor libzmq listens on for endpoint (a
// resolved tcp:// endpoint) and its socket inode.
//
// The descriptor is found among this process's own: each socket in
// /proc/self/fd that is listening (SO_ACCEPTCONN) with exactly endpoint's
// local address and port (getsockname). That is /proc/net/tcp's LISTEN
// entry matched by port and inode, without parsing it, and only ever one
// of ours. ZMQ_USE_FD with a listener made in Go would avoid the search,
// but libzmq then owns and closes a descriptor Go created, and every bind
// (wildcard ports, IPv6, the interface names libzmq resolves) would have to
// be redone in Go; the search is done once, at bind, and checked (fstat's
// inode) before each use.
//
// The descriptor is then made non-blocking. libzmq 4.3.4 leaves its
// listener blocking and calls accept4 on it only when epoll says it is
// readable: if the guard took the last connection in between, libzmq's I/O
// thread (every socket's I/O) would block in accept4 until the next
// connection, and the guard's own accept could block the loop the same
// way. Non-blocking, libzmq's accept returns EAGAIN, which it treats as
// nothing to accept (tcp_listener.cpp: an ACCEPT_FAILED event, no retry);
// accept is the only call libzmq makes on a listener.
func findListener(endpoint string) (fd int, ino uint64, err error) {
	host, port, err := net.SplitHostPort(strings.TrimPrefix(endpoint, "tcp://"))
	if err != nil {
		return -1, 0, err
	}
	ip := net.ParseIP(host)
	pn, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return -1, 0, fmt.Errorf("endpoint %q: want a resolved IP address and port", endpoint)
	}
	names, err := readDirNames("/proc/self/fd")
	if err != nil {
		return -1, 0, err
	}
	for _, name := range names {
		link, err := os.Readlink("/proc/self/fd/" + name)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		n, err1 := strconv.Atoi(name)
		inode, err2 := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if v, err := unix.GetsockoptInt(n, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			continue
		}
		sa, err := unix.Getsockname(n)
		if err != nil || !sameAddr(sa, ip, pn) {
			continue
		}
		if !sameSocket(n, inode) {
			continue // closed and reused since the readlink
		}
		flags, err := unix.FcntlInt(uintptr(n), unix.F_GETFL, 0)
		if err != nil {
			return -1, 0, err
		}
		if flags&unix.O_NONBLOCK == 0 {
			if _, err := unix.FcntlInt(uintptr(n), unix.F_SETFL, flags|unix.O_NONBLOCK); err != nil {
				return -1, 0, err
			}
		}
		return n, inode, nil
	}
	return -1, 0, errors.New("no listening socket with that address in /proc/self/fd")
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

func sameAddr(sa unix.Sockaddr, ip net.IP, port int) bool {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port == port && ip.Equal(net.IP(a.Addr[:]))
	case *unix.SockaddrInet6:
		return a.Port == port && ip.Equal(net.IP(a.Addr[:]))
	}
	return false
}

// sameSocket reports whether fd is still the socket with inode ino.
func sameSocket(fd int, ino uint64) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK && st.Ino == ino
}

// failed records an accept failure the monitor reported on endpoint of role.
func (g *acceptGuard) failed(role socketRole, endpoint string, errno int) {
	e := unix.Errno(errno)
	if e != unix.EMFILE && e != unix.ENFILE {
		return // EAGAIN (the guard took the connection), ECONNABORTED: nothing to do
	}
	for _, l := range g.listeners {
		if l.role == role && l.endpoint == endpoint {
			l.failed, l.errno = true, e
			g.flagged = true
			return
		}
	}
	// Not a tracked TCP listener (ipc://): only the warning below says so.
	g.listeners = append(g.listeners, &tcpListener{role: role, endpoint: endpoint, fd: -1, failed: true, errno: e})
	g.flagged = true
}

// tickAccept sheds the backlog of listeners whose accepts failed and ends
// episodes that are over. It runs once per loop iteration; with nothing
// exhausted it costs a flag check and a length check.
func (p *Proxy) tickAccept(ctx context.Context) {
	g := &p.accept
	if !g.started {
		g.started = true
		if g.sh == nil {
			g.res.fill()
			context.AfterFunc(ctx, g.res.close)
		}
	}
	if !g.flagged && len(p.exhaustedNow()) == 0 {
		return
	}
	g.flagged = false
	now := time.Now()
	changed := false
	for _, l := range g.listeners {
		if l.failed {
			l.failed = false
			l.lastFail = now
			if !l.exhausted {
				l.exhausted, changed = true, true
				p.m.accept.episodes[l.role].Inc()
				p.m.accept.exhausted[l.role].Inc()
			}
			if g.sh != nil && l.fd >= 0 {
				g.sh.activate(now)
			} else {
				shed, lost := g.shed(l)
				l.shed += shed
				l.lost += lost
				p.m.accept.shed[l.role].Add(float64(shed))
			}
			if g.warnLog.Allow() {
				soft, _ := fdLimit()
				msg := "accepts fail for lack of descriptors: new connections to this listener are shed (accepted and closed); connected peers are not affected (see mdgate_zmq_accept_shed_total; raise the open-file limit or find who holds the connections)"
				if l.fd < 0 {
					msg = "accepts fail for lack of descriptors, and this listener cannot be shed: libzmq may spin a core (raise the open-file limit)"
				}
				p.log.Warn().Stringer("socket", l.role).Str("endpoint", l.endpoint).Str("errno", l.errno.Error()).
					Uint64("fd_limit", soft).Int64("shed", int64(l.shed)+l.shedBy.Swap(0)).Int("reserve_taken_by_libzmq", l.lost).Msg(msg)
				l.shed, l.lost = 0, 0
			}
		} else if l.exhausted && now.Sub(l.lastFail) >= acceptQuiet {
			l.exhausted, changed = false, true
			p.m.accept.exhausted[l.role].Dec()
			p.log.Info().Stringer("socket", l.role).Str("endpoint", l.endpoint).Msg("listener accepting again: no accept failed for lack of descriptors for a second")
		}
	}
	if len(p.exhaustedNow()) > 0 || changed {
		p.reapIdle(now)
	}
	if changed {
		var shown []string
		for _, l := range g.listeners {
			if l.exhausted {
				shown = append(shown, l.endpoint)
			}
		}
		g.shown.Store(&shown)
	}
}

// accepted records a connection libzmq accepted on role's socket.
func (g *acceptGuard) accepted(role socketRole, fd int) {
	if len(g.fresh) >= maxFresh {
		g.fresh = slices.Delete(g.fresh, 0, len(g.fresh)/2)
	}
	g.fresh = append(g.fresh, acceptedConn{fd: fd, role: role, at: time.Now()})
}

// disconnected forgets a connection libzmq closed.
func (g *acceptGuard) disconnected(role socketRole, fd int) {
	if i := slices.IndexFunc(g.fresh, func(c acceptedConn) bool { return c.fd == fd && c.role == role }); i >= 0 {
		g.fresh = slices.Delete(g.fresh, i, i+1)
	}
}

// reapIdle, while a listener is exhausted, shuts down the connections libzmq
// accepted that have said nothing for idleAfter: the handshake interval
// under pressure. Idle connections that got a descriptor would otherwise
// hold it for the whole of it (Config.HandshakeIvl), and every descriptor
// freed would go to the next of them, leaving none for HTTP. The guard does
// not close libzmq's descriptor: shutdown(2) makes libzmq's engine see the
// end of the stream and close it itself (a DISCONNECTED event). The
// descriptor is checked first (it may have been closed and reused since the
// ACCEPTED event): a TCP socket on the tracked listener's port, established,
// with nothing received (tcp_info bytes_received 0) and no ACK for idleAfter
// -- a ZMTP peer's greeting arrives within a round trip. Known connections
// that spoke, or are older than idleAfter and checked, are forgotten.
func (p *Proxy) reapIdle(now time.Time) {
	g := &p.accept
	if now.Before(g.nextReap) {
		return
	}
	g.nextReap = now.Add(idleAfter / 2)
	ports := map[int]bool{}
	for _, l := range g.listeners {
		if l.exhausted && l.fd >= 0 {
			if sa, err := unix.Getsockname(l.fd); err == nil {
				ports[sockPort(sa)] = true
			}
		}
	}
	reaped := 0
	keep := g.fresh[:0]
	for _, c := range g.fresh {
		if now.Sub(c.at) < idleAfter {
			keep = append(keep, c)
			continue
		}
		if idleConn(c.fd, ports) {
			unix.Shutdown(c.fd, unix.SHUT_RDWR)
			p.m.accept.idle[c.role].Inc()
			reaped++
		}
	}
	g.fresh = keep
	if reaped > 0 {
		p.log.Debug().Int("connections", reaped).Msg("idle connections shut down while a listener is out of descriptors")
	}
}

// idleConn reports whether fd is an established TCP connection accepted on
// one of ports that has received nothing, not even an ACK, for idleAfter.
func idleConn(fd int, ports map[int]bool) bool {
	sa, err := unix.Getsockname(fd)
	if err != nil || !ports[sockPort(sa)] {
		return false
	}
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return false
	}
	const established = 1
	return ti.State == established && ti.Bytes_received == 0 &&
		time.Duration(ti.Last_ack_recv)*time.Millisecond >= idleAfter && time.Duration(ti.Last_data_recv)*time.Millisecond >= idleAfter
}

func sockPort(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return -1
}

// exhaustedNow is what Health shows; safe from any goroutine.
func (p *Proxy) exhaustedNow() []string {
	if v := p.accept.shown.Load(); v != nil && len(*v) > 0 {
		return *v
	}
	return nil
}

// shed accepts and closes what waits in l's backlog, using the reserve's
// descriptors to do it. It returns the connections shed and the reserve
// descriptors another accept (libzmq's) took first.
func (g *acceptGuard) shed(l *tcpListener) (shed, lost int) {
	if l.fd < 0 || !sameSocket(l.fd, l.ino) {
		return 0, 0
	}
	defer g.res.fill()
	freed := g.res.free()
	for shed < shedPerTurn {
		fd, _, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			unix.Close(fd)
			shed++
		case errors.Is(err, unix.EAGAIN):
			return shed, lost // the backlog is empty
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED), errors.Is(err, unix.EPROTO):
		case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
			if freed {
				lost++ // libzmq's I/O thread took the freed descriptor
			}
			if freed = g.res.free(); !freed {
				return shed, lost // none left: on a later turn
			}
		default:
			return shed, lost
		}
	}
	return shed, lost
}

// shedder sheds on its own OS thread with its own descriptor table (see
// acceptGuard). The loop activates it on each EMFILE/ENFILE; it then sheds
// every connection that reaches a tracked listener until acceptQuiet has
// passed without another, and sleeps.
type shedder struct {
	ls    []*tcpListener // with fd >= 0; the same numbers in the shedder's table
	shed  []prometheus.Counter
	until atomic.Int64 // Unix ns: shed until then
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// startShedder starts the shedder for the tracked listeners. It runs after
// every bind: the shedder's table is a copy of the process's taken now.
func (p *Proxy) startShedder() (*shedder, error) {
	sh := &shedder{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for _, l := range p.accept.listeners {
		if l.fd >= 0 {
			sh.ls = append(sh.ls, l)
			sh.shed = append(sh.shed, p.m.accept.shed[l.role])
		}
	}
	if len(sh.ls) == 0 {
		return nil, nil
	}
	ready := make(chan error, 1)
	go sh.run(ready)
	if err := <-ready; err != nil {
		<-sh.done
		return nil, err
	}
	return sh, nil
}

// close stops the shedder. Its thread ends with it, and with the thread its
// copies of the listeners.
func (sh *shedder) close() {
	close(sh.stop)
	<-sh.done
}

// activate makes the shedder shed for acceptQuiet from now.
func (sh *shedder) activate(now time.Time) {
	sh.until.Store(now.Add(acceptQuiet).UnixNano())
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *shedder) run(ready chan<- error) {
	defer close(sh.done)
	// Never unlocked: when run returns the runtime ends the thread, and its
	// descriptor table with it.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		ready <- fmt.Errorf("unshare(CLONE_FILES): %w", err)
		return
	}
	keep := map[int]bool{}
	for _, l := range sh.ls {
		keep[l.fd] = true
	}
	if err := closeCopies(keep); err != nil {
		ready <- err
		return
	}
	ready <- nil
	pfds := make([]unix.PollFd, len(sh.ls))
	for {
		if time.Now().UnixNano() >= sh.until.Load() {
			select {
			case <-sh.wake:
				continue
			case <-sh.stop:
				return
			}
		}
		select {
		case <-sh.stop:
			return
		default:
		}
		for i, l := range sh.ls {
			pfds[i] = unix.PollFd{Fd: int32(l.fd), Events: unix.POLLIN}
		}
		if _, err := unix.Poll(pfds, 20); err != nil {
			continue // EINTR
		}
		for i, l := range sh.ls {
			if pfds[i].Revents&unix.POLLIN == 0 {
				continue
			}
			n := shedBacklog(l.fd)
			l.shedBy.Add(int64(n))
			sh.shed[i].Add(float64(n))
		}
	}
}

// closeCopies closes, in the calling thread's own descriptor table, the
// copies of what the process held when the table was unshared, but for keep
// (the listeners), 0-2, and the runtime's and libzmq's epoll and eventfd
// descriptors (anon_inode), and pipes: the runtime may write to its
// eventfd from this thread (netpollBreak), and a pipe closed here could be
// one it relies on. A socket or file copy kept here would stay open after
// its owner closed it.
func closeCopies(keep map[int]bool) error {
	names, err := readDirNames("/proc/thread-self/fd")
	if err != nil {
		return err
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 2 || keep[fd] {
			continue
		}
		link, err := os.Readlink("/proc/thread-self/fd/" + name)
		if err != nil || strings.HasPrefix(link, "anon_inode:") || strings.HasPrefix(link, "pipe:") {
			continue
		}
		unix.Close(fd)
	}
	return nil
}

// shedBacklog accepts and closes (RST: nothing left in TIME_WAIT) what waits
// on listener fd, until EAGAIN or shedPerTurn; it returns how many.
func shedBacklog(fd int) int {
	n := 0
	for n < shedPerTurn {
		c, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) || errors.Is(err, unix.EPROTO) {
				continue
			}
			return n // EAGAIN: the backlog is empty; ENFILE and the rest: next turn
		}
		unix.SetsockoptLinger(c, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(c)
		n++
	}
	return n
}

// fdLimit is the soft and hard RLIMIT_NOFILE.
func fdLimit() (soft, hard uint64) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0
	}
	return lim.Cur, lim.Max
}

// acceptMetrics count shedding by socket role.
type acceptMetrics struct {
	shed      [numRoles]prometheus.Counter
	idle      [numRoles]prometheus.Counter
	episodes  [numRoles]prometheus.Counter
	exhausted [numRoles]prometheus.Gauge
}

func newAcceptMetrics(reg prometheus.Registerer) acceptMetrics {
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_zmq_accept_shed_total",
		Help: "Connections to a ZeroMQ listener accepted and closed at once because accepting failed for lack of descriptors (EMFILE/ENFILE), by socket."}, []string{"socket"})
	episodes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_zmq_accept_exhausted_total",
		Help: "Times a ZeroMQ listener's accepts began failing for lack of descriptors (episodes; one ends after a second without a failure), by socket."}, []string{"socket"})
	exhausted := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mdgate_zmq_accept_exhausted",
		Help: "ZeroMQ listeners whose accepts failed for lack of descriptors within the last second, by socket."}, []string{"socket"})
	idle := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mdgate_zmq_accept_idle_dropped_total",
		Help: "Connections libzmq accepted that sent nothing for 250 ms, shut down while their listener was out of descriptors, by socket."}, []string{"socket"})
	reg.MustRegister(shed, episodes, exhausted, idle)
	var m acceptMetrics
	for r, n := range roleNames {
		m.shed[r] = shed.WithLabelValues(n)
		m.idle[r] = idle.WithLabelValues(n)
		m.episodes[r] = episodes.WithLabelValues(n)
		m.exhausted[r] = exhausted.WithLabelValues(n)
	}
	return m
}
