package slowsubzmq_test

import (
	"runtime"
	"testing"

	"github.com/mdgate/mdgate/tick"
)

// The gateway starts a topic deleted and created again above every seq it
// has handed out (proxy/sequencer.go), not at the delete's seq plus one: a
// Sub that saw the delete takes whatever comes next as the topic's start.
// A seq skipped after that is still a gap.
func TestDeleteStartsTopicAfresh(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub := newPub(t)
	sub := dial(t, pub.ep, 0)
	pub.awaitSubscriber(t)
	sends := []tick.Stamp{
		{Epoch: 1, Seq: 1},
		{Epoch: 1, Seq: 2, Flags: tick.FlagDelete},
		{Epoch: 1, Seq: 9}, // created again, above other freed topics' seqs
		{Epoch: 1, Seq: 10},
		{Epoch: 1, Seq: 12},
	}
	for _, st := range sends {
		pub.send("t", st)
	}
	for i, st := range sends {
		m, err := sub.Recv()
		want := ""
		if i == len(sends)-1 {
			want = "gap in sequence: t want seq 11, got 12"
		}
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want || m == nil || m.Stamp.Seq != st.Seq {
			t.Fatalf("Recv %d = %v, %q, want seq %d, %q", i, m, got, st.Seq, want)
		}
	}
}
