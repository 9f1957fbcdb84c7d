package slowsub

import "time"

// Item is one queued message. Data is shared with every other subscriber of
// the same message and must never be modified.
type Item struct {
	Topic    string
	Data     []byte
	At       int64  // ns since the Unix epoch: the ingress stamp, or when queued for replies
	Conflate bool   // a newer Item of the same topic may replace this one
	Skipped  uint32 // updates of Topic replaced by this one while queued
}

// Verdict is the outcome of a Push.
type Verdict uint8

const (
	Queued    Verdict = iota
	Conflated         // replaced an undelivered value of the same topic
	CutOff            // the queue is past its limits and now closed
	Closed            // the queue was already closed; the item is dropped
)

// Ok reports whether the item was taken (queued or conflated).
func (v Verdict) Ok() bool { return v == Queued || v == Conflated }

// Queue is one subscriber's byte-bounded queue. Not safe for concurrent use.
type Queue struct {
	limits Limits
	items  []Item
	bytes  int
	latest map[string]int // topic -> index in items of its conflatable value
	hard   int            // index of the oldest item that cannot be conflated; -1: none
	reason Reason         // why the queue closed
	closed bool
}

// NewQueue returns an empty queue bounded by l.
func NewQueue(l Limits) *Queue { return &Queue{limits: l, hard: -1} }

// SetLimits changes the bounds; they apply from the next Push or Check.
func (q *Queue) SetLimits(l Limits) { q.limits = l }

// Limits returns the current bounds.
func (q *Queue) Limits() Limits { return q.limits }

// Push queues it, or conflates it into the undelivered value of its topic,
// then applies Decide. now is in ns since the Unix epoch.
func (q *Queue) Push(it Item, now int64) Verdict {
	if q.closed {
		return Closed
	}
	v := Queued
	if i, ok := q.latest[it.Topic]; ok && it.Conflate {
		old := &q.items[i]
		it.Skipped += old.Skipped + 1
		q.bytes += len(it.Data) - len(old.Data)
		*old = it
		v = Conflated
	} else {
		if it.Conflate {
			if q.latest == nil {
				q.latest = make(map[string]int)
			}
			q.latest[it.Topic] = len(q.items)
		}
		if !it.Conflate && q.hard < 0 {
			q.hard = len(q.items)
		}
		q.items = append(q.items, it)
		q.bytes += len(it.Data)
	}
	if q.Check(now) != None {
		return CutOff
	}
	return v
}

// Check applies Decide to the queue as it stands and closes it when the
// subscriber is past its limits. It returns the reason the queue is closed
// for, or None.
func (q *Queue) Check(now int64) Reason { return q.CheckWith(now, 0) }

// CheckWith is Check counting as lag at least inFlight: the age of data the
// subscriber has been sent but not yet read.
func (q *Queue) CheckWith(now int64, inFlight time.Duration) Reason {
	if q.closed {
		return q.reason
	}
	if r := Decide(q.limits, q.bytes, max(q.Lag(now), inFlight)); r != None {
		q.Close(r)
	}
	return q.reason
}

// Close closes the queue for reason (None for an ordinary close) and frees
// what it held. Later Pushes return Closed.
func (q *Queue) Close(r Reason) {
	if q.closed {
		return
	}
	q.closed, q.reason = true, r
	clear(q.items)
	q.items, q.bytes, q.latest, q.hard = nil, 0, nil, -1
}

// Closed says whether the queue is closed, and why.
func (q *Queue) Closed() (bool, Reason) { return q.closed, q.reason }

// Lag is the age at now of the oldest queued item that cannot be
// conflated, or 0 when there is none. A conflatable item is its topic's
// latest value: a subscriber holding only those is not behind the feed,
// however old they are (a quiet feed), so only the byte limit and the write
// deadline apply to it.
func (q *Queue) Lag(now int64) time.Duration {
	if q.hard < 0 {
		return 0
	}
	return time.Duration(max(now-q.items[q.hard].At, 0))
}

// Len returns the number of items and bytes queued.
func (q *Queue) Len() (items, bytes int) { return len(q.items), q.bytes }

// DrainUpTo moves the oldest items, at least one and then as long as they
// fit in maxBytes of Data, to dst[:0] and returns them; the rest stay queued
// (and conflatable). maxBytes <= 0 drains everything, like Drain.
func (q *Queue) DrainUpTo(dst []Item, maxBytes int) []Item {
	if maxBytes <= 0 || q.bytes <= maxBytes {
		return q.Drain(dst)
	}
	k, n := 0, 0
	for k < len(q.items) && (k == 0 || n+len(q.items[k].Data) <= maxBytes) {
		n += len(q.items[k].Data)
		k++
	}
	dst = append(dst[:0], q.items[:k]...)
	rest := copy(q.items, q.items[k:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	q.bytes -= n
	for t, i := range q.latest {
		if i < k {
			delete(q.latest, t)
		} else {
			q.latest[t] = i - k
		}
	}
	q.hard = -1
	for i := range q.items {
		if !q.items[i].Conflate {
			q.hard = i
			break
		}
	}
	return dst
}

// Drain moves every queued item to dst[:0] and returns it; the queue keeps
// dst's old array for the next items (swap buffers, no allocation once both
// have grown).
func (q *Queue) Drain(dst []Item) []Item {
	out := q.items
	clear(dst[:cap(dst)])
	q.items = dst[:0]
	q.bytes, q.hard = 0, -1
	clear(q.latest)
	return out
}
