package ha

import "testing"

func TestDeliverDropsOldest(t *testing.T) {
	l, err := NewLink(LinkConfig{Bind: "inproc://a", Peer: "inproc://b", Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	for term := uint64(1); term <= 5; term++ {
		l.deliver(State{Role: RolePrimary, Mode: ModeActive, Term: term})
	}
	if got := l.Stats().Dropped; got != 3 {
		t.Errorf("Stats().Dropped after 5 states into a queue of 2 = %d, want 3", got)
	}
	for _, want := range []uint64{4, 5} {
		if s := <-l.Recv(); s.Term != want {
			t.Errorf("<-Recv() term = %d, want %d (the newest are kept)", s.Term, want)
		}
	}
}
