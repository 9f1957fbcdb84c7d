package proxy

import "testing"

func TestCheckEnumNames(t *testing.T) {
	tests := []struct {
		names []string
		n     int
		panic bool
	}{
		{[]string{"a", "b"}, 2, false},
		{[]string{"a"}, 2, true},           // a value added without a name
		{[]string{"a", "b", "c"}, 2, true}, // a name left behind
		{[]string{"a", ""}, 2, true},       // a gap in a keyed literal
		{[]string{"a", "a"}, 2, true},      // two values under one label
	}
	for _, tt := range tests {
		got := panics(func() { checkEnumNames("test", tt.names, tt.n) })
		if got != tt.panic {
			t.Errorf("checkEnumNames(%q, %d) panicked = %v, want %v", tt.names, tt.n, got, tt.panic)
		}
	}
}

func panics(fn func()) (did bool) {
	defer func() { did = recover() != nil }()
	fn()
	return false
}

// TestEnumNames: every label enum has one distinct name a value, the check
// init makes; a value added without its name fails here before it panics
// at start.
func TestEnumNames(t *testing.T) {
	tests := []struct {
		enum  string
		names []string
		n     int
	}{
		{"DropReason", dropReasonNames[:], int(numDropReasons)},
		{"egress", egressNames[:], int(numEgress)},
		{"socketRole", roleNames[:], int(numRoles)},
		{"ReplayOutcome", replayOutcomeNames[:], int(numReplayOutcomes)},
	}
	for _, tt := range tests {
		t.Run(tt.enum, func(t *testing.T) {
			if panics(func() { checkEnumNames(tt.enum, tt.names, tt.n) }) {
				t.Errorf("checkEnumNames(%q, %q, %d) panicked, want one distinct name for each of the %d values", tt.enum, tt.names, tt.n, tt.n)
			}
		})
	}
}
