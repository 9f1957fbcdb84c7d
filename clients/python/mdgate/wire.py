"""mdgate's ZeroMQ wire formats: the stamp frame and the snapshot ROUTER's
requests and replies (docs/stamp.md, docs/snapshot.md). No sockets here."""

import struct

STAMP_SIZE = 32
MAGIC = b"MDGS"
VERSION_NO_TERM = 1  # a stamp without a term (outside a failover pair)
VERSION_TERM = 2     # bytes 6-7 carry the pair's term (docs/stamp.md)
VERSION = VERSION_TERM

# Stamp flag bits.
FLAG_REPLAY = 1  # a value replayed from the last-value cache, not a live update
FLAG_STALE = 2   # loaded from a cache file of an earlier run of the gateway
FLAG_DELETE = 4  # the topic has no value any more
FLAG_HEARTBEAT = 8  # a failover pair's active gateway's heartbeat, not an update (docs/stamp.md)

# The topic of a heartbeat (FLAG_HEARTBEAT; seq 0, no payload): a subscriber
# of "" gets them, one every --ha-heartbeat from the active.
HEARTBEAT_TOPIC = b"\x00mdgate.heartbeat"

# The vote topic: a subscription to it is a client's vote, which makes a
# failover pair's standby active once its peer is dead (docs/ha.md).
VOTE_TOPIC = b"\x00mdgate.vote"

_STAMP = struct.Struct(">4sBBHQQq")
_U64 = struct.Struct(">Q")

# SINCE statuses (the fourth frame of its END).
RECOVERED = "recovered"  # every update after the point was sent
GAP = "gap"              # every retained update was sent, but some are gone
NOHISTORY = "nohistory"  # no history kept for the topic: take a SNAP of it
STATUSES = (RECOVERED, GAP, NOHISTORY)


class WireError(ValueError):
    """A frame that is not what the protocol says."""


class Stamp:
    """The gateway's 32-byte stamp: epoch, per-topic seq, ingress time (Unix
    ns), flags, and the failover pair's term (0 outside a pair)."""

    __slots__ = ("epoch", "seq", "ingress_ns", "flags", "term")

    def __init__(self, epoch, seq, ingress_ns=0, flags=0, term=0):
        self.epoch, self.seq, self.ingress_ns, self.flags, self.term = epoch, seq, ingress_ns, flags, term

    def __eq__(self, other):
        return isinstance(other, Stamp) and (self.epoch, self.seq, self.ingress_ns, self.flags, self.term) == (
            other.epoch, other.seq, other.ingress_ns, other.flags, other.term)

    def __repr__(self):
        return "Stamp(epoch=%016x, seq=%d, ingress_ns=%d, flags=%d, term=%d)" % (
            self.epoch, self.seq, self.ingress_ns, self.flags, self.term)


def parse_stamp(frame):
    """Decode a stamp frame; WireError if it is not one (tick.ParseStamp)."""
    if len(frame) != STAMP_SIZE:
        raise WireError("stamp of %d bytes, want %d" % (len(frame), STAMP_SIZE))
    magic, version, flags, reserved, epoch, seq, ingress = _STAMP.unpack(frame)
    if magic != MAGIC:
        raise WireError("stamp magic %r, want %r" % (magic, MAGIC))
    if version == VERSION_NO_TERM:
        if reserved != 0:
            raise WireError("stamp reserved bytes %#06x, want 0" % reserved)
    elif version == VERSION_TERM:
        if reserved == 0:
            raise WireError("version 2 stamp with term 0")
    else:
        raise WireError("stamp version %d, want %d or %d" % (version, VERSION_NO_TERM, VERSION_TERM))
    return Stamp(epoch, seq, ingress, flags, reserved)


def encode_stamp(st):
    """The wire form of a Stamp (tick.AppendStamp)."""
    version = VERSION_TERM if st.term else VERSION_NO_TERM
    return _STAMP.pack(MAGIC, version, st.flags, st.term, st.epoch, st.seq, st.ingress_ns)


def snap_request(prefix):
    """[SNAP, prefix]: the latest value of every topic under prefix."""
    return [b"SNAP", _bytes(prefix)]


def since_request(topic, epoch, seq):
    """[SINCE, topic, epoch, seq]: the retained updates of topic after the
    update (epoch, seq) the client holds."""
    return [b"SINCE", _bytes(topic), _U64.pack(epoch), _U64.pack(seq)]


def u64(frame):
    if len(frame) != 8:
        raise WireError("uint64 frame of %d bytes" % len(frame))
    return _U64.unpack(frame)[0]


class Reply:
    """One reply message of the snapshot server, decoded.

    kind is "VAL" (stamp, topic, frames: the topic then the payload), "END"
    (count, epoch, and for a SINCE status and missed) or "ERR" (code,
    text)."""

    __slots__ = ("kind", "stamp", "topic", "frames", "count", "epoch", "status", "missed", "code", "text")

    def __init__(self, kind):
        self.kind = kind
        self.stamp = self.topic = self.frames = self.status = self.code = self.text = None
        self.count = self.epoch = self.missed = 0


def parse_reply(frames):
    """Decode one reply (its frames after any envelope); WireError if it is
    malformed."""
    if not frames:
        raise WireError("empty reply")
    kind = frames[0]
    if kind == b"VAL":
        if len(frames) < 3:
            raise WireError("VAL of %d frames" % len(frames))
        r = Reply("VAL")
        r.stamp = parse_stamp(frames[1])
        r.topic = bytes(frames[2]).decode("utf-8", "surrogateescape")
        r.frames = [bytes(f) for f in frames[2:]]
        return r
    if kind == b"END":
        if len(frames) not in (3, 5):
            raise WireError("END of %d frames" % len(frames))
        r = Reply("END")
        r.count, r.epoch = u64(frames[1]), u64(frames[2])
        if len(frames) == 5:
            status = bytes(frames[3]).decode("ascii", "replace")
            if status not in STATUSES:
                raise WireError("END status %r" % status)
            r.status, r.missed = status, u64(frames[4])
        return r
    if kind == b"ERR":
        r = Reply("ERR")
        r.code = bytes(frames[1]).decode("utf-8", "replace") if len(frames) > 1 else ""
        r.text = bytes(frames[2]).decode("utf-8", "replace") if len(frames) > 2 else ""
        return r
    raise WireError("unexpected reply %r" % bytes(kind[:32]))


def _bytes(s):
    return s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
