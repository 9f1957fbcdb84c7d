// Package slowsub decides what happens to a subscriber that cannot keep up
// (the ZeroMQ guide's "Suicidal Snail"): its queue is bounded in bytes, its
// lag is the age of its oldest undelivered message, and one function, Decide,
// says when it has fallen too far behind. A subscriber past its limit is
// either cut off or, when it asked, conflated: its queue keeps only the
// latest value of each topic and counts what it skipped.
//
// Queue is the byte-bounded per-subscriber queue the fan-out engine pushes
// to; it is not safe for concurrent use (its owner locks it). Sub wraps a
// libzmq SUB socket on the gateway's stamped stream and ends with an error
// when the subscriber lags or misses sequence numbers.
package slowsub
