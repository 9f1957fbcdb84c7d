package lvc

import (
	"container/heap"
	"hash/maphash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdgate/mdgate/tick"
)

const numShards = 64

// TTLRule gives values under a topic prefix a time to live, counted from
// their ingress time. The longest matching prefix wins.
type TTLRule struct {
	Prefix string
	TTL    time.Duration
}

// Config bounds the cache.
type Config struct {
	MaxTopics int   // distinct topics held; 0 means no cache at all
	MaxBytes  int64 // frame bytes held
	TTL       []TTLRule
}

// DefaultConfig holds up to a million topics and 1 GiB.
func DefaultConfig() Config {
	return Config{MaxTopics: 1_000_000, MaxBytes: 1 << 30}
}

// RefuseReason says why a new topic was not cached; a metric label.
type RefuseReason uint8

const (
	RefuseTopics RefuseReason = iota // MaxTopics reached
	RefuseBytes                      // MaxBytes reached
	numRefuse
)

var refuseNames = [numRefuse]string{"topics", "bytes"}

type entry struct {
	m      *tick.Message // guarded by the shard's mu
	inHeap bool          // owned by the writer
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*entry
}

// Cache is the last-value cache. Create it with New.
type Cache struct {
	cfg    Config
	seed   maphash.Seed
	shards [numShards]shard
	topics atomic.Int64
	bytes  atomic.Int64
	rules  []TTLRule // sorted longest prefix first

	// Owned by the writer.
	expiry expiryHeap

	met metrics
}

type metrics struct {
	refused   [numRefuse]prometheus.Counter
	expired   prometheus.Counter
	deleted   prometheus.Counter
	replayed  prometheus.Counter
	snapshots *prometheus.CounterVec
	snapDur   prometheus.Observer
	saves     *prometheus.CounterVec
}

// New returns an empty cache registered with reg (nil: not registered).
func New(cfg Config, reg prometheus.Registerer) *Cache {
	c := &Cache{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	c.rules = append([]TTLRule(nil), cfg.TTL...)
	sort.SliceStable(c.rules, func(i, j int) bool { return len(c.rules[i].Prefix) > len(c.rules[j].Prefix) })
	c.initMetrics(reg)
	return c
}

func (c *Cache) initMetrics(reg prometheus.Registerer) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_lvc_refused_total", Help: "New topics the cache refused, by the bound reached."}, []string{"reason"})
	expired := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_lvc_expired_total", Help: "Values removed when their time to live ran out."})
	deleted := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_lvc_deleted_total", Help: "Values deleted by their publisher."})
	replayed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mdgate_lvc_replayed_total", Help: "Cached values sent to ZeroMQ subscribers on subscribe."})
	c.met.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_lvc_snapshot_requests_total", Help: "Snapshot requests, by result."}, []string{"result"})
	snapDur := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mdgate_lvc_snapshot_seconds", Help: "Time to serve a snapshot request.",
		Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10)})
	c.met.saves = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mdgate_lvc_saves_total", Help: "Cache file writes, by result."}, []string{"result"})
	topics := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mdgate_lvc_topics", Help: "Topics in the cache."}, func() float64 { return float64(c.topics.Load()) })
	bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mdgate_lvc_bytes", Help: "Frame bytes in the cache."}, func() float64 { return float64(c.bytes.Load()) })
	for r := range c.met.refused {
		c.met.refused[r] = refused.WithLabelValues(refuseNames[r])
	}
	for _, r := range []string{"ok", "error"} {
		c.met.snapshots.WithLabelValues(r)
		c.met.saves.WithLabelValues(r)
	}
	c.met.expired, c.met.deleted, c.met.replayed, c.met.snapDur = expired, deleted, replayed, snapDur
	if reg != nil {
		reg.MustRegister(refused, expired, deleted, replayed, c.met.snapshots, snapDur, c.met.saves, topics, bytes)
	}
}

func (c *Cache) shard(topic string) *shard {
	return &c.shards[maphash.String(c.seed, topic)%numShards]
}

// IsDelete reports whether m is a publisher's delete: [topic, ""].
func IsDelete(m *tick.Message) bool {
	return m.Stamp.Flags&tick.FlagDelete != 0 || (len(m.Frames) == 2 && len(m.Frames[1]) == 0)
}

// Update stores m as its topic's latest value, or removes the topic when m
// is a delete. It reports false when a new topic was refused by a bound.
// Writer only.
func (c *Cache) Update(m *tick.Message) bool {
	sh := c.shard(m.Topic)
	if IsDelete(m) {
		sh.mu.Lock()
		e, ok := sh.m[m.Topic]
		if ok {
			delete(sh.m, m.Topic)
		}
		sh.mu.Unlock()
		if ok {
			c.topics.Add(-1)
			c.bytes.Add(-int64(e.m.Size()))
			c.met.deleted.Inc()
		}
		return true
	}
	size := int64(m.Size())
	sh.mu.Lock()
	e, ok := sh.m[m.Topic]
	if ok {
		old := e.m
		e.m = m
		sh.mu.Unlock()
		c.bytes.Add(size - int64(old.Size()))
	} else {
		if r, refused := c.refuse(size); refused {
			sh.mu.Unlock()
			c.met.refused[r].Inc()
			return false
		}
		e = &entry{m: m}
		sh.m[m.Topic] = e
		sh.mu.Unlock()
		c.topics.Add(1)
		c.bytes.Add(size)
	}
	if !e.inHeap {
		if ttl := c.ttl(m.Topic); ttl > 0 {
			e.inHeap = true
			heap.Push(&c.expiry, expiryItem{at: m.Stamp.Ingress + int64(ttl), topic: m.Topic, e: e})
		}
	}
	return true
}

func (c *Cache) refuse(size int64) (RefuseReason, bool) {
	if c.topics.Load() >= int64(c.cfg.MaxTopics) {
		return RefuseTopics, true
	}
	if c.bytes.Load()+size > c.cfg.MaxBytes {
		return RefuseBytes, true
	}
	return 0, false
}

// ttl returns the time to live of a topic, 0 for none.
func (c *Cache) ttl(topic string) time.Duration {
	for _, r := range c.rules {
		if strings.HasPrefix(topic, r.Prefix) {
			return r.TTL
		}
	}
	return 0
}

// NextExpiry returns the Unix ns of the earliest possible expiry, or 0.
// Writer only.
func (c *Cache) NextExpiry() int64 {
	if len(c.expiry) == 0 {
		return 0
	}
	return c.expiry[0].at
}

// Expire removes every value whose time to live ran out by now (Unix ns)
// and calls fn with each removed topic. Writer only.
func (c *Cache) Expire(now int64, fn func(topic string)) {
	for len(c.expiry) > 0 && c.expiry[0].at <= now {
		it := heap.Pop(&c.expiry).(expiryItem)
		sh := c.shard(it.topic)
		sh.mu.Lock()
		e, ok := sh.m[it.topic]
		if !ok || e != it.e {
			sh.mu.Unlock()
			continue // deleted meanwhile (and perhaps created again, with its own item)
		}
		at := e.m.Stamp.Ingress + int64(c.ttl(it.topic))
		if at > now { // updated since: wait for the new expiry
			sh.mu.Unlock()
			heap.Push(&c.expiry, expiryItem{at: at, topic: it.topic, e: e})
			continue
		}
		delete(sh.m, it.topic)
		sh.mu.Unlock()
		c.topics.Add(-1)
		c.bytes.Add(-int64(e.m.Size()))
		c.met.expired.Inc()
		fn(it.topic)
	}
}

// Replay calls fn with every cached value under prefix, for a new ZeroMQ
// subscription. Writer only (it runs on the proxy loop).
func (c *Cache) Replay(prefix string, fn func(*tick.Message)) {
	n := 0
	c.Scan(prefix, func(m *tick.Message) { n++; fn(m) })
	c.met.replayed.Add(float64(n))
}

// Get returns the latest value of topic. Safe for concurrent use.
func (c *Cache) Get(topic string) (*tick.Message, bool) {
	sh := c.shard(topic)
	sh.mu.RLock()
	e, ok := sh.m[topic]
	var m *tick.Message
	if ok {
		m = e.m
	}
	sh.mu.RUnlock()
	return m, ok
}

// Scan calls fn with every value under prefix, one shard at a time; each
// value is a consistent message, and fn runs without any lock held. Safe for
// concurrent use.
func (c *Cache) Scan(prefix string, fn func(*tick.Message)) {
	var buf []*tick.Message
	for i := range c.shards {
		sh := &c.shards[i]
		buf = buf[:0]
		sh.mu.RLock()
		for t, e := range sh.m {
			if strings.HasPrefix(t, prefix) {
				buf = append(buf, e.m)
			}
		}
		sh.mu.RUnlock()
		for _, m := range buf {
			fn(m)
		}
	}
}

// Snapshot returns every value under prefix, sorted by topic. Safe for
// concurrent use.
func (c *Cache) Snapshot(prefix string) []*tick.Message {
	var out []*tick.Message
	c.Scan(prefix, func(m *tick.Message) { out = append(out, m) })
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// Restore loads values (e.g. from a cache file) before the writer starts.
// Values past a bound are refused and counted like any other.
func (c *Cache) Restore(msgs []*tick.Message) {
	for _, m := range msgs {
		c.Update(m)
	}
}

// Len returns the number of topics and bytes held.
func (c *Cache) Len() (topics int, bytes int64) { return int(c.topics.Load()), c.bytes.Load() }

type expiryItem struct {
	at    int64
	topic string
	e     *entry // the entry it was pushed for; another entry means stale
}

type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// ObserveSnapshot records one snapshot request (package snapshot).
func (c *Cache) ObserveSnapshot(ok bool, d time.Duration) {
	r := "ok"
	if !ok {
		r = "error"
	}
	c.met.snapshots.WithLabelValues(r).Inc()
	c.met.snapDur.Observe(d.Seconds())
}
