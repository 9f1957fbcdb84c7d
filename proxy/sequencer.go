package proxy

import "github.com/mdgate/mdgate/tick"

// topicState is the sequencer's memory of one topic. Owned by the proxy loop.
type topicState struct {
	topic string // interned: every Message of this topic shares it
	epoch uint64
	seq   uint64
	term  uint16 // the failover pair's term of the last stamp (0 outside a pair)
}

// sequencer assigns per-topic sequence numbers. Owned by the proxy loop.
type sequencer struct {
	epoch  uint64
	term   uint16 // the failover pair's term while this gateway is active (ha.go); 0 outside a pair
	max    int
	topics map[string]*topicState
	base   uint64 // a new topic's first seq is base+1: above any freed topic's

	// gone remembers the last upstream stamp of topics freed while they
	// carried an upstream epoch (--ingress-stamped), so that a late copy of
	// an older message arriving by a second path is still a duplicate
	// instead of bringing a deleted value back. Bounded: past maxGone the
	// oldest are forgotten (goneOrder is a ring; goneNext its oldest).
	gone      map[string]upstreamMark
	goneOrder []string
	goneNext  int
}

// upstreamMark is the last upstream stamp of a freed topic.
type upstreamMark struct{ epoch, seq uint64 }

// maxGone bounds the freed upstream topics remembered.
const maxGone = 1 << 16

func newSequencer(epoch uint64, max int) *sequencer {
	return &sequencer{epoch: epoch, max: max, topics: make(map[string]*topicState)}
}

// lookup returns the state of topic, creating it when there is room.
func (s *sequencer) lookup(topic []byte) *topicState {
	if ts, ok := s.topics[string(topic)]; ok { // no allocation
		return ts
	}
	if len(s.topics) >= s.max {
		return nil
	}
	t := string(topic)
	ts := &topicState{topic: t, epoch: s.epoch, seq: s.base}
	if g, ok := s.gone[t]; ok {
		ts.epoch, ts.seq = g.epoch, g.seq // keep drops what the upstream sent before the delete
	}
	s.topics[t] = ts
	return ts
}

// next stamps a message arriving from a publisher.
func (s *sequencer) next(ts *topicState, now int64) tick.Stamp {
	if ts.epoch != s.epoch { // the topic was last seen from an upstream gateway
		ts.epoch, ts.seq = s.epoch, 0
	}
	ts.seq++
	ts.term = s.term
	return tick.Stamp{Epoch: s.epoch, Seq: ts.seq, Ingress: now, Term: s.term}
}

// keep accepts an upstream gateway's stamp, or says why not. Within an
// epoch the highest term wins: a stamp of a lower term than the last kept
// is stale (an active that was replaced, still publishing); one of the
// same term whose seq is not past the last kept is a duplicate (both
// gateways of a pair, or two paths); one of a higher term is kept even at
// a lower seq (the new active continues from what it had: what this
// gateway kept past it was never on the new active, docs/ha.md).
func (s *sequencer) keep(ts *topicState, st tick.Stamp) (DropReason, bool) {
	if st.Epoch == ts.epoch {
		switch {
		case st.Term < ts.term:
			return DropStaleTerm, false
		case st.Term == ts.term && st.Seq <= ts.seq:
			return DropDuplicate, false
		}
	}
	ts.epoch, ts.seq, ts.term = st.Epoch, st.Seq, st.Term
	return 0, true
}

// free forgets a deleted topic, giving its slot back. A topic created again
// later in the same epoch starts above every seq a freed topic reached, so
// its seqs never repeat one a subscriber may hold (a subscriber that saw the
// delete starts the topic afresh; one that missed it sees a gap).
func (s *sequencer) free(ts *topicState) {
	if ts.epoch == s.epoch {
		s.base = max(s.base, ts.seq)
	} else {
		s.remember(ts)
	}
	delete(s.topics, ts.topic)
}

// remember keeps a freed upstream topic's last stamp, forgetting the oldest
// past maxGone.
func (s *sequencer) remember(ts *topicState) {
	if s.gone == nil {
		s.gone = make(map[string]upstreamMark)
	}
	if _, ok := s.gone[ts.topic]; !ok {
		if len(s.goneOrder) < maxGone {
			s.goneOrder = append(s.goneOrder, ts.topic)
		} else {
			delete(s.gone, s.goneOrder[s.goneNext])
			s.goneOrder[s.goneNext] = ts.topic
			s.goneNext = (s.goneNext + 1) % maxGone
		}
	}
	s.gone[ts.topic] = upstreamMark{ts.epoch, ts.seq}
}
