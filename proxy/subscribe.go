package proxy

import (
	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/tick"
)

// drainSubscriptions reads subscribe (1) and unsubscribe (0) frames.
func (p *Proxy) drainSubscriptions(s *sockets, sock *zmq.Socket, e egress) {
	defer p.flush(s) // capture copies
	for range p.cfg.Batch {
		b, err := sock.RecvBytes(zmq.DONTWAIT)
		if err != nil {
			return
		}
		if len(b) == 0 || b[0] > 1 {
			continue // not a subscription frame: XPUB passes other frames through
		}
		kind := captureSub
		if b[0] == 1 {
			if p.ha != nil && string(b[1:]) == tick.VoteTopic {
				if err := p.voteSubscribe(); err != nil {
					p.haErr = err
				}
			}
			p.m.subscribes[e].Inc()
			p.m.replays[e][p.subscribe(e, b[1:])].Inc()
		} else {
			kind = captureUnsub
			p.m.unsubscribes[e].Inc()
			if p.subs[e].remove(b[1:]) { // libzmq reports only the last unsubscribe
				p.replays.cancel(replayKey{e, string(b[1:])})
			}
		}
		p.m.activeSubs[e].Set(float64(p.subs[e].len()))
		if s.capture != nil {
			p.queueCapture(kind, []byte(egressNames[e]), [][]byte{b[1:]})
		}
		if ev := p.log.Debug(); ev.Enabled() {
			ev.Str("egress", egressNames[e]).Str("op", kind).Bytes("prefix", trim(b[1:])).Msg("subscription")
		}
	}
}

// subscribe records a subscription to prefix and schedules its replay.
func (p *Proxy) subscribe(e egress, prefix []byte) ReplayOutcome {
	if len(prefix) > p.cfg.MaxTopicBytes {
		return ReplayRefusedTooLong // matches nothing: neither tracked nor replayed
	}
	if !p.subs[e].add(prefix) {
		return ReplayRefusedSubLimit
	}
	if p.cache == nil {
		return ReplayQueued
	}
	return p.replays.request(replayKey{e, string(prefix)}, p.now().UnixNano())
}

// runReplays does this iteration's share of replay work and flushes it.
func (p *Proxy) runReplays(s *sockets) {
	if p.replays.pending() == 0 {
		return
	}
	if p.replays.step(p.now().UnixNano(), p.replayStep) {
		p.m.replayCarried.Inc()
	}
	p.m.replayPending.Set(float64(p.replays.pending()))
	p.flush(s)
}

// replayStep queues up to n cached values of k's prefix after topic `after`
// on k's egress. On the stamped egress they carry the replay flag and their
// original seq, so a subscriber that has them already drops them.
func (p *Proxy) replayStep(k replayKey, after string, n int) (string, int, bool) {
	sent := 0
	last, done := p.cache.ReplayFrom(k.prefix, after, n, func(m *tick.Message) {
		sent++
		if k.e == egressStamped {
			st := m.Stamp
			st.Flags |= tick.FlagReplay
			p.scratch = tick.AppendStamp(p.scratch[:0], st)
			p.out[k.e].add(m.Frames, p.scratch)
		} else {
			p.out[k.e].add(m.Frames, nil)
		}
	})
	return last, sent, done
}
