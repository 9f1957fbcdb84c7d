package slowsubzmq_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
	"github.com/rs/zerolog"

	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/lvc"
	"github.com/mdgate/mdgate/slowsub/slowsubzmq"
	"github.com/mdgate/mdgate/snapshot"
	"github.com/mdgate/mdgate/tick"
)

// serveSnapshots runs a snapshot server on a free port over cache until
// the test ends.
func serveSnapshots(t *testing.T, cache *lvc.Cache) string {
	t.Helper()
	srv, err := snapshot.NewServer("tcp://127.0.0.1:*", cache, 1, snapshot.DefaultConfig(), nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	testpeer.Serve(t, srv, 10*time.Second)
	return srv.Bound()
}

func historyCache(rules ...lvc.HistoryRule) *lvc.Cache {
	cfg := lvc.DefaultConfig()
	cfg.History = rules
	return lvc.New(cfg, nil)
}

// tickOf is update seq of topic as the gateway would have stamped it.
func tickOf(topic string, epoch, seq uint64) *tick.Message {
	return &tick.Message{Topic: topic, Frames: [][]byte{[]byte(topic), fmt.Appendf(nil, "%s:%d", topic, seq)},
		Stamp: tick.Stamp{Epoch: epoch, Seq: seq, Ingress: time.Now().UnixNano()}}
}

// sendTick sends m on the stamped stream (with flags added to its stamp).
func sendTick(s *zmq.Socket, m *tick.Message, flags uint8) error {
	st := m.Stamp
	st.Flags |= flags
	_, err := s.SendMessageDontwait(m.Frames[0], m.Frames[1], tick.AppendStamp(nil, st))
	return err
}

// TestRepair: the gateway's history holds seqs 1 to 10 of t (epoch 1);
// the stream carries only some of them. A Sub with Repair fills every gap
// the history covers and ends with ErrGap (a *RepairError) when it does
// not.
func TestRepair(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	type wire struct {
		epoch, seq uint64
		flags      uint8
	}
	tests := []struct {
		name  string
		rule  lvc.HistoryRule
		wire  []wire
		want  string // seqs delivered, then the error
		stats slowsubzmq.RepairStats
	}{
		{"recovered", lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20},
			[]wire{{1, 1, 0}, {1, 2, 0}, {1, 6, 0}, {1, 7, 0}, {1, 10, 0}},
			"1 2 3 4 5 6 7 8 9 10 |", slowsubzmq.RepairStats{Repairs: 1, Updates: 8}},
		{"a second gap after the first", lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20},
			[]wire{{1, 1, 0}, {1, 3, 0}},
			"1 2 3 4 5 6 7 8 9 10 |", slowsubzmq.RepairStats{Repairs: 1, Updates: 9}},
		{"replay past the gap", lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20},
			[]wire{{1, 1, 0}, {1, 2, 0}, {1, 10, tick.FlagReplay}},
			"1 2 3 4 5 6 7 8 9 10 |", slowsubzmq.RepairStats{Repairs: 1, Updates: 8}},
		{"gap beyond the history", lvc.HistoryRule{Prefix: "", MaxCount: 3, MaxBytes: 1 << 20},
			[]wire{{1, 1, 0}, {1, 2, 0}, {1, 10, 0}},
			"1 2 10 | gap in sequence: t want seq 3, got 10; not repaired: 5 updates are gone from the gateway's history", slowsubzmq.RepairStats{}},
		{"no history", lvc.HistoryRule{Prefix: "other.", MaxCount: 100, MaxBytes: 1 << 20},
			[]wire{{1, 1, 0}, {1, 2, 0}, {1, 10, 0}},
			"1 2 10 | gap in sequence: t want seq 3, got 10; not repaired: the gateway keeps no history of t", slowsubzmq.RepairStats{}},
		{"epoch change as without repair", lvc.HistoryRule{Prefix: "", MaxCount: 100, MaxBytes: 1 << 20},
			[]wire{{1, 1, 0}, {2, 1, 0}},
			"1 1 | gap in sequence: t epoch changed 0000000000000001 -> 0000000000000002", slowsubzmq.RepairStats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := historyCache(tt.rule)
			for seq := uint64(1); seq <= 10; seq++ {
				cache.Update(tickOf("t", 1, seq))
			}
			pub := newPub(t)
			sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: pub.ep, Repair: serveSnapshots(t, cache)})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			sub.SetTimeout(10 * time.Second)
			pub.awaitSubscriber(t)
			for _, w := range tt.wire {
				if err := sendTick(pub.sock, tickOf("t", w.epoch, w.seq), w.flags); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			var end error
			for end == nil && len(got) < 10 {
				m, err := sub.Recv()
				if m != nil {
					got = append(got, fmt.Sprint(m.Stamp.Seq))
					if want := fmt.Sprintf("t:%d", m.Stamp.Seq); string(m.Frames[1]) != want {
						t.Errorf("seq %d has payload %q, want %q", m.Stamp.Seq, m.Frames[1], want)
					}
				}
				end = err
			}
			if end == nil { // nothing more may come
				sub.SetTimeout(50 * time.Millisecond)
				if m, err := sub.Recv(); !errors.Is(err, zmq.Errno(syscall.EAGAIN)) {
					t.Errorf("Recv after the last = %v, %v, want EAGAIN", m, err)
				}
			}
			s := strings.Join(got, " ") + " |"
			if end != nil {
				s += " " + end.Error()
			}
			if s != tt.want {
				t.Errorf("Recv() over %v = %q, want %q", tt.wire, s, tt.want)
			}
			if end != nil && !errors.Is(end, slowsubzmq.ErrGap) {
				t.Errorf("Recv() error %v does not wrap ErrGap", end)
			}
			if st := sub.RepairStats(); st != tt.stats {
				t.Errorf("RepairStats() = %+v, want %+v", st, tt.stats)
			}
		})
	}
}

// TestRepairAtSmallHWM: a publisher sends as fast as it can to a Sub whose
// pipe holds 20 messages and which reads slowly, so most updates are dropped
// on the way; the gateway's history (here a cache the publisher writes, as
// the proxy does, and a snapshot server) holds them all. The Sub repairs
// every gap and delivers exactly the publisher's sequence of every topic,
// also when the updates it holds behind a repair are let go at a small
// RepairMaxBytes (a later repair brings them back).
func TestRepairAtSmallHWM(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBytes int
	}{{"default hold bound", 0}, {"hold bound 256 bytes", 256}} {
		t.Run(tc.name, func(t *testing.T) { repairAtSmallHWM(t, tc.maxBytes) })
	}
}

func repairAtSmallHWM(t *testing.T, maxBytes int) {
	const (
		topics = 4
		n      = 5000 // updates a topic in the burst
	)
	cache := historyCache(lvc.HistoryRule{Prefix: "", MaxCount: 1 << 20, MaxBytes: 64 << 20})
	snapEP := serveSnapshots(t, cache)
	ep := fmt.Sprintf("inproc://slowsub-repair-%d", time.Now().UnixNano())

	// The publisher owns the XPUB and is the cache's only writer.
	bound, stop, published := make(chan error, 1), make(chan struct{}), make(chan [topics]uint64, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var seqs [topics]uint64
		defer func() { published <- seqs }()
		pub, err := zmq.NewSocket(zmq.XPUB)
		if err == nil {
			err = errors.Join(pub.SetLinger(0), pub.SetSndhwm(10), pub.SetRcvtimeo(10*time.Second), pub.Bind(ep))
		}
		bound <- err
		if err != nil {
			return
		}
		defer pub.Close()
		if _, err := pub.RecvBytes(0); err != nil { // the subscription
			return
		}
		send := func(i int) {
			seqs[i]++
			m := tickOf(fmt.Sprintf("md.t%d", i), 1, seqs[i])
			cache.Update(m)
			sendTick(pub, m, 0) // dropped at the HWM, like the gateway's XPUB
		}
		for range n {
			for i := range topics {
				send(i)
			}
		}
		// Then a trickle, so that the burst's last updates are seen to be
		// missing (a gap shows only when a later update arrives).
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for i := range topics {
					send(i)
				}
			}
		}
	}()
	if err := <-bound; err != nil {
		t.Fatal(err)
	}
	stopped := false
	stopPub := func() {
		if !stopped {
			stopped = true
			close(stop)
			<-published
		}
	}
	defer stopPub()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: ep, Repair: snapEP, RcvHWM: 10, RepairMaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sub.SetTimeout(10 * time.Second)

	var last [topics]uint64
	done, delivered := 0, 0
	start := time.Now()
	for done < topics {
		m, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %d updates: %v (stats %+v)", delivered, err, sub.RepairStats())
		}
		var i int
		if _, err := fmt.Sscanf(m.Topic, "md.t%d", &i); err != nil || i < 0 || i >= topics {
			t.Fatalf("unexpected topic %q", m.Topic)
		}
		if want := last[i] + 1; m.Stamp.Seq != want || string(m.Frames[1]) != fmt.Sprintf("%s:%d", m.Topic, want) {
			t.Fatalf("%s: got seq %d %q, want seq %d: not the publisher's sequence", m.Topic, m.Stamp.Seq, m.Frames[1], want)
		}
		last[i] = m.Stamp.Seq
		if last[i] == n {
			done++
		}
		if delivered++; delivered%100 == 0 {
			time.Sleep(2 * time.Millisecond) // the consumer's slow work, not synchronisation
		}
	}
	stopPub()
	st := sub.RepairStats()
	t.Logf("%d updates of %d topics in %v, every one in sequence: %d gaps repaired with %d updates, %d held updates let go",
		delivered, topics, time.Since(start).Round(time.Millisecond), st.Repairs, st.Updates, st.Dropped)
	if st.Repairs == 0 || st.Updates == 0 {
		t.Errorf("RepairStats() = %+v: nothing was dropped, the test proves nothing", st)
	}
}

// A Sub without Repair still ends at the first gap (the guide's Suicidal
// Snail), and has no repair counts.
func TestNoRepairWithoutEndpoint(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pub := newPub(t)
	sub := dial(t, pub.ep, 0)
	pub.awaitSubscriber(t)
	for _, seq := range []uint64{1, 3} {
		sendTick(pub.sock, tickOf("t", 1, seq), 0)
	}
	sub.Recv()
	var re *slowsubzmq.RepairError
	if _, err := sub.Recv(); !errors.Is(err, slowsubzmq.ErrGap) || errors.As(err, &re) {
		t.Errorf("Recv() = %v, want a *GapError", err)
	}
	if st := sub.RepairStats(); st != (slowsubzmq.RepairStats{}) {
		t.Errorf("RepairStats() = %+v without Repair, want zero", st)
	}
}
