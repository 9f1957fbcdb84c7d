package pyclient_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mdgate/mdgate/internal/testpair"
	"github.com/mdgate/mdgate/internal/testpeer"
)

// pyUpdate is one JSON line of follow.py --json.
type pyUpdate struct {
	Event    string         `json:"event"`
	Stats    map[string]int `json:"stats"`
	Topic    string         `json:"t"`
	Seq      uint64         `json:"s"`
	Epoch    string         `json:"e"`
	Term     uint16         `json:"term"`
	Src      string         `json:"src"`
	Gap      bool           `json:"gap"`
	Missed   uint64         `json:"missed"`
	Diverged bool           `json:"diverged"`
}

// TestFailoverPairKill9: follow.py given both gateways of a pair (both
// stamped egresses, both snapshot endpoints, --heartbeat 0.25) under a
// publisher feeding both. The active is killed with SIGKILL: the follower
// hears no heartbeat for 3 beats and votes (a subscribe to the vote
// topic), which makes the standby active (no other client asks it); the
// follower goes on on the standby with the stamps it holds, repairing the
// gap from the standby's history. Every topic's sequence at the follower
// is intact throughout: each update is the next seq of its topic, or
// carries a flag (gap, diverged) saying why not, and terms never go down
// unflagged; after the takeover every topic moves on under the new term.
func TestFailoverPairKill9(t *testing.T) {
	const topics = 4
	p, b := testpair.StartPair(t, testpair.Build(t), true)
	defer testpair.Publish(p, b, topics, 2*time.Millisecond, topics)()

	cmd, stdout, stderr := startPython(t, "follow.py", "--json", "--snapshot", p.Snapshot, "--snapshot", b.Snapshot, "--heartbeat", "0.25",
		"--request-timeout", "1", "--prefix", "ev.", p.Stamped, b.Stamped)
	var (
		mu      sync.Mutex
		last    = map[string]pyUpdate{}
		bad     []string
		stats   map[string]int
		nstats  int // stats lines read
		flagged = map[string]int{}
		sources = map[string]int{}
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var u pyUpdate
			if json.Unmarshal(sc.Bytes(), &u) != nil {
				continue
			}
			mu.Lock()
			if u.Event != "" {
				if u.Stats != nil {
					stats = u.Stats
					nstats++
				}
				mu.Unlock()
				continue
			}
			prev, ok := last[u.Topic]
			switch {
			case u.Gap:
				flagged["gap"]++
			case u.Diverged:
				flagged["diverged"]++
			case !ok:
			case u.Epoch != prev.Epoch:
				bad = append(bad, fmt.Sprintf("%s: epoch %s after %s, unflagged", u.Topic, u.Epoch, prev.Epoch))
			case u.Seq != prev.Seq+1:
				bad = append(bad, fmt.Sprintf("%s: seq %d (term %d, %s) after %d (term %d), unflagged", u.Topic, u.Seq, u.Term, u.Src, prev.Seq, prev.Term))
			case u.Term < prev.Term:
				bad = append(bad, fmt.Sprintf("%s: term %d after %d", u.Topic, u.Term, prev.Term))
			}
			sources[u.Src]++
			last[u.Topic] = u
			mu.Unlock()
		}
	}()
	defer func() {
		cmd.Process.Kill()
		<-readDone
		cmd.Wait()
		if t.Failed() {
			t.Logf("follow.py stderr:\n%s", stderr.String())
		}
	}()
	snapshotOf := func() map[string]pyUpdate {
		mu.Lock()
		defer mu.Unlock()
		m := make(map[string]pyUpdate, len(last))
		for k, v := range last {
			m[k] = v
		}
		return m
	}
	testpeer.Eventually(t, 20*time.Second, "the follower reading every topic", func() bool {
		m := snapshotOf()
		if len(m) < topics {
			return false
		}
		for _, u := range m {
			if u.Seq < 50 {
				return false
			}
		}
		return true
	})
	before := snapshotOf()
	var oldTerm uint16
	for _, u := range before {
		oldTerm = max(oldTerm, u.Term)
	}
	if oldTerm == 0 {
		t.Fatalf("the follower's updates carry no term: %v", before)
	}

	killed, takeover := testpair.Takeover(t, p, b, "the backup voted in")
	marks := snapshotOf()
	testpeer.Eventually(t, 20*time.Second, "every topic moving on at the follower under the new term", func() bool {
		m := snapshotOf()
		for topic, u := range m {
			if u.Term <= oldTerm || u.Seq <= marks[topic].Seq+20 {
				return false
			}
		}
		return len(m) == topics
	})
	flowing := time.Since(killed)
	// A stats line printed after every topic moved on (follow.py prints one
	// every 0.5 s of updates), so that it counts the vote.
	mu.Lock()
	seen := nstats
	mu.Unlock()
	testpeer.Eventually(t, 20*time.Second, "a stats line from the follower after the takeover", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return nstats > seen
	})

	mu.Lock()
	defer mu.Unlock()
	for _, s := range bad {
		t.Error(s)
	}
	if stats["votes"] == 0 {
		t.Errorf("follower stats %v: no vote, yet the backup took over", stats)
	}
	for topic, u := range last {
		if u.Term <= oldTerm {
			t.Errorf("%s: last term %d, want above %d", topic, u.Term, oldTerm)
		}
	}
	t.Logf("takeover %v after kill -9 (seen by polling /healthz), every topic flowing under term %d at the follower %v after it; "+
		"flagged breaks %v, updates by source %v; follower stats %v",
		takeover.Round(time.Millisecond), last["ev.0"].Term, flowing.Round(time.Millisecond), flagged, sources, stats)
}
