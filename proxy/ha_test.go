package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mdgate/mdgate/ha"
	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/tick"
)

// TestHAStallInsideReceiveHoldsTheBatch: the active gateway of a pair
// stalls after its loop took the peer's states and before it stamped the
// batch it was receiving (kill -STOP landing inside the receive; CI on
// 3c22457 saw 4 such stamps in TestFailoverStopCont). The peer takes over
// meanwhile. The batch received across the stall must not go out under
// the stale term: it waits out the hold, and the gateway, now passive,
// drops it as passive, counted.
//
// The stall is a jump of the injected clock, made by a hook between the
// receive and the stamp; the peer is a bare ha.Link beating as the backup,
// then as the active under term 2 from the jump on.
func TestHAStallInsideReceiveHoldsTheBatch(t *testing.T) {
	// The hold lasts 2 beats: the peer's new state, beaten every 20 ms,
	// must reach the loop within it, with the race detector on a busy
	// machine too.
	const beat = 250 * time.Millisecond
	const burst = 10
	var skew atomic.Int64 // the stall: how far the gateway's clock has jumped
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }

	// The peer: a link beating every 20 ms as a starting backup, then as
	// the active under term 2 once tookOver is set.
	gwState := "tcp://" + testpair.FreeAddr(t)
	link, err := ha.NewLink(ha.LinkConfig{Bind: "tcp://127.0.0.1:*", Peer: gwState})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	linkDone := make(chan error, 1)
	go func() { linkDone <- link.Run(ctx) }()
	beatDone := make(chan struct{})
	var tookOver atomic.Bool
	go func() {
		defer close(beatDone)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			st := ha.State{Role: ha.RoleBackup, Mode: ha.ModeBackup, Time: time.Now().UnixNano()}
			if tookOver.Load() {
				st.Mode, st.Term, st.Epoch = ha.ModeActive, 2, 1
			}
			if err := link.Beat(st); err != nil && !errors.Is(err, ha.ErrLinkDown) {
				t.Errorf("peer beat: %v", err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-beatDone
		if err := <-linkDone; err != nil {
			t.Errorf("peer link: %v", err)
		}
	})
	select {
	case <-link.Ready():
	case err := <-linkDone:
		t.Fatalf("peer link: %v", err)
	}

	c := testConfig()
	c.Now = clock
	reg := prometheus.NewRegistry()
	p := startWith(t, c, Options{Registerer: reg, HA: &HA{
		Role: ha.RolePrimary, Bind: gwState, Peer: link.Endpoint(),
		Mirror: []string{"tcp://" + testpair.FreeAddr(t)}, Heartbeat: beat,
	}})
	testpeer.Eventually(t, wait, "the gateway active", func() bool { return ha.Mode(p.haMode.Load()) == ha.ModeActive })

	zs := newZThread(t)
	sub := zSocket(t, zs, zmq.SUB)
	zs.do(func() {
		err = errors.Join(sub.SetSubscribe("t."), sub.SetRcvtimeo(wait), sub.Connect(p.Endpoints().Stamped[0]))
	})
	if err != nil {
		t.Fatal(err)
	}
	subscribed(t, p, egressStamped, 1)
	zp := newZThread(t)
	pub := goPub(t, zp, p.Endpoints().Ingress[0])
	send := func(phase int) {
		zp.do(func() {
			for i := range burst {
				if _, err = pub.SendMessage(fmt.Sprintf("t.%d", i), phase); err != nil {
					return
				}
			}
		})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	recv := func() (tick.Stamp, error) {
		var frames [][]byte
		zs.do(func() { frames, err = sub.RecvMessageBytes(0) })
		if err != nil {
			return tick.Stamp{}, err
		}
		return tick.ParseStamp(frames[len(frames)-1])
	}

	send(1)
	for range burst {
		st, err := recv()
		if err != nil {
			t.Fatalf("before the stall: %v", err)
		}
		if st.Term != 1 {
			t.Fatalf("before the stall: stamp %+v, want term 1", st)
		}
	}

	var jumpedAt atomic.Int64
	h := func() {
		if jumpedAt.Load() != 0 {
			return
		}
		skew.Add(int64(10 * beat))
		jumpedAt.Store(clock().UnixNano())
		tookOver.Store(true)
	}
	recvHook.Store(&h)
	defer recvHook.Store(nil)
	send(2)
	testpeer.Eventually(t, wait, "the gateway yielding to the peer's term 2", func() bool {
		return ha.Mode(p.haMode.Load()) == ha.ModePassive
	})
	if jumpedAt.Load() == 0 {
		t.Fatal("the receive hook never ran")
	}
	// Every message of the second burst is either stamped (the fault) or
	// dropped as passive.
	var stale []tick.Stamp
	zs.do(func() { err = sub.SetRcvtimeo(50 * time.Millisecond) })
	testpeer.Eventually(t, wait, "the second burst stamped or dropped", func() bool {
		if st, err := recv(); err == nil {
			stale = append(stale, st)
		}
		return float64(len(stale))+metric(t, reg, "mdgate_ingress_dropped_total", "reason", "passive") >= burst
	})
	for _, st := range stale {
		t.Errorf("stamped after the stall, under term %d (ingress %d, the stall ended at %d)", st.Term, st.Ingress, jumpedAt.Load())
	}
	if got := metric(t, reg, "mdgate_ingress_dropped_total", "reason", "passive"); got != burst {
		t.Errorf("dropped as passive: %v, want %d (the whole second burst)", got, burst)
	}
}
