package proxy

import "strings"

// Replays of cached values to new ZeroMQ subscriptions.
//
// libzmq's XPUB has no per-peer send: a replay for a new subscription to
// "md." reaches every subscriber whose prefixes match those topics. One peer
// re-sending a subscribe must therefore not be able to multiply the cache
// onto everyone else's stream (the guide's LVC flaw). The rules, all on the
// loop goroutine:
//
//   - a subscribe of a prefix already waiting for its replay joins it
//     (coalesced, counted);
//   - a prefix is replayed at most once per ReplayInterval on an egress: a
//     subscribe inside the interval after a replay started is served by one
//     more replay at the interval's end (late joiners still get the values,
//     repeats cost one replay an interval);
//   - the loop replays at most ReplayBatch messages an iteration and
//     ReplayRate messages a second in all, in topic order through the cache's
//     index, carrying the rest over (counted): live traffic is never queued
//     behind a replay;
//   - at most MaxPendingReplays prefixes wait; more are refused (counted).
//
// A subscriber that must not miss a value joins with the snapshot ROUTER
// instead (docs/snapshot.md): that reply goes to it alone.

// replayKey names one prefix on one egress.
type replayKey struct {
	e      egress
	prefix string
}

// replayJob is one pending or running replay.
type replayJob struct {
	key       replayKey
	notBefore int64  // Unix ns; not started before
	started   int64  // Unix ns of the first step; 0 not yet
	after     string // the last topic replayed
	again     bool   // a subscribe came after it started: replay once more
}

// ReplayOutcome is what became of a subscribe's replay request; a metric
// label.
type ReplayOutcome uint8

const (
	ReplayQueued           ReplayOutcome = iota // a replay was scheduled
	ReplayCoalesced                             // joined a pending replay, or one more after the running one
	ReplayRefusedQueueFull                      // MaxPendingReplays prefixes were waiting
	ReplayRefusedSubLimit                       // the egress tracks MaxSubscriptions prefixes already
	ReplayRefusedTooLong                        // a prefix longer than MaxTopicBytes can match no topic
	numReplayOutcomes
)

var replayOutcomeNames = [...]string{
	ReplayQueued:           "queued",
	ReplayCoalesced:        "coalesced",
	ReplayRefusedQueueFull: "refused_queue_full",
	ReplayRefusedSubLimit:  "refused_subscription_limit",
	ReplayRefusedTooLong:   "refused_too_long",
}

func (o ReplayOutcome) String() string { return replayOutcomeNames[o] }

// replayer schedules replays. Owned by the loop goroutine.
type replayer struct {
	interval int64 // ns
	batch    int
	rate     float64 // messages a second
	maxJobs  int

	jobs    []*replayJob // FIFO
	byKey   map[replayKey]*replayJob
	last    map[replayKey]int64 // when each prefix's latest replay started
	tokens  float64
	refill  int64 // Unix ns of the last refill
	pruneAt int   // len(last) at which prune next runs
}

func newReplayer(c *Config) *replayer {
	return &replayer{
		interval: int64(c.ReplayInterval), batch: c.ReplayBatch, rate: float64(c.ReplayRate),
		maxJobs: c.MaxPendingReplays, byKey: map[replayKey]*replayJob{}, last: map[replayKey]int64{},
		tokens: float64(c.ReplayBatch), pruneAt: 1024,
	}
}

// request schedules a replay of k for a new subscription at now.
func (r *replayer) request(k replayKey, now int64) ReplayOutcome {
	if j, ok := r.byKey[k]; ok {
		if j.started != 0 {
			j.again = true // this subscriber may have missed the part already sent
		}
		return ReplayCoalesced
	}
	if len(r.jobs) >= r.maxJobs {
		return ReplayRefusedQueueFull
	}
	j := &replayJob{key: k, notBefore: now}
	outcome := ReplayQueued
	if t, ok := r.last[k]; ok && now < t+r.interval {
		j.notBefore, outcome = t+r.interval, ReplayCoalesced
	}
	r.jobs = append(r.jobs, j)
	r.byKey[k] = j
	return outcome
}

// cancel drops a pending replay of k (nobody is subscribed any more).
func (r *replayer) cancel(k replayKey) {
	j, ok := r.byKey[k]
	if !ok {
		return
	}
	delete(r.byKey, k)
	for i, x := range r.jobs {
		if x == j {
			r.jobs = append(r.jobs[:i], r.jobs[i+1:]...)
			break
		}
	}
}

// pending is the number of prefixes waiting or being replayed.
func (r *replayer) pending() int { return len(r.jobs) }

// wait says how long the loop may sleep before replay work is due: 0 when
// it is due now, -1 when there is none.
func (r *replayer) wait(now int64) int64 {
	if len(r.jobs) == 0 {
		return -1
	}
	next := int64(-1)
	for _, j := range r.jobs {
		if j.notBefore <= now {
			next = now
			break
		}
		if next < 0 || j.notBefore < next {
			next = j.notBefore
		}
	}
	if r.tokens < 1 && r.rate > 0 {
		next = max(next, now+int64((1-r.tokens)/r.rate*1e9)+1)
	}
	return max(next-now, 0)
}

// step runs at most one batch of due replay work through replay, which
// sends up to n values of a prefix after a topic and returns the last topic
// and whether the prefix is done. It reports whether work was left over.
func (r *replayer) step(now int64, replay func(k replayKey, after string, n int) (string, int, bool)) (carried bool) {
	if len(r.jobs) == 0 {
		return false
	}
	if r.rate > 0 {
		r.tokens = min(r.tokens+float64(now-r.refill)/1e9*r.rate, max(float64(r.batch), r.rate/10))
	}
	r.refill = now
	budget := r.batch
	if r.rate > 0 {
		budget = min(budget, int(r.tokens))
	}
	for i := 0; i < len(r.jobs) && budget > 0; {
		j := r.jobs[i]
		if j.notBefore > now {
			i++
			continue
		}
		if j.started == 0 {
			j.started = now
			r.last[j.key] = now
		}
		last, n, done := replay(j.key, j.after, budget)
		budget -= n
		if r.rate > 0 {
			r.tokens -= float64(n)
		}
		j.after = last
		if !done {
			break // budget spent; the job keeps its place
		}
		r.jobs = append(r.jobs[:i], r.jobs[i+1:]...)
		delete(r.byKey, j.key)
		if j.again { // once more, for subscribers that came while it ran
			r.jobs = append(r.jobs, &replayJob{key: j.key, notBefore: j.started + r.interval})
			r.byKey[j.key] = r.jobs[len(r.jobs)-1]
		}
	}
	r.prune(now)
	for _, j := range r.jobs {
		if j.notBefore <= now {
			return true
		}
	}
	return false
}

// prune forgets replay start times older than the interval, so the map is
// bounded by the prefixes replayed in the last interval.
func (r *replayer) prune(now int64) {
	if len(r.last) < r.pruneAt {
		return
	}
	for k, t := range r.last {
		if now >= t+r.interval {
			delete(r.last, k)
		}
	}
	if len(r.last) < 256 { // let a map that grew under a burst go
		m := make(map[replayKey]int64, len(r.last))
		for k, t := range r.last {
			m[k] = t
		}
		r.last = m
	}
	r.pruneAt = max(1024, 2*len(r.last))
}

// subscriptions counts the subscribe frames per prefix on one egress,
// bounded in distinct prefixes. Owned by the loop goroutine.
type subscriptions struct {
	max     int
	m       map[string]int
	peak    int  // len(m)'s high mark since it was last rebuilt
	refused bool // a prefix went untracked (past max): libzmq may hold subscriptions m does not
	// unreported: an endpoint of the egress does not report subscriptions
	// (multicast), so it may have subscribers m cannot count.
	unreported bool
}

func newSubscriptions(max int) subscriptions {
	return subscriptions{max: max, m: map[string]int{}}
}

// add counts one subscribe of prefix; false: a new prefix past the bound.
func (s *subscriptions) add(prefix []byte) bool {
	if n, ok := s.m[string(prefix)]; ok {
		s.m[string(prefix)] = n + 1
		return true
	}
	if len(s.m) >= s.max {
		s.refused = true
		return false
	}
	s.m[string(prefix)] = 1
	s.peak = max(s.peak, len(s.m))
	return true
}

// any reports whether the egress may have a subscriber: false only when
// every subscription libzmq reported has gone (its XPUB would drop all) on
// an egress where every subscriber reports its subscriptions.
func (s *subscriptions) any() bool { return s.unreported || len(s.m) > 0 || s.refused }

// subscriptionsReported reports whether an XPUB bound to endpoints hears
// every subscriber's subscriptions: over tcp, ipc and inproc it does; a
// multicast group (epgm, pgm, norm) or udp sends all and reports none.
func subscriptionsReported(endpoints []string) bool {
	for _, e := range endpoints {
		if !strings.HasPrefix(e, "tcp://") && !strings.HasPrefix(e, "ipc://") && !strings.HasPrefix(e, "inproc://") {
			return false
		}
	}
	return true
}

// remove forgets prefix (libzmq reports an unsubscribe once the last
// subscriber of it has gone) and reports whether it was tracked. A map far
// below its high mark is rebuilt: Go maps never shrink, and a peer that
// subscribed a million prefixes and left must not keep their memory.
func (s *subscriptions) remove(prefix []byte) bool {
	if _, ok := s.m[string(prefix)]; !ok {
		return false
	}
	delete(s.m, string(prefix))
	if s.peak >= 4096 && len(s.m) < s.peak/4 {
		m := make(map[string]int, len(s.m))
		for k, v := range s.m {
			m[k] = v
		}
		s.m, s.peak = m, len(m)
	}
	return true
}

func (s *subscriptions) len() int { return len(s.m) }
