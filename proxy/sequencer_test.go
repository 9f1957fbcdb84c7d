package proxy

import (
	"fmt"
	"testing"

	"github.com/mdgate/mdgate/tick"
)

// TestSequencerKeepTerms: within an epoch the highest term wins.
func TestSequencerKeepTerms(t *testing.T) {
	tests := []struct {
		name string
		last tick.Stamp // kept before
		in   tick.Stamp
		want string
	}{
		{"next seq", tick.Stamp{Epoch: 1, Seq: 5, Term: 1}, tick.Stamp{Epoch: 1, Seq: 6, Term: 1}, "kept"},
		{"duplicate", tick.Stamp{Epoch: 1, Seq: 5, Term: 1}, tick.Stamp{Epoch: 1, Seq: 5, Term: 1}, "duplicate"},
		{"older", tick.Stamp{Epoch: 1, Seq: 5, Term: 1}, tick.Stamp{Epoch: 1, Seq: 3, Term: 1}, "duplicate"},
		{"higher term, lower seq: diverged", tick.Stamp{Epoch: 1, Seq: 9, Term: 1}, tick.Stamp{Epoch: 1, Seq: 7, Term: 2}, "kept"},
		{"higher term, next seq", tick.Stamp{Epoch: 1, Seq: 9, Term: 1}, tick.Stamp{Epoch: 1, Seq: 10, Term: 2}, "kept"},
		{"stale term, higher seq", tick.Stamp{Epoch: 1, Seq: 7, Term: 2}, tick.Stamp{Epoch: 1, Seq: 10, Term: 1}, "stale_term"},
		{"another epoch", tick.Stamp{Epoch: 1, Seq: 9, Term: 3}, tick.Stamp{Epoch: 2, Seq: 1, Term: 1}, "kept"},
		{"no pair", tick.Stamp{Epoch: 1, Seq: 9}, tick.Stamp{Epoch: 1, Seq: 9}, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSequencer(42, 10)
			ts := s.lookup([]byte("t"))
			if _, ok := s.keep(ts, tt.last); !ok {
				t.Fatalf("keep(%+v) on a new topic refused", tt.last)
			}
			r, ok := s.keep(ts, tt.in)
			got := "kept"
			if !ok {
				got = r.String()
			}
			if got != tt.want {
				t.Errorf("keep(%+v) after %+v = %s, want %s", tt.in, tt.last, got, tt.want)
			}
		})
	}
}

func ExampleDropReason() {
	fmt.Println(DropStaleTerm, DropPassive, DropMirror)
	// Output: stale_term passive mirror
}
