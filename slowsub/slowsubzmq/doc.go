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
// A Sub is not safe for concurrent use: one goroutine, ideally with its OS
// thread locked, owns it and its sockets.
//
// It is apart from package slowsub (the cut-off rule and the queues of the
// gateway's fan-out), which builds without libzmq; this one needs it (cgo,
// libzmq3-dev).
package slowsubzmq
