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
	var n note
	if rp, ok := p.resume[m.Topic]; ok {
		epoch, _ := parseEpoch(rp.Epoch)
		switch {
		case epoch != m.Stamp.Epoch:
			n.gap = true
		case m.Stamp.Seq > rp.Seq+1:
			n.gap, n.missed = true, m.Stamp.Seq-rp.Seq-1
		}
	}
	return appendMessage(nil, "snapshot", m, n)
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

// otherTerm reports whether the gateway knows the update at the client's
// resume point and it carries another term than the client's (both of a
// failover pair; a client without a term is not checked). m is the
// topic's latest value.
func (s *snapshot) otherTerm(rp ResumePoint, m *tick.Message) bool {
	epoch, _ := parseEpoch(rp.Epoch)
	if rp.Term == 0 || epoch != m.Stamp.Epoch || rp.Seq == 0 || rp.Seq > m.Stamp.Seq {
		return false
	}
	if rp.Seq == m.Stamp.Seq {
		return m.Stamp.Term != rp.Term
	}
	var at *tick.Message
	s.hist.HistoryAfter(m.Topic, epoch, rp.Seq-1, s.now, 1, func(h *tick.Message) { at = h })
	return at != nil && at.Stamp.Epoch == epoch && at.Stamp.Seq == rp.Seq && at.Stamp.Term != rp.Term
}

// upToDate: the client holds m already. A client ahead of m is not (it
// diverged: emit).
func upToDate(rp ResumePoint, m *tick.Message) bool {
	epoch, _ := parseEpoch(rp.Epoch)
	return epoch == m.Stamp.Epoch && rp.Seq == m.Stamp.Seq
}

// start returns the snapshot as the client's writer takes it, reading a
// view of c taken now (Unix ns, for history ages).
func (p *snapshotPlan) start(c Cache, now int64) *snapshot {
	return &snapshot{plan: p, view: c.View(), hist: c, now: now}
}

// snapshot is one subscribe's snapshot being sent: a point-in-time view of
// the cache read in topic order from a cursor, each value encoded when
// taken (blackbox.Snapshot; called with the client's lock held). A topic
// the client resumes whose history is kept is replayed update by update
// (cur), possibly over several Takes.
type snapshot struct {
	plan  *snapshotPlan
	view  lvc.View
	hist  Cache
	now   int64
	ti    int    // next exact topic
	pi    int    // current prefix
	after string // last topic taken under prefixes[pi]
	cur   *historyCursor
	buf   []*tick.Message // scratch for HistoryAfter
}

// historyCursor is a topic's history being replayed: the last update given.
type historyCursor struct {
	topic      string
	epoch, seq uint64
	first      bool // nothing given yet
}

// Tags of a replayed history update (blackbox.Replay.Tag): bits, and the
// missed count above them.
const (
	tagHistory   = 1 << iota // a retained update, sent as "update" with "replay":true
	tagRecovered             // the first of its topic, directly after the client's point
	tagGap                   // updates before it are gone; missed = Tag >> tagShift
	tagDiverged              // the latest value sent to a client ahead of it (not with tagHistory)
	tagShift     = iota
)

// historyStep bounds the updates read from a topic's history at once
// (while its ring is locked against the proxy loop).
const historyStep = 256

// Take gives about maxBytes of values (by frame bytes) and reports whether
// it is done.
func (s *snapshot) Take(maxBytes int, fn func(blackbox.Replay)) bool {
	n := 0
	for s.ti < len(s.plan.topics) && n < maxBytes {
		if m, ok := s.view.Get(s.plan.topics[s.ti]); ok {
			if !s.emit(m, &n, maxBytes, fn) {
				return false
			}
		}
		s.ti++
	}
	for s.pi < len(s.plan.prefixes) && n < maxBytes {
		complete, paused := true, false
		s.view.Ascend(s.plan.prefixes[s.pi], s.after, func(m *tick.Message) bool {
			if n >= maxBytes {
				complete = false
				return false
			}
			if !s.emit(m, &n, maxBytes, fn) {
				complete, paused = false, true
				return false
			}
			s.after = m.Topic
			return true
		})
		if paused {
			return false
		}
		if complete {
			s.pi++
			s.after = ""
		}
	}
	return s.ti >= len(s.plan.topics) && s.pi >= len(s.plan.prefixes)
}

// emit gives what the client gets of topic m.Topic (m its latest value in
// the view) and reports whether the topic is done; false leaves a history
// replay part way, continued by the next Take.
func (s *snapshot) emit(m *tick.Message, n *int, maxBytes int, fn func(blackbox.Replay)) bool {
	latest := func(r blackbox.Replay) bool {
		s.cur = nil
		*n += m.Size() + 64 // about the JSON around the frames
		fn(r)
		return true
	}
	if s.cur == nil || s.cur.topic != m.Topic {
		s.cur = nil // a topic removed while being replayed ends its replay
		rp, ok := s.plan.resume[m.Topic]
		if ok && s.otherTerm(rp, m) {
			// The client's update at its seq was stamped under another term
			// than ours (by an active that was replaced): what it holds past
			// the takeover is not what we have. It starts over from our latest.
			return latest(blackbox.Replay{Topic: m.Topic, Epoch: m.Stamp.Epoch, Seq: m.Stamp.Seq, Msg: m, Tag: tagDiverged})
		}
		if !ok || upToDate(rp, m) {
			return latest(s.plan.replay(m))
		}
		epoch, _ := parseEpoch(rp.Epoch) // validated by ParseRequest
		if epoch == m.Stamp.Epoch && rp.Seq > m.Stamp.Seq {
			// The client is ahead: it saw updates this gateway never got
			// (it resumes on the standby of a failover pair). Its seqs past
			// ours will be stamped again with other values: it starts over
			// from our latest, told so.
			return latest(blackbox.Replay{Topic: m.Topic, Epoch: m.Stamp.Epoch, Seq: m.Stamp.Seq, Msg: m, Tag: tagDiverged})
		}
		s.cur = &historyCursor{topic: m.Topic, epoch: epoch, seq: rp.Seq, first: true}
	}
	c := s.cur
	for *n < maxBytes {
		s.buf = s.buf[:0]
		res := s.hist.HistoryAfter(c.topic, c.epoch, c.seq, s.now, historyStep, func(h *tick.Message) { s.buf = append(s.buf, h) })
		switch {
		case c.first && (!res.Kept || res.Latest):
			// nothing kept to replay: the latest value, as without history
			return latest(s.plan.replay(m))
		case res.Latest:
			// the history moved past the last update given: the topic's
			// latest value now (live updates of it were left to this
			// replay), flagged with what is gone before it
			if now, ok := s.hist.Get(m.Topic); ok {
				m = now
			}
			tag := uint64(tagHistory)
			switch {
			case m.Stamp.Epoch != c.epoch:
				tag |= tagGap
			case m.Stamp.Seq > c.seq+1:
				tag |= tagGap | (m.Stamp.Seq-c.seq-1)<<tagShift
			}
			return latest(blackbox.Replay{Topic: m.Topic, Epoch: m.Stamp.Epoch, Seq: m.Stamp.Seq, Msg: m, Tag: tag})
		case res.N == 0:
			// up to date (first), done, or the topic went away meanwhile
			if c.first {
				fn(blackbox.Replay{Topic: c.topic, Epoch: c.epoch, Seq: c.seq}) // only the floor
			}
			s.cur = nil
			return true
		}
		for i, h := range s.buf {
			tag := uint64(tagHistory)
			switch {
			case i == 0 && res.Gap:
				tag |= tagGap | res.Missed<<tagShift
			case i == 0 && c.first:
				tag |= tagRecovered
			case h.Stamp.Epoch != c.epoch:
				tag |= tagGap // another epoch starts (a restart): what came between is not known
			}
			c.first = false
			c.epoch, c.seq = h.Stamp.Epoch, h.Stamp.Seq
			*n += h.Size() + 64
			fn(blackbox.Replay{Topic: h.Topic, Epoch: h.Stamp.Epoch, Seq: h.Stamp.Seq, Msg: h, Tag: tag})
		}
		clear(s.buf) // drop the references
		if !res.More {
			s.cur = nil
			return true
		}
	}
	return false
}

// Encode renders a value Take gave.
func (s *snapshot) Encode(r *blackbox.Replay) []byte {
	if r.Tag&tagDiverged != 0 {
		return appendMessage(nil, "snapshot", r.Msg, note{diverged: true})
	}
	if r.Tag&tagHistory == 0 {
		return s.plan.encode(r.Msg)
	}
	return appendMessage(nil, "update", r.Msg, note{replay: true, recovered: r.Tag&tagRecovered != 0,
		gap: r.Tag&tagGap != 0, missed: r.Tag >> tagShift})
}

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
