package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// nats-server as the baseline of the WebSocket fan-out (-scenario nats): a
// child process with a generated config, published to over its TCP client
// port and read over its WebSocket port, both with the NATS text protocol
// spoken here (no NATS client library, nothing of NATS in go.mod).
// scripts/ensure-nats installs the binary outside the module.

// natsServer is a running nats-server.
type natsServer struct {
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	dir     string
	client  string // host:port of the TCP client listener
	ws      string // host:port of the WebSocket listener
	monitor string // host:port of the HTTP monitor
	version string
	config  string
	done    chan struct{} // closed once the process has exited and been waited for
}

// natsConfig is the generated config: loopback listeners on ports the server
// picks (-1), WebSocket without TLS, the HTTP monitor for /varz; every limit
// at its default. extra is appended (tests only).
func natsConfig(extra string) string {
	return "listen: 127.0.0.1:-1\nhttp: 127.0.0.1:-1\nwebsocket {\n  listen: \"127.0.0.1:-1\"\n  no_tls: true\n}\n" + extra
}

// findNATS returns bin, or when it is empty the path scripts/ensure-nats
// prints (installing nats-server into a cache directory if needed).
func findNATS(bin, script string) (string, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("-nats-server %s: %w", bin, err)
		}
		return bin, nil
	}
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("no %s (run from the repository root, or pass -nats-server): %w", script, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// lineWriter hands each complete line written to it to fn: the child's
// stderr, copied by os/exec's own goroutine (so Wait and WaitDelay bound it).
type lineWriter struct {
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.fn(string(bytes.TrimRight(w.buf[:i], "\r")))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// startNATS starts bin (under taskset -c 0 with pin) with the generated
// config and waits for its "Server is ready" line, reading the ports it
// chose from its log. Later warnings and errors go to stderr.
func startNATS(bin string, pin bool, extra string) (*natsServer, error) {
	dir, err := os.MkdirTemp("", "mdgate-nats-")
	if err != nil {
		return nil, err
	}
	s := &natsServer{dir: dir, config: natsConfig(extra)}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(s.config), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	name, args := bin, []string{"-c", conf}
	if pin {
		name, args = "taskset", append([]string{"-c", "0", bin}, args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	// If this process dies without stopping it (an interrupt, the 30-minute
	// bound's os.Exit), so does the server. (Sent when the thread that
	// started it exits: never one locked to a goroutine here.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	ready := make(chan struct{})
	var early []string // the log up to "ready", for an error
	var mu sync.Mutex  // s's addresses, early: written by the copying goroutine
	isReady := false
	cmd.Stderr = &lineWriter{fn: func(line string) {
		mu.Lock()
		defer mu.Unlock()
		if isReady {
			if (strings.Contains(line, "[WRN]") || strings.Contains(line, "[ERR]") || strings.Contains(line, "[FTL]")) && !strings.Contains(line, "not configured with TLS") {
				fmt.Fprintln(os.Stderr, "nats-server:", line)
			}
			return
		}
		early = append(early, line)
		after := func(marker string) (string, bool) {
			i := strings.Index(line, marker)
			if i < 0 {
				return "", false
			}
			return strings.TrimSpace(line[i+len(marker):]), true
		}
		if v, ok := after("Listening for client connections on "); ok {
			s.client = v
		} else if v, ok := after("Listening for websocket clients on ws://"); ok {
			s.ws = v
		} else if v, ok := after("Starting http monitor on "); ok {
			s.monitor = strings.TrimPrefix(v, "http://")
		} else if v, ok := after("Version:"); ok {
			s.version = v
		} else if strings.Contains(line, "Server is ready") {
			isReady = true
			close(ready)
		}
	}}
	if err := cmd.Start(); err != nil {
		cancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start nats-server: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(s.done) }()
	fail := func(why string) (*natsServer, error) {
		s.stop()
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("nats-server %s; its log:\n%s", why, strings.Join(early, "\n"))
	}
	select {
	case <-ready:
	case <-s.done:
		return fail(fmt.Sprintf("exited before it was ready (%v)", waitErr))
	case <-time.After(15 * time.Second):
		return fail("not ready after 15s")
	}
	mu.Lock()
	client, ws, monitor := s.client, s.ws, s.monitor
	mu.Unlock()
	if client == "" || ws == "" || monitor == "" {
		s.stop()
		return nil, fmt.Errorf("nats-server did not log its client, websocket and monitor addresses: %q %q %q", client, ws, monitor)
	}
	return s, nil
}

func (s *natsServer) pid() int { return s.cmd.Process.Pid }

// stop ends the server (SIGTERM, SIGKILL 5 s later) and waits for it.
func (s *natsServer) stop() {
	s.cancel()
	<-s.done
	os.RemoveAll(s.dir)
}

// varz is what the harness reads of the monitor's /varz.
type varz struct {
	Connections   float64 `json:"connections"`
	SlowConsumers float64 `json:"slow_consumers"`
	Mem           float64 `json:"mem"`
}

func (s *natsServer) varz() (varz, error) {
	var v varz
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.monitor + "/varz")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("/varz: %s", resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// The NATS text protocol, server to client: INFO {...}, MSG <subject> <sid>
// [reply-to] <bytes>\r\n<payload>\r\n, PING, PONG, +OK, -ERR '...'.

// natsOp is one operation read from a server.
type natsOp struct {
	kind    string // INFO, MSG, PING, PONG, +OK, -ERR
	arg     []byte // the rest of the control line (valid until the next read)
	subject []byte // MSG
	payload []byte // MSG (valid until the next read)
}

// natsReader reads operations from a byte stream (a TCP connection, or a
// WebSocket connection's messages end to end: the server may split an
// operation across WebSocket messages).
type natsReader struct {
	br  *bufio.Reader
	buf []byte // a payload or a long line
}

func newNATSReader(r io.Reader) *natsReader { return &natsReader{br: bufio.NewReaderSize(r, 4096)} }

func (r *natsReader) line() ([]byte, error) {
	l, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.buf = append(r.buf[:0], l...)
		rest, err := r.br.ReadBytes('\n')
		r.buf = append(r.buf, rest...)
		l = r.buf
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

func (r *natsReader) next() (natsOp, error) {
	l, err := r.line()
	if err != nil {
		return natsOp{}, err
	}
	kind, arg, _ := bytes.Cut(l, []byte(" "))
	op := natsOp{kind: strings.ToUpper(string(kind)), arg: arg}
	if op.kind != "MSG" {
		return op, nil
	}
	f := bytes.Fields(arg)
	if len(f) < 3 || len(f) > 4 {
		return op, fmt.Errorf("bad MSG line %q", l)
	}
	n, err := strconv.Atoi(string(f[len(f)-1]))
	if err != nil || n < 0 {
		return op, fmt.Errorf("bad MSG size in %q", l)
	}
	// The control line may sit in r.buf or the bufio buffer: copy the
	// subject before reading the payload.
	op.subject = append([]byte(nil), f[0]...)
	if cap(r.buf) < n+2 {
		r.buf = make([]byte, n+2)
	}
	r.buf = r.buf[:n+2]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		return op, err
	}
	if r.buf[n] != '\r' || r.buf[n+1] != '\n' {
		return op, fmt.Errorf("MSG payload of %d bytes not followed by CRLF", n)
	}
	op.payload = r.buf[:n]
	return op, nil
}

// wsStream reads a WebSocket connection's messages as one byte stream and
// remembers when the latest message began to arrive.
type wsStream struct {
	ws *websocket.Conn
	r  io.Reader
	at int64 // ns
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			_, r, err := s.ws.NextReader()
			if err != nil {
				return 0, err
			}
			s.r, s.at = r, time.Now().UnixNano()
		}
		n, err := s.r.Read(p)
		if err == io.EOF {
			s.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// natsClient is one WebSocket subscriber of nats-server; the counterpart of
// wsClient, measured the same way.
type natsClient struct {
	ws        *websocket.Conn
	st        *wsStream
	rd        *natsReader
	lat       samples
	inWindow  atomic.Int64
	delivered atomic.Int64
	wmu       sync.Mutex    // writes: read's PONGs, ping
	pongs     chan struct{} // when set, read signals each PONG on it (without blocking)
}

// dialNATS opens a WebSocket connection to nats-server at addr, reads its
// INFO, sends CONNECT and a SUB for each subject, and waits for the PONG
// of a PING sent after them: once it arrives the subscriptions are in.
func dialNATS(d *websocket.Dialer, addr string, subjects []string) (*websocket.Conn, *wsStream, *natsReader, error) {
	ws, _, err := d.Dial("ws://"+addr+"/", nil)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*websocket.Conn, *wsStream, *natsReader, error) {
		ws.Close()
		return nil, nil, nil, err
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	st := &wsStream{ws: ws}
	rd := newNATSReader(st)
	op, err := rd.next()
	if err != nil {
		return fail(fmt.Errorf("read INFO: %w", err))
	}
	if op.kind != "INFO" {
		return fail(fmt.Errorf("first operation %s %.100s, want INFO", op.kind, op.arg))
	}
	var b bytes.Buffer
	b.WriteString("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
	for i, s := range subjects {
		fmt.Fprintf(&b, "SUB %s %d\r\n", s, i+1)
	}
	b.WriteString("PING\r\n")
	if err := ws.WriteMessage(websocket.BinaryMessage, b.Bytes()); err != nil {
		return fail(err)
	}
	for {
		op, err := rd.next()
		if err != nil {
			return fail(fmt.Errorf("waiting for PONG: %w", err))
		}
		switch op.kind {
		case "PONG":
			ws.SetReadDeadline(time.Time{})
			return ws, st, rd, nil
		case "-ERR":
			return fail(fmt.Errorf("nats-server: -ERR %s", op.arg))
		case "PING":
			if err := ws.WriteMessage(websocket.BinaryMessage, []byte("PONG\r\n")); err != nil {
				return fail(err)
			}
		}
	}
}

// read counts messages; those sent inside [from, to) give latency samples.
// It answers PING with PONG.
func (c *natsClient) read(from, to *atomic.Int64) {
	for {
		op, err := c.rd.next()
		if err != nil {
			return
		}
		switch op.kind {
		case "MSG":
			t, ok := payloadInt(op.payload, "t")
			if !ok {
				continue
			}
			c.delivered.Add(1)
			if f := from.Load(); f != 0 && t >= f && t < to.Load() {
				c.lat.record(time.Duration(c.st.at - t))
				c.inWindow.Add(1)
			}
		case "PING":
			c.wmu.Lock()
			err := c.ws.WriteMessage(websocket.BinaryMessage, []byte("PONG\r\n"))
			c.wmu.Unlock()
			if err != nil {
				return
			}
		case "PONG":
			if c.pongs != nil {
				select {
				case c.pongs <- struct{}{}:
				default:
				}
			}
		case "-ERR":
			fmt.Fprintf(os.Stderr, "nats client: -ERR %s\n", op.arg)
		}
	}
}

// ping sends a PING: its PONG comes after every message the server queued
// for this client before it.
func (c *natsClient) ping() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.BinaryMessage, []byte("PING\r\n"))
}

// natsPub is a publisher on nats-server's TCP client port.
type natsPub struct {
	conn  net.Conn
	bw    *bufio.Writer
	pings chan struct{} // the server sent PING: answer on the writer's goroutine
	pongs chan struct{} // the server answered our PING
	errs  chan error    // the reader's end
}

// openNATSPub connects, reads INFO, sends CONNECT and checks with a PING
// that the server accepted it. One goroutine reads the connection; the
// caller's goroutine owns the writer.
func openNATSPub(addr string) (*natsPub, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	p := &natsPub{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), pings: make(chan struct{}, 16), pongs: make(chan struct{}, 16), errs: make(chan error, 1)}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := newNATSReader(conn)
	if op, err := rd.next(); err != nil || op.kind != "INFO" {
		conn.Close()
		return nil, fmt.Errorf("nats publisher: no INFO (%v, %s)", err, op.kind)
	}
	conn.SetReadDeadline(time.Time{})
	go func() {
		for {
			op, err := rd.next()
			if err != nil {
				p.errs <- err
				return
			}
			switch op.kind {
			case "PING":
				select {
				case p.pings <- struct{}{}:
				default:
				}
			case "PONG":
				p.pongs <- struct{}{}
			case "-ERR":
				p.errs <- fmt.Errorf("nats-server: -ERR %s", op.arg)
				return
			}
		}
	}()
	p.bw.WriteString("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
	if err := p.sync(5 * time.Second); err != nil {
		p.conn.Close()
		return nil, err
	}
	return p, nil
}

// pub queues one PUB (sent at the next flush).
func (p *natsPub) pub(subject string, payload []byte) {
	p.bw.WriteString("PUB ")
	p.bw.WriteString(subject)
	p.bw.WriteByte(' ')
	p.bw.WriteString(strconv.Itoa(len(payload)))
	p.bw.WriteString("\r\n")
	p.bw.Write(payload)
	p.bw.WriteString("\r\n")
}

// flush answers the server's PINGs and sends what is queued.
func (p *natsPub) flush() error {
	for {
		select {
		case <-p.pings:
			p.bw.WriteString("PONG\r\n")
			continue
		case err := <-p.errs:
			return err
		default:
		}
		return p.bw.Flush()
	}
}

// sync flushes and waits for the PONG of a PING: the server has processed
// everything sent before it.
func (p *natsPub) sync(d time.Duration) error {
	p.bw.WriteString("PING\r\n")
	if err := p.flush(); err != nil {
		return err
	}
	select {
	case <-p.pongs:
		return nil
	case err := <-p.errs:
		return err
	case <-time.After(d):
		return fmt.Errorf("nats publisher: no PONG in %v", d)
	}
}

func (p *natsPub) close() { p.conn.Close() }

// natsPublish is wsPublish for nats-server: the same JSON ticks carrying
// their send time, at msgRate a second round-robin over the topics, each
// millisecond's batch flushed at once, until stop; then a PING/PONG so
// everything sent has reached the server before the connection closes.
func natsPublish(addr string, o options, msgRate int, subsPerTopic []int64, from, to, published, expected *atomic.Int64, stop chan struct{}) error {
	pub, err := openNATSPub(addr)
	if err != nil {
		return err
	}
	defer pub.close()
	pad := strings.Repeat("x", max(o.payload-30, 1))
	topics := make([]string, o.topics)
	for i := range topics {
		topics[i] = topicName(i)
	}
	start := time.Now()
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var payload []byte
	for {
		select {
		case <-stop:
			return pub.sync(10 * time.Second)
		case <-tick.C:
		}
		due := int(time.Since(start).Seconds() * float64(msgRate))
		for ; sent < due; sent++ {
			t := time.Now().UnixNano()
			topic := sent % o.topics
			payload = fmt.Appendf(payload[:0], `{"t":%d,"pad":"%s"}`, t, pad)
			pub.pub(topics[topic], payload)
			if f := from.Load(); f != 0 && t >= f && t < to.Load() {
				published.Add(1)
				expected.Add(subsPerTopic[topic])
			}
		}
		if err := pub.flush(); err != nil {
			return err
		}
	}
}

// topicName is topic i's name: the same for mdgate and as a NATS subject.
func topicName(i int) string { return fmt.Sprintf("lt.t%03d", i) }
