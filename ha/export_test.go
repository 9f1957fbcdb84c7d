package ha

import "time"

// MachineForTest returns a machine of role in mode, with our term, the
// highest term seen from the peer, and the peer's expiry, so a table test
// can start from any row.
func MachineForTest(role Role, mode Mode, term, seen uint64, heartbeat time.Duration, expiry time.Time) *Machine {
	return &Machine{role: role, mode: mode, term: term, seen: seen, heartbeat: heartbeat, expiry: expiry}
}
