// Package blackbox fans the gateway's stamped messages out to many
// subscribers (the ZeroMQ guide's "Black Box" pattern). Publish hands a
// message to its topic's shard and never waits: a full shard drops it, and
// counts. Each shard's worker matches the message against the shard's exact
// and prefix subscriptions, encodes it once per wire format, queues the same
// bytes on every matching client's slowsub.Queue, and wakes each client once
// per batch. Per-topic order is kept; topics spread over cores.
//
// Each client has one writer, Client.Run, the only goroutine that writes to
// its connection. A wake-up drains the queue, plus the next chunk of a
// pending Snapshot (the cached values a subscribe replays: paced to what the
// client reads, never counted against its limits), into one write with a
// deadline. Writes are followed by probes, pings the client answers once it
// has read up to them (probe.go): what is written and unanswered is bounded
// by an in-flight window, and its age counts as lag. Throttled subscriptions
// hold the latest value of a topic until its interval's edge (throttle.go).
// A client past slowsub's limits, or that answers nothing for the write
// deadline (Stalled), is cut off: a write in progress is aborted and Run
// returns a *CutOffError. The sweeper re-checks every client each
// SweepEvery, so a stalled client is cut off without new traffic. All the
// time the engine reads or waits for (lag, throttle edges, probes, write
// deadlines, the sweeper, heartbeats) is Config.Clock's: a test moves it
// with a clock.Fake.
//
// Goroutines: the proxy loop calls Publish; one worker per shard; the
// sweeper; one writer per client; a timer per throttled client. Subscribe,
// Unsubscribe, Send, Answered and Close are safe from any goroutine.
//
// Locks, in this order: a Client's mu, then a shard index's mu (Subscribe,
// Unsubscribe and the client's release index under the client's lock; a
// worker lets the index go before it locks any client). Engine.mu guards
// only the set of clients and is never held with another lock. Under a
// client's mu the engine calls the snap function given to Subscribe (it
// may take a cache view, lvc's brief lock), a Snapshot's Take and Covers,
// and Conn.Abort: none of them may take that client's lock or wait for its
// writer.
//
// The same pattern for ZeroMQ subscribers, blackboxzmq.RunSub, is in the
// subpackage blackboxzmq, so that this one builds and tests without libzmq.
package blackbox
