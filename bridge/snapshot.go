package bridge

import (
	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/slowsub"
	"github.com/mdgate/mdgate/tick"
)

// snapshot reads the cached values a subscribe asked for, each topic once.
// With a resume point of the same epoch, a client that already has the
// latest value gets nothing for that topic, one that missed updates gets the
// value flagged as a gap with the number missed; another epoch is a gap too.
func (b *Bridge) snapshot(r *Request) []blackbox.Replay {
	seen := map[string]bool{}
	var out []blackbox.Replay
	add := func(m *tick.Message) {
		if seen[m.Topic] {
			return
		}
		seen[m.Topic] = true
		var gap bool
		var missed uint64
		if p, ok := r.Resume[m.Topic]; ok {
			epoch, _ := parseEpoch(p.Epoch) // validated by ParseRequest
			switch {
			case epoch != m.Stamp.Epoch:
				gap = true
			case p.Seq >= m.Stamp.Seq: // up to date: only skip live repeats
				out = append(out, blackbox.Replay{Item: slowsub.Item{Topic: m.Topic}, Epoch: epoch, Seq: p.Seq})
				return
			case m.Stamp.Seq-p.Seq > 1:
				gap, missed = true, m.Stamp.Seq-p.Seq-1
			}
		}
		data := appendMessage(nil, "snapshot", m, gap, missed)
		out = append(out, blackbox.Replay{Item: slowsub.Item{Topic: m.Topic, Data: data},
			Epoch: m.Stamp.Epoch, Seq: m.Stamp.Seq})
	}
	for _, t := range r.Topics {
		if m, ok := b.cache.Get(t); ok {
			add(m)
		}
	}
	for _, p := range r.Prefixes {
		for _, m := range b.cache.Snapshot(p) {
			add(m)
		}
	}
	return out
}

// subscriptions turns a request's topics and prefixes into the engine's.
func subscriptions(r *Request, conflate bool) []blackbox.Subscription {
	subs := make([]blackbox.Subscription, 0, len(r.Topics)+len(r.Prefixes))
	for _, t := range r.Topics {
		subs = append(subs, blackbox.Subscription{Key: t, Conflate: conflate})
	}
	for _, p := range r.Prefixes {
		subs = append(subs, blackbox.Subscription{Key: p, Prefix: true, Conflate: conflate})
	}
	return subs
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
