package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mdgate/mdgate/internal/promscrape"
	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/internal/testrelay"
)

// TestFailoverLinkCut: the HA state link alone cut (through a relay) makes
// no takeover: each sees its peer dead, the standby stays passive until a
// client asks it. A client then asking the standby (its link to the active
// is the one cut, in the story) makes a second active, under a higher
// term; when the link heals the lower term yields within a few beats, and
// no (term, seq) is ever stamped by both.
func TestFailoverLinkCut(t *testing.T) {
	// Each one's peer is reached through a relay to its state endpoint:
	// the state link alone can be cut. The last two relays made are the
	// pair's (StartPairVia starts again on new ports if one was taken).
	var relays []*testrelay.Relay
	p, b := testpair.StartPairVia(t, binary, false, func(state string) string {
		r := testrelay.New(t, strings.TrimPrefix(state, "tcp://"))
		relays = append(relays, r)
		return "tcp://" + r.Addr()
	})
	toB, toP := relays[len(relays)-2], relays[len(relays)-1] // the primary's to b, the backup's to p
	defer publishPair(p, b, 4, 2)()

	toP.Cut()
	toB.Cut()
	testpeer.Eventually(t, 20*time.Second, "each seeing its peer dead", func() bool {
		return !p.Health().PeerAlive && !b.Health().PeerAlive
	})
	// The standby knows its peer is dead and still does not take over: only
	// a client's vote does that.
	if pb, bb := p.Health(), b.Health(); pb.Mode != "active" || bb.Mode != "passive" {
		t.Fatalf("HA link cut, no vote: primary %s, backup %s; want active and passive", pb.Mode, bb.Mode)
	}

	// A client asking the standby: its vote makes a second active.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.HTTP+"/ws", nil)
	if err != nil {
		t.Fatalf("a client voting at the standby with its peer dead: %v", err)
	}
	ws.Close()
	pb, bb := p.Health(), b.Health()
	if pb.Mode != "active" || bb.Mode != "active" || bb.Term <= pb.Term {
		t.Fatalf("after the vote behind a cut link: primary %s term %d, backup %s term %d; want both active, the backup's term higher",
			pb.Mode, pb.Term, bb.Mode, bb.Term)
	}
	if pb.Term%2 != 1 || bb.Term%2 != 0 {
		t.Errorf("terms %d (primary) and %d (backup): want odd and even, never the same", pb.Term, bb.Term)
	}

	healed := time.Now()
	toP.Heal()
	toB.Heal()
	testpeer.Eventually(t, 20*time.Second, "the lower term yielding after the heal", func() bool {
		return p.Health().Mode == "passive" && b.Health().Mode == "active"
	})
	t.Logf("after the heal the primary (term %d) yielded to the backup (term %d) in %v (--ha-heartbeat 250ms; ZeroMQ reconnects through the relay included)",
		pb.Term, bb.Term, time.Since(healed).Round(time.Millisecond))
}

// TestStandbyLoopIdles: a standby's loop goes round once per message it
// receives and otherwise every poll interval (50 ms). Its peer's mirror
// subscribes to it, which queued a replay the standby never runs; the
// loop then polled with a zero timeout and burned a core (found by BenchmarkMirrorCost: 55 us of CPU per
// mirrored message against the active's 13).
func TestStandbyLoopIdles(t *testing.T) {
	p, b := startPair(t)
	defer publishPair(p, b, 4, 1)() // a trickle: the standby mirrors it
	turns := func() float64 {
		f, err := promscrape.Scrape(context.Background(), "http://"+b.HTTP+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		v, ok := f.Value("mdgate_proxy_loop_seconds") // a histogram: its count
		if !ok {
			t.Fatal("no mdgate_proxy_loop_seconds in /metrics")
		}
		return v
	}
	before := turns()
	time.Sleep(time.Second) // the window measured, not synchronisation
	// At most a turn per message received (1k/s on its own ingress, 1k/s
	// mirrored), a poll every 50 ms and its beats: about 2,000. The spin
	// went round over 100,000 times.
	if n := turns() - before; n > 10_000 {
		t.Errorf("the standby's loop went round %v times in a second with 2,000 messages arriving, want about 2,000", n)
	}
}
