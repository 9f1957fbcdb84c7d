package blackbox

import "time"

// What a client has really read.
//
// Bytes handed to the kernel are not read yet: the socket's send buffer,
// the network and the client's receive buffer can hold seconds of a slow
// reader's feed where the queue's limits cannot see it. So the writer
// follows its writes with probes (a WebSocket ping carrying an id) that the
// client answers once it has read up to them, and:
//
//   - keeps at most a window of bytes written but not yet answered: past
//     that it stops writing, the queue holds the rest, and the slow rule
//     (bytes, lag, or conflation, before bytes reach the kernel) applies
//     to it. The window starts small and grows up to Config.InFlight
//     (InFlightConflate for a client with a conflating subscription),
//     following the client: it
//     halves when a probe took longer than a quarter of the client's lag
//     limit to be answered and doubles back when answers come in under a
//     sixteenth, so what is in flight is what the client reads in about
//     max_lag/4, whatever its speed, and a client that is cut off has
//     little left to read that is older than its limit;
//   - counts the oldest unanswered data's age as lag: a client that has
//     not read past data older than its lag limit is cut off, whatever the
//     kernel holds;
//   - cuts off (stalled) a client that answered nothing for WriteTimeout.
//
// A client that never answers pings (against RFC 6455) stalls and is cut
// off; browsers and WebSocket libraries answer by themselves.

// probe is a probe written and not yet answered.
type probe struct {
	id     uint64
	sentAt int64 // Unix ns
	end    int64 // bytes written up to it
	oldest int64 // the oldest At of the data written since the probe before it
}

const (
	minWindow   = 16 << 10 // the smallest window: smaller ones cost a write and a probe per few messages
	startWindow = 16 << 10 // a new client's window: it doubles with every quick answer
	maxProbes   = 8        // unanswered probes at most
	probeBytes  = 64 << 10 // a probe follows once this much was written since the last one
)

// probeEveryLocked is how late a probe may follow written data (sweeper
// permitting; twice as late once the writes pause,
// probeAloneDueLocked): an eighth of the lag limit, 25 to 250 ms, so a
// client's lag is known to within about that and a steady feed costs a few
// pings a second per client. c.mu is held.
func (c *Client) probeEveryLocked() int64 {
	return int64(min(max(c.q.Limits().MaxLag/8, 25*time.Millisecond), 250*time.Millisecond))
}

// probeAloneDueLocked reports whether the sweeper should wake the writer
// to write a probe on its own: data written since the last probe waits for
// one, that probe is due (probeEveryLocked), and no write has been made for
// as long, so none is coming soon to carry it. A client still being written
// to gets its probe in its next write (probeDueLocked): probes woken by the
// sweeper for every client with one due came in bursts, hundreds of writes
// of a ping alone every sweep, which the updates queued behind them waited
// for (session 9, docs/benchmarks.md). So data is probed within
// 2x probeEveryLocked of the previous probe, plus a sweep; its lag counts
// from when it was written whether or not a probe has followed it
// (inFlightLagLocked), so a later probe delays no cut-off. c.mu is held.
func (c *Client) probeAloneDueLocked(now int64) bool {
	every := c.probeEveryLocked()
	return c.unprobedBytes > 0 && now-c.lastProbe >= every && now-c.lastWrite >= every
}

// wroteLocked records a write of n bytes whose oldest data item is oldest (Unix
// ns; 0: no data, only replies). c.mu is held.
func (c *Client) wroteLocked(n int, oldest int64) {
	c.written += int64(n)
	if oldest != 0 && (c.unprobed == 0 || oldest < c.unprobed) {
		c.unprobed = oldest
	}
	c.unprobedBytes += int64(n)
}

// probeDueLocked reports whether a probe should follow now, and takes it:
// its id. c.mu is held.
func (c *Client) probeDueLocked(now int64) (uint64, bool) {
	if c.unprobedBytes == 0 || len(c.probes) >= maxProbes {
		return 0, false
	}
	if c.unprobedBytes < probeBytes && now-c.lastProbe < c.probeEveryLocked() && !(c.windowFullLocked() && len(c.probes) == 0) {
		return 0, false // for a trickle, a probe now and then: one ping per write would double the syscalls
	}
	c.nextProbe++
	c.probes = append(c.probes, probe{id: c.nextProbe, sentAt: now, end: c.written, oldest: c.unprobed})
	c.lastProbe, c.unprobed, c.unprobedBytes = now, 0, 0
	return c.nextProbe, true
}

// windowFullLocked reports whether the writer must wait for the client to
// read before writing more. c.mu is held.
func (c *Client) windowFullLocked() bool { return c.roomLocked() <= 0 }

// roomLocked is how many more bytes the writer may write now. c.mu is held.
func (c *Client) roomLocked() int {
	w := c.window
	if c.conflating > 0 {
		w = min(w, c.e.cfg.InFlightConflate)
	}
	return w - int(c.written-c.acked)
}

// inFlightLagLocked is the age at now of the oldest data the client has
// not answered for, or 0. c.mu is held.
func (c *Client) inFlightLagLocked(now int64) time.Duration {
	oldest := c.unprobed
	for _, p := range c.probes { // the first that covers data (0: only replies)
		if p.oldest != 0 {
			oldest = p.oldest
			break
		}
	}
	if oldest == 0 {
		return 0
	}
	return time.Duration(max(now-oldest, 0))
}

// Answered records the client's answer to probe id (it has read everything
// written before it) and wakes the writer when something waits for the
// room that made. Safe from any goroutine.
func (c *Client) Answered(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for i < len(c.probes) && c.probes[i].id <= id {
		i++
	}
	if i == 0 {
		return // not ours, or answered already
	}
	p := c.probes[i-1]
	c.acked = p.end
	c.probes = append(c.probes[:0], c.probes[i:]...)
	if maxLag := c.q.Limits().MaxLag; maxLag > 0 {
		// Shrink when an answer took over a quarter of the lag limit, grow
		// when under a sixteenth: between the two the window holds, so a
		// gateway busy enough to delay answers a little does not shrink
		// every window (smaller windows cost more writes and probes).
		switch delay := time.Duration(c.e.cfg.Clock.Now().UnixNano() - p.sentAt); {
		case delay > maxLag/4:
			c.window = max(c.window/2, minWindow)
		case delay < maxLag/16:
			c.window = min(c.window*2, c.e.cfg.InFlight)
		}
	}
	// The answer makes room in the window: the writer needs it only when
	// something waits for that room. With nothing queued, waking it (or
	// starting one) for every answer cost a goroutine wake-up a probe.
	if n, _ := c.q.Len(); n > 0 || len(c.snaps) > 0 {
		c.wakeLocked()
	}
}

// stalledLocked reports whether the client answered nothing for the write
// deadline. c.mu is held.
func (c *Client) stalledLocked(now int64) bool {
	return len(c.probes) > 0 && now-c.probes[0].sentAt > int64(c.e.cfg.WriteTimeout)
}
