package blackbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/internal/clock/clocktest"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

const wait = 10 * time.Second

// encodeText is a test wire format: "topic seq".
func encodeText(m *tick.Message) []byte { return fmt.Appendf(nil, "%s %d", m.Topic, m.Stamp.Seq) }

// encodePadded is encodeText padded to about 110 bytes.
func encodePadded(m *tick.Message) []byte {
	return fmt.Appendf(nil, "%s %d %s", m.Topic, m.Stamp.Seq, strings.Repeat(".", 100))
}

// memConn records what its writer wrote. stall makes WriteBatch block until
// its deadline, like a socket whose peer stopped reading.
type memConn struct {
	stall   atomic.Bool
	entered atomic.Int32 // writes started
	abortMu sync.Once
	aborted chan struct{}
	mu      sync.Mutex
	got     []string
	batches int
	closed  slowsub.Reason
	closedN int
	answer  atomic.Pointer[func(uint64)] // the client's Answered: a reading peer answers probes
	beats   atomic.Int32                 // heartbeats written
	ridden  atomic.Int32                 // probes written after data, in its write
	alone   atomic.Int32                 // probes written on their own
}

// attach makes the conn answer c's probes.
func (c *memConn) attach(cl *Client) *Client {
	f := cl.Answered
	c.answer.Store(&f)
	return cl
}

// WriteBatch records the items and the heartbeat, and answers the probe at
// once, like a peer that reads, unless stalled.
func (c *memConn) WriteBatch(deadline time.Time, b *Batch) error {
	if len(b.Items) == 0 {
		if b.Probe != 0 {
			c.alone.Add(1)
		}
		return c.control(b)
	}
	if b.Probe != 0 {
		c.ridden.Add(1)
	}
	c.entered.Add(1)
	if c.stall.Load() {
		select { // a blocked write returns at its deadline, or when aborted
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("write: %w", errDeadline)
		case <-c.abortc():
			return errors.New("write: connection closed")
		}
	}
	c.mu.Lock()
	c.batches++
	for _, it := range b.Items {
		s := string(it.Data)
		if it.Skipped > 0 {
			s += fmt.Sprintf(" skipped=%d", it.Skipped)
		}
		c.got = append(c.got, s)
	}
	c.mu.Unlock()
	return c.control(b)
}

// control writes b's heartbeat and answers its probe.
func (c *memConn) control(b *Batch) error {
	if b.Heartbeat {
		c.beats.Add(1)
	}
	if f := c.answer.Load(); f != nil && b.Probe != 0 && !c.stall.Load() {
		(*f)(b.Probe)
	}
	return nil
}

var errDeadline = errors.New("i/o timeout")

func (c *memConn) abortc() chan struct{} {
	c.abortMu.Do(func() { c.aborted = make(chan struct{}) })
	return c.aborted
}
func (c *memConn) Abort() {
	ch := c.abortc()
	select {
	case <-ch:
	default:
		close(ch)
	}
}
func (c *memConn) WriteClose(_ time.Time, why Close) error {
	c.mu.Lock()
	c.closed, c.closedN = why.Slow, c.closedN+1
	c.mu.Unlock()
	return nil
}

func (c *memConn) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// config is DefaultConfig changed by edit: New refuses what Validate
// refuses, so a test starts from the defaults.
func config(edit func(*Config)) Config {
	c := DefaultConfig()
	edit(&c)
	return c
}

// newEngine is New, failing the test on a refused cfg.
func newEngine(t testing.TB, cfg Config, enc ...Encoder) *Engine {
	t.Helper()
	e, err := New(cfg, enc, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// run starts an engine until the test ends.
func run(t testing.TB, cfg Config) *Engine {
	t.Helper()
	return runEngine(t, newEngine(t, cfg, encodeText))
}

// runEngine runs e until the test ends.
func runEngine(t testing.TB, e *Engine) *Engine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// client starts a client's writer; the returned channel gets Run's result.
func client(t testing.TB, e *Engine, conn Conn, l slowsub.Limits, subs ...Subscription) (*Client, <-chan error) {
	c := e.NewClient(conn, 0, l)
	if mc, ok := conn.(*memConn); ok {
		mc.attach(c)
	}
	c.Subscribe(subs, nil, nil)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- c.Run(ctx) }()
	t.Cleanup(cancel)
	return c, errc
}

func msg(topic string, seq uint64) *tick.Message {
	return &tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic)},
		Stamp: tick.Stamp{Epoch: 1, Seq: seq, Ingress: time.Now().UnixNano()}}
}

func TestExactPrefixAndOverlap(t *testing.T) {
	e := run(t, config(func(c *Config) { c.Shards = 3 }))
	exact, prefix, both := &memConn{}, &memConn{}, &memConn{}
	client(t, e, exact, slowsub.Limits{}, Subscription{Key: "md.eq.AAPL"})
	client(t, e, prefix, slowsub.Limits{}, Subscription{Key: "md.eq.", Prefix: true})
	client(t, e, both, slowsub.Limits{}, Subscription{Key: "md.eq.AAPL"}, Subscription{Key: "md.", Prefix: true},
		Subscription{Key: "md.eq", Prefix: true})
	for i := uint64(1); i <= 100; i++ {
		for _, topic := range []string{"md.eq.AAPL", "md.eq.MSFT", "md.fx.EURUSD", "other"} {
			e.Publish(msg(topic, i))
		}
	}
	want := map[*memConn]int{exact: 100, prefix: 200, both: 300}
	for c, n := range want {
		testpeer.Eventually(t, wait, fmt.Sprintf("%d messages", n), func() bool { return len(c.lines()) >= n })
	}
	for c, n := range want {
		got := c.lines()
		if len(got) != n {
			t.Errorf("client got %d messages, want %d (a match twice must deliver once)", len(got), n)
		}
		last := map[string]int{}
		for _, l := range got {
			var topic string
			var seq int
			fmt.Sscanf(l, "%s %d", &topic, &seq)
			if seq != last[topic]+1 {
				t.Fatalf("%s: seq %d after %d: per-topic order lost", topic, seq, last[topic])
			}
			last[topic] = seq
		}
	}
}

func TestUnsubscribeStopsDelivery(t *testing.T) {
	e := run(t, config(func(c *Config) { c.Shards = 2 }))
	conn := &memConn{}
	c, _ := client(t, e, conn, slowsub.Limits{}, Subscription{Key: "a"}, Subscription{Key: "b", Prefix: true})
	e.Publish(msg("a", 1))
	testpeer.Eventually(t, wait, "the first message", func() bool { return len(conn.lines()) == 1 })
	if n := c.Unsubscribe([]Subscription{{Key: "a"}, {Key: "b", Prefix: true}, {Key: "never"}}); n != 2 {
		t.Fatalf("Unsubscribe removed %d, want 2", n)
	}
	e.Publish(msg("a", 2))
	e.Publish(msg("bb", 1))
	c.Send([]byte("marker"))
	testpeer.Eventually(t, wait, "the marker", func() bool { return len(conn.lines()) == 2 })
	if got := conn.lines(); got[1] != "marker" {
		t.Fatalf("after unsubscribe got %q, want only the marker", got)
	}
}

// A stalled client never delays the others, and is cut off by the rule.
func TestStalledClientCutOffOthersGetEverything(t *testing.T) {
	e := newEngine(t, config(func(c *Config) {
		c.Shards, c.WriteTimeout, c.Limits = 2, time.Hour, slowsub.Limits{MaxBytes: 64 << 10, MaxLag: time.Hour}
	}), encodePadded)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	var fast []*memConn
	for range 50 {
		c := &memConn{}
		fast = append(fast, c)
		client(t, e, c, slowsub.Limits{}, Subscription{Key: "md.", Prefix: true})
	}
	slow := &memConn{}
	slow.stall.Store(true)
	_, slowErr := client(t, e, slow, slowsub.Limits{}, Subscription{Key: "md.", Prefix: true})
	// The publisher stays within 200 messages (22 KB) of the slowest fast
	// client, so only the stalled one can pass the 64 KiB limit.
	const n = 2000
	for i := uint64(1); i <= n; i++ {
		e.Publish(msg(fmt.Sprintf("md.t%d", i%10), i))
		if i%100 == 0 {
			testpeer.Eventually(t, wait, "the fast clients to keep up", func() bool {
				for _, c := range fast {
					if len(c.lines()) < int(i)-200 {
						return false
					}
				}
				return true
			})
		}
	}
	for i, c := range fast {
		testpeer.Eventually(t, wait, fmt.Sprintf("fast client %d to get %d messages", i, n), func() bool { return len(c.lines()) == n })
	}
	select {
	case err := <-slowErr:
		var cut *CutOffError
		if !errors.As(err, &cut) || cut.Reason != slowsub.QueueBytes {
			t.Fatalf("stalled client ended with %v, want a queue_bytes cut-off", err)
		}
	case <-time.After(wait):
		t.Fatal("the stalled client was not cut off")
	}
	testpeer.Eventually(t, wait, "the stalled client to leave", func() bool { return e.Clients() == 50 })
}

// A client stalled with old messages queued is cut off for lag by the
// sweeper, even though nothing new arrives for it: the sweeper's ticker and
// the lag are the fake clock's, moved past the limit by hand.
func TestSweeperCutsOffIdleLaggard(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := run(t, config(func(c *Config) {
		c.Shards, c.SweepEvery, c.Clock, c.WriteTimeout, c.Heartbeat = 1, time.Second, clk, time.Hour, 0
		c.Limits = slowsub.Limits{MaxBytes: 1 << 20, MaxLag: 2 * time.Second}
	}))
	slow := &memConn{}
	slow.stall.Store(true)
	_, errc := client(t, e, slow, slowsub.Limits{}, Subscription{Key: "x"})
	m := msg("x", 1)
	m.Stamp.Ingress = clk.Now().UnixNano()
	e.Publish(m)
	testpeer.Eventually(t, wait, "a write blocked on the stalled peer", func() bool { return slow.entered.Load() == 1 })
	e.Publish(m) // the first is held by the stalled write; this one waits in the queue
	testpeer.Eventually(t, wait, "the second queued", func() bool { return counterValue(e.m.deliveries) == 2 })
	clocktest.BlockUntil(t, clk, 1) // the sweeper's ticker
	clk.Advance(3 * time.Second)
	select {
	case err := <-errc:
		var cut *CutOffError
		if !errors.As(err, &cut) || cut.Reason != slowsub.Lag || !strings.Contains(cut.Detail, "2s") {
			t.Fatalf("laggard ended with %v, want a lag cut-off naming 2s", err)
		}
	case <-time.After(wait):
		t.Fatal("the laggard was not cut off")
	}
}

// A throttled topic's held value is released on its interval's edge as the
// clock reaches it, not a nanosecond before, and carries the count of the
// values it replaced.
func TestThrottleReleasedOnTheClocksEdge(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := run(t, config(func(c *Config) { c.Shards, c.Clock, c.Heartbeat = 1, clk, 0 }))
	conn := &memConn{}
	client(t, e, conn, slowsub.Limits{}, Subscription{Key: "x", Throttle: 200 * time.Millisecond})
	for i := uint64(1); i <= 3; i++ {
		e.Publish(msg("x", i))
	}
	testpeer.Eventually(t, wait, "x 1 written, x 2 and x 3 held", func() bool {
		return counterValue(e.m.deliveries) == 3 && len(conn.lines()) == 1
	})
	edge := func(n int, want string) {
		t.Helper()
		clk.Advance(199 * time.Millisecond) // releases run inside Advance: none yet
		if got := conn.lines(); len(got) != n-1 {
			t.Fatalf("1ms before the edge the client has %q, want %d lines", got, n-1)
		}
		clk.Advance(time.Millisecond)
		testpeer.Eventually(t, wait, want, func() bool { return len(conn.lines()) == n })
		if got := conn.lines(); got[n-1] != want {
			t.Fatalf("on the edge the client got %q, want %q", got[n-1], want)
		}
	}
	edge(2, "x 3 skipped=1")
	// An update one interval after the last release is itself held: the
	// release counts as the topic's last value.
	e.Publish(msg("x", 4))
	testpeer.Eventually(t, wait, "x 4 held", func() bool { return counterValue(e.m.deliveries) == 4 })
	edge(3, "x 4")
	if got := counterValue(e.m.throttled); got != 1 {
		t.Errorf("throttled = %v, want 1 (x 2)", got)
	}
}

// The heartbeat follows the clock: none before the beat, one on it.
func TestHeartbeatOnTheClocksBeat(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := run(t, config(func(c *Config) { c.Shards, c.Clock, c.Heartbeat = 1, clk, time.Minute }))
	conn := &memConn{}
	client(t, e, conn, slowsub.Limits{})
	clocktest.BlockUntil(t, clk, 1) // the sweeper's ticker, which also beats
	clk.Advance(59 * time.Second)
	if n := conn.beats.Load(); n != 0 {
		t.Fatalf("%d heartbeats before the minute, want 0", n)
	}
	clk.Advance(time.Second)
	testpeer.Eventually(t, wait, "a heartbeat on the minute", func() bool { return conn.beats.Load() == 1 })
	clk.Advance(time.Minute)
	testpeer.Eventually(t, wait, "a second heartbeat", func() bool { return conn.beats.Load() == 2 })
}

// TestNoHeartbeatWhileNotAlive: a heartbeat is written only while Alive
// says the stamping loop goes round, so a hung gateway's clients see
// silence and move on.
func TestNoHeartbeatWhileNotAlive(t *testing.T) {
	clk := clock.NewFake(time.Now())
	var alive atomic.Bool
	var asked atomic.Int64
	e := run(t, config(func(c *Config) {
		c.Shards, c.Clock, c.Heartbeat = 1, clk, time.Minute
		c.Alive = func() bool { asked.Add(1); return alive.Load() }
	}))
	conn := &memConn{}
	client(t, e, conn, slowsub.Limits{})
	clocktest.BlockUntil(t, clk, 1)
	clk.Advance(time.Minute)
	testpeer.Eventually(t, wait, "the beat asking Alive", func() bool { return asked.Load() == 1 })
	if n := conn.beats.Load(); n != 0 {
		t.Fatalf("%d heartbeats while the loop is stuck, want 0", n)
	}
	alive.Store(true)
	clk.Advance(time.Minute)
	testpeer.Eventually(t, wait, "a heartbeat once the loop goes round", func() bool { return conn.beats.Load() == 1 })
}

func TestConflatingClientEndsWithLatestOfEveryTopic(t *testing.T) {
	e := run(t, config(func(c *Config) { c.Shards, c.WriteTimeout = 2, time.Hour }))
	slow := &memConn{}
	slow.stall.Store(true)
	c, _ := client(t, e, slow, slowsub.Limits{}, Subscription{Key: "md.", Prefix: true, Conflate: true})
	e.Publish(msg("md.a", 0))
	testpeer.Eventually(t, wait, "a write blocked on the stalled peer", func() bool { return slow.entered.Load() == 1 })
	for i := uint64(1); i <= 1000; i++ {
		for _, topic := range []string{"md.a", "md.b", "md.c"} {
			e.Publish(msg(topic, i))
		}
	}
	testpeer.Eventually(t, wait, "every update handed to the client", func() bool {
		return counterValue(e.m.deliveries) == 3001
	})
	c.Send([]byte("marker")) // queued after every update
	slow.stall.Store(false)
	c.mu.Lock()
	items := c.q.Drain(nil)
	c.mu.Unlock()
	last := map[string]string{}
	for _, it := range items {
		if it.Topic != "" {
			last[it.Topic] = string(it.Data)
		}
	}
	for _, topic := range []string{"md.a", "md.b", "md.c"} {
		if want := topic + " 1000"; last[topic] != want {
			t.Errorf("conflated queue holds %q for %s, want %q", last[topic], topic, want)
		}
	}
	if len(items) != 4 {
		t.Errorf("conflated queue held %d items, want at most one per topic", len(items))
	}
}

// listSnapshot replays a fixed list, one value a Take; a value's payload is
// its encoding.
type listSnapshot struct{ rs []Replay }

func (l *listSnapshot) Take(_ int, fn func(Replay)) bool {
	if len(l.rs) > 0 {
		fn(l.rs[0])
		l.rs = l.rs[1:]
	}
	return len(l.rs) == 0
}

func (l *listSnapshot) Encode(r *Replay) []byte { return r.Msg.Frames[1] }

func (l *listSnapshot) Covers(topic string) bool {
	for _, r := range l.rs {
		if r.Topic == topic {
			return true
		}
	}
	return false
}

func replayOf(topic, payload string, seq uint64) Replay {
	return Replay{Topic: topic, Epoch: 1, Seq: seq, Msg: &tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), []byte(payload)}}}
}

func TestSnapshotFirstThenOnlyNewer(t *testing.T) {
	e := run(t, config(func(c *Config) { c.Shards = 1 }))
	conn := &memConn{}
	c := conn.attach(e.NewClient(conn, 0, slowsub.Limits{}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Live updates 5 and 6 arrive while the snapshot (seq 6) is taken.
	c.Subscribe([]Subscription{{Key: "x"}}, func(int) []byte { return []byte("ack") }, func() Snapshot {
		e.Publish(msg("x", 5))
		e.Publish(msg("x", 6))
		return &listSnapshot{[]Replay{replayOf("x", "snapshot 6", 6)}}
	})
	go c.Run(ctx)
	// A live update while the snapshot still covers x is left to it (a real
	// snapshot reads the newest value): x 7 follows once it is written.
	testpeer.Eventually(t, wait, "the snapshot", func() bool { return len(conn.lines()) >= 2 })
	e.Publish(msg("x", 7))
	testpeer.Eventually(t, wait, "three messages", func() bool { return len(conn.lines()) >= 3 })
	if got := conn.lines(); fmt.Sprint(got) != "[ack snapshot 6 x 7]" {
		t.Fatalf("client got %q, want the ack, the snapshot, then x 7 only", got)
	}
}

// TestSnapshotPacedPastByteLimit: a snapshot many times the client's byte
// limit is written in chunks as the client reads, never cutting it off.
func TestSnapshotPacedPastByteLimit(t *testing.T) {
	e := run(t, config(func(c *Config) { c.Shards = 1 }))
	conn := &memConn{}
	c, errc := client(t, e, conn, slowsub.Limits{MaxBytes: 1000})
	var rs []Replay
	for i := range 500 {
		topic := fmt.Sprintf("t%03d", i)
		rs = append(rs, replayOf(topic, topic+" "+strings.Repeat("x", 100), 1))
	}
	if _, err := c.Subscribe([]Subscription{{Key: "t", Prefix: true}}, nil, func() Snapshot { return &listSnapshot{rs} }); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, wait, "the whole snapshot", func() bool { return len(conn.lines()) >= 500 })
	select {
	case err := <-errc:
		t.Fatalf("client ended with %v while taking a 50 KB snapshot under a 1000-byte limit", err)
	default:
	}
	if got := len(conn.lines()); got != 500 {
		t.Fatalf("got %d snapshot values, want 500", got)
	}
}

func TestSnapshotBusy(t *testing.T) {
	e := run(t, config(func(c *Config) { c.Shards = 1 }))
	c := e.NewClient(&memConn{}, 0, slowsub.Limits{}) // no writer: snapshots stay pending
	snap := func() Snapshot { return &listSnapshot{[]Replay{replayOf("x", "v", 1)}} }
	for i := range MaxPendingSnapshots {
		if _, err := c.Subscribe([]Subscription{{Key: "x"}}, nil, snap); err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
	}
	n, err := c.Subscribe([]Subscription{{Key: "y"}}, nil, snap)
	if !errors.Is(err, ErrSnapshotBusy) || n != 1 {
		t.Fatalf("subscribe past %d pending snapshots = %d, %v; want 1, ErrSnapshotBusy", MaxPendingSnapshots, n, err)
	}
}

func TestShardFullDropsAndCounts(t *testing.T) {
	e := newEngine(t, config(func(c *Config) { c.Shards, c.ShardQueue = 1, 2 }), encodeText) // not running
	for i := range 5 {
		e.Publish(msg("x", uint64(i)))
	}
	if got := counterValue(e.m.dropShardFull); got != 0 {
		t.Fatalf("with no client: dropped{reason=shard_full} = %v, want 0 (nothing is queued for nobody)", got)
	}
	e.NewClient(&memConn{}, 0, slowsub.Limits{})
	for i := range 5 {
		e.Publish(msg("x", uint64(i)))
	}
	if got := counterValue(e.m.dropShardFull); got != 3 {
		t.Fatalf("dropped{reason=shard_full} = %v, want 3", got)
	}
}

// An idle client's writer goroutine exits once the sweeper finds it idle
// for writerIdle, and the next update starts another that delivers it.
func TestIdleWriterRetiresAndComesBack(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := run(t, config(func(c *Config) { c.Shards, c.Clock, c.Heartbeat = 1, clk, 0 }))
	conn := &memConn{}
	c, _ := client(t, e, conn, slowsub.Limits{}, Subscription{Key: "x"})
	running := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.running
	}
	delivered := func(n int) func() bool {
		return func() bool {
			conn.mu.Lock()
			defer conn.mu.Unlock()
			return len(conn.got) == n
		}
	}
	e.Publish(msg("x", 1))
	testpeer.Eventually(t, wait, "x 1 written", delivered(1))
	if !running() {
		t.Fatal("no writer running right after a write")
	}
	clocktest.BlockUntil(t, clk, 1)
	// The clock moves on while the test waits: a probe written after x 1
	// (the sweeper wakes the writer for it) counts as a write and restarts
	// the idle time, so how far the clock must go is not fixed.
	idle := time.Duration(0)
	testpeer.Eventually(t, wait, "the idle writer retired", func() bool {
		if !running() {
			return true
		}
		clk.Advance(writerIdle / 5)
		idle += writerIdle / 5
		return false
	})
	if idle < writerIdle {
		t.Fatalf("the writer retired after %v of fake time, before writerIdle (%v)", idle, writerIdle)
	}
	for i := uint64(2); i <= 3; i++ {
		e.Publish(msg("x", i))
		testpeer.Eventually(t, wait, fmt.Sprintf("x %d written by a new writer", i), delivered(int(i)))
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if want := []string{"x 1", "x 2", "x 3"}; !slices.Equal(conn.got, want) {
		t.Fatalf("wrote %q, want %q", conn.got, want)
	}
}

// A client being written to gets its probes in its writes: the sweeper
// wakes its writer for a probe alone only once the writes have paused, and
// then soon enough for the last data's lag to be known. Probes woken alone
// for every client with one due made a burst of writes each sweep that the
// updates behind them waited for.
func TestProbeRidesTheWritesOfABusyClient(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := run(t, config(func(c *Config) { c.Shards, c.Clock, c.Heartbeat = 1, clk, 0 }))
	conn := &memConn{}
	c, _ := client(t, e, conn, slowsub.Limits{}, Subscription{Key: "x"})
	clocktest.BlockUntil(t, clk, 1) // the sweeper's ticker
	c.mu.Lock()
	every := time.Duration(c.probeEveryLocked())
	c.mu.Unlock()
	sweep := e.cfg.SweepEvery
	swept := func(n float64) {
		t.Helper()
		testpeer.Eventually(t, wait, fmt.Sprintf("sweep %v", n), func() bool { return counterValue(e.m.sweeps) >= n })
	}
	// An update every half sweep for four probe intervals: each sweep finds
	// a probe due on some of them, and the last write was half a sweep ago.
	n := int(4 * every / (sweep / 2))
	for i := 1; i <= n; i++ {
		e.Publish(msg("x", uint64(i)))
		testpeer.Eventually(t, wait, fmt.Sprintf("x %d written", i), conn.written(i))
		clk.Advance(sweep / 2)
		if i%2 == 0 {
			swept(float64(i / 2))
		}
	}
	if got := conn.alone.Load(); got != 0 {
		t.Fatalf("%d probes written alone while the client was written to every %v, want 0: they ride its writes", got, sweep/2)
	}
	if got, want := conn.ridden.Load(), int32(4*every/(every+sweep/2)); got < want {
		t.Fatalf("%d probes rode %d writes over %v, want at least %d (one each %v)", got, n, 4*every, want, every)
	}
	// The writes pause: by a probe interval and a sweep after the last
	// write, the last data's probe has been written alone.
	c.mu.Lock()
	unprobed := c.unprobedBytes
	c.mu.Unlock()
	if unprobed == 0 {
		t.Fatalf("the last write (of %d, %v apart) carried a probe: the test needs data left unprobed", n, sweep/2)
	}
	sweeps := float64(n / 2)
	for waited := sweep / 2; waited < every+sweep; waited += sweep {
		clk.Advance(sweep)
		sweeps++
		swept(sweeps)
	}
	testpeer.Eventually(t, wait, "a probe written alone once the writes paused", func() bool { return conn.alone.Load() == 1 })
}

// WriteDelay holds live updates for more before the write, on the clock;
// a reply alone is written at once.
func TestWriteDelayHoldsLiveUpdatesNotReplies(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := run(t, config(func(c *Config) { c.Shards, c.Clock, c.Heartbeat, c.WriteDelay = 1, clk, 0, 50*time.Millisecond }))
	conn := &memConn{}
	c, _ := client(t, e, conn, slowsub.Limits{}, Subscription{Key: "x"})
	c.Send([]byte("reply"))
	testpeer.Eventually(t, wait, "the reply written without the clock moving", conn.written(1))
	clocktest.BlockUntil(t, clk, 1) // the sweeper's ticker
	holdsTwo(t, e, clk, conn, 1, 1)
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if want := []string{"reply", "x 1", "x 2"}; !slices.Equal(conn.got, want) || conn.batches != 2 {
		t.Fatalf("wrote %q in %d batches, want %q in 2", conn.got, conn.batches, want)
	}
}

// written is a condition: n messages written to conn.
func (c *memConn) written(n int) func() bool {
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.got) == n
	}
}

// holdsTwo publishes x seq and seq+1 (after seq-1 deliveries) to e, whose
// one shard must hold them 50ms on clk: both queued, conn still at the had
// messages it held, then both written once the hold has passed.
func holdsTwo(t *testing.T, e *Engine, clk *clock.Fake, conn *memConn, seq uint64, had int) {
	t.Helper()
	e.Publish(msg("x", seq))
	e.Publish(msg("x", seq+1))
	clocktest.BlockUntil(t, clk, 2) // the sweeper's ticker and the shard worker's hold
	testpeer.Eventually(t, wait, "both updates queued", func() bool { return counterValue(e.m.deliveries) == float64(seq+1) })
	conn.mu.Lock()
	n := len(conn.got)
	conn.mu.Unlock()
	if n != had {
		t.Fatalf("%d messages written before the hold passed, want %d", n, had)
	}
	clk.Advance(50 * time.Millisecond)
	testpeer.Eventually(t, wait, "both updates written after the hold", conn.written(had+2))
}
