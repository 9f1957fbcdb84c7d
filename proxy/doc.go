// Package proxy is mdgate's libzmq proxy loop: one goroutine, Run, with its
// OS thread locked, owns every ZeroMQ socket of the core (the XSUB ingress,
// the XPUB egresses, the capture PUB and their monitors). libzmq sockets are
// not thread-safe: nothing outside Run touches them. Beside it, the ZAP
// handler (zap.go) answers CURVE authentication on a socket of its own, and
// the descriptor shedder (accept.go) runs on its own thread.
//
// Publishers send multipart [topic, payload...] messages to the XSUB. The loop
// reads and writes them in batches (batch.go), validates each one, stamps it
// (epoch, per-topic sequence number, ingress time), and hands the immutable
// *tick.Message to:
//
//   - the raw XPUB egress, which sends exactly the frames the publisher sent;
//   - the stamped XPUB egress, which appends one stamp frame (see package tick);
//   - the capture PUB (the "espresso" tap), when configured;
//   - the Cache (last-value cache) and every Sink (the WebSocket fan-out).
//
// The Cache and the Sinks are called on the loop's goroutine and must never
// block.
//
// Replays (replay.go): a new subscription on an egress is answered with the
// cached values under its prefix. An XPUB has no per-peer send, so every
// subscriber whose prefixes match gets them too; the loop therefore
// coalesces requests, replays a prefix at most once per ReplayInterval, and
// paces replays (ReplayBatch an iteration, ReplayRate a second, in topic
// order) so live traffic never waits behind them. A subscriber that must
// not miss a value uses the snapshot ROUTER instead (package snapshot).
//
// Descriptor shedding (accept.go): libzmq spins on a TCP listener whose
// accepts fail for lack of descriptors. The listener stays bound, and the
// shedder, with a descriptor table of its own, accepts and closes what
// waits in its backlog until accepts succeed again; connected peers are not
// touched (where unshare is refused, the loop sheds with a small reserve of
// descriptors).
package proxy
