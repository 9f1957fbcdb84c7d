package tick

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// StampSize is the length in bytes of an encoded stamp frame.
const StampSize = 32

// Magic opens every stamp frame.
var Magic = [4]byte{'M', 'D', 'G', 'S'}

// Version is the stamp layout version written by this package for a stamp
// with a term (VersionTerm); a stamp without one (Term 0, every gateway not
// in a failover pair) is written as VersionNoTerm, byte for byte as before.
const (
	VersionNoTerm = 1
	VersionTerm   = 2
	Version       = VersionTerm
)

// Flag bits carried in a stamp.
const (
	// FlagReplay marks a value replayed from the last-value cache (a snapshot),
	// not a live update. Subscribers that already hold this seq drop it.
	FlagReplay uint8 = 1 << iota
	// FlagStale marks a value loaded from a cache file written by an earlier
	// run of the gateway: its epoch is the old one.
	FlagStale
	// FlagDelete marks a delete notice: the topic has no value any more
	// (expired by its time-to-live, or deleted by its publisher).
	FlagDelete
	// FlagHeartbeat marks a failover pair's active gateway's heartbeat on
	// its stamped egress (topic HeartbeatTopic, no payload, seq 0): sent
	// every --ha-heartbeat from the stamping loop, so a subscriber of
	// every topic (an edge) tells a hung or dead core from a quiet market.
	FlagHeartbeat
)

// HeartbeatTopic is the topic of a heartbeat (FlagHeartbeat): a subscriber
// gets heartbeats with a subscription to "" or to this topic's prefix.
const HeartbeatTopic = "\x00mdgate.heartbeat"

// VoteTopic is the subscription a ZeroMQ client of a failover pair sends to
// vote (docs/ha.md): a standby whose peer is dead takes over on it. Other
// subscriptions are not votes: the peer's own mirror subscribes too, and
// must not make a standby active behind a cut state link.
const VoteTopic = "\x00mdgate.vote"

// Stamp is the gateway's metadata for one message.
type Stamp struct {
	Epoch   uint64 // random id of the gateway run (or failover pair) that sequenced the topic
	Seq     uint64 // per-topic sequence number, from 1 within an epoch
	Ingress int64  // ingress time, Unix nanoseconds
	Flags   uint8
	// Term is the failover pair's term when this gateway stamped it (bumped
	// on every takeover, docs/ha.md); 0 outside a pair. Within an epoch a
	// (term, seq) is never stamped twice.
	Term uint16
}

// Message is one stamped multipart message. Frames[0] is the topic. A Message
// is immutable once published: never modify Frames or their bytes.
type Message struct {
	Topic  string   // Frames[0] as a string, shared with the sequencer's map key
	Frames [][]byte // exactly the frames the publisher sent
	Stamp  Stamp
}

// IsDeleteFrames reports whether frames are a publisher's delete of their
// topic: [topic, ""]. The one place the rule is written (the proxy stamps
// such a message with FlagDelete; the cache removes the topic).
func IsDeleteFrames(frames [][]byte) bool { return len(frames) == 2 && len(frames[1]) == 0 }

// Payload returns the frames after the topic.
func (m *Message) Payload() [][]byte { return m.Frames[1:] }

// Size is the total number of frame bytes, the unit of every byte bound.
func (m *Message) Size() int {
	n := 0
	for _, f := range m.Frames {
		n += len(f)
	}
	return n
}

// AppendStamp appends the 32-byte wire form of s to dst:
//
//	offset size field
//	0      4    magic "MDGS"
//	4      1    version: 1 (no term), 2 (term)
//	5      1    flags (bit 0 replay, bit 1 stale, bit 2 delete)
//	6      2    version 1: reserved, zero; version 2: term, big-endian
//	8      8    epoch, big-endian
//	16     8    seq, big-endian
//	24     8    ingress time, Unix ns, big-endian two's complement
func AppendStamp(dst []byte, s Stamp) []byte {
	dst = append(dst, Magic[:]...)
	if s.Term == 0 {
		dst = append(dst, VersionNoTerm, s.Flags, 0, 0)
	} else {
		dst = append(dst, VersionTerm, s.Flags, byte(s.Term>>8), byte(s.Term))
	}
	dst = binary.BigEndian.AppendUint64(dst, s.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, s.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.Ingress))
	return dst
}

// ErrNotStamp is returned by ParseStamp for a frame that is not a stamp.
var ErrNotStamp = errors.New("tick: frame is not an mdgate stamp")

// ParseStamp decodes a stamp frame written by AppendStamp. A version 1
// frame with non-zero reserved bytes, and a version 2 frame with term 0,
// are refused, so every accepted frame is exactly AppendStamp of the stamp
// returned.
func ParseStamp(b []byte) (Stamp, error) {
	if len(b) != StampSize || [4]byte(b[:4]) != Magic {
		return Stamp{}, ErrNotStamp
	}
	term := binary.BigEndian.Uint16(b[6:])
	switch b[4] {
	case VersionNoTerm:
		if term != 0 {
			return Stamp{}, fmt.Errorf("tick: stamp reserved bytes %#02x %#02x, want 0: %w", b[6], b[7], ErrNotStamp)
		}
	case VersionTerm:
		if term == 0 {
			return Stamp{}, fmt.Errorf("tick: version 2 stamp with term 0: %w", ErrNotStamp)
		}
	default:
		return Stamp{}, fmt.Errorf("tick: stamp version %d, want %d or %d: %w", b[4], VersionNoTerm, VersionTerm, ErrNotStamp)
	}
	return Stamp{
		Flags:   b[5],
		Term:    term,
		Epoch:   binary.BigEndian.Uint64(b[8:]),
		Seq:     binary.BigEndian.Uint64(b[16:]),
		Ingress: int64(binary.BigEndian.Uint64(b[24:])),
	}, nil
}
