// Package snapshot serves the last-value cache over a ZeroMQ ROUTER (the
// Clone pattern of the ZeroMQ guide), and is the Go client for it.
//
// A client sends ["SNAP", prefix] from a DEALER; the server answers with one
// ["VAL", stamp, topic, payload...] per cached topic under prefix, then
// ["END", count, epoch]. Bad requests get ["ERR", code, text]. The protocol is
// in docs/snapshot.md.
//
// To start without a gap: subscribe to the stamped egress first, then fetch
// the snapshot, then drop every streamed update whose seq is not above the
// snapshot's seq for its topic (same epoch).
package snapshot
