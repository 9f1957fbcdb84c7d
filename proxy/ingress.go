package proxy

import (
	"cmp"
	"fmt"
	"sync/atomic"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/tick"
)

// frameCap is the most frames an ingress message may arrive with: a message
// with more is drained and dropped as too_many_frames.
func (p *Proxy) frameCap() int {
	if p.cfg.IngressStamped {
		return p.cfg.MaxFrames + 2
	}
	return p.cfg.MaxFrames + 1
}

// drainIngress takes up to Batch messages from the XSUB in one cgo call,
// forwards them, and flushes every egress once.
func (p *Proxy) drainIngress(s *sockets) error {
	if !p.ingressHeld {
		if err := s.in.recv(s.xsub, p.cfg.Batch, p.frameCap()); err != nil {
			return fmt.Errorf("ingress recv: %w", err)
		}
		if h := recvHook.Load(); h != nil {
			(*h)()
		}
	}
	// On a hold the batch waits in s.in for its end, then is stamped, or
	// dropped as passive if the peer took over.
	if held, err := p.stampsWait(s); err != nil || held {
		p.ingressHeld = held
		return err
	}
	p.ingressHeld = false
	p.takeFirstSubscriptions(s)
	var msgs, bytes int
	at := p.now().UnixNano() // the batch's ingress time: taken in one call, microseconds apart
	raw := s.xpub != nil && p.subs[egressRaw].any()
	s.in.each(func(i, n int, in *tick.Message) {
		if n < 0 {
			p.drop(DropTooManyFrames, nil)
			return
		}
		if !p.active() {
			p.drop(DropPassive, nil) // the active stamps these; they reach us mirrored
			return
		}
		if m := p.admit(in, at, p.cfg.IngressStamped); m != nil {
			msgs++
			bytes += m.Size()
			if raw {
				s.in.forward(i, len(m.Frames)) // sent below, libzmq's frames moved
			}
			p.fanOut(s, m)
		}
	})
	if msgs > 0 {
		p.m.ingressMsgs.Add(float64(msgs))
		p.m.ingressBytes.Add(float64(bytes))
	}
	if raw { // first: nothing else is queued for the raw egress
		n, failed := s.in.send(s.xpub)
		p.countSent(egressRaw, n, failed)
	}
	p.flush(s)
	sent := p.now().UnixNano()
	for _, t := range p.ingress {
		p.m.forward.Observe(float64(sent-t) / 1e9)
	}
	p.ingress = p.ingress[:0]
	return nil
}

// recvHook, when set (tests), runs after every ingress receive, before
// the batch is stamped.
var recvHook atomic.Pointer[func()]

// admit validates and stamps one ingress message received at at (Unix ns),
// m with only its Frames set (keeps its upstream stamp when stamped): m,
// completed, or nil when it is dropped.
func (p *Proxy) admit(m *tick.Message, at int64, stamped bool) *tick.Message {
	frames := m.Frames
	if len(frames) == 0 || len(frames[0]) == 0 {
		return p.drop(DropEmptyTopic, frames)
	}
	var upstream tick.Stamp
	if stamped {
		if len(frames) < 2 {
			return p.drop(DropBadStamp, frames)
		}
		st, err := tick.ParseStamp(frames[len(frames)-1])
		if err != nil {
			return p.drop(DropBadStamp, frames)
		}
		if p.cfg.IngressResubscribe > 0 {
			p.heard = time.Unix(0, at)
		}
		if st.Flags&tick.FlagHeartbeat != 0 {
			return nil // upstream is alive; nothing to forward
		}
		upstream, frames = st, frames[:len(frames)-1]
	}
	if len(frames) > p.cfg.MaxFrames {
		return p.drop(DropTooManyFrames, frames)
	}
	if len(frames[0]) > p.cfg.MaxTopicBytes {
		return p.drop(DropTopicTooLong, frames)
	}
	if size := frameBytes(frames); size > p.cfg.MaxMsgBytes {
		return p.drop(DropTooLarge, frames)
	}
	n := len(p.seq.topics)
	ts := p.seq.lookup(frames[0])
	if ts == nil {
		return p.drop(DropTopicLimit, frames)
	}
	if len(p.seq.topics) != n {
		p.m.topics.Set(float64(len(p.seq.topics)))
	}
	m.Topic, m.Frames = ts.topic, frames
	if stamped {
		if r, ok := p.seq.keep(ts, upstream); !ok {
			return p.drop(r, frames)
		}
		m.Stamp = upstream
		m.Stamp.Flags &^= tick.FlagReplay // replayed upstream, live here
	} else {
		m.Stamp = p.seq.next(ts, at)
		if tick.IsDeleteFrames(frames) {
			m.Stamp.Flags |= tick.FlagDelete // a publisher's delete: [topic, ""]
		}
	}
	if m.Stamp.Flags&tick.FlagDelete != 0 {
		p.seq.free(ts) // a deleted topic gives its --max-topics slot back
		p.m.topics.Set(float64(len(p.seq.topics)))
	}
	return m
}

func frameBytes(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

func (p *Proxy) drop(r DropReason, frames [][]byte) *tick.Message {
	p.m.dropped[r].Inc()
	e := p.log.Debug()
	if !e.Enabled() && p.dropLog.Allow() {
		e = p.log.Warn() // refusals are visible at the default level, one a second
	}
	if e.Enabled() {
		topic := []byte(nil)
		if len(frames) > 0 {
			topic = frames[0]
		}
		e.Str("reason", r.String()).Int("frames", len(frames)).Bytes("topic", trim(topic)).Msg("ingress message dropped (see mdgate_ingress_dropped_total; at info level at most one logged a second)")
	}
	return nil
}

func trim(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// takeFirstSubscriptions drains the subscriptions waiting on an egress the
// loop believes has none, before a batch is matched against it: libzmq
// takes a subscription as soon as the socket is touched (the getsockopt
// does it), and a batch must not be skipped on an egress libzmq would send
// it to. One getsockopt a batch per egress without a subscriber.
func (p *Proxy) takeFirstSubscriptions(s *sockets) {
	for _, e := range [...]egress{egressRaw, egressStamped} {
		sock := s.egressSocket(e)
		if sock == nil || p.subs[e].any() {
			continue
		}
		if ev, err := sock.GetEvents(); err == nil && ev&zmq.POLLIN != 0 {
			p.drainSubscriptions(s, sock, e)
		}
	}
}

// fanOut queues m on every egress but the raw one (drainIngress forwards
// the frames it received) and hands it to every sink. An egress nobody is
// subscribed to is skipped: its XPUB would drop the message.
func (p *Proxy) fanOut(s *sockets, m *tick.Message) {
	spub := s.spub != nil && p.subs[egressStamped].any()
	if spub || s.capture != nil {
		p.scratch = tick.AppendStamp(p.scratch[:0], m.Stamp)
	}
	if spub {
		p.out[egressStamped].add(m.Frames, p.scratch)
	}
	if s.capture != nil {
		p.queueCapture(captureMsg, p.scratch, m.Frames)
	}
	p.publish(m)
	p.ingress = append(p.ingress, m.Stamp.Ingress)
}

// publish hands m to the cache and every sink.
func (p *Proxy) publish(m *tick.Message) {
	if p.cache != nil {
		p.cache.Update(m)
	}
	for _, sink := range p.sinks {
		sink.Publish(m)
	}
}

// expire publishes a delete notice for every cached value whose time to
// live ran out: on the stamped egress (flag delete), the capture and every
// sink; not on the raw egress, where it could not be told from a value.
func (p *Proxy) expire(s *sockets) {
	if p.cache == nil {
		return
	}
	now := p.now().UnixNano()
	if at := p.cache.NextExpiry(); at == 0 || at > now {
		return
	}
	if held, err := p.stampsWait(s); err != nil || held || !p.active() {
		p.haErr = cmp.Or(p.haErr, err)
		return
	}
	now = p.now().UnixNano()
	p.cache.Expire(now, func(topic string) {
		ts := p.seq.lookup([]byte(topic))
		if ts == nil {
			return
		}
		st := p.seq.next(ts, now)
		st.Flags |= tick.FlagDelete
		p.seq.free(ts)
		p.m.topics.Set(float64(len(p.seq.topics)))
		m := &tick.Message{Topic: ts.topic, Frames: [][]byte{[]byte(ts.topic), {}}, Stamp: st}
		p.scratch = tick.AppendStamp(p.scratch[:0], m.Stamp)
		if s.spub != nil {
			p.out[egressStamped].add(m.Frames, p.scratch)
		}
		if s.capture != nil {
			p.queueCapture(captureMsg, p.scratch, m.Frames)
		}
		for _, sink := range p.sinks {
			sink.Publish(m)
		}
	})
	p.flush(s)
}

// flush sends what every egress has queued. XPUB never blocks: libzmq drops
// for a subscriber whose HWM is full (subscribers see the gap in the stamped
// stream's sequence numbers); a refused send is counted.
func (p *Proxy) flush(s *sockets) {
	for e := range numEgress {
		b := &p.out[e]
		if b.len() == 0 {
			continue
		}
		p.countSent(egress(e), b.len(), b.flush(s.egressSocket(egress(e))))
	}
}

// countSent counts n messages sent on e, failed of them refused.
func (p *Proxy) countSent(e egress, n, failed int) {
	p.m.egressMsgs[e].Add(float64(n - failed))
	if failed > 0 {
		p.m.egressErrors[e].Add(float64(failed))
	}
}

// Capture message kinds: the first frame of every capture message.
const (
	captureMsg   = "msg"
	captureSub   = "sub"
	captureUnsub = "unsub"
)

// queueCapture queues [kind, head, frames...] for the capture PUB.
func (p *Proxy) queueCapture(kind string, head []byte, frames [][]byte) {
	all := make([][]byte, 0, 2+len(frames))
	all = append(all, []byte(kind), head)
	all = append(all, frames...)
	p.out[egressCapture].add(all, nil)
}
