// Package tick defines the stamped market-data message that flows through
// mdgate, and the byte layout of its stamp on the wire.
//
// A Message is created once by the proxy loop when a publisher's multipart
// message arrives, and is immutable from then on: the last-value cache, the
// fan-out and every egress share the same value and the same frame bytes.
//
// The stamp (epoch, per-topic sequence number, ingress time) is what lets a
// client detect gaps and resume. A gateway fed by another gateway's stamped
// egress keeps the upstream stamp instead of re-stamping, so sequence numbers
// mean the same thing on every gateway of a chain.
package tick
