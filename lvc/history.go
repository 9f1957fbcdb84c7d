package lvc

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdgate/mdgate/tick"
)

// HistoryRule keeps the last updates of every topic under Prefix, so a
// client that resumes gets the updates it missed, not only the latest
// value. The longest matching prefix wins; a rule with MaxCount 0 turns
// history off under its prefix.
type HistoryRule struct {
	Prefix   string
	MaxCount int           // updates kept per topic; 0: none (history off under Prefix)
	MaxBytes int64         // frame bytes kept per topic, at least 1 when MaxCount > 0
	MaxAge   time.Duration // updates older than this are not kept; 0: no age bound
}

// DefaultHistoryBytes is the default per-topic byte bound of a history rule
// given without one (--history prefix=count).
const DefaultHistoryBytes = 1 << 20

// DefaultHistoryMaxBytes is the default bound on the frame bytes of every
// topic's history together (Config.HistoryMaxBytes).
const DefaultHistoryMaxBytes = 256 << 20

// EvictReason says why a retained update was let go; a metric label.
type EvictReason uint8

const (
	EvictCount  EvictReason = iota // the topic's MaxCount
	EvictBytes                     // the topic's MaxBytes
	EvictAge                       // older than MaxAge
	EvictGlobal                    // Config.HistoryMaxBytes over all topics
	numEvict
)

var evictNames = [numEvict]string{"count", "bytes", "age", "global"}

func (r EvictReason) String() string { return evictNames[r] }

// ring is one topic's retained updates, oldest first. The writer appends;
// clients' writers read. mu guards every field but rule.
type ring struct {
	rule  *historyRule
	mu    sync.Mutex
	buf   []*tick.Message // circular; grows by doubling up to rule.MaxCount
	head  int             // index of the oldest
	n     int
	bytes int64
}

func (r *ring) at(i int) *tick.Message { return r.buf[(r.head+i)%len(r.buf)] }

// historyRule is a configured rule with its metrics.
type historyRule struct {
	HistoryRule
	window atomic.Int64 // smallest window (ns) seen at an eviction since the last scrape; MaxInt64: none
	last   atomic.Int64 // the figure last scraped
}

// history is the cache's per-topic history bookkeeping.
type history struct {
	rules    []*historyRule // longest prefix first
	maxBytes int64
	bytes    atomic.Int64 // frame bytes retained over all topics
	updates  atomic.Int64 // updates retained over all topics
	evicted  [numEvict]prometheus.Counter
}

func (h *history) init(cfg Config) {
	for _, r := range cfg.History {
		hr := &historyRule{HistoryRule: r}
		hr.window.Store(math.MaxInt64)
		h.rules = append(h.rules, hr)
	}
	sort.SliceStable(h.rules, func(i, j int) bool { return len(h.rules[i].Prefix) > len(h.rules[j].Prefix) })
	h.maxBytes = cfg.HistoryMaxBytes
	if h.maxBytes == 0 {
		h.maxBytes = DefaultHistoryMaxBytes
	}
}

func (h *history) collectors() []prometheus.Collector {
	evicted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_history_evicted_total", Help: "Retained updates let go from topic histories, by the bound reached."}, []string{"reason"})
	for r := range h.evicted {
		h.evicted[r] = evicted.WithLabelValues(evictNames[r])
	}
	cs := []prometheus.Collector{evicted,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mdgate_history_updates", Help: "Updates retained in topic histories."}, func() float64 { return float64(h.updates.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mdgate_history_bytes", Help: "Frame bytes retained in topic histories."}, func() float64 { return float64(h.bytes.Load()) }),
	}
	for _, r := range h.rules {
		if r.MaxCount == 0 {
			continue
		}
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "mdgate_history_window_seconds",
			Help:        "Recovery window of the topics under a history rule: the smallest span of time a topic held when it let an update go, since the last scrape (the last figure when none was let go). A client away longer than this may find a gap.",
			ConstLabels: prometheus.Labels{"prefix": r.Prefix}}, r.scrapeWindow))
	}
	return cs
}

func (r *historyRule) scrapeWindow() float64 {
	if w := r.window.Swap(math.MaxInt64); w != math.MaxInt64 {
		r.last.Store(w)
	}
	return time.Duration(r.last.Load()).Seconds()
}

func (r *historyRule) observeWindow(ns int64) {
	for {
		w := r.window.Load()
		if ns >= w || r.window.CompareAndSwap(w, ns) {
			return
		}
	}
}

// rule returns the history rule for topic, nil for none.
func (h *history) rule(topic string) *historyRule {
	for _, r := range h.rules {
		if strings.HasPrefix(topic, r.Prefix) {
			if r.MaxCount == 0 {
				return nil
			}
			return r
		}
	}
	return nil
}

// newRing returns a ring for topic, or nil when no rule keeps its history.
func (h *history) newRing(topic string) *ring {
	r := h.rule(topic)
	if r == nil {
		return nil
	}
	return &ring{rule: r, buf: make([]*tick.Message, min(r.MaxCount, 8))}
}

// push appends m to r, letting go of what the bounds require first. Writer
// only. Amortised, it allocates nothing: the buffer grows by doubling up to
// the rule's count.
func (h *history) push(r *ring, m *tick.Message) {
	size := int64(m.Size())
	r.mu.Lock()
	defer r.mu.Unlock()
	rule := r.rule
	if rule.MaxAge > 0 {
		for r.n > 0 && r.at(0).Stamp.Ingress < m.Stamp.Ingress-int64(rule.MaxAge) {
			h.evictLocked(r, EvictAge, m)
		}
	}
	for r.n > 0 && r.n >= rule.MaxCount {
		h.evictLocked(r, EvictCount, m)
	}
	for r.n > 0 && r.bytes+size > rule.MaxBytes {
		h.evictLocked(r, EvictBytes, m)
	}
	for r.n > 0 && h.bytes.Load()+size > h.maxBytes {
		h.evictLocked(r, EvictGlobal, m)
	}
	if size > rule.MaxBytes || h.bytes.Load()+size > h.maxBytes {
		// not kept at all: the topic's history has a hole before the next update
		if size > rule.MaxBytes {
			h.evicted[EvictBytes].Inc()
		} else {
			h.evicted[EvictGlobal].Inc()
		}
		return
	}
	if r.n == len(r.buf) {
		nb := make([]*tick.Message, min(2*len(r.buf), rule.MaxCount))
		for i := range r.n {
			nb[i] = r.at(i)
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = m
	r.n++
	r.bytes += size
	h.bytes.Add(size)
	h.updates.Add(1)
}

// evictLocked lets the oldest update go. r.mu is held.
func (h *history) evictLocked(r *ring, why EvictReason, newest *tick.Message) {
	old := r.at(0)
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	size := int64(old.Size())
	r.bytes -= size
	h.bytes.Add(-size)
	h.updates.Add(-1)
	h.evicted[why].Inc()
	r.rule.observeWindow(newest.Stamp.Ingress - old.Stamp.Ingress)
}

// drop lets go of every update of a removed topic. Writer only.
func (h *history) drop(r *ring) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h.bytes.Add(-r.bytes)
	h.updates.Add(-int64(r.n))
	clear(r.buf)
	r.n, r.bytes, r.head = 0, 0, 0
}

// HistoryResult says how the retained updates HistoryAfter gave follow the
// point (epoch, seq) it was asked from.
type HistoryResult struct {
	// Kept: a history rule covers the topic. When false nothing was given
	// and the caller falls back to the latest value.
	Kept bool
	// N updates were given, in order.
	N int
	// More retained updates follow the last one given: ask again from it.
	More bool
	// Latest: nothing after the point is retained (N == 0) although the
	// topic moved on (its newest update was too big to keep, or every
	// update after the point is gone): the caller sends the latest value,
	// with Gap and Missed saying what is lost before it.
	Latest bool
	// Gap: the first update given (or, with Latest, the latest value) does
	// not directly follow (epoch, seq): updates in between are gone
	// (evicted, too old) or it is of another epoch.
	Gap bool
	// Missed is, with Gap, how many updates of the same epoch are gone
	// before the first given (with N == 0: before the latest value); 0 when
	// that is not known (another epoch).
	Missed uint64
}

// HistoryAfter calls fn with up to max retained updates of topic that come
// after the update (epoch, seq), oldest first, and says how they follow it
// (HistoryResult). Updates older than their rule's MaxAge at now (Unix ns)
// are passed over as gone. fn is called with the topic's history locked
// (the proxy loop waits for it to record an update of this topic): keep it
// to a few pointer operations. Safe for concurrent use. A client that is
// up to date gets N == 0 and no Gap.
func (c *Cache) HistoryAfter(topic string, epoch, seq uint64, now int64, max int, fn func(*tick.Message)) HistoryResult {
	sh := c.shard(topic)
	sh.mu.RLock()
	e, ok := sh.m[topic]
	sh.mu.RUnlock()
	if !ok || e.hist == nil {
		return HistoryResult{}
	}
	r := e.hist
	r.mu.Lock()
	defer r.mu.Unlock()
	res := HistoryResult{Kept: true}
	start := r.after(epoch, seq)
	if age := r.rule.MaxAge; age > 0 {
		for start < r.n && r.at(start).Stamp.Ingress < now-int64(age) {
			start++
		}
	}
	if start < r.n {
		first := r.at(start).Stamp
		switch {
		case first.Epoch != epoch:
			res.Gap = true
		case first.Seq != seq+1:
			res.Gap, res.Missed = true, first.Seq-seq-1
		}
	} else if latest := e.m.Load(); latest != nil && (latest.Stamp.Epoch != epoch || latest.Stamp.Seq > seq) {
		// nothing retained after the point, yet the topic moved past it:
		// the caller sends the latest value
		res.Latest = true
		switch {
		case latest.Stamp.Epoch != epoch:
			res.Gap = true
		case latest.Stamp.Seq > seq+1:
			res.Gap, res.Missed = true, latest.Stamp.Seq-seq-1
		}
	}
	end := min(r.n, start+max)
	for i := start; i < end; i++ {
		fn(r.at(i))
	}
	res.N, res.More = end-start, end < r.n
	return res
}

// after returns the index of the first retained update after (epoch, seq):
// the one after the newest of that epoch at or before seq, else the first
// of that epoch, else (the epoch is not retained) the oldest. r.mu is held.
func (r *ring) after(epoch, seq uint64) int {
	if r.n == 0 {
		return 0
	}
	if r.at(0).Stamp.Epoch == epoch && r.at(r.n-1).Stamp.Epoch == epoch {
		// one epoch (the usual case): seqs ascend, binary search
		return sort.Search(r.n, func(i int) bool { return r.at(i).Stamp.Seq > seq })
	}
	firstOfEpoch := -1
	for i := r.n - 1; i >= 0; i-- {
		st := r.at(i).Stamp
		if st.Epoch != epoch {
			continue
		}
		if st.Seq <= seq {
			return i + 1
		}
		firstOfEpoch = i
	}
	if firstOfEpoch >= 0 {
		return firstOfEpoch
	}
	return 0 // the epoch is not retained at all: everything follows it
}

// historyOf calls fn with every retained update of e, oldest first (for
// the cache file). Safe for concurrent use.
func historyOf(e *entry, fn func(*tick.Message)) {
	r := e.hist
	r.mu.Lock()
	msgs := make([]*tick.Message, r.n)
	for i := range msgs {
		msgs[i] = r.at(i)
	}
	r.mu.Unlock()
	for _, m := range msgs {
		fn(m)
	}
}

// HistoryLen returns the updates and frame bytes retained in every topic's
// history.
func (c *Cache) HistoryLen() (updates int, bytes int64) {
	return int(c.hist.updates.Load()), c.hist.bytes.Load()
}

// TopicHistory describes one topic's retained updates.
type TopicHistory struct {
	Updates           int    `json:"updates"`
	Bytes             int64  `json:"bytes"`
	OldestSeq         uint64 `json:"oldest_seq"`
	OldestEpoch       string `json:"oldest_epoch"`
	OldestIngressUnix int64  `json:"oldest_ingress_ns"`
}

// History describes topic's retained updates; false when no rule keeps
// its history. Safe for concurrent use.
func (c *Cache) History(topic string) (TopicHistory, bool) {
	sh := c.shard(topic)
	sh.mu.RLock()
	e, ok := sh.m[topic]
	sh.mu.RUnlock()
	if !ok || e.hist == nil {
		return TopicHistory{}, false
	}
	r := e.hist
	r.mu.Lock()
	defer r.mu.Unlock()
	th := TopicHistory{Updates: r.n, Bytes: r.bytes}
	if r.n > 0 {
		st := r.at(0).Stamp
		th.OldestSeq, th.OldestEpoch, th.OldestIngressUnix = st.Seq, fmt.Sprintf("%016x", st.Epoch), st.Ingress
	}
	return th, true
}
