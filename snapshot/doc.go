// Package snapshot serves the last-value cache over a ZeroMQ ROUTER (the
// Clone pattern of the ZeroMQ guide), and is the Go client for it.
//
// A client sends ["SNAP", prefix] from a DEALER; the server answers with one
// ["VAL", stamp, topic, payload...] per cached topic under prefix, then
// ["END", count, epoch]. Bad requests get ["ERR", code, text]. The protocol is
// in docs/snapshot.md.
//
// The Server serves requests a chunk at a time, taking turns, from a
// point-in-time lvc.View per request, with non-blocking sends: a requester
// that does not read holds at most Config.HWM messages, loses its request
// after Config.StallTimeout, and holds up nobody else. Config bounds the
// requests in progress in all and per requester. One goroutine (its OS
// thread locked) owns the ROUTER socket and all of the server's state.
//
// To start without a gap: subscribe to the stamped egress first, then fetch
// the snapshot, then drop every streamed update whose seq is not above the
// snapshot's seq for its topic (same epoch).
package snapshot
