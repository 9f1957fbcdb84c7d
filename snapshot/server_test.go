package snapshot_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/internal/attackpeer"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/snapshot"
	"github.com/mdgate/mdgate/tick"
)

const wait = 10 * time.Second

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*snapshot.Config)
		want   string // "" valid, else a piece of the error
	}{
		{"defaults", func(*snapshot.Config) {}, ""},
		{"hwm 1", func(c *snapshot.Config) { c.HWM = 1 }, ""},
		{"hwm 0", func(c *snapshot.Config) { c.HWM = 0 }, "HWM 0"},
		{"hwm -1", func(c *snapshot.Config) { c.HWM = -1 }, "HWM -1"},
		{"hwm huge", func(c *snapshot.Config) { c.HWM = 1 << 30 }, "HWM"},
		{"max requests 0", func(c *snapshot.Config) { c.MaxRequests = 0 }, "MaxRequests 0"},
		{"per peer 0", func(c *snapshot.Config) { c.MaxPerPeer = 0 }, "MaxPerPeer 0"},
		{"per peer over total", func(c *snapshot.Config) { c.MaxRequests, c.MaxPerPeer = 2, 3 }, "MaxPerPeer 3"},
		{"per peer equal total", func(c *snapshot.Config) { c.MaxRequests, c.MaxPerPeer = 3, 3 }, ""},
		{"stall 0", func(c *snapshot.Config) { c.StallTimeout = 0 }, "StallTimeout 0s"},
		{"stall 1ms", func(c *snapshot.Config) { c.StallTimeout = time.Millisecond }, "StallTimeout 1ms"},
		{"chunk values 0", func(c *snapshot.Config) { c.ChunkValues = 0 }, "ChunkValues 0"},
		{"chunk bytes 0", func(c *snapshot.Config) { c.ChunkBytes = 0 }, "ChunkBytes 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := snapshot.DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate(%+v) = %v, want %q", c, err, tt.want)
			}
			_, nerr := snapshot.NewServer("tcp://127.0.0.1:*", lvc.New(lvc.DefaultConfig(), nil), 1, c, nil, zerolog.Nop())
			if (nerr == nil) != (err == nil) {
				t.Errorf("NewServer(%+v) error = %v, want %v", c, nerr, err)
			}
		})
	}
}

func TestFetchInTopicOrderAcrossChunks(t *testing.T) {
	cache := fill(3000, 20)
	cfg := snapshot.DefaultConfig()
	cfg.ChunkValues = 7 // many turns, cursor resumed each time
	srv, reg := serve(t, cache, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, prefix := range []string{"", "md.t.01", "md.t.0299", "none."} {
		res, err := snapshot.Fetch(ctx, srv.Bound(), prefix)
		if err != nil {
			t.Fatalf("Fetch(%q): %v", prefix, err)
		}
		want := cache.Snapshot(prefix)
		if len(res.Values) != len(want) || res.Epoch != 7 {
			t.Fatalf("Fetch(%q) = %d values epoch %d, want %d epoch 7", prefix, len(res.Values), res.Epoch, len(want))
		}
		for i, m := range res.Values {
			if m.Topic != want[i].Topic || m.Stamp != want[i].Stamp || !bytes.Equal(m.Frames[1], want[i].Frames[1]) {
				t.Fatalf("Fetch(%q) value %d = %s %+v, want %s %+v", prefix, i, m.Topic, m.Stamp, want[i].Topic, want[i].Stamp)
			}
		}
	}
	// The server counts a request once its last chunk is sent, which the
	// client may have read first.
	for _, name := range []string{"mdgate_snapshot_requests_total", "mdgate_lvc_snapshot_requests_total"} { // the second: the cache's former name
		testpeer.Eventually(t, wait, name+`{result="ok"} = 4`, func() bool { return metric(t, reg, name, "ok") == 4 })
	}
}

// TestREQEnvelope: a request starting with an empty frame (REQ's delimiter)
// gets it back on every reply. A REQ socket takes one reply per request, so
// it can read an ERR or an END alone; a DEALER sending the same envelope
// reads a whole snapshot.
func TestREQEnvelope(t *testing.T) {
	srv, _ := serve(t, fill(100, 8), snapshot.DefaultConfig())
	// This goroutine owns the sockets until the test's cleanups close them.
	runtime.LockOSThread()

	req := socket(t, zmq.REQ, srv.Bound())
	for _, tt := range []struct {
		req  []string
		want []string
	}{
		{[]string{"GIMME", "x"}, []string{snapshot.RepErr, snapshot.ErrUnknownCommand}},
		{[]string{"SNAP"}, []string{snapshot.RepErr, snapshot.ErrBadRequest}},
		{[]string{"SNAP", "none."}, []string{snapshot.RepEnd, "\x00\x00\x00\x00\x00\x00\x00\x00", "\x00\x00\x00\x00\x00\x00\x00\x07"}},
	} {
		send(t, req, tt.req)
		got := recv(t, req)
		if len(got) < len(tt.want) || !slices.Equal(got[:len(tt.want)], tt.want) {
			t.Errorf("REQ %q: reply %q, want it to start %q", tt.req, got, tt.want)
		}
	}

	dealer := socket(t, zmq.DEALER, srv.Bound())
	send(t, dealer, "", snapshot.CmdSnap, "md.t.0000")
	vals := 0
	for {
		f := recv(t, dealer)
		if len(f) < 2 || f[0] != "" {
			t.Fatalf("DEALER with delimiter: reply %q has no empty first frame", f)
		}
		if f[1] == snapshot.RepEnd {
			if n := binary.BigEndian.Uint64([]byte(f[2])); n != 10 || vals != 10 {
				t.Fatalf("END count %d after %d VALs, want 10", n, vals)
			}
			break
		}
		if f[1] != snapshot.RepVal {
			t.Fatalf("reply %q, want VAL or END", f)
		}
		vals++
	}
}

// TestBusy: past MaxPerPeer and MaxRequests requests get ERR busy at once
// (counted), and a peer's first request displaces another peer's waiting one.
func TestBusy(t *testing.T) {
	cfg := snapshot.DefaultConfig()
	cfg.MaxRequests, cfg.MaxPerPeer, cfg.HWM = 3, 2, 10
	srv, reg := serve(t, fill(20000, 1000), cfg) // 20 MB: more than kernel buffers take
	// This goroutine owns the sockets until the test's cleanups close them.
	runtime.LockOSThread()

	// a sends 3: two accepted (one served, one waiting), the third refused.
	a := socket(t, zmq.DEALER, srv.Bound(), nonReader)
	for range 3 {
		send(t, a, snapshot.CmdSnap, "")
	}
	eventually(t, "a's third request refused", func() bool {
		return metric(t, reg, "mdgate_snapshot_requests_total", "busy") == 1
	})
	// b's first request fills MaxRequests; c's first displaces a's waiting one.
	b := socket(t, zmq.DEALER, srv.Bound(), nonReader)
	send(t, b, snapshot.CmdSnap, "")
	eventually(t, "three requests in progress", func() bool {
		return metric(t, reg, "mdgate_snapshot_active_requests", "") == 3
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := snapshot.Fetch(ctx, srv.Bound(), "md.t.0001"); err != nil {
		t.Fatalf("Fetch at MaxRequests with a waiting request to displace: %v", err)
	}
	if got := metric(t, reg, "mdgate_snapshot_requests_total", "evicted"); got != 1 {
		t.Errorf("requests{evicted} = %v, want 1", got)
	}
	// a and b hold one each; b's second fills MaxRequests again.
	send(t, b, snapshot.CmdSnap, "")
	eventually(t, "three requests in progress again", func() bool {
		return metric(t, reg, "mdgate_snapshot_active_requests", "") == 3
	})
	// A peer holding one request cannot displace b's waiting one (1 < 1+1).
	send(t, a, snapshot.CmdSnap, "")
	eventually(t, "a's second request refused at MaxRequests", func() bool {
		return metric(t, reg, "mdgate_snapshot_requests_total", "busy") == 2
	})
}

// TestStalledAndGone: a requester that does not read holds at most HWM
// replies, loses its request after StallTimeout (counted), and one that
// disconnects loses its request at once (counted).
func TestStalledAndGone(t *testing.T) {
	cfg := snapshot.DefaultConfig()
	cfg.HWM, cfg.StallTimeout = 20, 300*time.Millisecond
	srv, reg := serve(t, fill(20000, 1000), cfg) // 20 MB: more than kernel buffers take
	// This goroutine owns the sockets until the test's cleanups close them.
	runtime.LockOSThread()

	stall := socket(t, zmq.DEALER, srv.Bound(), nonReader)
	for range 2 {
		send(t, stall, snapshot.CmdSnap, "")
	}
	eventually(t, "both requests of the non-reader dropped as stalled", func() bool {
		return metric(t, reg, "mdgate_snapshot_requests_total", "stalled") == 2
	})
	if got := metric(t, reg, "mdgate_snapshot_active_requests", ""); got != 0 {
		t.Errorf("active requests after the stall = %v, want 0", got)
	}

	gone, err := zmq.NewSocket(zmq.DEALER)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(gone.SetLinger(0), nonReader(gone), gone.Connect(srv.Bound())); err != nil {
		t.Fatal(err)
	}
	send(t, gone, snapshot.CmdSnap, "")
	eventually(t, "the request blocked on a full pipe", func() bool {
		return metric(t, reg, "mdgate_snapshot_blocked_total", "") >= 2
	})
	gone.Close()
	eventually(t, "the request of the disconnected peer dropped as gone", func() bool {
		return metric(t, reg, "mdgate_snapshot_requests_total", "gone") == 1 &&
			metric(t, reg, "mdgate_snapshot_active_requests", "") == 0
	})
	if got := metric(t, reg, "mdgate_snapshot_requests_total", "stalled"); got != 2 {
		t.Errorf("requests{stalled} = %v, want 2 (gone before its stall timeout)", got)
	}
}

// TestSnapshotAttack: 20 DEALERs each send 20 requests for every topic and
// never read, while a good requester fetches snapshots again and again.
// Every good fetch completes; the attackers' requests are refused or
// dropped and counted; the memory they cost stays within
// attackers x HWM x message; once they leave nothing is in progress.
func TestSnapshotAttack(t *testing.T) {
	const (
		topics    = 20_000
		payload   = 200
		attackers = 20
		perPeer   = 20
	)
	cfg := snapshot.DefaultConfig()
	cfg.StallTimeout = time.Second
	cache := fill(topics, payload)
	srv, reg := serve(t, cache, cfg)
	rss0 := rss(t)

	stop, stopped := make(chan struct{}), make(chan error, 1)
	sent := make(chan error, 1)
	go func() { // owns the attackers' sockets; RSS measures what the server holds for them
		attackpeer.SnapshotFlood(srv.Bound(), attackers, perPeer, 0, sent, stop)
		stopped <- nil
	}()
	if err := <-sent; err != nil {
		t.Fatalf("attackers: %v", err)
	}

	// Good fetches until every attacker has lost a request to its stall
	// (they stall once the kernel's socket buffers are full too).
	var took []time.Duration
	rssMax := rss0
	for deadline := time.Now().Add(30 * time.Second); len(took) < 5 ||
		metric(t, reg, "mdgate_snapshot_requests_total", "stalled") < attackers; {
		if time.Now().After(deadline) {
			t.Fatalf("after %d good fetches the attackers have not all stalled", len(took))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		res, err := snapshot.Fetch(ctx, srv.Bound(), "")
		cancel()
		if err != nil {
			t.Fatalf("good fetch %d under attack: %v", len(took)+1, err)
		}
		if len(res.Values) != topics {
			t.Fatalf("good fetch %d: %d values, want %d", len(took)+1, len(res.Values), topics)
		}
		took = append(took, time.Since(start))
		rssMax = max(rssMax, rss(t))
	}
	slices.Sort(took)
	t.Logf("good fetches of %d values under attack: %d, p50 %v, p99 %v, max %v", topics, len(took),
		took[len(took)/2], took[len(took)*99/100], took[len(took)-1])

	busy := metric(t, reg, "mdgate_snapshot_requests_total", "busy")
	stalled := metric(t, reg, "mdgate_snapshot_requests_total", "stalled")
	evicted := metric(t, reg, "mdgate_snapshot_requests_total", "evicted")
	if busy+evicted == 0 || stalled < attackers {
		t.Errorf("requests{busy} = %v, {evicted} = %v, {stalled} = %v: want refusals and stalls counted", busy, evicted, stalled)
	}

	close(stop)
	<-stopped
	eventually(t, "no request in progress after the attackers left", func() bool {
		return metric(t, reg, "mdgate_snapshot_active_requests", "") == 0
	})
	rssAfter := rss(t)
	results := map[string]float64{}
	for _, r := range []string{"ok", "busy", "evicted", "stalled", "gone"} {
		results[r] = metric(t, reg, "mdgate_snapshot_requests_total", r)
	}
	t.Logf("requests by result: %v", results)
	// An attacker's first requests may complete into the kernel's socket
	// buffers (ok); every request is counted once.
	var sum float64
	for _, n := range results {
		sum += n
	}
	if want := float64(attackers*perPeer + len(took)); sum != want {
		t.Errorf("requests counted %v, want %v (the attackers' and the good ones)", sum, want)
	}

	// Each held reply is a libzmq message of a few frames: ~64 B per frame
	// plus the payload and stamp. Bound: 4x what HWM replies per attacker
	// take, plus 48 MiB for the good fetches' own results and the race
	// detector. The server before bounds held 100,000 per peer: ~1 GB here.
	msg := int64(payload + tick.StampSize + 6*64)
	bound := 4*attackers*int64(cfg.HWM)*msg + 48<<20
	t.Logf("RSS: before %d MiB, during (max) %d MiB, after %d MiB; growth %d MiB, bound %d MiB",
		rss0>>20, rssMax>>20, rssAfter>>20, (rssMax-rss0)>>20, bound>>20)
	if rssMax-rss0 > bound {
		t.Errorf("RSS grew %d MiB under attack, want at most %d MiB", (rssMax-rss0)>>20, bound>>20)
	}
}

// fill returns a cache of n topics md.t.00000... with payloads of size bytes.
func fill(n, size int) *lvc.Cache {
	cache := lvc.New(lvc.DefaultConfig(), nil)
	body := bytes.Repeat([]byte("x"), size)
	for i := range n {
		topic := fmt.Sprintf("md.t.%05d", i)
		cache.Update(&tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), body},
			Stamp: tick.Stamp{Epoch: 7, Seq: uint64(i + 1)}})
	}
	return cache
}

// serve runs a server on a free port until the test ends.
func serve(t *testing.T, cache *lvc.Cache, cfg snapshot.Config) (*snapshot.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv, err := snapshot.NewServer("tcp://127.0.0.1:*", cache, 7, cfg, reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	testpeer.Serve(t, srv, wait)
	return srv, reg
}

// nonReader makes s hold little on its side: what a peer that does not read
// costs is then on the server's side.
func nonReader(s *zmq.Socket) error {
	return errors.Join(s.SetRcvhwm(1), s.SetRcvbuf(4096))
}

// socket connects a socket, closed when the test ends (by the test's own
// goroutine, which owns it: call runtime.LockOSThread first).
// send sends one message of parts on s, failing the test on an error.
func send(t *testing.T, s *zmq.Socket, parts ...any) {
	t.Helper()
	if _, err := s.SendMessage(parts...); err != nil {
		t.Fatal(err)
	}
}

func socket(t *testing.T, typ zmq.Type, endpoint string, opts ...func(*zmq.Socket) error) *zmq.Socket {
	t.Helper()
	s, err := zmq.NewSocket(typ)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := errors.Join(s.SetLinger(0), s.SetRcvtimeo(wait)); err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Connect(endpoint); err != nil {
		t.Fatal(err)
	}
	return s
}

func recv(t *testing.T, s *zmq.Socket) []string {
	t.Helper()
	f, err := s.RecvMessage(0) // RCVTIMEO bounds it
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return f
}

// metric scrapes one counter or gauge from reg (label: the result label, or
// "" for none).
func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s{%s} not registered", name, label)
	return 0
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, wait)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

// rss is this process's resident set size in bytes (VmRSS), after the Go
// heap's garbage has been handed back, so that what remains is mostly what
// libzmq holds.
func rss(t *testing.T) int64 {
	t.Helper()
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestSlowReaderIsNotStalled: a requester that reads slowly but keeps
// reading finishes, though reading it all takes longer than the stall
// timeout: every send that goes through restarts the clock.
func TestSlowReaderIsNotStalled(t *testing.T) {
	cfg := snapshot.DefaultConfig()
	cfg.HWM, cfg.StallTimeout = 10, 200*time.Millisecond
	srv, reg := serve(t, fill(20000, 1000), cfg) // 20 MB: more than kernel buffers take
	// This goroutine owns the socket until the test's cleanups close it.
	runtime.LockOSThread()
	s := socket(t, zmq.DEALER, srv.Bound(), nonReader)
	send(t, s, snapshot.CmdSnap, "")
	start, vals := time.Now(), 0
	for {
		f := recv(t, s)
		if f[0] == snapshot.RepEnd {
			break
		}
		if f[0] != snapshot.RepVal {
			t.Fatalf("reply %.40q, want VAL or END", f)
		}
		if vals++; vals%2000 == 0 {
			time.Sleep(cfg.StallTimeout / 4) // the slow reader, not a synchronisation
		}
		if vals == 10000 && time.Since(start) > cfg.StallTimeout &&
			metric(t, reg, "mdgate_snapshot_active_requests", "") != 1 {
			t.Fatal("the request ended before its reader was past the stall timeout: kernel buffers took it all, the test proves nothing")
		}
	}
	if vals != 20000 || time.Since(start) < cfg.StallTimeout {
		t.Fatalf("read %d values in %v, want 20000 over more than %v", vals, time.Since(start), cfg.StallTimeout)
	}
	if got := metric(t, reg, "mdgate_snapshot_requests_total", "stalled"); got != 0 {
		t.Errorf("requests{stalled} = %v, want 0", got)
	}
}

// TestRefusalsLoggedOncePerSecond: a burst of bad requests gets an ERR each
// and is counted, but logs one warning a second, not one per request.
func TestRefusalsLoggedOncePerSecond(t *testing.T) {
	var logs testpeer.Buffer
	reg := prometheus.NewRegistry()
	srv, err := snapshot.NewServer("tcp://127.0.0.1:*", fill(10, 8), 7, snapshot.DefaultConfig(), reg,
		zerolog.New(&logs).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-srv.Ready()
	// This goroutine owns the socket until the test's cleanups close it.
	runtime.LockOSThread()
	s := socket(t, zmq.DEALER, srv.Bound())
	const n = 200
	start := time.Now()
	for range n {
		send(t, s, "GIMME")
	}
	for range n {
		if f := recv(t, s); f[0] != snapshot.RepErr || f[1] != snapshot.ErrUnknownCommand {
			t.Fatalf("reply %q, want ERR unknown_command", f)
		}
	}
	elapsed := time.Since(start)
	if got := metric(t, reg, "mdgate_snapshot_requests_total", "error"); got != n {
		t.Errorf("requests{error} = %v, want %d", got, n)
	}
	if got := metric(t, reg, "mdgate_lvc_snapshot_requests_total", "error"); got != n {
		t.Errorf("lvc requests{error} = %v, want %d", got, n)
	}
	lines := strings.Count(logs.String(), "\n")
	if want := 1 + int(elapsed/time.Second); lines < 1 || lines > want {
		t.Errorf("%d warnings for %d bad requests in %v, want 1 to %d:\n%s", lines, n, elapsed, want, logs.String())
	}
}

// TestStandbyRefusesWithPassive: with a Vote that refuses (a failover
// pair's standby whose peer is alive), a request gets ERR passive and is
// counted; once the vote accepts, the same request is served.
func TestStandbyRefusesWithPassive(t *testing.T) {
	cache := lvc.New(lvc.DefaultConfig(), nil)
	cache.Update(&tick.Message{Topic: "a", Frames: [][]byte{[]byte("a"), []byte("1")}, Stamp: tick.Stamp{Epoch: 7, Seq: 1}})
	reg := prometheus.NewRegistry()
	srv, err := snapshot.NewServer("tcp://127.0.0.1:*", cache, 7, snapshot.DefaultConfig(), reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var active atomic.Bool
	srv.Vote = func(context.Context) bool { return active.Load() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-srv.Ready()
	rctx, rcancel := context.WithTimeout(context.Background(), wait)
	defer rcancel()
	_, err = snapshot.Request(rctx, srv.Bound(), [][]byte{[]byte("SNAP"), nil})
	var se *snapshot.ServerError
	if !errors.As(err, &se) || se.Code != snapshot.ErrPassive {
		t.Fatalf("Request to a standby = %v, want ERR %s", err, snapshot.ErrPassive)
	}
	active.Store(true)
	res, err := snapshot.Request(rctx, srv.Bound(), [][]byte{[]byte("SNAP"), nil})
	if err != nil || len(res.Values) != 1 {
		t.Fatalf("Request once active = %+v, %v, want 1 value", res, err)
	}
}
