package lvc

import (
	"container/heap"
	"hash/maphash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdgate/mdgate/internal/clock"
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
	MaxTopics int   // distinct topics held, at least 1 (no cache at all: do not create one)
	MaxBytes  int64 // frame bytes held, at least 1
	TTL       []TTLRule

	// History keeps the last updates of topics under prefixes (history.go);
	// none by default. HistoryMaxBytes bounds all of them together
	// (0: DefaultHistoryMaxBytes).
	History         []HistoryRule
	HistoryMaxBytes int64

	// Clock times the cache file's saves (Persist's interval, the final
	// save's bound, FileStatus's times); nil: clock.Real. Expiry and
	// history ages are not read here: the writer passes its now.
	Clock clock.Clock
}

// DefaultConfig holds up to a million topics and 1 GiB, on the wall clock.
func DefaultConfig() Config {
	return Config{MaxTopics: 1_000_000, MaxBytes: 1 << 30, Clock: clock.Real{}}
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
	topic  string
	m      atomic.Pointer[tick.Message] // the latest value; nil once removed
	hist   *ring                        // retained updates, nil when no rule keeps them; set before the entry is shared
	inHeap bool                         // owned by the writer
}

func byTopic(a, b *entry) bool { return a.topic < b.topic }

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

	// idx orders the topics, so a prefix costs what it matches, not the
	// whole cache. The writer changes it and readers Clone it (O(1), copy
	// on write) under idxMu; nobody iterates it while holding idxMu except
	// the writer, in budgeted steps.
	idxMu sync.Mutex
	idx   *btree.BTreeG[*entry]

	// Owned by the writer.
	expiry expiryHeap

	met  metrics
	hist history

	fileMu sync.Mutex
	file   FileStatus // guarded by fileMu; file.go
}

type metrics struct {
	refused  [numRefuse]prometheus.Counter
	expired  prometheus.Counter
	deleted  prometheus.Counter
	replayed prometheus.Counter
	saves    *prometheus.CounterVec
}

// New returns an empty cache registered with reg (nil: not registered).
func New(cfg Config, reg prometheus.Registerer) *Cache {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	c := &Cache{cfg: cfg, seed: maphash.MakeSeed(), idx: btree.NewG(32, byTopic)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	c.rules = append([]TTLRule(nil), cfg.TTL...)
	c.hist.init(cfg)
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
		c.met.saves.WithLabelValues(r)
	}
	c.met.expired, c.met.deleted, c.met.replayed = expired, deleted, replayed
	hist := c.hist.collectors()
	if reg != nil {
		reg.MustRegister(refused, expired, deleted, replayed, c.met.saves, topics, bytes)
		reg.MustRegister(hist...)
	}
}

func (c *Cache) shard(topic string) *shard {
	return &c.shards[maphash.String(c.seed, topic)%numShards]
}

// IsDelete reports whether m is a publisher's delete: [topic, ""].
func IsDelete(m *tick.Message) bool {
	return m.Stamp.Flags&tick.FlagDelete != 0 || tick.IsDeleteFrames(m.Frames)
}

// Update stores m as its topic's latest value, or removes the topic when m
// is a delete. It reports false when a new topic was refused by a bound.
// Writer only.
func (c *Cache) Update(m *tick.Message) bool {
	sh := c.shard(m.Topic)
	if IsDelete(m) {
		c.remove(sh, m.Topic, nil)
		return true
	}
	size := int64(m.Size())
	e, ok := sh.m[m.Topic] // the writer is the only one changing the map
	if ok {
		if e.hist != nil {
			c.hist.push(e.hist, m) // before the latest: a reader never sees a latest value its history lacks
		}
		old := e.m.Swap(m)
		c.bytes.Add(size - int64(old.Size()))
	} else {
		if r, refused := c.refuse(size); refused {
			c.met.refused[r].Inc()
			return false
		}
		e = &entry{topic: m.Topic, hist: c.hist.newRing(m.Topic)}
		if e.hist != nil {
			c.hist.push(e.hist, m)
		}
		e.m.Store(m)
		sh.mu.Lock()
		sh.m[m.Topic] = e
		sh.mu.Unlock()
		c.idxMu.Lock()
		c.idx.ReplaceOrInsert(e)
		c.idxMu.Unlock()
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

// remove deletes topic (only if its entry is want, when want is set) and
// reports whether it did. Writer only.
func (c *Cache) remove(sh *shard, topic string, want *entry) bool {
	e, ok := sh.m[topic]
	if !ok || (want != nil && e != want) {
		return false
	}
	sh.mu.Lock()
	delete(sh.m, topic)
	sh.mu.Unlock()
	c.idxMu.Lock()
	c.idx.Delete(e)
	c.idxMu.Unlock()
	old := e.m.Swap(nil)
	if e.hist != nil {
		c.hist.drop(e.hist)
	}
	c.topics.Add(-1)
	c.bytes.Add(-int64(old.Size()))
	if want == nil {
		c.met.deleted.Inc()
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
		e, ok := sh.m[it.topic]
		if !ok || e != it.e {
			continue // deleted meanwhile (and perhaps created again, with its own item)
		}
		at := e.m.Load().Stamp.Ingress + int64(c.ttl(it.topic))
		if at > now { // updated since: wait for the new expiry
			heap.Push(&c.expiry, expiryItem{at: at, topic: it.topic, e: e})
			continue
		}
		c.remove(sh, it.topic, e)
		c.met.expired.Inc()
		fn(it.topic)
	}
}

// ReplayFrom calls fn with at most max cached values under prefix whose
// topics sort after `after` ("" for the first), in topic order, for a ZeroMQ
// subscription's replay done in steps. It returns the last topic given and
// whether the prefix is done. The cost is that of the values given, not of
// the cache. Writer only (it runs on the proxy loop).
func (c *Cache) ReplayFrom(prefix, after string, max int, fn func(*tick.Message)) (last string, done bool) {
	n := 0
	done = true
	c.idxMu.Lock()
	ascend(c.idx, prefix, after, func(e *entry, m *tick.Message) bool {
		if n == max {
			done = false
			return false
		}
		fn(m)
		n++
		last = e.topic
		return true
	})
	c.idxMu.Unlock()
	c.met.replayed.Add(float64(n))
	return last, done
}

// ascend walks t's values under prefix after `after`, in topic order, until
// fn returns false; removed entries are passed over.
func ascend(t *btree.BTreeG[*entry], prefix, after string, fn func(*entry, *tick.Message) bool) {
	from := prefix
	if after > from {
		from = after
	}
	t.AscendGreaterOrEqual(&entry{topic: from}, func(e *entry) bool {
		if !strings.HasPrefix(e.topic, prefix) {
			return false
		}
		if e.topic == after {
			return true
		}
		m := e.m.Load()
		if m == nil {
			return true
		}
		return fn(e, m)
	})
}

// View is an ordered, point-in-time set of the cache's topics; each value
// read through it is its topic's latest at the time of reading (nil-safe:
// topics removed since are passed over). Taking one costs O(1) and takes no
// lock the writer holds for long; reading it takes none.
type View struct{ t *btree.BTreeG[*entry] }

// View returns the cache's topics as they stand. Safe for concurrent use.
func (c *Cache) View() View {
	c.idxMu.Lock()
	defer c.idxMu.Unlock()
	return View{c.idx.Clone()}
}

// Ascend calls fn with each value under prefix whose topic sorts after
// `after` ("" for all), in topic order, until fn returns false.
func (v View) Ascend(prefix, after string, fn func(*tick.Message) bool) {
	ascend(v.t, prefix, after, func(_ *entry, m *tick.Message) bool { return fn(m) })
}

// Get returns the latest value of topic. Safe for concurrent use.
func (c *Cache) Get(topic string) (*tick.Message, bool) {
	sh := c.shard(topic)
	sh.mu.RLock()
	e, ok := sh.m[topic]
	sh.mu.RUnlock()
	if !ok {
		return nil, false
	}
	m := e.m.Load()
	return m, m != nil
}

// Scan calls fn with every value under prefix, in topic order, holding no
// lock. Safe for concurrent use.
func (c *Cache) Scan(prefix string, fn func(*tick.Message)) {
	c.View().Ascend(prefix, "", func(m *tick.Message) bool { fn(m); return true })
}

// Snapshot returns every value under prefix, sorted by topic. Safe for
// concurrent use.
func (c *Cache) Snapshot(prefix string) []*tick.Message {
	var out []*tick.Message
	c.Scan(prefix, func(m *tick.Message) { out = append(out, m) })
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

// Get returns topic's latest value if the view holds the topic.
func (v View) Get(topic string) (*tick.Message, bool) {
	e, ok := v.t.Get(&entry{topic: topic})
	if !ok {
		return nil, false
	}
	m := e.m.Load()
	return m, m != nil
}

// ascendEntries calls fn with every entry under prefix and its value.
func (v View) ascendEntries(prefix string, fn func(*entry, *tick.Message)) {
	ascend(v.t, prefix, "", func(e *entry, m *tick.Message) bool { fn(e, m); return true })
}
