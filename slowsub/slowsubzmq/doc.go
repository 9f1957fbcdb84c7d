// Package slowsubzmq is the ZeroMQ guide's Suicidal Snail for subscribers
// of the gateway. Sub wraps a libzmq SUB socket on the gateway's stamped
// stream and ends with an error (ErrTooSlow, ErrGap) when a message is
// older than its limit or a topic's sequence skips, instead of silently
// falling behind. Given the gateway's snapshot endpoint (SubConfig.Repair)
// it first repairs a gap through SINCE from the gateway's history
// (repair.go), delivering the missed updates in order while it holds the
// topic's later ones (bounded in bytes), and ends with ErrGap (a
// *RepairError) only when the history does not cover the gap.
//
// A failover pair (docs/ha.md): SubConfig.Endpoints connects the SUB to
// both gateways' stamped egresses at once (only the active publishes; seqs
// drop repeats), RepairEndpoints lists both snapshot endpoints (a SINCE
// moves to the next at ERR passive or RepairTimeout), and HeartbeatEvery
// (the pair's --ha-heartbeat) makes the Sub subscribe to the heartbeat
// topic and vote, a subscribe to tick.VoteTopic, after SilentBeats of it
// with nothing on the stream, so that a standby whose peer is dead takes
// over; the Sub goes on on it with the stamps it holds. Stamps carry a
// term, and the client rule holds within an epoch: an update under a
// lower term than its topic's last is dropped; under a higher term at or
// below the seq held, it is returned with a *DivergedError (ErrDiverged),
// which does not end the Sub: the topic goes on from that update, and the
// caller drops what it held past its seq. With repair, a higher term past
// the seq held is repaired from the seq before it, and the update found
// there under another term than the one held is returned the same way.
// FailoverStats counts votes, divergences, stale updates and moves.
//
// A Sub is not safe for concurrent use: one goroutine, ideally with its OS
// thread locked, owns it and its sockets.
//
// It is apart from package slowsub (the cut-off rule and the queues of the
// gateway's fan-out), which builds without libzmq; this one needs it (cgo,
// libzmq3-dev).
package slowsubzmq
