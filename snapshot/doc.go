// Package snapshot serves the last-value cache over a ZeroMQ ROUTER (the
// Clone pattern of the ZeroMQ guide), and is the Go client for it.
//
// A client sends ["SNAP", prefix] from a DEALER; the server answers with one
// ["VAL", stamp, topic, payload...] per cached topic under prefix, then
// ["END", count, epoch]. To repair a gap it sends ["SINCE", topic, epoch,
// seq] (uint64s, big-endian): the server answers with the topic's retained
// updates after that one (lvc history), in order, as VALs, then ["END",
// count, epoch, status, missed], status recovered, gap (missed of them gone,
// 0 when not known) or nohistory. Bad requests get ["ERR", code, text]. The
// protocol is in docs/snapshot.md.
//
// The Server serves requests a chunk at a time, taking turns, from a
// point-in-time lvc.View per SNAP and the topic's history read from the
// last update sent per SINCE, with non-blocking sends: a requester
// that does not read holds at most Config.HWM messages, loses its request
// after Config.StallTimeout, and holds up nobody else. Config bounds the
// requests in progress in all and per requester. One goroutine (its OS
// thread locked) owns the ROUTER socket and all of the server's state.
//
// To start without a gap: subscribe to the stamped egress first, then fetch
// the snapshot, then drop every streamed update whose seq is not above the
// snapshot's seq for its topic (same epoch).
package snapshot
