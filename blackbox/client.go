package blackbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

// Conn is the part of a subscriber's connection the writer needs. Its
// Write methods are called only by the client's writer goroutine of the
// moment (at most one runs at a time; Client.Start); Abort also by others.
type Conn interface {
	// WriteBatch writes b (its items in order, then its heartbeat, then its
	// probe) as one write where the wire format allows, before deadline.
	WriteBatch(deadline time.Time, b *Batch) error
	// WriteClose tells the subscriber why its connection ends and stops
	// writing for good (a WebSocket: the close frame, then a half-close).
	// The connection's owner closes it once the peer has finished, within
	// a bound; the writer calls Abort if WriteClose fails.
	WriteClose(deadline time.Time, why Close) error
	// Abort closes the connection at once, failing a write in progress. It
	// may be called from any goroutine: a client cut off while its writer
	// is blocked on a peer that stopped reading gets no close message.
	Abort()
}

// Batch is what one wake-up of a client's writer writes: one system call
// for the whole of it where the wire format allows (a probe or a heartbeat
// as a write of its own would double a trickle's syscalls).
type Batch struct {
	Items []Item // queued messages and snapshot values, in order
	// Heartbeat tells an idle subscriber the gateway is alive.
	Heartbeat bool
	// Probe, when not 0, asks the subscriber to answer it once it has read
	// everything written before it (probe.go); its answer goes to
	// Client.Answered.
	Probe uint64
}

// Close says why a client's connection ends.
type Close struct {
	Slow   slowsub.Reason // not None: cut off as too slow
	Code   int            // otherwise: the transport's code given to CloseWith; 0 means the gateway is closing
	Detail string
}

// CutOff reports whether the client is closed for being too slow (Slow).
func (c Close) CutOff() bool { return c.Slow != slowsub.None }

// Item is one queued message as a Conn writes it: the slow rule's queue
// item (package slowsub), named here so a Conn needs only this package.
type Item = slowsub.Item

// Subscription is one topic (or prefix) a client follows.
type Subscription struct {
	Key      string
	Prefix   bool
	Conflate bool          // conflate this subscription's topics when the client falls behind
	Throttle time.Duration // at most one update per topic per Throttle (throttle.go); 0: every update
}

type floor struct{ epoch, seq uint64 }

// Client is one subscriber. Create it with Engine.NewClient and start its
// writing with Start (or Run, which waits for the end).
type Client struct {
	e *Engine
	// conn's Write methods are called only by the client's writer goroutine
	// (one at a time), and the last one ends the connection (WriteClose,
	// else Abort). Abort is also called, under mu, by whichever goroutine
	// cuts the client off while a writer is inside a write (writing). The
	// connection's owner (the bridge's session) releases it after Start's
	// done is called (Run returns).
	conn    Conn
	format  int
	marks   []uint64      // marks[i] is owned by shard i's worker
	batches []uint64      // batches[i] is owned by shard i's worker: the batch it last queued in
	wake    chan struct{} // cap 1: the running writer has something to look at
	done    chan struct{} // closed by stop
	once    sync.Once

	mu       sync.Mutex
	q        *slowsub.Queue        // guarded by mu
	floors   map[string]floor      // guarded by mu
	subs     map[Subscription]bool // guarded by mu; Conflate is false in keys, the value says it conflates
	snaps    []Snapshot            // guarded by mu: the oldest is being sent
	writing  bool                  // guarded by mu: a writer is inside a write
	closing  Close                 // guarded by mu: why it is closing
	nextBeat int64                 // guarded by mu: when the next heartbeat is due (Unix ns)
	beatDue  bool                  // guarded by mu: the sweeper found a heartbeat due

	// The writer goroutine: at most one at a time, started when there is
	// something to write and retired by the sweeper once idle for
	// writerIdle, so an idle connection has none; guarded by mu.
	started   bool        // Start was called
	running   bool        // a writer goroutine is live (or the last one has ended)
	finished  bool        // the last writer has ended the connection
	retire    bool        // the sweeper asks the writer to exit if it has nothing to do
	lastWrite int64       // Unix ns: the writer's last write, or its start
	onDone    func(error) // Start's done
	stopCtx   func() bool // stops Start's context.AfterFunc

	// What was written and what the client has read (probe.go); guarded by mu.
	conflating    int     // subscriptions that conflate
	probes        []probe // unanswered, oldest first
	nextProbe     uint64
	lastProbe     int64 // Unix ns
	written       int64 // bytes written
	acked         int64 // bytes the client has read past
	unprobed      int64 // the oldest At written since the last probe; 0: none
	unprobedBytes int64
	window        int // bytes that may be written and not yet answered

	// Throttled topics (throttle.go); guarded by mu.
	throttled map[string]*throttleSlot
	dues      dueHeap
	dueTimer  clock.Timer
	armedAt   int64 // when dueTimer fires; 0: not armed
}

// NewClient registers a client writing format (an index into the engine's
// encoders) to conn, bounded by limits (capped by the engine's).
func (e *Engine) NewClient(conn Conn, format int, limits slowsub.Limits) *Client {
	c := &Client{
		e: e, conn: conn, format: format,
		marks:   make([]uint64, len(e.shards)),
		batches: make([]uint64, len(e.shards)),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		q:       slowsub.NewQueue(limits.Within(e.cfg.Limits)),
		subs:    map[Subscription]bool{},
		window:  min(startWindow, e.cfg.InFlight),
	}
	c.nextBeat = e.cfg.Clock.Now().UnixNano() + int64(e.cfg.Heartbeat)
	e.mu.Lock()
	e.clients[c] = struct{}{}
	e.nclient.Store(int64(len(e.clients)))
	e.mu.Unlock()
	e.m.clients.Inc()
	return c
}

// SetLimits changes the client's limits, capped by the engine's.
func (c *Client) SetLimits(l slowsub.Limits) {
	c.mu.Lock()
	c.q.SetLimits(l.Within(c.e.cfg.Limits))
	c.mu.Unlock()
}

// Subscribe adds subscriptions, queues reply (given the client's new
// subscription count; nil: none), and registers the snapshot that snap
// builds (nil: none), all before any live update of those topics can be
// queued: the client sees the reply, then each topic's snapshot value or a
// newer live update, never an older value after a newer one. snap runs with
// the client's lock held and must be cheap (take a point-in-time view; the
// writer reads it in chunks). With MaxPendingSnapshots snapshots still
// being sent, nothing is added and the error is ErrSnapshotBusy.
func (c *Client) Subscribe(subs []Subscription, reply func(total int) []byte, snap func() Snapshot) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap != nil && len(c.snaps) >= MaxPendingSnapshots {
		return len(c.subs), ErrSnapshotBusy
	}
	for _, s := range subs {
		c.e.m.subscriptions.Inc()
		k := Subscription{Key: s.Key, Prefix: s.Prefix}
		if was, ok := c.subs[k]; ok {
			c.e.m.subscriptions.Dec()
			if was {
				c.conflating--
			}
		}
		c.subs[k] = s.Conflate
		if s.Conflate {
			c.conflating++
		}
		en := entry{c: c, conflate: s.Conflate, throttle: s.Throttle}
		if s.Prefix {
			for _, sh := range c.e.shards {
				sh.idx.add(s.Key, true, en)
			}
		} else {
			c.e.shardOf(s.Key).idx.add(s.Key, false, en)
		}
	}
	if snap != nil {
		c.snaps = append(c.snaps, snap())
	}
	now := c.e.cfg.Clock.Now().UnixNano()
	if reply != nil {
		c.pushLocked(slowsub.Item{Data: reply(len(c.subs)), At: now}, now)
	}
	c.wakeLocked()
	return len(c.subs), nil
}

// Unsubscribe removes subscriptions; it returns how many were there.
func (c *Client) Unsubscribe(subs []Subscription) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range subs {
		k := Subscription{Key: s.Key, Prefix: s.Prefix}
		was, ok := c.subs[k]
		if !ok {
			continue
		}
		if was {
			c.conflating--
		}
		delete(c.subs, k)
		c.unindex(k)
		n++
	}
	return n
}

// Subscriptions returns how many subscriptions the client has.
func (c *Client) Subscriptions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

func (c *Client) unindex(k Subscription) {
	c.e.m.subscriptions.Dec()
	if k.Prefix {
		for _, sh := range c.e.shards {
			sh.idx.remove(k.Key, true, c)
		}
	} else {
		c.e.shardOf(k.Key).idx.remove(k.Key, false, c)
	}
}

// Send queues a reply (an acknowledgement, an error) for this client only.
// It reports false when the client is closed or was cut off by it.
func (c *Client) Send(data []byte) bool {
	now := c.e.cfg.Clock.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pushLocked(slowsub.Item{Data: data, At: now}, now)
}

// pushLocked queues it, applies the slow-subscriber rule and wakes the
// writer. It reports false when the client is closed or was cut off by it.
// c.mu is held.
func (c *Client) pushLocked(it slowsub.Item, now int64) bool {
	switch c.queueLocked(it, now) {
	case slowsub.Queued:
		c.wakeLocked()
	case slowsub.CutOff, slowsub.Closed:
		return false
	}
	return true
}

// queueLocked queues it and applies the slow-subscriber rule, leaving the
// writer asleep. c.mu is held.
func (c *Client) queueLocked(it slowsub.Item, now int64) slowsub.Verdict {
	v := c.q.Push(it, now)
	switch v {
	case slowsub.Conflated:
		c.e.m.conflated.Inc()
	case slowsub.CutOff:
		c.cutOffLocked(now)
	}
	return v
}

// notify makes sure the writer looks at the queue again. Safe from any
// goroutine; c.mu is not held.
func (c *Client) notify() {
	c.mu.Lock()
	c.wakeLocked()
	c.mu.Unlock()
}

// wakeLocked makes sure a writer looks at the queue again: it wakes the
// running one, or starts one. c.mu is held.
func (c *Client) wakeLocked() {
	switch {
	case !c.started || c.finished:
		// Start wakes it; or it is over
	case !c.running:
		c.running, c.retire = true, false
		c.lastWrite = c.e.cfg.Clock.Now().UnixNano()
		go c.writeLoop()
	default:
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// deliver queues a live update without waking the writer; it reports
// whether the writer needs waking (its worker wakes it once per batch).
// Called by shard workers.
func (c *Client) deliver(m *tick.Message, data []byte, en entry, now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snaps != nil && c.coveredLocked(m.Topic) {
		c.e.m.duplicates.Inc() // the snapshot will carry this value or a newer one
		return false
	}
	if f, ok := c.floors[m.Topic]; ok {
		if f.epoch == m.Stamp.Epoch && m.Stamp.Seq <= f.seq {
			c.e.m.duplicates.Inc()
			return false
		}
		delete(c.floors, m.Topic)
	}
	it := slowsub.Item{Topic: m.Topic, Data: data, At: m.Stamp.Ingress, Conflate: en.conflate}
	if en.throttle > 0 {
		c.throttleLocked(it, en.throttle, now) // wakes the writer itself when it queues
		return false
	}
	return c.queueLocked(it, now) == slowsub.Queued
}

// check is the sweeper's look at the client: it applies the slow rule to
// the queue as it stands, wakes the writer for a probe due, asks an idle
// writer to retire, and makes the heartbeat fall due.
func (c *Client) check(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if closed, _ := c.q.Closed(); closed {
		return
	}
	if c.stalledLocked(now) {
		c.q.Close(slowsub.Stalled)
		c.cutOffLocked(now)
		return
	}
	var inFlight time.Duration
	if c.conflating == 0 { // a conflating client's written values were the latest
		inFlight = c.inFlightLagLocked(now)
	}
	if c.q.CheckWith(now, inFlight) != slowsub.None {
		c.cutOffLocked(now)
		return
	}
	if c.probeAloneDueLocked(now) {
		c.wakeLocked() // written data waits for its probe, and no write is coming to carry it
	}
	if c.running && !c.finished && !c.retire && now-c.lastWrite >= int64(writerIdle) {
		c.retire = true // the writer exits when it finds nothing to do
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	if hb := c.e.cfg.Heartbeat; hb > 0 && now >= c.nextBeat {
		// A fixed beat, busy or not (to within SweepEvery): the ping keeps
		// a client that only listens inside its read deadline.
		c.nextBeat = now + int64(hb)
		c.beatDue = true
		c.wakeLocked()
	}
}

// cutOffLocked records why the queue closed and stops the writer. c.mu is
// held and the queue has just closed past its limits.
func (c *Client) cutOffLocked(now int64) {
	_, r := c.q.Closed()
	l := c.q.Limits()
	c.closing = Close{Slow: r}
	switch r {
	case slowsub.Lag:
		c.closing.Detail = fmt.Sprintf("lag over %v", l.MaxLag)
	case slowsub.Stalled:
		c.closing.Detail = fmt.Sprintf("read nothing for %v", c.e.cfg.WriteTimeout)
	default:
		c.closing.Detail = fmt.Sprintf("queue over %d bytes", l.MaxBytes)
	}
	c.snaps = nil
	c.e.m.recordDisconnect(fromSlow(r))
	c.stopLocked()
	if c.writing {
		c.conn.Abort()
	}
}

// stopLocked closes done and wakes the writer, which finds the queue
// closed and writes the close. c.mu is held.
func (c *Client) stopLocked() {
	c.once.Do(func() { close(c.done) })
	c.wakeLocked()
}

// Close stops the client: its writer writes a close and Start's done is
// called (Run returns). Safe to call more than once and from any goroutine.
func (c *Client) Close() { c.CloseWith(0, "") }

// CloseWith stops the client with a transport close code and detail (for a
// WebSocket: 1008, 1009, ...) that the writer writes before Start's done is
// called. The first reason to close wins. Safe from any goroutine.
func (c *Client) CloseWith(code int, detail string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if closed, _ := c.q.Closed(); !closed {
		c.q.Close(slowsub.None)
		c.closing = Close{Code: code, Detail: detail}
		c.snaps = nil
	}
	c.stopLocked()
}

// Done is closed when the client is closing.
func (c *Client) Done() <-chan struct{} { return c.done }

// Start starts the client's writing. A writer goroutine, the only one
// writing to the connection while it runs, is started when there is
// something to write and exits once idle for writerIdle (the sweeper tells
// it), so an idle connection holds none; at most one runs at a time. Each
// wake-up drains the queue (as much as the in-flight window allows), and
// the next chunk of a pending snapshot, into one WriteBatch with a
// deadline, a heartbeat and a probe riding in the same write when due
// (Config.WriteDelay holds live updates in the shard worker, not here).
// When the client closes, the writer ends the connection
// (WriteClose, Abort when that fails, or Abort), releases the client and
// calls done, once and holding no lock: with nil when ctx ended or the
// client was closed, a *CutOffError when it was too slow, or the write
// error. ctx ending closes the client ("gateway shutting down").
func (c *Client) Start(ctx context.Context, done func(error)) {
	stop := context.AfterFunc(ctx, func() { c.CloseWith(0, "gateway shutting down") })
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onDone, c.stopCtx, c.started = done, stop, true
	c.wakeLocked() // what was queued before Start
}

// Run is Start, returning what done is given.
func (c *Client) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	c.Start(ctx, func(err error) { errc <- err })
	return <-errc
}

// writerIdle is how long a writer with nothing to write lives on before the
// sweeper retires it. A parked writer keeps a 4-8 KiB stack; starting one
// costs a couple of microseconds against a write's ~15 (loopback, this
// project's machines): so a client fed four updates a second or more keeps
// its writer, and a quieter one pays little to hold none between updates.
const writerIdle = 250 * time.Millisecond

// writeLoop is one writer goroutine's life: it writes, then waits for the
// next wake-up, until it is retired or ends the connection. It parks with
// little on its stack (write holds the rest), so its stack stays small.
func (c *Client) writeLoop() {
	w := c.e.writers.Get().(*writer)
	defer c.e.writers.Put(w)
	for {
		switch r, err := c.write(w); r {
		case writeRetired:
			w.from = nil
			return
		case writeFinished:
			w.from = nil
			c.finish(err)
			return
		}
		<-c.wake
	}
}

// finish is the last writer's end: the client is released and done told.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.finished = true
	done, stop := c.onDone, c.stopCtx
	c.mu.Unlock()
	stop()
	c.release()
	done(err)
}

// writer is what a client's writer keeps between wake-ups, so its buffers
// are reused.
type writer struct {
	b    Batch
	snap []Replay
	from Snapshot // the snapshot snap was taken from
}

// writeResult says what a writer does after a write.
type writeResult int

const (
	writeMore     writeResult = iota // wait for the next wake-up
	writeRetired                     // exit: idle, and nothing to write
	writeFinished                    // exit: the connection has ended, with the error given
)

// write is one wake-up of a writer: it writes what is queued, or the close.
func (c *Client) write(w *writer) (writeResult, error) {
	cfg := &c.e.cfg
	b := &w.b
	now := cfg.Clock.Now()
	c.mu.Lock()
	if closed, _ := c.q.Closed(); closed {
		c.mu.Unlock()
		if why := c.writeClose(); why.CutOff() {
			return writeFinished, &CutOffError{Reason: why.Slow, Detail: why.Detail}
		}
		return writeFinished, nil
	}
	if c.retire {
		c.retire = false
		if n, _ := c.q.Len(); n == 0 && len(c.snaps) == 0 && !c.beatDue {
			c.running = false // the next wake-up starts a writer
			c.mu.Unlock()
			return writeRetired, nil
		}
	}
	b.Heartbeat, c.beatDue = c.beatDue, false
	queued, bytes := 0, 0
	if !c.windowFullLocked() { // else the client's next answer wakes the writer
		_, bytes = c.q.Len()
		room := c.roomLocked()
		b.Items = c.q.DrainUpTo(b.Items, room)
		queued = len(b.Items)
		if len(c.snaps) > 0 {
			w.from = c.snaps[0]
		}
		var more bool
		if n := itemBytes(b.Items); n < room {
			w.snap, more = c.takeSnapshotLocked(w.snap[:0], min(snapshotChunk, room-n))
		}
		if more {
			c.wakeLocked() // the rest of the snapshot after this write
		}
	}
	if len(w.snap) == 0 {
		b.Probe = c.recordLocked(b.Items, now.UnixNano())
	}
	c.writing = len(b.Items)+len(w.snap) > 0 // set under mu: a cut-off from now on aborts the write
	c.mu.Unlock()
	if len(w.snap) > 0 { // encoded without the lock; written after what was queued
		for i := range w.snap {
			b.Items = append(b.Items, slowsub.Item{Topic: w.snap[i].Topic, Data: w.from.Encode(&w.snap[i]), At: now.UnixNano()})
		}
		c.e.m.snapshotValues.Add(float64(len(w.snap)))
		clear(w.snap)
		w.snap = w.snap[:0]
		c.mu.Lock()
		b.Probe = c.recordLocked(b.Items, now.UnixNano())
		c.mu.Unlock()
	}
	if b.Heartbeat && cfg.Alive != nil && !cfg.Alive() {
		b.Heartbeat = false // the stamping loop is stuck: let the client see silence
	}
	if len(b.Items) == 0 && !b.Heartbeat && b.Probe == 0 {
		return writeMore, nil
	}
	if len(b.Items) > 0 {
		c.e.m.batch.Observe(float64(len(b.Items)))
	}
	if queued > 0 {
		c.e.m.queueBytes.Observe(float64(bytes))
		c.e.m.lag.Observe(float64(max(now.UnixNano()-b.Items[0].At, 0)) / 1e9)
	}
	err := c.conn.WriteBatch(now.Add(cfg.WriteTimeout), b)
	clear(b.Items) // drop the references to the encoded data
	b.Items = b.Items[:0]
	c.mu.Lock()
	c.writing = false
	c.lastWrite = now.UnixNano()
	closed, r := c.q.Closed()
	c.mu.Unlock()
	if err != nil {
		if closed && r != slowsub.None {
			return writeFinished, &CutOffError{Reason: r, Detail: c.closeReason().Detail} // aborted by the cut-off
		}
		return writeFinished, c.writeFailed(err)
	}
	return writeMore, nil
}

// recordLocked counts items as written (at now, Unix ns) before the write
// that carries them, and returns the probe to write after them (0: none).
// c.mu is held.
func (c *Client) recordLocked(items []slowsub.Item, now int64) uint64 {
	if len(items) > 0 {
		oldest := int64(0)
		for i := range items {
			if items[i].Topic != "" && (oldest == 0 || items[i].At < oldest) {
				oldest = items[i].At // replies (acks, errors) are not data: no lag
			}
		}
		c.wroteLocked(itemBytes(items), oldest)
	}
	id, _ := c.probeDueLocked(now)
	return id
}

// writeClose writes why the client is closing, aborting the connection if
// that fails, and returns it.
func (c *Client) writeClose() Close {
	why := c.closeReason()
	if err := c.conn.WriteClose(c.e.cfg.Clock.Now().Add(c.e.cfg.WriteTimeout), why); err != nil {
		c.conn.Abort()
	}
	return why
}

func (c *Client) closeReason() Close {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// writeFailed counts a failed write by kind and closes the client.
func (c *Client) writeFailed(err error) error {
	r := DisconnectWriteError
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		r = DisconnectWriteTimeout
	}
	c.e.m.recordDisconnect(r)
	c.Close()
	c.conn.Abort() // a peer we cannot write to gets no close frame
	return fmt.Errorf("write (%s): %w", r, err)
}

// release removes the client and all its subscriptions from the engine.
func (c *Client) release() {
	c.Close()
	c.mu.Lock()
	for k := range c.subs {
		c.unindex(k)
	}
	clear(c.subs)
	c.floors, c.snaps, c.throttled, c.dues = nil, nil, nil, nil
	if c.dueTimer != nil {
		c.dueTimer.Stop()
	}
	c.mu.Unlock()
	c.e.mu.Lock()
	delete(c.e.clients, c)
	c.e.nclient.Store(int64(len(c.e.clients)))
	c.e.mu.Unlock()
	c.e.m.clients.Dec()
}

// itemBytes is what items weigh on the wire, about: data and a separator.
func itemBytes(items []slowsub.Item) int {
	n := 0
	for i := range items {
		n += len(items[i].Data) + 1
	}
	return n
}
