// Package blackbox fans the gateway's stamped messages out to many
// subscribers (the ZeroMQ guide's "Black Box" pattern). Messages are sharded
// by topic across workers, so per-topic order is kept and topics spread over
// cores; each worker matches a message against exact and prefix
// subscriptions, encodes it once per wire format, and hands the same bytes
// to every matching client's byte-bounded queue (slowsub.Queue). The
// producer never waits: Publish drops, and counts, when a shard is full.
//
// Each client has one writer goroutine (Client.Run) that owns its
// connection's writes: it drains the whole queue into one batch per wake-up,
// writes it with a deadline, and cuts the client off through slowsub's one
// rule when it falls behind. A sweeper re-checks idle queues so a stalled
// client is cut off within its lag limit plus the sweep period.
//
// Sub is the same pattern for ZeroMQ subscribers: one goroutine reads a
// libzmq SUB socket and hands messages to N workers sharded by topic.
package blackbox
