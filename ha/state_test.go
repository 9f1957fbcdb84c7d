package ha_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mdgate/mdgate/ha"
)

func TestStateRoundTrip(t *testing.T) {
	tests := []ha.State{
		{Role: ha.RolePrimary, Mode: ha.ModePrimary},
		{Role: ha.RoleBackup, Mode: ha.ModeBackup, Term: 2, Epoch: 1, Time: 1},
		{Role: ha.RolePrimary, Mode: ha.ModeActive, Term: 0xdeadbeef, Epoch: 0x0102030405060708, Time: 1764000000123456789},
		{Role: ha.RoleBackup, Mode: ha.ModePassive, Term: ^uint64(0), Epoch: ^uint64(0), Time: -1},
	}
	for _, s := range tests {
		b := ha.Append(nil, s)
		if len(b) != ha.StateSize {
			t.Fatalf("Append(%+v) has %d bytes, want %d", s, len(b), ha.StateSize)
		}
		got, err := ha.Parse(b)
		if err != nil || got != s {
			t.Errorf("Parse(Append(%+v)) = %+v, %v, want %+v, nil", s, got, err, s)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := ha.Append(nil, ha.State{Role: ha.RoleBackup, Mode: ha.ModeActive, Term: 4})
	mod := func(i int, v byte) []byte { b := append([]byte(nil), good...); b[i] = v; return b }
	tests := []struct {
		name string
		in   []byte
		says string // the error names what is wrong
	}{
		{"empty", nil, "0 bytes"},
		{"short", good[:31], "31 bytes"},
		{"long", append(append([]byte(nil), good...), 0), "33 bytes"},
		{"magic", mod(3, 'S'), "magic"},
		{"version", mod(4, 2), "version 2"},
		{"reserved", mod(7, 1), "reserved"},
		{"role", mod(5, 0), "role 0"},
		{"mode", mod(6, 9), "mode 9"},
		{"backup claiming primary mode", mod(6, byte(ha.ModePrimary)), "mode primary from a backup"},
		{"primary claiming backup mode", ha.Append(nil, ha.State{Role: ha.RolePrimary, Mode: ha.ModeBackup}), "mode backup from a primary"},
		{"payload", []byte(`{"role":"primary","mode":"active","x":1}`), "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ha.Parse(tt.in)
			if !errors.Is(err, ha.ErrNotState) || !strings.Contains(fmt.Sprint(err), tt.says) {
				t.Errorf("Parse(%q) error = %v, want ErrNotState saying %q", tt.in, err, tt.says)
			}
		})
	}
}
