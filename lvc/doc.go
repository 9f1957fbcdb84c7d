// Package lvc is mdgate's last-value cache: the latest stamped message of
// every topic, so that a new subscriber starts with the current picture.
//
// One writer (the proxy loop) calls Update, Expire and Replay; any number of
// readers (the snapshot server, the persister, the WebSocket bridge) call
// Get, Scan and Snapshot concurrently. The cache is split into shards by
// topic hash, each behind its own RWMutex, and stores the immutable
// *tick.Message itself: an update of a known topic is a pointer store with no
// allocation, and a reader never copies frame bytes.
//
// Bounds on topics and bytes are hard: past them a new topic is refused and
// counted, an existing value is never evicted. Values may carry a time to
// live by topic prefix; an expired value is removed and the writer is told,
// so that it can publish a delete notice. A publisher deletes a topic by
// sending [topic, ""] (exactly two frames, the second empty).
package lvc
