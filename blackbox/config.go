package blackbox

import (
	"errors"
	"fmt"
	"time"
)

// MaxWriteDelay is the longest Config.WriteDelay: a delay is latency every
// client pays.
const MaxWriteDelay = 100 * time.Millisecond

// Validate reports every field of c out of range at once. Start from
// DefaultConfig: it is the source of the defaults, and Validate refuses the
// zero values that have no meaning of their own. Zero is real for Shards
// (one per core), Heartbeat (never) and one of the Limits (no such bound).
func (c Config) Validate() error {
	var errs []error
	if c.Shards < 0 {
		errs = append(errs, fmt.Errorf("fanout shards %d: want 0 (one per core) or more", c.Shards))
	}
	if c.ShardQueue < 1 {
		errs = append(errs, fmt.Errorf("fanout queue %d: want at least 1 message", c.ShardQueue))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("write timeout %v: want more than 0", c.WriteTimeout))
	}
	if c.Heartbeat < 0 {
		errs = append(errs, fmt.Errorf("ws heartbeat %v: want 0 (never) or more", c.Heartbeat))
	}
	if c.WriteDelay < 0 || c.WriteDelay > MaxWriteDelay {
		errs = append(errs, fmt.Errorf("write delay %v: want 0 (none) to %v", c.WriteDelay, MaxWriteDelay))
	}
	if c.BusyWriteDelay < 0 || c.BusyWriteDelay > MaxWriteDelay {
		errs = append(errs, fmt.Errorf("busy write delay %v: want 0 (none) to %v", c.BusyWriteDelay, MaxWriteDelay))
	}
	if c.SweepEvery <= 0 {
		errs = append(errs, fmt.Errorf("sweep interval %v: want more than 0", c.SweepEvery))
	}
	if c.InFlight < 1 {
		errs = append(errs, fmt.Errorf("ws inflight bytes %d: want at least 1", c.InFlight))
	}
	if c.InFlightConflate < 1 {
		errs = append(errs, fmt.Errorf("ws inflight conflate bytes %d: want at least 1", c.InFlightConflate))
	}
	return errors.Join(errs...)
}
