package pyclient_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"

	"github.com/mdgate/mdgate/internal/testpeer"
)

// gatewayBinary builds cmd/gateway once for the tests that run a failover
// pair as processes (a gateway killed with SIGKILL must be one).
var gatewayBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mdgate-pyclient")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/gateway").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/gateway: %v\n%s", err, out)
	}
	return bin, nil
})

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// haNode is one gateway of a pair (as cmd/gateway/ha_test.go starts them,
// with a snapshot endpoint).
type haNode struct {
	http, in, stamped, snapshot, state string
	cmd                                *exec.Cmd
	stderr                             *strings.Builder
}

func (n *haNode) mode() string {
	resp, err := http.Get("http://" + n.http + "/healthz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct {
		Proxy struct{ HA struct{ Mode string } }
	}
	json.NewDecoder(resp.Body).Decode(&h)
	return h.Proxy.HA.Mode
}

// startPair starts a primary and a backup on free loopback ports (history
// of ev., --ha-heartbeat 250ms, snapshot endpoints) and waits until they
// settle.
func startPair(t *testing.T) (p, b *haNode) {
	bin, err := gatewayBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	dir := t.TempDir()
	addr := func() string { return "tcp://" + freeAddr(t) }
	p = &haNode{http: freeAddr(t), in: addr(), stamped: addr(), snapshot: addr(), state: addr()}
	b = &haNode{http: freeAddr(t), in: addr(), stamped: addr(), snapshot: addr(), state: addr()}
	start := func(n, peer *haNode, role string) {
		n.cmd = exec.Command(bin, "--http", n.http, "--ingress-bind", n.in, "--egress-bind", "", "--stamped-bind", n.stamped,
			"--snapshot-bind", n.snapshot, "--history", "ev.=100000", "--log-json",
			"--ha-role", role, "--ha-bind", n.state, "--ha-peer", peer.state, "--ha-mirror", peer.stamped,
			"--ha-heartbeat", "250ms", "--ha-term-file", filepath.Join(dir, role+".term"))
		n.stderr = new(strings.Builder)
		n.cmd.Stderr = n.stderr
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			n.cmd.Process.Kill()
			n.cmd.Wait()
			if t.Failed() {
				t.Logf("%s's log:\n%s", role, n.stderr.String())
			}
		})
	}
	start(p, b, "primary")
	start(b, p, "backup")
	testpeer.Eventually(t, 20*time.Second, "primary active, backup passive", func() bool {
		return p.mode() == "active" && b.mode() == "passive"
	})
	return p, b
}

// publishPair runs a publisher connected to both gateways' ingresses (a
// PUB sends to each), one update of each topic ev.0... every 2 ms, until
// the returned func.
func publishPair(p, b *haNode, topics int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		pub, _ := zmq.NewSocket(zmq.PUB)
		defer pub.Close()
		pub.SetLinger(0)
		pub.Connect(p.in)
		pub.Connect(b.in)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for j := range topics {
				pub.SendMessage(fmt.Sprintf("ev.%d", j), fmt.Sprintf(`{"n":%d}`, i))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

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
	p, b := startPair(t)
	defer publishPair(p, b, topics)()

	cmd := python(t, "follow.py", "--json", "--snapshot", p.snapshot, "--snapshot", b.snapshot, "--heartbeat", "0.25",
		"--request-timeout", "1", "--prefix", "ev.", p.stamped, b.stamped)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		last    = map[string]pyUpdate{}
		bad     []string
		stats   map[string]int
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

	killed := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	testpeer.Eventually(t, 20*time.Second, "the backup voted in", func() bool { return b.mode() == "active" })
	takeover := time.Since(killed)
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
	// A last stats line: follow.py prints them every 0.5 s of updates.
	time.Sleep(600 * time.Millisecond)

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
