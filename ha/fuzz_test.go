package ha_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mdgate/mdgate/ha"
)

// FuzzParse: any frame parses or is refused with ErrNotState, never a panic;
// a frame that parses re-encodes (Append) to exactly its bytes and is a State
// Machine.Peer accepts as well formed. Seeds in testdata/fuzz.
func FuzzParse(f *testing.F) {
	f.Add(ha.Append(nil, ha.State{Role: ha.RolePrimary, Mode: ha.ModeActive, Term: 1, Epoch: 1, Time: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ha.Parse(b)
		if err != nil {
			if !errors.Is(err, ha.ErrNotState) {
				t.Fatalf("Parse(%x) error = %v, want ErrNotState", b, err)
			}
			return
		}
		if got := ha.Append(nil, s); !bytes.Equal(got, b) {
			t.Fatalf("Append(Parse(%x)) = %x, want the input", b, got)
		}
		role := ha.RolePrimary
		if s.Role == ha.RolePrimary {
			role = ha.RoleBackup
		}
		m, _ := ha.NewMachine(role, 0, hb, t0)
		if _, err := m.Peer(s, t0); errors.Is(err, ha.ErrNotState) || errors.Is(err, ha.ErrRoleConflict) {
			t.Fatalf("%v.Peer(Parse(%x)) error = %v, want a well-formed state", role, b, err)
		}
	})
}
