// Package blackbox fans the gateway's stamped messages out to many
// subscribers (the ZeroMQ guide's "Black Box" pattern). Publish hands a
// message to its topic's shard and never waits: a full shard drops it, and
// counts. Each shard's worker matches the message against the shard's exact
// and prefix subscriptions, encodes it once per wire format and queues the
// same bytes on every matching client's slowsub.Queue. It takes whatever is
// waiting on its shard, up to workBatch (1<<14) deliveries, before it wakes
// the clients it gave something to, each once: an ingress batch reaches a
// client as one write. Per-topic order is kept; topics spread over cores.
//
// A client's writing starts with Client.Start (Run is Start plus a wait for
// its end). Writers are started on demand: when something is queued for a
// client (an update, a reply, a snapshot, a heartbeat or probe falling due,
// the close), a writer goroutine is started if none is running, at most one
// at a time per client, and one goroutine at a time owns the connection's
// writes. Each wake-up of a writer makes one Conn.WriteBatch with a
// deadline: the queue, as much of it as the in-flight window allows, then
// the next chunk of a pending Snapshot (the cached values a subscribe
// replays: paced to what the client reads, never counted against its
// limits), with the heartbeat and the probe, when due, riding in the same
// write. The sweeper retires a writer that has had
// nothing to write for writerIdle (250 ms), so an idle client holds no
// writer goroutine. With Config.WriteDelay, a shard worker holds the
// wake-ups for live updates it queued until that long after the first of
// them (one timer per shard, each client woken once a window); replies, a
// snapshot and the close are not held, and a write made for them takes
// what is queued. When the client closes, the
// running writer (or one started for it) writes the close, ending the
// connection (WriteClose, Abort when that fails), releases the client and
// calls Start's done: nil, a *CutOffError, or the write error.
//
// Probes are pings the client answers once it has read up to them
// (probe.go): what is written and unanswered is bounded by an in-flight
// window, and its age counts as lag. Throttled subscriptions hold the latest
// value of a topic until its interval's edge (throttle.go). A client past
// slowsub's limits, or that answers nothing for the write deadline
// (Stalled), is cut off: a write in progress is aborted and done gets a
// *CutOffError. The sweeper, one goroutine for the engine, re-checks every
// client each SweepEvery, so a stalled client is cut off without new
// traffic; it also wakes writers whose probe is due once their writes have
// paused (a busy client's probe rides its next write), retires idle writers,
// and makes heartbeats fall due, each client on its own phase (from when it
// connected) and to within SweepEvery: there is no ticker per client. All
// the time the engine reads or waits for (lag, throttle edges, probes,
// write deadlines, the sweeper, heartbeats, writerIdle, WriteDelay) is
// Config.Clock's: a test moves it with a clock.Fake.
//
// Goroutines: the proxy loop calls Publish; one worker per shard; the
// sweeper; per client, a writer only while it has something to write (or
// for writerIdle after); a timer per throttled client. Subscribe,
// Unsubscribe, Send, Answered and Close are safe from any goroutine; Conn's
// Write methods are called only by the client's writer of the moment, and
// Conn.Abort by whoever cuts the client off during a write.
//
// Locks, in this order: a Client's mu, then a shard index's mu (Subscribe,
// Unsubscribe and the client's release index under the client's lock; a
// worker lets the index go before it locks any client). Engine.mu guards
// only the set of clients and is never held with another lock (the sweeper
// copies the set, then checks each client under its own lock). Under a
// client's mu the engine calls the snap function given to Subscribe (it
// may take a cache view, lvc's brief lock), a Snapshot's Take and Covers,
// and Conn.Abort, and starts a writer goroutine: none of them may take that
// client's lock or wait for its writer. Start's done is called with no
// lock held.
//
// The same pattern for ZeroMQ subscribers, blackboxzmq.RunSub, is in the
// subpackage blackboxzmq, so that this one builds and tests without libzmq.
package blackbox
