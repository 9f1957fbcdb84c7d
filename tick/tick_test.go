package tick_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mdgate/mdgate/tick"
)

func TestStampRoundTrip(t *testing.T) {
	tests := []tick.Stamp{
		{},
		{Epoch: 1, Seq: 1, Ingress: 1},
		{Epoch: ^uint64(0), Seq: ^uint64(0), Ingress: -1, Flags: tick.FlagReplay | tick.FlagDelete},
		{Epoch: 0xdeadbeef, Seq: 42, Ingress: 1764000000123456789, Flags: tick.FlagStale},
		{Epoch: 7, Seq: 9, Ingress: 3, Term: 1},
		{Epoch: 7, Seq: 9, Ingress: 3, Term: 0xffff, Flags: tick.FlagReplay},
	}
	for _, s := range tests {
		b := tick.AppendStamp(nil, s)
		if len(b) != tick.StampSize {
			t.Fatalf("AppendStamp(%+v) has %d bytes, want %d", s, len(b), tick.StampSize)
		}
		got, err := tick.ParseStamp(b)
		if err != nil || got != s {
			t.Errorf("ParseStamp(AppendStamp(%+v)) = %+v, %v, want %+v, nil", s, got, err, s)
		}
	}
}

func TestParseStampRejects(t *testing.T) {
	good := tick.AppendStamp(nil, tick.Stamp{Seq: 7})
	badVersion := append([]byte(nil), good...)
	badVersion[4] = 9
	badReserved := append([]byte(nil), good...)
	badReserved[7] = 1
	termZero := append([]byte(nil), good...)
	termZero[4] = tick.VersionTerm // a version 2 stamp must carry a term
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", good[:31]},
		{"long", append(append([]byte(nil), good...), 0)},
		{"magic", append([]byte("XDGS"), good[4:]...)},
		{"version", badVersion},
		{"reserved", badReserved},
		{"version 2 without a term", termZero},
		{"payload", []byte(`{"px":101.25,"sym":"AAPL","ts":17640000001}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tick.ParseStamp(tt.in); !errors.Is(err, tick.ErrNotStamp) {
				t.Errorf("ParseStamp(%q) error = %v, want ErrNotStamp", tt.in, err)
			}
		})
	}
}

func ExampleAppendStamp() {
	b := tick.AppendStamp(nil, tick.Stamp{Epoch: 0x0102030405060708, Seq: 3, Ingress: 1000})
	fmt.Printf("% x\n", b)
	s, _ := tick.ParseStamp(b)
	fmt.Println(s.Epoch == 0x0102030405060708, s.Seq, s.Ingress)
	// Output:
	// 4d 44 47 53 01 00 00 00 01 02 03 04 05 06 07 08 00 00 00 00 00 00 00 03 00 00 00 00 00 00 03 e8
	// true 3 1000
}

func ExampleAppendStamp_term() {
	// A gateway of a failover pair stamps with its term: version 2.
	b := tick.AppendStamp(nil, tick.Stamp{Epoch: 0x0102030405060708, Seq: 3, Ingress: 1000, Term: 5})
	fmt.Printf("% x\n", b[:8])
	s, _ := tick.ParseStamp(b)
	fmt.Println(s.Term, s.Seq)
	// Output:
	// 4d 44 47 53 02 00 00 05
	// 5 3
}
