package slowsubzmq

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/zsock"
	"github.com/mdgate/mdgate/snapshot"
	"github.com/mdgate/mdgate/tick"
)

// The repair bounds of a SubConfig left at 0.
const (
	DefaultRepairMaxBytes = 4 << 20
	DefaultRepairTimeout  = 5 * time.Second
)

// RepairConnectWait is how long a SINCE waits for a connection to a
// repair endpoint (RepairTimeout if shorter) before it goes to the next
// one: a failover pair's dead gateway is left after this, not after
// RepairTimeout. A request is only ever queued on a connection made
// (ZMQ_IMMEDIATE), so one to a gateway that is down fails at once instead
// of waiting in libzmq for a reconnect.
const RepairConnectWait = 500 * time.Millisecond

// liveBatch is how many stream messages a repairing Recv takes per wake-up
// at most.
const liveBatch = 256

// RepairError: a gap the gateway could not repair. Its history no longer
// held every update after the one the Sub had (Status snapshot.Gap,
// Missed of them gone, 0 when not known), it keeps no history of the topic
// (snapshot.NoHistory), or the request failed (Err: an ERR reply, a
// *snapshot.ServerError, or no answer within RepairTimeout).
type RepairError struct {
	Topic      string
	Epoch, Seq uint64 // the update the Sub held, repaired from
	Got        uint64 // the seq that showed the gap
	Status     snapshot.Status
	Missed     uint64
	Err        error
}

func (e *RepairError) Error() string {
	head := fmt.Sprintf("gap in sequence: %s want seq %d, got %d", e.Topic, e.Seq+1, e.Got)
	switch {
	case e.Err != nil:
		return fmt.Sprintf("%s; repair failed: %v", head, e.Err)
	case e.Status == snapshot.Gap && e.Missed > 0:
		return fmt.Sprintf("%s; not repaired: %d updates are gone from the gateway's history", head, e.Missed)
	case e.Status == snapshot.Gap:
		return head + "; not repaired: updates of another epoch are gone from the gateway's history"
	}
	return fmt.Sprintf("%s; not repaired: the gateway keeps no history of %s", head, e.Topic)
}

// Unwrap gives ErrGap, and Err when the request failed.
func (e *RepairError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrGap, e.Err}
	}
	return []error{ErrGap}
}

// RepairStats counts what a Sub repaired.
type RepairStats struct {
	Repairs int // gaps repaired (SINCE answered recovered)
	Updates int // updates recovered by repairs (Recv delivers them in order)
	Dropped int // live updates held behind a repair and let go at RepairMaxBytes (a later repair brings them back)
}

// RepairStats returns the counts so far (zero without SubConfig.Repair).
func (s *Sub) RepairStats() RepairStats {
	if s.rep == nil {
		return RepairStats{}
	}
	return s.rep.stats
}

// delivery is one result of Recv, in order.
type delivery struct {
	m   *tick.Message
	err error
}

// pending is one gap to repair.
type pending struct {
	topic    string
	from     last   // the update held: SINCE asks for those after it
	got      uint64 // the seq that showed the gap
	check    bool   // a higher term: ask from the seq before from's, to check the update at from.seq
	res      snapshot.Result
	sent     bool      // on the connection; else waiting for one
	deadline time.Time // for the answer once sent, for a connection until then
	giveUp   time.Time // set when first tried: RepairTimeout times the endpoints
}

// repairer is a Sub's repair of gaps through SINCE. A gap in a topic holds
// its further updates and queues a SINCE from the last update delivered;
// one SINCE is in flight at a time (the server answers a connection's
// requests in order). While it is, the stream is still read: other topics'
// updates are delivered, and held topics' updates are held (bounded in
// bytes). The recovered updates are delivered in order, then the held ones
// through the same rule (repeats dropped; a new gap is repaired in turn).
// Owned by the Sub's goroutine, like the sockets.
type repairer struct {
	s        *Sub
	dealers  []*zmq.Socket // one per endpoint, connected from the start
	dealer   *zmq.Socket   // dealers[epi]: the one asked now
	poller   *zmq.Poller   // the SUB and the DEALERs
	timeout  time.Duration
	maxBytes int
	maxWait  time.Duration

	ready     []delivery                 // Recv's results, oldest first
	held      map[string][]*tick.Message // live updates of topics being repaired (or waiting to be)
	heldBytes int
	queue     []*pending // gaps waiting for the one in flight
	cur       *pending   // the SINCE in flight
	stats     RepairStats

	eps     []string  // the snapshot endpoints: Repair, then RepairEndpoints
	epi     int       // the one asked now
	round   int       // moves since the last answer
	retryAt time.Time // no request before it (a backoff once every endpoint said passive)
	moves   int
	passive int
}

func newRepairer(s *Sub) (*repairer, error) {
	var eps []string
	for _, ep := range append([]string{s.cfg.Repair}, s.cfg.RepairEndpoints...) {
		if ep != "" {
			eps = append(eps, ep)
		}
	}
	r := &repairer{s: s, poller: zmq.NewPoller(), timeout: -1, eps: eps, dealers: make([]*zmq.Socket, len(eps)),
		maxBytes: s.cfg.RepairMaxBytes, maxWait: s.cfg.RepairTimeout, held: map[string][]*tick.Message{}}
	if r.maxBytes <= 0 {
		r.maxBytes = DefaultRepairMaxBytes
	}
	if r.maxWait <= 0 {
		r.maxWait = DefaultRepairTimeout
	}
	r.poller.Add(s.sock, zmq.POLLIN)
	// Every endpoint's connection from the start: after a failover the
	// other gateway's is up already, and one slow to connect (a long
	// round trip, a CURVE handshake) is never cut short by a move.
	for i := range eps {
		if err := r.redial(i); err != nil {
			r.close()
			return nil, err
		}
	}
	r.dealer = r.dealers[0]
	return r, nil
}

// redial opens dealers[i] anew (closing the old one): a new connection,
// so that a late answer to a request given up on is not taken for the
// next one's.
func (r *repairer) redial(i int) error {
	d, err := dealer(r.eps[i])
	if err != nil {
		return err
	}
	if old := r.dealers[i]; old != nil {
		r.poller.RemoveBySocket(old)
		old.Close()
	}
	r.dealers[i] = d
	r.poller.Add(d, zmq.POLLIN)
	return nil
}

// close closes the dealers.
func (r *repairer) close() error {
	var errs []error
	for _, d := range r.dealers {
		if d != nil {
			errs = append(errs, d.Close())
		}
	}
	return errors.Join(errs...)
}

// dealer opens a DEALER to a snapshot endpoint.
func dealer(ep string) (*zmq.Socket, error) {
	d, err := zmq.NewSocket(zmq.DEALER)
	if err != nil {
		return nil, fmt.Errorf("repair socket: %w", err)
	}
	if err := errors.Join(d.SetLinger(0), d.SetImmediate(true), d.Connect(ep)); err != nil {
		d.Close()
		return nil, fmt.Errorf("repair connect %s: %w", ep, err)
	}
	return d, nil
}

// moveOn goes to the next snapshot endpoint's connection. A request that
// went out on this one and was given up on (unanswered) may still be
// answered late: this endpoint gets a new connection first. Once every
// endpoint has been asked since the last answer, the next request waits a
// backoff.
func (r *repairer) moveOn(unanswered bool) error {
	r.round++
	if r.round%len(r.eps) == 0 {
		r.retryAt = time.Now().Add(min(10*time.Millisecond<<min(r.round/len(r.eps), 7), time.Second))
	}
	if unanswered {
		if err := r.redial(r.epi); err != nil {
			return fmt.Errorf("slowsub: %w", err)
		}
		r.dealer = r.dealers[r.epi]
	}
	if len(r.eps) == 1 {
		return nil
	}
	r.epi = (r.epi + 1) % len(r.eps)
	r.dealer = r.dealers[r.epi]
	r.moves++
	return nil
}

// retry puts p back at the head of the queue after a passive answer, no
// connection or no answer, moving to the next endpoint; past p's give-up
// time the Sub ends with a *RepairError. unanswered: p went out and its
// answer did not come.
func (r *repairer) retry(p *pending, why error, unanswered bool) error {
	if !time.Now().Before(p.giveUp) {
		r.fail(p, why)
		return nil
	}
	p.res = snapshot.Result{}
	r.queue = append([]*pending{p}, r.queue...)
	return r.moveOn(unanswered)
}

// recv is Recv with repair: it reads the stream and the repair replies
// until it has something to deliver.
func (r *repairer) recv() (*tick.Message, error) {
	var deadline time.Time
	if r.timeout >= 0 {
		deadline = time.Now().Add(r.timeout)
	}
	for {
		if len(r.ready) > 0 {
			d := r.ready[0]
			r.ready[0] = delivery{}
			r.ready = r.ready[1:]
			return d.m, d.err
		}
		wait := time.Duration(-1)
		if !deadline.IsZero() {
			wait = max(time.Until(deadline), 0)
		}
		if r.cur != nil && (wait < 0 || time.Until(r.cur.deadline) < wait) {
			wait = max(time.Until(r.cur.deadline), 0)
		}
		if r.cur == nil && len(r.queue) > 0 && (wait < 0 || time.Until(r.retryAt) < wait) {
			wait = max(time.Until(r.retryAt), 0)
		}
		if v := r.s.untilVote(); v >= 0 && (wait < 0 || v < wait) {
			wait = v
		}
		polled, err := r.poller.Poll(wait)
		if err != nil && !zsock.Temporary(err) {
			return nil, fmt.Errorf("slowsub: poll: %w", err)
		}
		for _, p := range polled {
			var err error
			switch {
			case p.Socket == r.dealer:
				err = r.readReplies()
			case p.Socket == r.s.sock:
				err = r.readLive()
			default:
				discard(p.Socket) // another endpoint's: nothing asked there is awaited
			}
			if err != nil {
				return nil, err
			}
		}
		if r.cur != nil && !r.cur.sent {
			r.send()
		}
		if r.cur != nil && !time.Now().Before(r.cur.deadline) {
			p := r.cur
			r.cur = nil
			r.poller.UpdateBySocket(r.dealer, zmq.POLLIN)
			if len(r.eps) > 1 || !p.sent {
				if err := r.retry(p, fmt.Errorf("no answer from %s within %v", strings.Join(r.eps, " nor "), r.maxWait), p.sent); err != nil {
					return nil, err
				}
			} else {
				r.fail(p, fmt.Errorf("no answer from %s within %v", r.eps[0], r.maxWait))
			}
		}
		if err := r.s.voteIfSilent(time.Now()); err != nil {
			return nil, err
		}
		r.next()
		if len(r.ready) == 0 && !deadline.IsZero() && !time.Now().Before(deadline) {
			return nil, fmt.Errorf("slowsub: recv: %w", zmq.Errno(syscall.EAGAIN))
		}
	}
}

// readLive takes the stream's waiting messages (a batch at most).
func (r *repairer) readLive() error {
	for range liveBatch {
		frames, err := r.s.sock.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if zsock.Temporary(err) {
				return nil
			}
			return fmt.Errorf("slowsub: recv: %w", err)
		}
		r.s.heardNow()
		m, err := parse(frames)
		if err != nil {
			r.ready = append(r.ready, delivery{err: err})
			continue
		}
		if m.Stamp.Flags&tick.FlagHeartbeat != 0 {
			continue // a failover pair's heartbeat (subscribed to every topic): not an update
		}
		r.take(m)
	}
	return nil
}

// take runs one live update through the sequence rule: held behind its
// topic's repair, dropped (a repeat), delivered, or the start of a repair.
// Unlike a Sub without repair, a replay past seq+1 is a gap too: the
// updates before it were lost on the way.
func (r *repairer) take(m *tick.Message) {
	if _, ok := r.held[m.Topic]; ok {
		r.hold(m)
		return
	}
	st := m.Stamp
	prev, ok := r.s.seen[m.Topic]
	switch {
	case ok && prev.epoch == st.Epoch && st.Term < prev.term:
		r.s.fo.StaleTerm++
		return // stamped by an active since replaced: the highest term wins within an epoch
	case ok && prev.epoch == st.Epoch && st.Term > prev.term && st.Seq <= prev.seq:
		r.diverged(m, prev)
		return
	case ok && prev.epoch == st.Epoch && st.Seq <= prev.seq:
		return // a replay (or repeat) of what we have
	case ok && prev.epoch != st.Epoch:
		r.ready = append(r.ready, delivery{m, &GapError{Topic: m.Topic, Epoch: prev.epoch, NewEpoch: st.Epoch}})
		return
	case ok && (st.Seq != prev.seq+1 || st.Term > prev.term):
		// A gap, or a new active (a higher term) past our seq, which may
		// have stamped our seq again: the repair then asks from the seq
		// before ours, to check that the update at ours is the one we hold.
		r.held[m.Topic] = nil
		r.hold(m)
		r.queue = append(r.queue, &pending{topic: m.Topic, from: prev, got: st.Seq, check: st.Term > prev.term && prev.seq > 0})
		r.next()
		return
	}
	r.s.note(m)
	r.ready = append(r.ready, delivery{m, r.s.lagged(m)})
}

// diverged delivers m, which replaces what was held of its topic from its
// seq on, with a *DivergedError.
func (r *repairer) diverged(m *tick.Message, prev last) {
	r.s.note(m)
	r.s.fo.Diverged++
	r.ready = append(r.ready, delivery{m, &DivergedError{Topic: m.Topic, Epoch: prev.epoch, Seq: prev.seq, Term: prev.term,
		Got: m.Stamp.Seq, NewTerm: m.Stamp.Term}})
}

// hold keeps m behind its topic's repair. Past maxBytes the topic's held
// updates, and m if it still does not fit, are let go: the repair brings
// back what it can, and the first update after it shows the rest as a new
// gap, repaired in turn.
func (r *repairer) hold(m *tick.Message) {
	size := m.Size()
	if r.heldBytes+size > r.maxBytes {
		h := r.held[m.Topic]
		for i, x := range h {
			r.heldBytes -= x.Size()
			h[i] = nil
		}
		r.stats.Dropped += len(h)
		r.held[m.Topic] = h[:0]
		if r.heldBytes+size > r.maxBytes {
			r.stats.Dropped++
			return
		}
	}
	r.held[m.Topic] = append(r.held[m.Topic], m)
	r.heldBytes += size
}

// next sends the next queued SINCE when none is in flight, or waits for
// the connection to send it on (RepairConnectWait).
func (r *repairer) next() {
	if r.cur != nil || len(r.queue) == 0 || time.Now().Before(r.retryAt) {
		return
	}
	p := r.queue[0]
	r.queue[0] = nil
	r.queue = r.queue[1:]
	now := time.Now()
	if p.giveUp.IsZero() {
		p.giveUp = now.Add(r.maxWait * time.Duration(len(r.eps)))
	}
	p.sent, p.deadline = false, now.Add(min(r.maxWait, RepairConnectWait))
	r.cur = p
	r.send()
}

// send sends the SINCE waiting in r.cur if the dealer has a connection;
// else the poller waits for one (POLLOUT), until cur's deadline.
func (r *repairer) send() {
	p := r.cur
	from := p.from.seq
	if p.check {
		from--
	}
	req := snapshot.SinceRequest(p.topic, p.from.epoch, from)
	if _, err := r.dealer.SendMessageDontwait(req[0], req[1], req[2], req[3]); err != nil {
		if zsock.Temporary(err) { // no connection yet, or none any more
			r.poller.UpdateBySocket(r.dealer, zmq.POLLIN|zmq.POLLOUT)
			return
		}
		r.cur = nil
		r.fail(p, fmt.Errorf("send SINCE: %w", err))
		return
	}
	r.poller.UpdateBySocket(r.dealer, zmq.POLLIN)
	p.sent, p.deadline = true, time.Now().Add(r.maxWait)
}

// discard drops what waits on a dealer not asked now.
func discard(d *zmq.Socket) {
	for {
		if _, err := d.RecvMessageBytes(zmq.DONTWAIT); err != nil {
			return
		}
	}
}

// readReplies takes the repair replies waiting.
func (r *repairer) readReplies() error {
	for {
		f, err := r.dealer.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			if zsock.Temporary(err) {
				return nil
			}
			return fmt.Errorf("slowsub: repair recv: %w", err)
		}
		p := r.cur
		if p == nil {
			continue // the rest of a reply given up on: the Sub has ended
		}
		end, err := p.res.Take(f)
		var se *snapshot.ServerError
		switch {
		case errors.As(err, &se) && se.Code == snapshot.ErrPassive:
			// A standby (the ask was a vote): the next endpoint.
			r.cur = nil
			r.passive++
			if err := r.retry(p, err, false); err != nil {
				return err
			}
			r.next()
		case err != nil:
			r.cur = nil
			r.fail(p, err)
		case end:
			r.cur = nil
			r.round = 0
			r.finish(p)
			r.next()
		}
	}
}

// finish delivers a repair: the recovered updates, then the topic's held
// ones through the sequence rule. A reply that is not recovered ends the
// Sub with a *RepairError.
func (r *repairer) finish(p *pending) {
	if p.res.Status != snapshot.Recovered {
		r.ready = append(r.ready, delivery{r.first(p.topic), &RepairError{Topic: p.topic, Epoch: p.from.epoch, Seq: p.from.seq,
			Got: p.got, Status: p.res.Status, Missed: p.res.Missed}})
		return
	}
	at, values := p.from, p.res.Values
	if p.check {
		// The first value is the gateway's update at the seq held: ours if
		// under our term, else a divergence, and the topic goes on from it.
		at.seq--
		if len(values) > 0 && values[0].Stamp.Epoch == at.epoch && values[0].Stamp.Seq == at.seq+1 {
			v := values[0]
			values = values[1:]
			at.seq++
			if v.Stamp.Term != p.from.term {
				r.diverged(v, p.from)
			}
		}
	}
	for _, v := range values {
		if v.Topic != p.topic || v.Stamp.Epoch != at.epoch || v.Stamp.Seq != at.seq+1 {
			r.fail(p, fmt.Errorf("recovered reply out of sequence: %s e%d:%d after e%d:%d", v.Topic, v.Stamp.Epoch, v.Stamp.Seq, at.epoch, at.seq))
			return
		}
		at = last{v.Stamp.Epoch, v.Stamp.Seq, v.Stamp.Term}
		r.s.note(v)
		r.ready = append(r.ready, delivery{m: v}) // old by nature: no lag check
	}
	r.stats.Repairs++
	r.stats.Updates += len(values)
	held := r.held[p.topic]
	delete(r.held, p.topic)
	for _, m := range held {
		r.heldBytes -= m.Size()
	}
	for _, m := range held {
		r.take(m)
	}
}

// fail ends the Sub with a *RepairError for p.
func (r *repairer) fail(p *pending, err error) {
	r.ready = append(r.ready, delivery{r.first(p.topic), &RepairError{Topic: p.topic, Epoch: p.from.epoch, Seq: p.from.seq, Got: p.got, Err: err}})
}

// first returns the first update held for topic, nil for none.
func (r *repairer) first(topic string) *tick.Message {
	if h := r.held[topic]; len(h) > 0 {
		return h[0]
	}
	return nil
}
