package bridge

import (
	"slices"
	"strings"
	"time"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/tick"
)

// snapshotPlan is what a subscribe's snapshot covers, normalised so that
// every topic appears once: prefixes sorted, none under another; topics
// sorted, none under a prefix of the request.
type snapshotPlan struct {
	topics   []string
	prefixes []string
	resume   map[string]ResumePoint
}

func newSnapshotPlan(r *Request) *snapshotPlan {
	ps := slices.Clone(r.Prefixes)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	var prefixes []string
	for _, p := range ps { // sorted: a covering prefix comes before what it covers
		if len(prefixes) == 0 || !strings.HasPrefix(p, prefixes[len(prefixes)-1]) {
			prefixes = append(prefixes, p)
		}
	}
	ts := slices.Clone(r.Topics)
	slices.Sort(ts)
	ts = slices.Compact(ts)
	var topics []string
	for _, t := range ts {
		if underAny(t, prefixes) < 0 {
			topics = append(topics, t)
		}
	}
	return &snapshotPlan{topics: topics, prefixes: prefixes, resume: r.Resume}
}

// underAny returns the index of the prefix topic is under, or -1.
func underAny(topic string, prefixes []string) int {
	// prefixes are sorted and disjoint: only the greatest one <= topic can hold it.
	i, found := slices.BinarySearch(prefixes, topic)
	if found {
		return i
	}
	if i > 0 && strings.HasPrefix(topic, prefixes[i-1]) {
		return i - 1
	}
	return -1
}

// replay is what the client gets of a cached value: only a floor when its
// resume point is the latest (nil Msg), else the value.
func (p *snapshotPlan) replay(m *tick.Message) blackbox.Replay {
	if rp, ok := p.resume[m.Topic]; ok && upToDate(rp, m) {
		epoch, _ := parseEpoch(rp.Epoch) // validated by ParseRequest
		return blackbox.Replay{Topic: m.Topic, Epoch: epoch, Seq: rp.Seq}
	}
	return blackbox.Replay{Topic: m.Topic, Epoch: m.Stamp.Epoch, Seq: m.Stamp.Seq, Msg: m}
}

// encode renders a value as a snapshot message, flagged as a gap (with the
// number missed) when the client resumes from an older seq or another
// epoch.
func (p *snapshotPlan) encode(m *tick.Message) []byte {
	var gap bool
	var missed uint64
	if rp, ok := p.resume[m.Topic]; ok {
		epoch, _ := parseEpoch(rp.Epoch)
		switch {
		case epoch != m.Stamp.Epoch:
			gap = true
		case m.Stamp.Seq > rp.Seq+1:
			gap, missed = true, m.Stamp.Seq-rp.Seq-1
		}
	}
	return appendMessage(nil, "snapshot", m, gap, missed)
}

// count returns how many values the plan would send from v: the figure the
// subscribe's acknowledgement carries. It runs on the client's reader
// goroutine, holding no lock.
func (p *snapshotPlan) count(v lvc.View) int {
	n := 0
	add := func(m *tick.Message) bool {
		if rp, ok := p.resume[m.Topic]; !ok || !upToDate(rp, m) {
			n++
		}
		return true
	}
	for _, t := range p.topics {
		if m, ok := v.Get(t); ok {
			add(m)
		}
	}
	for _, pre := range p.prefixes {
		v.Ascend(pre, "", add)
	}
	return n
}

func upToDate(rp ResumePoint, m *tick.Message) bool {
	epoch, _ := parseEpoch(rp.Epoch)
	return epoch == m.Stamp.Epoch && rp.Seq >= m.Stamp.Seq
}

// start returns the snapshot as the client's writer takes it, reading v.
func (p *snapshotPlan) start(v lvc.View) *snapshot { return &snapshot{plan: p, view: v} }

// snapshot is one subscribe's snapshot being sent: a point-in-time view of
// the cache read in topic order from a cursor, each value encoded when
// taken (blackbox.Snapshot; called with the client's lock held).
type snapshot struct {
	plan  *snapshotPlan
	view  lvc.View
	ti    int    // next exact topic
	pi    int    // current prefix
	after string // last topic taken under prefixes[pi]
}

// Take gives about maxBytes of values (by frame bytes) and reports whether
// it is done.
func (s *snapshot) Take(maxBytes int, fn func(blackbox.Replay)) bool {
	n := 0
	emit := func(m *tick.Message) {
		n += m.Size() + 64 // about the JSON around the frames
		fn(s.plan.replay(m))
	}
	for s.ti < len(s.plan.topics) && n < maxBytes {
		if m, ok := s.view.Get(s.plan.topics[s.ti]); ok {
			emit(m)
		}
		s.ti++
	}
	for s.pi < len(s.plan.prefixes) && n < maxBytes {
		complete := true
		s.view.Ascend(s.plan.prefixes[s.pi], s.after, func(m *tick.Message) bool {
			if n >= maxBytes {
				complete = false
				return false
			}
			emit(m)
			s.after = m.Topic
			return true
		})
		if complete {
			s.pi++
			s.after = ""
		}
	}
	return s.ti >= len(s.plan.topics) && s.pi >= len(s.plan.prefixes)
}

// Encode renders a value Take gave.
func (s *snapshot) Encode(r *blackbox.Replay) []byte { return s.plan.encode(r.Msg) }

// Covers reports whether topic's value is still to come from the snapshot.
func (s *snapshot) Covers(topic string) bool {
	if _, ok := slices.BinarySearch(s.plan.topics[s.ti:], topic); ok {
		return s.holds(topic)
	}
	j := underAny(topic, s.plan.prefixes)
	if j < s.pi || (j == s.pi && topic <= s.after) {
		return false // -1, or already passed
	}
	return s.holds(topic)
}

func (s *snapshot) holds(topic string) bool {
	_, ok := s.view.Get(topic)
	return ok
}

// subscriptions turns a request's topics and prefixes into the engine's.
func subscriptions(r *Request, conflate bool, throttle time.Duration) []blackbox.Subscription {
	subs := make([]blackbox.Subscription, 0, len(r.Topics)+len(r.Prefixes))
	for _, t := range r.Topics {
		subs = append(subs, blackbox.Subscription{Key: t, Conflate: conflate, Throttle: throttle})
	}
	for _, p := range r.Prefixes {
		subs = append(subs, blackbox.Subscription{Key: p, Prefix: true, Conflate: conflate, Throttle: throttle})
	}
	return subs
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
