package blackbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/mdgate/mdgate/internal/clock"
	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

// Encoder turns a message into one wire format's bytes. It runs once per
// message and format, on a shard worker; the result is shared by every
// subscriber and never modified.
type Encoder func(m *tick.Message) []byte

// Limits returns the per-client limits: the defaults a client gets, and the
// most it may ask for (slowsub.Limits.Within). The one source of them; the
// WebSocket bridge reads them here.
func (e *Engine) Limits() slowsub.Limits { return e.cfg.Limits }

// Config sizes the engine.
type Config struct {
	Shards       int            // workers; 0 means GOMAXPROCS
	ShardQueue   int            // messages waiting per shard before Publish drops
	Limits       slowsub.Limits // the most a client may queue and lag
	WriteTimeout time.Duration  // deadline of every write
	Heartbeat    time.Duration  // every client gets a heartbeat this often, busy or not (to within SweepEvery); 0: never
	SweepEvery   time.Duration  // how often idle queues are checked against their limits, heartbeats fall due and idle writers retire
	// InFlight bounds the bytes written to a client and not yet read by it
	// (probe.go); InFlightConflate, smaller, for a client that conflates, so
	// its values are conflated before they reach the kernel.
	InFlight         int
	InFlightConflate int
	// WriteDelay is how long a shard worker holds live updates before it
	// wakes the writers of the clients it queued them for (centrifuge's
	// WriteDelay, on one timer per shard): the first update of a window
	// waits at most that long, later ones less, and each client gets at
	// most one wake-up from the shard a window, so fewer, larger writes,
	// less CPU per delivery. Replies, snapshots and the close are not held;
	// a write made for them takes what is queued. 0: wake at once.
	WriteDelay time.Duration
	// BusyWriteDelay is WriteDelay applied only while the process is short
	// of CPU (busy.go): while the Go scheduler's ready goroutines wait
	// BusyOn (5 ms) or more at p90, measured each sweep, until it is below
	// BusyOff (2 ms). A WriteDelay set is held always and this one is not used.
	// 0: never.
	BusyWriteDelay time.Duration
	// Clock is the engine's time: ingress lag, throttles, probes, write
	// deadlines, the sweeper and heartbeats; nil: clock.Real.
	Clock clock.Clock
	// Alive, when set, is asked at each heartbeat: false skips it. The
	// gateway passes the stamping loop's liveness (proxy.Proxy.Alive), so
	// a hung loop stops the beats and clients notice it and move on (a
	// failover pair's other gateway, docs/ha.md). nil: always beat.
	Alive func() bool
}

// DefaultConfig: a shard per core, 64k messages a shard, 1 MiB and 2 s per
// client, 10 s write deadline, 15 s heartbeat, 100 ms sweep, the wall clock.
func DefaultConfig() Config {
	return Config{
		ShardQueue:   1 << 16,
		Limits:       slowsub.DefaultLimits(),
		WriteTimeout: 10 * time.Second,
		Heartbeat:    15 * time.Second,
		SweepEvery:   100 * time.Millisecond,

		InFlight:         256 << 10,
		InFlightConflate: 32 << 10,
		Clock:            clock.Real{},
	}
}

// Engine is the fan-out. Publish may be called from one goroutine (the
// proxy loop); everything else is safe for concurrent use.
type Engine struct {
	cfg      Config
	encoders []Encoder
	shards   []*shard
	m        *metrics
	log      zerolog.Logger

	writers sync.Pool // of *writer: the buffers of writer goroutines, kept while they come and go

	mu      sync.Mutex
	clients map[*Client]struct{} // guarded by mu
	nclient atomic.Int64         // len(clients), read by Publish without mu

	busy     atomic.Bool          // shard workers hold wake-ups BusyWriteDelay; set by the sweeper
	schedP90 func() time.Duration // the sweeper's measure of the scheduler's p90 latency (busy.go)
}

type shard struct {
	id    int
	in    chan *tick.Message
	idx   *index
	seq   uint64 // messages matched; owned by the shard's worker
	batch uint64 // batches taken; owned by the shard's worker
}

// New returns an engine with one encoder per wire format; a client picks its
// format by index. It refuses a cfg that Validate refuses: start from
// DefaultConfig. Shards 0 is one per core (GOMAXPROCS), a nil Clock the
// real clock.
func New(cfg Config, encoders []Encoder, reg prometheus.Registerer, log zerolog.Logger) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fanout config: %w", err)
	}
	if cfg.Shards == 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	e := &Engine{cfg: cfg, encoders: encoders, m: newMetrics(reg), log: log, clients: map[*Client]struct{}{}}
	e.schedP90 = newSchedLatency().p90
	e.writers.New = func() any { return new(writer) }
	for i := range cfg.Shards {
		e.shards = append(e.shards, &shard{id: i, in: make(chan *tick.Message, cfg.ShardQueue), idx: newIndex()})
	}
	return e, nil
}

// Config returns the engine's configuration, Shards and Clock resolved.
func (e *Engine) Config() Config { return e.cfg }

func (e *Engine) shardOf(topic string) *shard {
	return e.shards[fnv(topic)%uint32(len(e.shards))]
}

// fnv is FNV-1a: fast, and the same topic always lands on the same worker.
func fnv[T string | []byte](topic T) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(topic); i++ {
		h ^= uint32(topic[i])
		h *= 16777619
	}
	return h
}

// Publish hands m to its topic's shard without blocking; a full shard drops
// it (counted as shard_full). It implements proxy.Sink.
func (e *Engine) Publish(m *tick.Message) {
	if e.nclient.Load() == 0 {
		return // nobody to match: a ZeroMQ-only gateway pays nothing here
	}
	select {
	case e.shardOf(m.Topic).in <- m:
	default:
		e.m.dropShardFull.Inc()
	}
}

// Run runs the shard workers and the sweeper until ctx is done.
func (e *Engine) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range e.shards {
		g.Go(func() error { e.work(ctx, s); return nil })
	}
	g.Go(func() error { e.sweep(ctx); return nil })
	return g.Wait()
}

// work is one shard's worker: match, encode once per format, deliver.
func (e *Engine) work(ctx context.Context, s *shard) {
	var (
		matches []entry
		touched []*Client // clients given something since the last wake-up, each once
		enc     = make([][]byte, len(e.encoders))
		hold    clock.Timer      // WriteDelay's, made on first use
		flush   <-chan time.Time // hold's channel while a window is open
	)
	defer func() {
		if hold != nil {
			hold.Stop()
		}
	}()
	for {
		var m *tick.Message
		select {
		case <-ctx.Done():
			return
		case m = <-s.in:
		case <-flush:
			flush = nil
			touched = wakeAll(touched)
			continue
		}
		// Take what is waiting (the proxy hands over whole ingress batches)
		// and wake each client once at the end, so its writer takes the
		// batch in one write instead of one message per wake-up (nats'
		// flushClients); with WriteDelay, at the end of the window.
		if len(touched) == 0 {
			s.batch++ // a new batch, or window: each client joins touched once
		}
		for work := 0; ; {
			var n int
			matches, touched, n = e.deliver(s, m, matches, touched, enc)
			if work += n + 1; work >= workBatch {
				break // wake what has been queued: a batch costs latency too
			}
			select {
			case m = <-s.in:
				continue
			default:
			}
			break
		}
		d := e.cfg.WriteDelay
		if d == 0 && e.cfg.BusyWriteDelay > 0 && e.busy.Load() {
			d = e.cfg.BusyWriteDelay
		}
		switch {
		case d == 0:
			touched = wakeAll(touched)
		case flush == nil && len(touched) > 0:
			if hold == nil {
				hold = e.cfg.Clock.NewTimer(d)
			} else {
				hold.Reset(d)
			}
			flush = hold.C()
		}
	}
}

// wakeAll wakes every client's writer and returns the emptied slice.
func wakeAll(cs []*Client) []*Client {
	for i, c := range cs {
		c.notify()
		cs[i] = nil
	}
	return cs[:0]
}

// workBatch bounds the work (deliveries, plus one per message) a shard
// worker does before it wakes the clients it gave something to: enough to
// carry an ingress batch to a client in one write, little enough that the
// first client of a batch does not wait long for the last.
const workBatch = 1 << 14

// deliver matches m, encodes it once per format and queues it for every
// matching client, adding each client it queued for to touched once per
// batch. Owned by s's worker.
func (e *Engine) deliver(s *shard, m *tick.Message, matches []entry, touched []*Client, enc [][]byte) ([]entry, []*Client, int) {
	matches = s.idx.match(m.Topic, matches[:0])
	e.m.messages.Inc()
	if len(matches) == 0 {
		return matches, touched, 0
	}
	s.seq++
	clear(enc)
	now := e.cfg.Clock.Now().UnixNano()
	n := 0
	for _, en := range matches {
		c := en.c
		if c.marks[s.id] == s.seq { // matched twice (topic and prefix)
			continue
		}
		c.marks[s.id] = s.seq
		data := enc[c.format]
		if data == nil {
			data = e.encoders[c.format](m)
			enc[c.format] = data
		}
		if c.deliver(m, data, en, now) && c.batches[s.id] != s.batch {
			c.batches[s.id] = s.batch
			touched = append(touched, c)
		}
		n++
	}
	clear(matches) // drop the client pointers
	e.m.deliveries.Add(float64(n))
	return matches, touched, n
}

// sweep re-checks every queue so a client that stopped reading is cut off
// even when nothing new is queued for it, and wakes the writers whose
// heartbeat is due (one ticker for the engine, none per client).
func (e *Engine) sweep(ctx context.Context) {
	t := e.cfg.Clock.NewTicker(e.cfg.SweepEvery)
	defer t.Stop()
	var (
		all  []*Client
		busy busyState
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		e.mu.Lock()
		all = all[:0]
		for c := range e.clients {
			all = append(all, c)
		}
		e.mu.Unlock()
		now := e.cfg.Clock.Now().UnixNano()
		for _, c := range all {
			c.check(now)
		}
		clear(all)
		p90 := e.schedP90()
		e.m.schedP90.Set(p90.Seconds())
		if e.cfg.BusyWriteDelay > 0 && e.cfg.WriteDelay == 0 {
			hold := busy.next(e.busy.Load(), p90)
			e.busy.Store(hold)
			if hold {
				e.m.busySweeps.Inc()
			}
		}
		e.m.sweeps.Inc() // last: a pass counted is a pass done (tests wait on it)
	}
}

// Clients returns how many clients are connected.
func (e *Engine) Clients() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.clients)
}

// ErrCutOff is what Client.Run returns (and Start's done is given) for a
// client cut off as too slow.
var ErrCutOff = errors.New("slow consumer")

// CutOffError says why a client was cut off.
type CutOffError struct {
	Reason slowsub.Reason
	Detail string
}

func (e *CutOffError) Error() string { return fmt.Sprintf("slow consumer: %s", e.Detail) }
func (e *CutOffError) Unwrap() error { return ErrCutOff }
