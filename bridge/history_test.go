package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/mdgate/mdgate/blackbox"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/tick"
)

func historyRig(t *testing.T, count int) *rig {
	t.Helper()
	cc := lvc.DefaultConfig()
	if count > 0 {
		cc.History = []lvc.HistoryRule{{Prefix: "ev.", MaxCount: count, MaxBytes: 1 << 30}}
	}
	return newRigCache(t, DefaultConfig(), blackbox.DefaultConfig(), cc)
}

// seqOf reads a message's seq, failing on anything but an update of topic.
func seqOf(t *testing.T, m map[string]any, topic string) uint64 {
	t.Helper()
	if m["op"] != "update" || m["topic"] != topic {
		t.Fatalf("got %s, want an update of %s", m["\x00raw"], topic)
	}
	return uint64(m["seq"].(float64))
}

func resumeTo(c *client, t *testing.T, topic string, seq uint64) {
	c.send(t, map[string]any{"op": "subscribe", "topics": []string{topic}, "resume": map[string]any{
		topic: map[string]any{"seq": seq, "epoch": fmt.Sprintf("%016x", epoch)}}})
	if ack := c.next(t); ack["op"] != "ack" {
		t.Fatalf("subscribe answered %s, want ack", ack["\x00raw"])
	}
}

// A client away for N updates resumes with all N, in order, the first
// marked recovered, then live updates with no duplicate and no hole.
func TestResumeReplaysMissedUpdates(t *testing.T) {
	r := historyRig(t, 1000)
	for range 5 {
		r.publish("ev.a", `{"fill":1}`)
	}
	for range 20 {
		r.publish("ev.a", `{"fill":2}`) // missed while away: 6..25
	}
	c := r.dial(t, nil)
	resumeTo(c, t, "ev.a", 5)
	for want := uint64(6); want <= 25; want++ {
		m := c.next(t)
		if got := seqOf(t, m, "ev.a"); got != want || m["replay"] != true || m["gap"] != nil {
			t.Fatalf("replay: got %s, want seq %d replay:true, no gap", m["\x00raw"], want)
		}
		if rec := m["recovered"] == true; rec != (want == 6) {
			t.Fatalf("seq %d recovered = %v, want %v", want, rec, want == 6)
		}
	}
	r.publish("ev.a", `{"fill":3}`)
	if m := c.next(t); seqOf(t, m, "ev.a") != 26 || m["replay"] != nil {
		t.Fatalf("after the replay got %s, want live seq 26", m["\x00raw"])
	}
}

// Past the window the replay starts where the history does, flagged with
// exactly how many updates are gone.
func TestResumePastTheWindowSaysWhatIsGone(t *testing.T) {
	r := historyRig(t, 10)
	for range 35 {
		r.publish("ev.a", `1`)
	}
	c := r.dial(t, nil)
	resumeTo(c, t, "ev.a", 5) // 6..25 are gone, 26..35 kept
	m := c.next(t)
	if seqOf(t, m, "ev.a") != 26 || m["gap"] != true || m["missed"] != 20.0 || m["recovered"] != nil {
		t.Fatalf("first replayed = %s, want seq 26 gap:true missed:20", m["\x00raw"])
	}
	for want := uint64(27); want <= 35; want++ {
		if got := seqOf(t, c.next(t), "ev.a"); got != want {
			t.Fatalf("replay seq %d, want %d", got, want)
		}
	}
}

// A long recovery goes out in chunks while the topic keeps updating: the
// client sees every seq exactly once, in order.
func TestResumeWhileLiveIsExactlyOnce(t *testing.T) {
	const backlog, live = 20_000, 5_000
	r := historyRig(t, backlog+live+10)
	for range 5 + backlog {
		r.publish("ev.a", `{"px":100.25,"sz":5}`)
	}
	c := r.dial(t, nil)
	resumeTo(c, t, "ev.a", 5)
	published := 5 + backlog
	replayed, lived := 0, 0
	for want := uint64(6); want <= 5+backlog+live; want++ {
		if want%50 == 0 && published < 5+backlog+live { // updates arrive while the replay goes out
			for range 20 {
				r.publish("ev.a", `{"px":100.5,"sz":1}`)
				published++
			}
		}
		m := c.next(t)
		if got := seqOf(t, m, "ev.a"); got != want {
			t.Fatalf("got seq %d, want %d (after %d replayed, %d live)", got, want, replayed, lived)
		}
		if m["gap"] != nil {
			t.Fatalf("seq %d flagged a gap: %s", want, m["\x00raw"])
		}
		if m["replay"] == true {
			replayed++
		} else {
			lived++
		}
	}
	for want := uint64(6 + backlog + live); want < 16+backlog+live; want++ {
		r.publish("ev.a", `{"px":100.5,"sz":1}`)
		if m := c.next(t); seqOf(t, m, "ev.a") != want || m["replay"] != nil {
			t.Fatalf("after the replay got %s, want live seq %d", m["\x00raw"], want)
		}
	}
	if replayed < backlog {
		t.Errorf("%d replayed, want at least the %d missed before the resume", replayed, backlog)
	}
	t.Logf("%d replayed from history, %d live", replayed, lived)
}

// A client ahead of the gateway (it saw updates this one never got, as
// after a failover) is told it diverged and gets the gateway's latest and
// every update after it: nothing is held back by the client's higher seq.
func TestResumeAheadDiverged(t *testing.T) {
	for _, count := range []int{0, 100} { // without and with history
		t.Run(fmt.Sprintf("history=%d", count), func(t *testing.T) {
			r := historyRig(t, count)
			for range 5 {
				r.publish("ev.a", `1`)
			}
			c := r.dial(t, nil)
			resumeTo(c, t, "ev.a", 9) // the client saw up to 9; this gateway has 5
			m := c.next(t)
			if m["op"] != "snapshot" || m["seq"] != 5.0 || m["diverged"] != true {
				t.Fatalf("resume ahead: got %s, want snapshot seq 5 diverged:true", m["\x00raw"])
			}
			for want := uint64(6); want <= 12; want++ {
				r.publish("ev.a", `2`)
				if got := seqOf(t, c.next(t), "ev.a"); got != want {
					t.Fatalf("after diverging: seq %d, want %d", got, want)
				}
			}
		})
	}
}

// A client whose update at its resume point carries another term than the
// gateway's (it came from an active that was replaced) diverged, even when
// the gateway has moved past its seq; the same seq under the gateway's own
// term resumes as usual.
func TestResumeOtherTermDiverged(t *testing.T) {
	r := historyRig(t, 100)
	pub := func(seq uint64, term uint16) {
		m := &tick.Message{Topic: "ev.a", Frames: [][]byte{[]byte("ev.a"), []byte(`1`)},
			Stamp: tick.Stamp{Epoch: epoch, Seq: seq, Term: term, Ingress: time.Now().UnixNano()}}
		r.cache.Update(m)
		r.engine.Publish(m)
	}
	for s := uint64(1); s <= 5; s++ {
		pub(s, 1)
	}
	for s := uint64(6); s <= 8; s++ { // the new active continued from 5 under term 2
		pub(s, 2)
	}
	tests := []struct {
		name string
		seq  uint64
		term uint16
		want string
	}{
		{"saw 6 and 7 from the old active", 7, 1, "snapshot seq 8 diverged"},
		{"at the takeover point", 5, 1, "update seq 6 recovered"},
		{"on the new term", 7, 2, "update seq 8 recovered"},
		{"without a term", 7, 0, "update seq 8 recovered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := r.dial(t, nil)
			c.send(t, map[string]any{"op": "subscribe", "topics": []string{"ev.a"}, "resume": map[string]any{
				"ev.a": map[string]any{"seq": tt.seq, "epoch": fmt.Sprintf("%016x", epoch), "term": tt.term}}})
			c.until(t, "ack")
			m := c.next(t)
			got := fmt.Sprintf("%s seq %v", m["op"], m["seq"])
			if m["diverged"] == true {
				got += " diverged"
			}
			if m["recovered"] == true {
				got += " recovered"
			}
			if got != tt.want {
				t.Errorf("resume at seq %d term %d: got %s (%s), want %s", tt.seq, tt.term, got, m["\x00raw"], tt.want)
			}
		})
	}
}
