// Package lvc is mdgate's last-value cache: the latest stamped message of
// every topic, so that a new subscriber starts with the current picture.
//
// One writer (the proxy loop) calls Update, Expire, NextExpiry and
// ReplayFrom; any number of readers (the snapshot server, the persister, the
// WebSocket bridge) call Get, Scan, Snapshot and View concurrently. Values
// live in shards by topic hash, each behind its own RWMutex, as the immutable
// *tick.Message itself (an atomic pointer per topic): an update of a known
// topic is a pointer store with no allocation, and a reader never copies
// frame bytes. An ordered index of the topics (a copy-on-write B-tree) makes
// a prefix cost what it matches: View clones it in O(1) under a brief lock
// and is then read with no lock, each value its topic's latest when read;
// ReplayFrom walks it in budgeted steps.
//
// Bounds on topics and bytes are hard: past them a new topic is refused and
// counted, an existing value is never evicted. Values may carry a time to
// live by topic prefix; an expired value is removed and the writer is told,
// so that it can publish a delete notice. A publisher deletes a topic by
// sending [topic, ""] (exactly two frames, the second empty).
package lvc
