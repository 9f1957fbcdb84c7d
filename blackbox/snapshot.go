package blackbox

import (
	"errors"

	"github.com/mdgate/mdgate/tick"
)

// Snapshot is the cached values one subscribe replays to one client. The
// client's writer takes them in chunks as it writes (paced to what the
// client reads): a snapshot is the gateway's own backlog, so it never counts
// against the client's queue limits. Taking a chunk holds the client's lock
// (the lock its shard workers need) for a few pointer reads per value;
// encoding happens after, without it.
type Snapshot interface {
	// Take calls fn with the next values, in order, until about maxBytes
	// of frames were given, and reports whether the snapshot is done. Each
	// is its topic's latest value when Take reads it. Called with the
	// client's lock held: no encoding here.
	Take(maxBytes int, fn func(Replay)) (done bool)
	// Encode renders a value Take gave for the wire. Called by the writer
	// without the lock.
	Encode(r *Replay) []byte
	// Covers reports whether topic's value is still to come from this
	// snapshot: a live update of it is then not queued, since the snapshot
	// will carry that value or a newer one. Called with the lock held.
	Covers(topic string) bool
}

// Replay is one snapshot value for one client. Live updates of Topic with
// the same epoch and seq <= Seq are skipped from then on, so the client
// never sees a value older than one it already has. A nil Msg sends nothing
// and only sets that floor (the client has the value already).
type Replay struct {
	Topic      string
	Epoch, Seq uint64
	Msg        *tick.Message
	Tag        uint64 // the Snapshot's own note for its Encode; blackbox does not read it
}

// ErrSnapshotBusy: the client has MaxPendingSnapshots snapshots still being
// sent; the subscribe is refused whole.
var ErrSnapshotBusy = errors.New("snapshots still being sent")

// MaxPendingSnapshots is how many snapshots one client may have waiting or
// being sent at once.
const MaxPendingSnapshots = 4

// snapshotChunk is about how many bytes of snapshot a writer takes per
// write: small enough that the client's lock is held briefly, large enough
// that a snapshot goes out in few writes.
const snapshotChunk = 32 << 10

// covered reports whether a pending snapshot will carry topic. c.mu is held.
func (c *Client) coveredLocked(topic string) bool {
	for _, s := range c.snaps {
		if s.Covers(topic) {
			return true
		}
	}
	return false
}

// takeSnapshotLocked appends the next chunk of the oldest snapshot to
// dst, setting the floors, and reports whether snapshot work remains.
// c.mu is held.
func (c *Client) takeSnapshotLocked(dst []Replay, maxBytes int) ([]Replay, bool) {
	if len(c.snaps) == 0 {
		return dst, false // before the closure below: its captures are heap-allocated on entry
	}
	return c.takeChunkLocked(dst, maxBytes)
}

func (c *Client) takeChunkLocked(dst []Replay, maxBytes int) ([]Replay, bool) {
	s := c.snaps[0]
	done := s.Take(maxBytes, func(r Replay) {
		if c.floors == nil {
			c.floors = map[string]floor{}
		}
		c.floors[r.Topic] = floor{r.Epoch, r.Seq}
		if r.Msg != nil {
			dst = append(dst, r)
		}
	})
	if done {
		c.snaps[0] = nil
		c.snaps = c.snaps[1:]
		if len(c.snaps) == 0 {
			c.snaps = nil
		}
	}
	return dst, len(c.snaps) > 0
}

// PendingSnapshots returns how many snapshots the client has waiting or
// being sent.
func (c *Client) PendingSnapshots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.snaps)
}

// QueuedBytes returns the bytes waiting in the client's queue.
func (c *Client) QueuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, n := c.q.Len()
	return n
}
