"""The mdgate ZeroMQ client: the stamped stream, merged with a snapshot,
every topic's gaps detected and repaired through SINCE (docs/client-python.md).

One thread owns a Client (ZeroMQ sockets are not thread-safe): it calls
next_update() or iterates updates(), and the client does its socket work
inside those calls."""

import collections
import time

import zmq

from . import wire

# Update.source: where an update came from.
LIVE = "live"          # the stamped stream
SNAPSHOT = "snapshot"  # a SNAP reply: the topic's latest value (at start, or after nohistory)
REPAIR = "repair"      # a SINCE reply: an update the stream lost, recovered from the gateway's history


class MdgateError(Exception):
    """The gateway answered what the client cannot go on from (an ERR other
    than busy, evicted, stalled or passive; a malformed reply), or a request
    timed out at start."""


# ERR codes answered by asking again after a backoff: the server's bounds,
# and "passive" (a failover pair's standby: asking again is a vote that makes
# it active once its peer is dead, docs/ha.md).
_RETRY = ("busy", "evicted", "stalled", "passive")


class Update:
    """One update of a topic, in its topic's order.

    frames are the publisher's frames (frames[0] the topic); payload is the
    rest and value its first frame. gap is True when updates of this topic
    before this one are missing for good (missed of them; 0 when not known,
    e.g. the gateway restarted under a new epoch); deleted when the topic has
    no value any more. term is the failover pair's term it was stamped under
    (0 outside a pair); diverged is True when it came under a higher term at
    or below the seq held, or is the gateway's update at the seq held under
    another term than the one held (a repair's check): the updates held past
    its seq were never on the gateway now active, and the topic's sequence
    goes on from this one (docs/ha.md)."""

    __slots__ = ("topic", "frames", "epoch", "seq", "ingress_ns", "flags", "term", "source", "gap", "missed",
                 "diverged")

    def __init__(self, topic, frames, stamp, source, gap=False, missed=0):
        self.topic, self.frames, self.source = topic, frames, source
        self.epoch, self.seq, self.ingress_ns, self.flags = stamp.epoch, stamp.seq, stamp.ingress_ns, stamp.flags
        self.term = stamp.term
        self.gap, self.missed, self.diverged = gap, missed, False

    @property
    def payload(self):
        return self.frames[1:]

    @property
    def value(self):
        return self.frames[1] if len(self.frames) > 1 else b""

    @property
    def deleted(self):
        return bool(self.flags & wire.FLAG_DELETE)

    @property
    def stale(self):
        return bool(self.flags & wire.FLAG_STALE)

    def size(self):
        return sum(len(f) for f in self.frames)

    def __repr__(self):
        extra = " gap(missed=%d)" % self.missed if self.gap else ""
        if self.diverged:
            extra += " diverged"
        term = " t%d" % self.term if self.term else ""
        return "Update(%s e%016x:%d%s %s %r%s)" % (self.topic, self.epoch, self.seq, term, self.source, self.value[:40],
                                                   extra)


class _Request:
    """One request to the snapshot server: a SNAP (of a prefix at start, or
    of one topic after nohistory) or a SINCE. A SINCE with held_term asks
    from the seq before the one held, to see the update at the seq held and
    compare its term with held_term."""

    __slots__ = ("kind", "arg", "epoch", "seq", "purpose", "values", "not_before", "deadline", "tries", "held_term", "sent")

    def __init__(self, kind, arg, purpose, epoch=0, seq=0, held_term=None):
        self.kind, self.arg, self.purpose, self.epoch, self.seq = kind, arg, purpose, epoch, seq
        self.values, self.not_before, self.deadline, self.tries = [], 0.0, 0.0, 0
        self.held_term = held_term
        self.sent = False  # on a connection; else waiting for one (deadline: CONNECT_WAIT)

    def frames(self):
        if self.kind == "SINCE":
            return wire.since_request(self.arg, self.epoch, self.seq)
        return wire.snap_request(self.arg)


# The default heartbeat interval with a failover pair (the gateway's
# --ha-heartbeat default).
DEFAULT_HEARTBEAT = 0.5
# Silent heartbeats before the client votes.
SILENT_BEATS = 3
# Seconds a request waits for a connection to a snapshot endpoint
# (request_timeout if shorter) before it goes to the next one: a failover
# pair's dead gateway is left after this, not after request_timeout. A
# request is only queued on a connection made (ZMQ_IMMEDIATE), so one to a
# gateway that is down fails at once instead of waiting in libzmq.
CONNECT_WAIT = 0.5


def _list(x):
    if x is None:
        return []
    if isinstance(x, (str, bytes)):
        return [x]
    return list(x)


class Client:
    """Subscribes to the gateway's stamped egress, takes a snapshot, and
    hands out every topic's updates in order, repairing gaps.

    stamped: the stamped egress (--stamped-bind), e.g. tcp://gw:5559, or a
      list of them (a failover pair: both). The SUB connects to every one
      at once: only the active publishes, and seqs drop repeats.
    snapshot: the snapshot ROUTER (--snapshot-bind), e.g. tcp://gw:5558, or
      a list of them asked in turn (moving on at ERR passive, at no
      connection within CONNECT_WAIT, or at a timeout);
      None: no snapshot and no repair (gaps are only reported).
    heartbeat: a failover pair's heartbeat interval in seconds (the
      gateways' --ha-heartbeat). After SILENT_BEATS of them with nothing
      on the stream, not even a heartbeat, or when a stamped connection
      closes, the client votes: it subscribes to the vote topic, which makes
      a standby whose peer is dead active; again every heartbeat while the
      silence lasts. None: DEFAULT_HEARTBEAT with two stamped endpoints or
      more, off with one; 0: off.
    prefixes: topic prefixes to subscribe to ("" is everything).
    rcvhwm: the SUB's receive high-water mark (libzmq drops past it).
    repair: repair gaps through SINCE (with a snapshot endpoint).
    hold_max_bytes: the most frame bytes of live updates held while their
      topic is repaired (and while the snapshot is taken at start), all
      topics together; past it a topic's held updates are let go and a
      later repair brings them back.
    request_timeout: seconds to wait for a snapshot-server reply before
      reconnecting and asking again.
    """

    def __init__(self, stamped, snapshot=None, prefixes=("",), rcvhwm=1000, repair=True,
                 hold_max_bytes=4 << 20, request_timeout=5.0, context=None, heartbeat=None):
        self.stamped, self.snapshots = _list(stamped), _list(snapshot)
        if not self.stamped:
            raise ValueError("no stamped endpoint")
        self.snapshot = self.snapshots[0] if self.snapshots else None  # the one asked now
        self._snap_i = 0
        self._round = 0  # endpoints moved to since the last answer served
        if heartbeat is None:
            heartbeat = DEFAULT_HEARTBEAT if len(self.stamped) > 1 else 0
        self.heartbeat = heartbeat
        self.prefixes = [p if isinstance(p, str) else p.decode("utf-8", "surrogateescape") for p in prefixes] or [""]
        self.rcvhwm, self.repair = rcvhwm, repair and self.snapshot is not None
        self.hold_max_bytes, self.request_timeout = hold_max_bytes, request_timeout
        self.epoch = None  # the gateway's epoch, from the last END
        # live, snapshot, repair, repairs, gaps, missed, diverged, stale_term, fallbacks, held_dropped, retries,
        # passive, timeouts, unconnected, heartbeats, votes, moves, closes
        self.stats = collections.Counter()
        self._ctx = context or zmq.Context.instance()
        self._sub = self._dealer = self._monitor = None
        self._dealers = [None] * len(self.snapshots)  # one per snapshot endpoint; _dealer is the one asked now
        self._want_out = False  # the dealer is polled for POLLOUT: a request waits for a connection
        self._heard = 0.0      # when the stream last gave anything (heartbeats included)
        self._next_vote = 0.0  # when the next silence vote is due
        self._voted = False    # subscribed to the vote topic
        self._poller = zmq.Poller()
        self._seen = {}    # topic -> (epoch, seq, term) of the last update handed out
        self._values = {}  # topic -> its last Update (deleted topics left out)
        self._ready = collections.deque()  # updates to hand out, in order
        self._held = {}    # topic -> live updates held behind its repair
        self._held_bytes = 0
        self._queue = collections.deque()  # requests waiting for the one in flight
        self._cur = None   # the request in flight
        self._starting = False
        self._start_buf = []  # live updates read while the start snapshot is taken
        self._start_vals = {}
        self._started = False

    # -- public --------------------------------------------------------

    def start(self, timeout=10.0):
        """Subscribe, then (with a snapshot endpoint) take the snapshot of
        every prefix and merge it: its values are the first updates handed
        out, and streamed updates not above them are dropped. Raises
        MdgateError if the snapshot does not complete within timeout
        seconds."""
        if self._started:
            return
        self._started = True
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, self.rcvhwm)
        for p in self.prefixes:
            self._sub.setsockopt(zmq.SUBSCRIBE, wire._bytes(p))
        if self.heartbeat and "" not in self.prefixes:
            self._sub.setsockopt(zmq.SUBSCRIBE, wire.HEARTBEAT_TOPIC)  # quiet topics are not silence
        if self.heartbeat:
            self._monitor = self._sub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self._poller.register(self._monitor, zmq.POLLIN)
        for ep in self.stamped:
            self._sub.connect(ep)
        self._poller.register(self._sub, zmq.POLLIN)
        self._heard = time.monotonic()
        self._next_vote = self._heard + SILENT_BEATS * self.heartbeat
        if self.snapshot is None:
            return
        for i in range(len(self.snapshots)):
            self._redial(i)
        self._dealer = self._dealers[self._snap_i]
        self._starting = True
        for p in dict.fromkeys(self.prefixes):
            self._queue.append(_Request("SNAP", p, "start"))
        self._send_next()
        deadline = time.monotonic() + timeout
        while self._starting:
            left = deadline - time.monotonic()
            if left <= 0:
                why = " (it answers passive: the standby of a failover pair)" if self.stats["passive"] else ""
                raise MdgateError("snapshot from %s not complete within %gs%s" % (self.snapshot, timeout, why))
            self._pump(left)

    def next_update(self, timeout=None):
        """The next update, or None when none came within timeout seconds
        (None: wait for ever)."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._pump(left)
        return self._ready.popleft()

    def updates(self, idle_timeout=None):
        """Iterate over the updates; ends after idle_timeout seconds without
        one (None: never)."""
        while True:
            u = self.next_update(idle_timeout)
            if u is None:
                return
            yield u

    __iter__ = updates

    def last(self, topic):
        """The topic's last update handed out, None if none (or deleted)."""
        return self._values.get(topic)

    def topics(self):
        """The topics with a value, sorted."""
        return sorted(self._values)

    def repairing(self):
        """The topics whose updates are held behind a repair."""
        return sorted(self._held)

    def close(self):
        if self._monitor is not None:
            try:
                self._sub.disable_monitor()
            except zmq.ZMQError:
                pass
            self._monitor.close(linger=0)
        for s in [self._sub] + self._dealers:
            if s is not None:
                s.close(linger=0)
        self._sub = self._dealer = self._monitor = None
        self._dealers = [None] * len(self.snapshots)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the sequence rule ---------------------------------------------

    def _on_live(self, frames):
        if len(frames) < 2:
            raise MdgateError("a message of %d frames: not the stamped stream" % len(frames))
        st = wire.parse_stamp(frames[-1])
        if st.flags & wire.FLAG_HEARTBEAT:
            self.stats["heartbeats"] += 1  # the active is alive; not an update
            return
        topic = bytes(frames[0]).decode("utf-8", "surrogateescape")
        self._take(Update(topic, [bytes(f) for f in frames[:-1]], st, LIVE))

    def _take(self, u):
        """Run one live update through the rule: held, dropped, handed out,
        or the start of a repair."""
        if self._starting:
            self._hold_start(u)
            return
        if u.topic in self._held:
            self._hold(u)
            return
        prev = self._seen.get(u.topic)
        if prev is not None:
            if u.epoch != prev[0]:
                u.gap, u.missed = True, 0  # a new epoch: the gateway restarted; what was lost is not known
            elif u.seq <= prev[1] and u.term > prev[2]:
                # A failover pair's new active went on from a seq below ours:
                # what we hold past it was never there (docs/ha.md). Not a
                # repeat: take it, and the topic's sequence goes on from it.
                u.diverged = True
            elif u.term < prev[2]:
                # Stamped by an active since replaced (e.g. held here behind a
                # repair that a new active's update overtook): the highest
                # term wins within an epoch, as on the gateway's own
                # stamped ingress.
                self.stats["stale_term"] += 1
                return
            elif u.seq <= prev[1]:
                return  # a replay or repeat of what we have
            elif u.seq != prev[1] + 1 or u.term > prev[2]:
                if self.repair:
                    # A gap: repaired from our point. A higher term past our
                    # seq: a new active, which may have stamped our seq
                    # again; the repair asks from the seq before ours, to
                    # see whether the update at our seq is the one we hold.
                    self._held[u.topic] = []
                    self._hold(u)
                    if u.term > prev[2] and prev[1] > 0:
                        req = _Request("SINCE", u.topic, "repair", prev[0], prev[1] - 1, held_term=prev[2])
                    else:
                        req = _Request("SINCE", u.topic, "repair", prev[0], prev[1])
                    self._queue.append(req)
                    self._send_next()
                    return
                if u.seq != prev[1] + 1:
                    u.gap, u.missed = True, u.seq - prev[1] - 1
        self._accept(u)

    def _accept(self, u):
        self.stats[u.source] += 1
        if u.gap:
            self.stats["gaps"] += 1
            self.stats["missed"] += u.missed
        if u.diverged:
            self.stats["diverged"] += 1
        if u.deleted:
            self._seen.pop(u.topic, None)
            self._values.pop(u.topic, None)
        else:
            self._seen[u.topic] = (u.epoch, u.seq, u.term)
            self._values[u.topic] = u
        self._ready.append(u)

    def _hold(self, u):
        size = u.size()
        if self._held_bytes + size > self.hold_max_bytes:
            h = self._held[u.topic]
            self._held_bytes -= sum(x.size() for x in h)
            self.stats["held_dropped"] += len(h)
            h.clear()
            if self._held_bytes + size > self.hold_max_bytes:
                self.stats["held_dropped"] += 1
                return
        self._held[u.topic].append(u)
        self._held_bytes += size

    def _hold_start(self, u):
        size = u.size()
        if self._held_bytes + size > self.hold_max_bytes:
            # Let go of all: a topic in the snapshot shows the loss as a gap
            # and repairs it.
            self.stats["held_dropped"] += len(self._start_buf) + 1
            self._start_buf.clear()
            self._held_bytes = 0
            return
        self._start_buf.append(u)
        self._held_bytes += size

    def _release(self, topic):
        held = self._held.pop(topic, [])
        self._held_bytes -= sum(u.size() for u in held)
        for u in held:
            self._take(u)

    # -- replies -------------------------------------------------------

    def _on_reply(self, frames):
        r = wire.parse_reply(frames)
        req = self._cur
        if req is None:
            return  # the rest of a reply given up on
        if r.kind == "VAL":
            req.values.append(Update(r.topic, r.frames, r.stamp, REPAIR if req.kind == "SINCE" else SNAPSHOT))
            return
        self._cur = None
        if r.kind == "ERR":
            if r.code in _RETRY:  # ask again a little later
                self.stats["retries"] += 1
                req.values, req.tries = [], req.tries + 1
                req.not_before = time.monotonic() + min(0.01 * 2 ** req.tries, 1.0)
                if r.code == "passive":
                    # A standby: the next endpoint, at once unless every one
                    # has been asked since (this ask was a vote).
                    self.stats["passive"] += 1
                    if self._move_on():
                        req.not_before = 0.0
                self._queue.appendleft(req)
            else:
                raise MdgateError("snapshot server: %s: %s" % (r.code, r.text))
        else:
            self.epoch, self._round = r.epoch, 0
            if r.count != len(req.values):
                raise MdgateError("END says %d values, got %d" % (r.count, len(req.values)))
            if req.kind == "SINCE":
                self._finish_since(req, r)
            elif req.purpose == "start":
                self._finish_start_snap(req)
            else:
                self._finish_topic_snap(req)
        self._send_next()

    def _finish_since(self, req, end):
        at, known, unknown = (req.epoch, req.seq), 0, False
        ours = req.held_term is not None  # the seq after the point is the one we hold
        for v in req.values:
            if ours and v.epoch == at[0] and v.seq == at[1] + 1:
                ours, at = False, (v.epoch, v.seq)
                if v.term != req.held_term:
                    v.diverged = True  # the update at our seq is not the one we hold
                    self._accept(v)
                continue  # else: the one we hold
            if v.epoch != at[0]:
                v.gap, v.missed, unknown = True, 0, True
            elif v.seq != at[1] + 1:
                missed = v.seq - at[1] - 1
                known += missed  # as the server counts them, from its point
                if ours:
                    missed -= 1  # the seq we hold is gone from the history: ours, not missed
                if missed > 0:
                    v.gap, v.missed = True, missed
            ours = False
            at = (v.epoch, v.seq)
            self._accept(v)
        if end.status == wire.RECOVERED:
            self.stats["repairs"] += 1
        elif end.status == wire.NOHISTORY or not (unknown if end.missed == 0 else end.missed == known):
            # No history, or updates gone after the last VAL: the topic's
            # latest value comes from a SNAP of it; its updates stay held.
            self.stats["fallbacks"] += 1
            self._queue.appendleft(_Request("SNAP", req.arg, "topic"))
            return
        self._release(req.arg)

    def _finish_start_snap(self, req):
        for v in req.values:
            have = self._start_vals.get(v.topic)
            if have is None or v.epoch != have.epoch or v.seq > have.seq:  # overlapping prefixes: the later
                self._start_vals[v.topic] = v
        if any(r.purpose == "start" for r in self._queue):
            return
        for topic in sorted(self._start_vals):
            self._accept(self._start_vals[topic])
        self._start_vals = {}
        self._starting = False
        buf, self._start_buf, self._held_bytes = self._start_buf, [], 0
        for u in buf:
            self._take(u)

    def _finish_topic_snap(self, req):
        topic, prev = req.arg, self._seen.get(req.arg)
        v = next((v for v in req.values if v.topic == topic), None)
        if v is None:
            # The topic is gone (deleted or expired meanwhile): say so, and
            # let go of its held updates, older than the deletion (its next
            # update, if created again, starts it afresh).
            held = self._held.pop(topic, [])
            self._held_bytes -= sum(u.size() for u in held)
            self.stats["held_dropped"] += len(held)
            if prev is not None:
                gone = wire.Stamp(prev[0], 0, 0, wire.FLAG_DELETE)
                self._accept(Update(topic, [wire._bytes(topic), b""], gone, SNAPSHOT, gap=True, missed=0))
            return
        if prev is None or v.epoch != prev[0] or v.seq > prev[1]:
            v.gap, v.missed = True, (v.seq - prev[1] - 1 if prev is not None and v.epoch == prev[0] else 0)
            self._accept(v)
        elif v.term > prev[2]:  # a new active's value at or below our seq: we diverged
            v.diverged = True
            self._accept(v)
        self._release(topic)

    # -- sockets -------------------------------------------------------

    def _redial(self, i):
        """A new connection to snapshot endpoint i (every one is connected
        at start, and kept: one slow to connect is never cut short), so
        that a late reply to a request given up on is not taken for the
        next one's."""
        old = self._dealers[i]
        if old is not None:
            self._poller.unregister(old)
            old.close(linger=0)
        d = self._ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.setsockopt(zmq.IMMEDIATE, 1)
        d.connect(self.snapshots[i])
        self._poller.register(d, zmq.POLLIN)
        self._dealers[i] = d
        if i == self._snap_i:
            self._dealer, self._want_out = d, False

    def _move_on(self, unanswered=False):
        """Go to the next snapshot endpoint (with more than one), after a new
        connection to this one if a request went out on it unanswered. True
        when the next one has not been asked since the last answer served."""
        if unanswered:
            self._redial(self._snap_i)
        if len(self.snapshots) < 2:
            return False
        if self._want_out:
            self._poller.modify(self._dealer, zmq.POLLIN)
            self._want_out = False
        self._snap_i = (self._snap_i + 1) % len(self.snapshots)
        self.snapshot = self.snapshots[self._snap_i]
        self._dealer = self._dealers[self._snap_i]
        self.stats["moves"] += 1
        self._round += 1
        return self._round % len(self.snapshots) != 0

    # -- votes ---------------------------------------------------------

    def _vote(self):
        """Subscribe to the vote topic (again): a failover pair's standby
        whose peer is dead takes over on it (docs/ha.md)."""
        if self._voted:
            self._sub.setsockopt(zmq.UNSUBSCRIBE, wire.VOTE_TOPIC)
        self._sub.setsockopt(zmq.SUBSCRIBE, wire.VOTE_TOPIC)
        self._voted = True
        self.stats["votes"] += 1

    def _vote_if_silent(self, now):
        if self.heartbeat and now >= self._next_vote:
            self._vote()
            self._next_vote = now + self.heartbeat

    def _on_monitor(self):
        while self._monitor is not None:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) >= 1 and len(frames[0]) >= 2 and \
                    int.from_bytes(frames[0][:2], "little") == zmq.EVENT_DISCONNECTED:
                self.stats["closes"] += 1
                self._vote()  # refused while the standby still hears its peer; the silence votes go on

    def _send(self, frames):
        """Send frames on the dealer; zmq.Again when it has no connection."""
        self._dealer.send_multipart(frames, zmq.NOBLOCK)

    def _try_send(self):
        """Send the request in _cur if the dealer has a connection; else
        the poller waits for one (POLLOUT) until its deadline."""
        req = self._cur
        try:
            self._send(req.frames())
        except zmq.Again:  # no connection yet, or none any more
            self._poller.modify(self._dealer, zmq.POLLIN | zmq.POLLOUT)
            self._want_out = True
            return
        if self._want_out:
            self._poller.modify(self._dealer, zmq.POLLIN)
            self._want_out = False
        req.sent, req.deadline = True, time.monotonic() + self.request_timeout

    def _send_next(self):
        if self._cur is not None or not self._queue or self._queue[0].not_before > time.monotonic():
            return
        req = self._queue.popleft()
        req.sent, req.deadline = False, time.monotonic() + min(self.request_timeout, CONNECT_WAIT)
        self._cur = req
        self._try_send()

    def _pump(self, wait):
        """Wait at most wait seconds (None: for ever) for the sockets, then
        take what they have."""
        wake = []  # when a request times out, or a retry is due
        if self._cur is not None:
            wake.append(self._cur.deadline)
        elif self._queue:
            wake.append(self._queue[0].not_before)
        if self.heartbeat:
            wake.append(self._next_vote)
        if wake:
            w = min(wake) - time.monotonic()
            wait = w if wait is None else min(wait, w)
        ms = None if wait is None else max(int(wait * 1000) + 1, 0)
        for sock, _ in self._poller.poll(ms):
            if sock is self._monitor:
                self._on_monitor()
            elif sock is self._dealer:
                while self._dealer is not None:
                    try:
                        frames = self._dealer.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._on_reply(frames)
            elif sock in self._dealers:  # another endpoint's: nothing asked there is awaited
                while True:
                    try:
                        sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
            else:
                for _ in range(1000):
                    try:
                        frames = self._sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._heard = time.monotonic()
                    self._next_vote = self._heard + SILENT_BEATS * self.heartbeat
                    self._on_live(frames)
        if self._cur is not None and not self._cur.sent:
            self._try_send()
        if self._cur is not None and time.monotonic() >= self._cur.deadline:
            # No answer, or no connection: the same request again, to the
            # next endpoint if there are several (after a new connection to
            # this one if the request went out: a late reply is gone with
            # the old one).
            self.stats["timeouts" if self._cur.sent else "unconnected"] += 1
            req, self._cur = self._cur, None
            req.values = []
            self._queue.appendleft(req)
            self._move_on(unanswered=req.sent)
        self._vote_if_silent(time.monotonic())
        self._send_next()
