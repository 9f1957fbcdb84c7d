package blackbox

import (
	"container/heap"
	"time"

	"github.com/mdgate/mdgate/slowsub"
)

// Throttled subscriptions: at most one update per topic per interval, the
// latest value, released on the interval's edge, so a throttled topic is
// never more than its interval behind. A person reads a few prices a
// second; a dashboard of thousands of instruments spends nothing on values
// no one sees. Everything here is guarded by the client's mu.

// throttleSlot is one throttled topic of one client.
type throttleSlot struct {
	last    int64        // Unix ns the last value was queued
	due     int64        // when pending is released; 0: nothing pending
	pending slowsub.Item // the latest value held back, when due is set
}

type dueItem struct {
	at    int64
	topic string
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// throttleLocked queues it now if its topic's interval has passed, or holds
// it as the topic's pending value (counting the one it replaces as
// skipped) until the interval's edge. c.mu is held.
func (c *Client) throttleLocked(it slowsub.Item, every time.Duration, now int64) {
	if c.throttled == nil {
		c.throttled = map[string]*throttleSlot{}
	}
	s := c.throttled[it.Topic]
	if s == nil {
		s = &throttleSlot{}
		c.throttled[it.Topic] = s
	}
	if s.due == 0 && now-s.last >= int64(every) {
		s.last = now
		c.pushLocked(it, now)
		return
	}
	if s.due != 0 {
		it.Skipped += s.pending.Skipped + 1
		c.e.m.throttled.Inc()
	} else {
		s.due = s.last + int64(every)
		heap.Push(&c.dues, dueItem{at: s.due, topic: it.Topic})
		c.armLocked(now)
	}
	s.pending = it
}

// armLocked sets the client's timer to the earliest due release. c.mu is
// held.
func (c *Client) armLocked(now int64) {
	if len(c.dues) == 0 || (c.armedAt != 0 && c.armedAt <= c.dues[0].at) {
		return // armed already for this release or an earlier one
	}
	c.armedAt = c.dues[0].at
	d := time.Duration(max(c.armedAt-now, 0))
	if c.dueTimer == nil {
		c.dueTimer = c.e.cfg.Clock.AfterFunc(d, c.releaseDue)
	} else {
		c.dueTimer.Reset(d)
	}
}

// releaseDue queues every held value whose interval's edge has come.
func (c *Client) releaseDue() {
	now := c.e.cfg.Clock.Now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armedAt = 0
	if closed, _ := c.q.Closed(); closed {
		return
	}
	for len(c.dues) > 0 && c.dues[0].at <= now {
		d := heap.Pop(&c.dues).(dueItem)
		s := c.throttled[d.topic]
		if s == nil || s.due != d.at {
			continue
		}
		it := s.pending
		s.pending, s.due, s.last = slowsub.Item{}, 0, now
		if !c.queueLocked(it, now).Ok() {
			return
		}
	}
	c.wakeLocked() // once for everything released
	c.armLocked(now)
}
