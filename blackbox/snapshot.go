package blackbox

import (
	"errors"

	"github.com/mdgate/mdgate/slowsub"
)

// Snapshot is the cached values one subscribe replays to one client. The
// client's writer takes them in chunks as it writes (paced to what the
// client reads): a snapshot is the gateway's own backlog, so it never counts
// against the client's queue limits, and building it holds no lock the
// fan-out needs beyond one chunk's worth.
//
// Both methods are called with the client's lock held, so an
// implementation needs no locking of its own; each call's work must be
// bounded (Next by maxBytes, Covers by a lookup).
type Snapshot interface {
	// Next calls fn with the next replays, in order, until about maxBytes
	// of Data were given; it reports whether the snapshot is done. Each
	// value is its topic's latest when Next reads it.
	Next(maxBytes int, fn func(Replay)) (done bool)
	// Covers reports whether topic's value is still to come from this
	// snapshot: a live update of it is then not queued, since the snapshot
	// will carry that value or a newer one.
	Covers(topic string) bool
}

// Replay is one snapshot value for one client; an Item.At of 0 means now.
// Live updates of the same topic and epoch with seq <= Seq are then
// skipped, so the client never sees a value older than one it already has.
// A Replay with nil Data queues nothing and only sets that floor (the client
// has the value already).
type Replay struct {
	Item       slowsub.Item
	Epoch, Seq uint64
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

// takeSnapshotLocked appends the next chunk of the oldest ready snapshot to
// buf and reports whether snapshot work remains. c.mu is held.
func (c *Client) takeSnapshotLocked(buf []slowsub.Item, now int64) ([]slowsub.Item, bool) {
	if len(c.snaps) == 0 {
		return buf, false
	}
	done := c.snaps[0].Next(snapshotChunk, func(r Replay) {
		if r.Item.Topic != "" {
			if c.floors == nil {
				c.floors = map[string]floor{}
			}
			c.floors[r.Item.Topic] = floor{r.Epoch, r.Seq}
		}
		if r.Item.Data == nil {
			return
		}
		if r.Item.At == 0 {
			r.Item.At = now // a snapshot value's lag counts from when it is taken
		}
		buf = append(buf, r.Item)
		c.e.m.snapshotValues.Inc()
	})
	if done {
		c.snaps[0] = nil
		c.snaps = c.snaps[1:]
		if len(c.snaps) == 0 {
			c.snaps = nil
		}
	}
	return buf, len(c.snaps) > 0
}

// PendingSnapshots returns how many snapshots the client has waiting or
// being sent.
func (c *Client) PendingSnapshots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.snaps)
}
