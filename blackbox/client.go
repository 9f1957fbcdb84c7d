package blackbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

// Conn is the part of a subscriber's connection the writer needs. Only the
// client's Run goroutine calls it.
type Conn interface {
	// WriteBatch writes every item, in order, as one write where the wire
	// format allows, before deadline.
	WriteBatch(deadline time.Time, items []slowsub.Item) error
	// WriteHeartbeat tells an idle subscriber the gateway is alive.
	WriteHeartbeat(deadline time.Time) error
	// WriteClose tells the subscriber it is cut off (r is not None) or that
	// the gateway is closing the connection (r is None), then closes.
	WriteClose(deadline time.Time, r slowsub.Reason, detail string) error
	// Abort closes the connection at once, failing a write in progress. It
	// may be called from any goroutine: a client cut off while its writer
	// is blocked on a peer that stopped reading gets no close message.
	Abort()
}

// Subscription is one topic (or prefix) a client follows.
type Subscription struct {
	Key      string
	Prefix   bool
	Conflate bool // conflate this subscription's topics when the client falls behind
}

// Replay is a cached value queued for one client (a snapshot); an Item.At
// of 0 means now. Live updates
// of the same topic and epoch with seq <= Seq are then skipped, so the client
// never sees a value older than one it already has.
type Replay struct {
	Item       slowsub.Item
	Epoch, Seq uint64
}

type floor struct{ epoch, seq uint64 }

// Client is one subscriber. Create it with Engine.NewClient and run its
// writer with Run.
type Client struct {
	e       *Engine
	conn    Conn // used only by Run
	format  int
	marks   []uint64      // marks[i] is owned by shard i's worker
	wake    chan struct{} // cap 1: something was queued
	writing atomic.Bool   // Run is inside a write
	done    chan struct{} // closed by stop
	once    sync.Once

	mu     sync.Mutex
	q      *slowsub.Queue            // guarded by mu
	floors map[string]floor          // guarded by mu
	subs   map[Subscription]struct{} // guarded by mu; Conflate is false in keys
	detail string                    // guarded by mu: why it was cut off
}

// NewClient registers a client writing format (an index into the engine's
// encoders) to conn, bounded by limits (capped by the engine's).
func (e *Engine) NewClient(conn Conn, format int, limits slowsub.Limits) *Client {
	c := &Client{
		e: e, conn: conn, format: format,
		marks: make([]uint64, len(e.shards)),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		q:     slowsub.NewQueue(limits.Within(e.cfg.Limits)),
		subs:  map[Subscription]struct{}{},
	}
	e.mu.Lock()
	e.clients[c] = struct{}{}
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

// Subscribe adds subscriptions, then queues what snapshot returns (it is
// given the client's new subscription count), both before any live update of
// those topics can be queued: the client sees each topic's snapshot first
// and then only newer updates. A Replay with nil Data queues nothing and
// only sets the floor (the client already has that value); one with an
// empty Topic sets no floor (a reply). snapshot must not call the client.
// Subscribe returns how many subscriptions the client now has.
func (c *Client) Subscribe(subs []Subscription, snapshot func(total int) []Replay) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range subs {
		c.e.m.subscriptions.Inc()
		k := Subscription{Key: s.Key, Prefix: s.Prefix}
		if _, ok := c.subs[k]; ok {
			c.e.m.subscriptions.Dec()
		}
		c.subs[k] = struct{}{}
		en := entry{c: c, conflate: s.Conflate}
		if s.Prefix {
			for _, sh := range c.e.shards {
				sh.idx.add(s.Key, true, en)
			}
		} else {
			c.e.shardOf(s.Key).idx.add(s.Key, false, en)
		}
	}
	if snapshot != nil {
		now := c.e.cfg.Now().UnixNano()
		for _, r := range snapshot(len(c.subs)) {
			if r.Item.Topic != "" {
				if c.floors == nil {
					c.floors = map[string]floor{}
				}
				c.floors[r.Item.Topic] = floor{r.Epoch, r.Seq}
			}
			if r.Item.Data == nil {
				continue
			}
			if r.Item.At == 0 {
				r.Item.At = now // a replay's lag counts from when it was queued
			}
			if !c.pushLocked(r.Item, now) {
				break
			}
		}
	}
	return len(c.subs)
}

// Unsubscribe removes subscriptions; it returns how many were there.
func (c *Client) Unsubscribe(subs []Subscription) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range subs {
		k := Subscription{Key: s.Key, Prefix: s.Prefix}
		if _, ok := c.subs[k]; !ok {
			continue
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
	now := c.e.cfg.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pushLocked(slowsub.Item{Data: data, At: now}, now)
}

// pushLocked queues it and applies the slow-subscriber rule. c.mu is held.
func (c *Client) pushLocked(it slowsub.Item, now int64) bool {
	switch c.q.Push(it, now) {
	case slowsub.Queued:
		select {
		case c.wake <- struct{}{}:
		default:
		}
	case slowsub.Conflated:
		c.e.m.conflated.Inc()
	case slowsub.CutOff:
		c.cutOffLocked(now)
		return false
	case slowsub.Closed:
		return false
	}
	return true
}

// deliver queues a live update. Called by shard workers.
func (c *Client) deliver(m *tick.Message, data []byte, conflate bool, now int64) {
	c.mu.Lock()
	if f, ok := c.floors[m.Topic]; ok {
		if f.epoch == m.Stamp.Epoch && m.Stamp.Seq <= f.seq {
			c.mu.Unlock()
			c.e.m.duplicates.Inc()
			return
		}
		delete(c.floors, m.Topic)
	}
	c.pushLocked(slowsub.Item{Topic: m.Topic, Data: data, At: m.Stamp.Ingress, Conflate: conflate}, now)
	c.mu.Unlock()
}

// check applies the slow rule to the queue as it stands (the sweeper).
func (c *Client) check(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if closed, _ := c.q.Closed(); closed {
		return
	}
	if c.q.Check(now) != slowsub.None {
		c.cutOffLocked(now)
	}
}

// cutOffLocked records why the queue closed and stops the writer. c.mu is
// held and the queue has just closed past its limits.
func (c *Client) cutOffLocked(now int64) {
	_, r := c.q.Closed()
	l := c.q.Limits()
	switch r {
	case slowsub.Lag:
		c.detail = fmt.Sprintf("lag over %v", l.MaxLag)
	default:
		c.detail = fmt.Sprintf("queue over %d bytes", l.MaxBytes)
	}
	c.e.m.disconnects[fromSlow(r)].Inc()
	c.stop()
	if c.writing.Load() {
		c.conn.Abort()
	}
}

func (c *Client) stop() { c.once.Do(func() { close(c.done) }) }

// Close stops the client: Run writes a close and returns. Safe to call more
// than once and from any goroutine.
func (c *Client) Close() {
	c.mu.Lock()
	c.q.Close(slowsub.None)
	c.mu.Unlock()
	c.stop()
}

// Done is closed when the client is closing.
func (c *Client) Done() <-chan struct{} { return c.done }

// Run is the client's writer: the only goroutine that writes to its
// connection. Each wake-up drains the whole queue into one WriteBatch with a
// deadline. It returns nil when ctx ends or Close was called, a
// *CutOffError when the client was too slow, or the write error.
func (c *Client) Run(ctx context.Context) (err error) {
	defer c.release()
	cfg := &c.e.cfg
	var hb <-chan time.Time
	if cfg.Heartbeat > 0 {
		// A fixed beat, busy or not: the ping keeps a client that only
		// listens inside its read deadline.
		t := time.NewTicker(cfg.Heartbeat)
		defer t.Stop()
		hb = t.C
	}
	var buf []slowsub.Item
	for {
		select {
		case <-ctx.Done():
			c.Close()
			c.conn.WriteClose(cfg.Now().Add(cfg.WriteTimeout), slowsub.None, "gateway shutting down")
			return nil
		case <-c.done:
			c.mu.Lock()
			_, r := c.q.Closed()
			detail := c.detail
			c.mu.Unlock()
			c.conn.WriteClose(cfg.Now().Add(cfg.WriteTimeout), r, detail)
			if r != slowsub.None {
				return &CutOffError{Reason: r, Detail: detail}
			}
			return nil
		case <-hb:
			if err := c.conn.WriteHeartbeat(cfg.Now().Add(cfg.WriteTimeout)); err != nil {
				return c.writeFailed(err)
			}
			continue
		case <-c.wake:
		}
		c.mu.Lock()
		_, bytes := c.q.Len()
		buf = c.q.Drain(buf)
		c.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		now := cfg.Now()
		c.e.m.batch.Observe(float64(len(buf)))
		c.e.m.queueBytes.Observe(float64(bytes))
		c.e.m.lag.Observe(float64(max(now.UnixNano()-buf[0].At, 0)) / 1e9)
		c.writing.Store(true)
		err := c.conn.WriteBatch(now.Add(cfg.WriteTimeout), buf)
		c.writing.Store(false)
		if err != nil {
			if closed, r := c.closedReason(); closed && r != slowsub.None {
				return &CutOffError{Reason: r, Detail: c.cutDetail()} // aborted by the cut-off
			}
			return c.writeFailed(err)
		}
	}
}

func (c *Client) closedReason() (bool, slowsub.Reason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.q.Closed()
}

func (c *Client) cutDetail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.detail
}

// writeFailed counts a failed write by kind and closes the client.
func (c *Client) writeFailed(err error) error {
	r := DisconnectWriteError
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		r = DisconnectWriteTimeout
	}
	c.e.m.disconnects[r].Inc()
	c.Close()
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
	c.floors = nil
	c.mu.Unlock()
	c.e.mu.Lock()
	delete(c.e.clients, c)
	c.e.mu.Unlock()
	c.e.m.clients.Dec()
}
