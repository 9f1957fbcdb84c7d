package ha

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// StateSize is the length in bytes of an encoded State.
const StateSize = 32

// Magic opens every State frame.
var Magic = [4]byte{'M', 'D', 'H', 'A'}

// Version is the State layout version written by this package.
const Version = 1

// State is the message each gateway of the pair publishes to the other every
// heartbeat (bstar sends only the mode; the rest is mdgate's).
type State struct {
	Role  Role   // the sender's configured role
	Mode  Mode   // the sender's mode; a starting mode must match the role
	Term  uint64 // the sender's term (Machine.Term)
	Epoch uint64 // the sender's stamp epoch: changes when the sender restarts
	Time  int64  // when it was sent, Unix ns, for logs (the clocks may differ)
}

// ErrNotState is returned, wrapped, by Parse for a frame that is not a State,
// and by Machine.Peer for a State with an unknown role or mode.
var ErrNotState = errors.New("ha: not an mdgate HA state")

// Append appends the 32-byte wire form of s to dst:
//
//	offset size field
//	0      4    magic "MDHA"
//	4      1    version (1)
//	5      1    role (1 primary, 2 backup)
//	6      1    mode (1 primary, 2 backup, 3 active, 4 passive)
//	7      1    reserved, zero
//	8      8    term, big-endian
//	16     8    epoch, big-endian
//	24     8    time sent, Unix ns, big-endian two's complement
//
// Append writes whatever s holds; Parse refuses a role or mode it does not
// know.
func Append(dst []byte, s State) []byte {
	dst = append(dst, Magic[:]...)
	dst = append(dst, Version, byte(s.Role), byte(s.Mode), 0)
	dst = binary.BigEndian.AppendUint64(dst, s.Term)
	dst = binary.BigEndian.AppendUint64(dst, s.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.Time))
	return dst
}

// Parse decodes a frame written by Append. It refuses (with an error
// wrapping ErrNotState that says why) another length, magic or version,
// a non-zero reserved byte, an unknown role or mode, and a starting mode
// that is not the role's: every accepted frame is exactly Append of the
// State returned.
func Parse(b []byte) (State, error) {
	if len(b) != StateSize {
		return State{}, fmt.Errorf("ha: state frame of %d bytes, want %d: %w", len(b), StateSize, ErrNotState)
	}
	if [4]byte(b[:4]) != Magic {
		return State{}, fmt.Errorf("ha: state magic %q, want %q: %w", b[:4], Magic[:], ErrNotState)
	}
	if b[4] != Version {
		return State{}, fmt.Errorf("ha: state version %d, want %d: %w", b[4], Version, ErrNotState)
	}
	if b[7] != 0 {
		return State{}, fmt.Errorf("ha: state reserved byte %#02x, want 0: %w", b[7], ErrNotState)
	}
	s := State{
		Role:  Role(b[5]),
		Mode:  Mode(b[6]),
		Term:  binary.BigEndian.Uint64(b[8:]),
		Epoch: binary.BigEndian.Uint64(b[16:]),
		Time:  int64(binary.BigEndian.Uint64(b[24:])),
	}
	if err := s.check(); err != nil {
		return State{}, err
	}
	return s, nil
}

// check refuses a role or mode this package does not know, and a starting
// mode that is not the sender's role.
func (s State) check() error {
	if !s.Role.valid() {
		return fmt.Errorf("ha: state role %d, want 1 (primary) or 2 (backup): %w", uint8(s.Role), ErrNotState)
	}
	if !s.Mode.valid() {
		return fmt.Errorf("ha: state mode %d, want 1 to 4: %w", uint8(s.Mode), ErrNotState)
	}
	if s.Mode == ModePrimary && s.Role != RolePrimary || s.Mode == ModeBackup && s.Role != RoleBackup {
		return fmt.Errorf("ha: state mode %v from a %v: %w", s.Mode, s.Role, ErrNotState)
	}
	return nil
}
