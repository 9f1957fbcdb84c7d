package slowsubzmq_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
	"github.com/mdgate/mdgate/slowsub/slowsubzmq"
)

// TestPairKill9: a Sub given both gateways of a real pair (both stamped
// egresses, both snapshot endpoints, HeartbeatEvery 250ms) under a
// publisher feeding both. The active is killed with SIGKILL: the Sub hears
// no heartbeat for 3 beats and votes, which makes the standby active
// (nothing else asks it); it goes on there with the stamps it holds,
// repairing the gap from the standby's history. Every topic's sequence is
// intact: each update is the next seq, or comes with a *DivergedError;
// no other error; and every topic moves on under the new term.
func TestPairKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	const topics = 4
	p, b := testpair.StartPair(t, testpair.Build(t), true)
	defer testpair.Publish(p, b, topics, 2*time.Millisecond, topics)()

	type held struct {
		seq  uint64
		term uint16
	}
	var (
		mu       sync.Mutex
		last     = map[string]held{}
		bad      []string
		diverged int
		stats    slowsubzmq.FailoverStats
		repairs  slowsubzmq.RepairStats
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		sub, err := slowsubzmq.Dial(slowsubzmq.SubConfig{Endpoint: p.Stamped, Endpoints: []string{b.Stamped}, Prefixes: []string{"ev."},
			HeartbeatEvery: 250 * time.Millisecond, Repair: p.Snapshot, RepairEndpoints: []string{b.Snapshot}, RepairTimeout: time.Second})
		if err != nil {
			t.Error(err)
			return
		}
		defer sub.Close()
		sub.SetTimeout(50 * time.Millisecond)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, err := sub.Recv()
			var div *slowsubzmq.DivergedError
			mu.Lock()
			stats, repairs = sub.FailoverStats(), sub.RepairStats()
			switch {
			case errors.Is(err, zmq.Errno(syscall.EAGAIN)):
			case errors.As(err, &div):
				diverged++
				last[m.Topic] = held{m.Stamp.Seq, m.Stamp.Term}
			case err != nil:
				bad = append(bad, err.Error())
				mu.Unlock()
				return
			default:
				prev, ok := last[m.Topic]
				if ok && (m.Stamp.Seq != prev.seq+1 || m.Stamp.Term < prev.term) {
					bad = append(bad, fmt.Sprintf("%s: %d/%d after %d/%d", m.Topic, m.Stamp.Seq, m.Stamp.Term, prev.seq, prev.term))
				}
				last[m.Topic] = held{m.Stamp.Seq, m.Stamp.Term}
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stop); <-done }()
	marks := func() map[string]held {
		mu.Lock()
		defer mu.Unlock()
		c := map[string]held{}
		for k, v := range last {
			c[k] = v
		}
		return c
	}
	testpeer.Eventually(t, 20*time.Second, "the Sub reading every topic", func() bool {
		m := marks()
		for _, h := range m {
			if h.seq < 50 {
				return false
			}
		}
		return len(m) == topics
	})
	var oldTerm uint16
	for _, h := range marks() {
		oldTerm = max(oldTerm, h.term)
	}
	_, takeover := testpair.Takeover(t, p, b, "the backup voted in")
	before := marks()
	testpeer.Eventually(t, 20*time.Second, "every topic moving on under the new term", func() bool {
		for topic, h := range marks() {
			if h.term <= oldTerm || h.seq <= before[topic].seq+20 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for _, s := range bad {
		t.Error(s)
	}
	if stats.Votes == 0 {
		t.Errorf("FailoverStats %+v: no vote", stats)
	}
	t.Logf("takeover %v after kill -9 (polling /healthz); %d diverged; %+v; %+v", takeover.Round(time.Millisecond), diverged, stats, repairs)
}
