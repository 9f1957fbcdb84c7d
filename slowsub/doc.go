// Package slowsub decides what happens to a subscriber that cannot keep up
// (the ZeroMQ guide's "Suicidal Snail"). Decide is the one rule: a
// subscriber is cut off when its queued bytes pass Limits.MaxBytes
// (QueueBytes) or its lag passes Limits.MaxLag (Lag). The third Reason,
// Stalled (nothing read for the write deadline), is decided by the queue's
// owner (package blackbox), not by Decide.
//
// Queue is the byte-bounded per-subscriber queue the fan-out pushes to; it
// is not safe for concurrent use (its owner locks it). An item marked
// Conflate replaces its topic's undelivered value whenever one is queued,
// behind or not, and counts what it replaced (Item.Skipped). Lag is the age
// of the oldest queued item that cannot be conflated: conflatable items are
// their topics' latest values, so a queue of only those is not behind the
// feed however old they are, and only the byte bound applies to it.
// CheckWith also counts as lag the age of data written but not yet read.
//
// The rule for ZeroMQ subscribers, slowsubzmq.Sub (the Suicidal Snail on
// the stamped stream, with its repair through SINCE), is in the subpackage
// slowsubzmq, so that this one builds and tests without libzmq.
package slowsub
